"""The networks: parameter counts, names, shapes, LRN, initialisation."""

import math

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from tests.helpers import tiny
from vggnet import VGGError, build_model, init_from_shallower
from vggnet.model import VGG, VGGSpec, fold_batch_norm
from vggnet.summary import count_parameters

# Paper section 1 / torchvision's weight metadata (REFERENCES.md), 1000-way head.
PAPER_PARAMS = {
    "A": 132_863_336,
    "A-LRN": 132_863_336,
    "B": 133_047_848,
    "C": 133_638_952,
    "D": 138_357_544,
    "E": 143_667_240,
}
TORCHVISION_BN_PARAMS = {"A": 132_868_840, "B": 133_053_736, "D": 138_365_992, "E": 143_678_248}
TORCHVISION_NAMES = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}


def meta_model(config, **kwargs):
    with torch.device("meta"):
        return VGG(VGGSpec(config, **kwargs))


@pytest.mark.parametrize("config", list(PAPER_PARAMS))
def test_parameter_counts_match_the_paper(config):
    assert count_parameters(meta_model(config)) == PAPER_PARAMS[config]


@pytest.mark.parametrize("config", list(TORCHVISION_BN_PARAMS))
def test_batch_norm_counts_match_torchvision(config):
    with torch.device("meta"):
        reference = getattr(torchvision.models, TORCHVISION_NAMES[config] + "_bn")()
    ours = count_parameters(meta_model(config, batch_norm=True))
    assert ours == TORCHVISION_BN_PARAMS[config] == count_parameters(reference)


def test_c_and_a_lrn_with_batch_norm_add_two_params_per_channel():
    for config in ("A-LRN", "C"):
        convs = [m for m in meta_model(config).modules() if isinstance(m, nn.Conv2d)]
        extra = sum(2 * m.out_channels for m in convs)
        with_bn = count_parameters(meta_model(config, batch_norm=True))
        assert with_bn == PAPER_PARAMS[config] + extra


def test_caffe_layer_names_in_order():
    names = [n for n, _ in meta_model("D").named_children()]
    expected = []
    for block, n in enumerate([2, 2, 3, 3, 3], start=1):
        for i in range(1, n + 1):
            expected += [f"conv{block}_{i}", f"relu{block}_{i}"]
        expected.append(f"pool{block}")
    expected += ["flatten", "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"]
    assert names == expected
    assert [n for n, _ in meta_model("A-LRN").named_children()][:4] == [
        "conv1_1",
        "relu1_1",
        "norm1",
        "pool1",
    ]


def test_batch_norm_follows_each_conv():
    names = [n for n, _ in meta_model("B", batch_norm=True).named_children()]
    assert names[:4] == ["conv1_1", "bn1_1", "relu1_1", "conv1_2"]


def test_small_net_shapes():
    model = build_model("D", 10, width=0.25, fc_width=64, crop_size=32, in_channels=1)
    assert model.conv1_1.in_channels == 1 and model.conv1_1.out_channels == 16
    assert model.conv5_3.out_channels == 128
    assert model.fc6.in_features == 128  # a 1x1 pool5 map at crop 32
    assert model.fc7.in_features == 64 and model.fc8.out_features == 10
    assert model(torch.randn(3, 1, 32, 32)).shape == (3, 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop_size": 100}, "crop_size must be a positive multiple of 32"),
        ({"num_classes": 0}, "num_classes must be >= 1"),
        ({"width": 0}, "width must be > 0"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"init": "zeros"}, "unknown init 'zeros'"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(VGGError, match=message):
        build_model("A", **kwargs)


def test_input_smaller_than_crop_is_refused():
    with pytest.raises(VGGError, match="smaller than the crop size 224x224"):
        tiny()(torch.randn(1, 3, 200, 240))
    with pytest.raises(VGGError, match=r"expected input of shape \(N, 3, H, W\)"):
        tiny()(torch.randn(1, 1, 224, 224))


def test_slices_are_plain_sequentials():
    model = tiny()
    head = model[:4]
    assert isinstance(head, nn.Sequential) and not isinstance(head, VGG)
    assert list(dict(head.named_children())) == ["conv1_1", "relu1_1", "conv1_2", "relu1_2"]
    assert model["fc6"] is model.fc6


def test_lrn_matches_hand_computation():
    """b_c = a_c / (k + alpha / n * sum_{c' in window(c)} a_c'^2) ** beta, n = 5 (Caffe's)."""
    lrn = tiny("A-LRN").norm1
    a = torch.randn(1, 7, 3, 2) * 10
    got = lrn(a).numpy()
    x = a.numpy().astype(np.float64)
    want = np.empty_like(x)
    for c in range(7):
        lo, hi = max(0, c - 2), min(7, c + 3)
        window = (x[:, lo:hi] ** 2).sum(axis=1)
        want[:, c] = x[:, c] / (2.0 + 1e-4 / 5 * window) ** 0.75
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_paper_init_is_normal_001_with_zero_biases():
    model = build_model("A", init="paper")
    for layer in (model.conv3_1, model.fc6):
        assert abs(layer.weight.std().item() - 0.01) < 2e-4
        assert abs(layer.weight.mean().item()) < 2e-4
        assert torch.count_nonzero(layer.bias) == 0


def test_glorot_and_kaiming_init():
    glorot = build_model("A", init="glorot", fc_width=256, num_classes=10)
    w = glorot.conv2_1.weight
    bound = math.sqrt(6 / (64 * 9 + 128 * 9))
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    kaiming = build_model("A", init="kaiming", fc_width=256, num_classes=10)
    assert abs(kaiming.conv2_1.weight.std().item() - math.sqrt(2 / (64 * 9))) < 1e-3
    bn = build_model("A", batch_norm=True, fc_width=256, num_classes=10)
    assert torch.all(bn.bn1_1.weight == 1) and torch.all(bn.bn1_1.bias == 0)


@pytest.mark.parametrize("target_config", ["B", "C", "D", "E"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_init_from_shallower_copies_exactly_the_papers_layers(target_config, batch_norm):
    source = tiny("A", batch_norm=batch_norm)
    target = tiny(target_config, batch_norm=batch_norm)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    copied = init_from_shallower(target, source)
    assert copied == ["conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8"]
    src = source.state_dict()
    for key, value in target.state_dict().items():
        layer = key.split(".")[0]
        conv_of_bn = "conv" + layer[2:] if layer.startswith("bn") else layer
        if conv_of_bn in copied:
            assert torch.equal(value, src[key]), key
        elif value.dtype.is_floating_point and value.numel() > 1 and "running" not in key:
            # untouched layers keep their own initialisation
            assert torch.equal(value, before[key]), key


def test_init_from_shallower_refuses_mismatched_shapes():
    with pytest.raises(
        VGGError, match=r"fc8.weight .*source shape \(10, 32\) != target shape \(5, 32\)"
    ):
        init_from_shallower(tiny("D", num_classes=5), tiny("A"))
    with pytest.raises(VGGError, match="differ in batch norm"):
        init_from_shallower(tiny("D", batch_norm=True), tiny("A"))


def test_folding_batch_norm_keeps_the_scores_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = build_model("B", 5, batch_norm=True, width=0.25, fc_width=16, crop_size=32)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):  # as if trained
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.5, 0.5)
    model.eval()
    crops, whole = torch.randn(4, 3, 32, 32), torch.randn(2, 3, 70, 58)
    with torch.no_grad():
        expected = model(crops), model.score_map(whole)
        folded = fold_batch_norm(model)
        got = folded(crops), folded.score_map(whole)
        assert torch.allclose(model(crops), expected[0])  # the original is untouched
    for e, g in zip(expected, got, strict=True):
        assert torch.allclose(g, e, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 10
    assert folded.classes == model.classes and folded.spec == model.spec
    plain = build_model("A", 5, width=0.25, fc_width=16)
    assert fold_batch_norm(plain) is plain
