"""Table 1 as data."""

import pytest

from vggnet import CONFIGS, VGGError
from vggnet.model.configs import parse_layer, resolve_config

# Weight layers per config, from the paper's Table 1 header (convs + 3 FC).
PAPER_DEPTH = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}


def test_six_configs_with_the_papers_depths():
    assert list(CONFIGS) == ["A", "A-LRN", "B", "C", "D", "E"]
    for name, blocks in CONFIGS.items():
        assert len(blocks) == 5
        convs = sum(1 for block in blocks for token in block if token.startswith("conv"))
        assert convs + 3 == PAPER_DEPTH[name]


def test_c_has_1x1_convs_as_third_layer_of_blocks_3_to_5():
    for block in (2, 3, 4):
        assert parse_layer(CONFIGS["C"][block][2])[:2] == ("conv", 1)
    assert all(parse_layer(t)[1] == 3 for block in CONFIGS["D"] for t in block)


def test_lrn_only_in_a_lrn_after_the_first_conv():
    assert CONFIGS["A-LRN"][0] == ("conv3-64", "LRN")
    assert all("LRN" not in block for name, c in CONFIGS.items() if name != "A-LRN" for block in c)


def test_block_widths():
    for blocks in CONFIGS.values():
        widths = [{parse_layer(t)[2] for t in block if t != "LRN"} for block in blocks]
        assert widths == [{64}, {128}, {256}, {512}, {512}]


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("a", "A"), ("a-lrn", "A-LRN"), ("A_LRN", "A-LRN"), ("vgg16", "D"), ("VGG19", "E")],
)
def test_resolve_config_accepts_aliases(name, canonical):
    assert resolve_config(name) == canonical


def test_unknown_config_lists_the_valid_ones():
    with pytest.raises(VGGError, match=r"unknown config 'F'.*A, A-LRN, B, C, D, E"):
        resolve_config("F")
