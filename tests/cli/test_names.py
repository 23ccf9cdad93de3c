"""Names that match the ecosystem: vgg16_bn, centre, --crop-size, --version, did-you-mean."""

import pytest
import torch

import vggnet
from tests.helpers import SMALL
from vggnet import VGGError, build_model
from vggnet.cli import build_parser
from vggnet.eval.protocols import Protocol
from vggnet.model.configs import resolve_name
from vggnet.train.config import TrainConfig


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vgg16_bn", ("D", True)),
        ("VGG19_BN", ("E", True)),
        ("vgg11", ("A", False)),
        ("D_bn", ("D", True)),
        ("a-lrn", ("A-LRN", False)),
        ("C", ("C", False)),
    ],
)
def test_torchvision_names_with_bn_suffix(name, expected):
    assert resolve_name(name) == expected


def test_bn_names_build_batch_norm_nets_everywhere(run_cli):
    tv = pytest.importorskip("torchvision")
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        ours, theirs = build_model("vgg13_bn", init="kaiming"), tv.models.vgg13_bn()
    assert ours.spec.config == "B" and ours.spec.batch_norm
    assert [p.shape for p in ours.state_dict().values()] == [
        p.shape for p in theirs.state_dict().values()
    ]
    cfg = TrainConfig(config="vgg16_bn", data="synthetic", out="x").resolved()
    assert (cfg.config, cfg.batch_norm) == ("D", True)
    status, out, _ = run_cli("info", "vgg16_bn")
    assert status == 0 and "bn1_1" in out and "(batch norm)" in out
    with pytest.raises(VGGError, match="unknown config 'vgg16_gn'"):
        build_model("vgg16_gn")


def test_resume_accepts_the_bn_name_of_the_stored_net(tmp_path, run_cli):
    run = tmp_path / "run"
    args = ["train", "--config", "A", "--batch-norm", "--max-steps", "2", *SMALL, "--out", run]
    assert run_cli(*args)[0] == 0
    status, _, err = run_cli(
        "train", "--out", run, "--resume", "--config", "vgg11_bn", "--max-steps", "3"
    )
    assert status == 0, err
    status, _, err = run_cli("train", "--out", run, "--resume", "--config", "vgg13_bn")
    assert status == 2 and "--config vgg13_bn contradicts" in err


@pytest.mark.parametrize("spelling", ["centre", "Centre", "central", "center"])
def test_centre_is_center(spelling):
    args = build_parser().parse_args(
        ["eval", "--checkpoint", "c", "--data", "d", "--method", spelling]
    )
    assert args.method == "center"
    assert Protocol(spelling).method == "center"


def test_crop_size_is_the_one_spelling_and_crop_its_alias():
    parser = build_parser()
    long = parser.parse_args(["train", "--out", "r", "--crop-size", "64"])
    short = parser.parse_args(["train", "--out", "r", "--crop", "64"])
    assert long.crop == short.crop == 64
    assert (
        parser.parse_args(["reproduce", "--data", "d", "--out", "o", "--crop-size", "32"]).crop
        == 32
    )
    assert (
        "--crop-size" in build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    )


def test_version(run_cli):
    status, out, _ = run_cli("--version")
    assert status == 0 and out.startswith(f"vggnet {vggnet.__version__} (torch ")
    from importlib.metadata import version

    assert version("vggnet") == vggnet.__version__  # one source: pyproject reads it


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["eval", "--checkpont", "c"],
            "unknown argument --checkpont; did you mean --checkpoint?",
        ),
        (["train", "--out", "r", "--bacth-size", "8"], "did you mean --batch-size?"),
        (["trian"], "invalid choice: 'trian'"),
        (["trian"], "did you mean train?"),
        (
            ["eval", "--checkpoint", "c", "--data", "d", "--method", "dense+multicrp"],
            "did you mean dense+multi-crop?",
        ),
    ],
)
def test_did_you_mean(args, expected, run_cli):
    status, _, err = run_cli(*args)
    assert status == 2 and expected in err and err.count("\n") == 1


def test_an_unknown_flag_with_nothing_close_gets_no_guess(run_cli):
    status, _, err = run_cli("info", "--zzzzzz")
    assert status == 2 and "unknown argument --zzzzzz" in err and "did you mean" not in err
