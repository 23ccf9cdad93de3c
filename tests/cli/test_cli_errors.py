"""Bad flags and unwritable outputs: one line naming the flag or file, status 2, no traceback."""

import pytest

import vggnet.cli
from tests.helpers import tiny
from vggnet import save_checkpoint


@pytest.fixture
def checkpoint(tmp_path):
    model = tiny("A", num_classes=3, crop_size=32, width=0.25, fc_width=16)
    model.classes, model.train_scale = ["class0", "class1", "class2"], (40, 40)
    save_checkpoint(tmp_path / "m.ckpt", model)
    return tmp_path / "m.ckpt"


def test_outputs_in_missing_folders_are_refused_before_any_work(tmp_path, checkpoint, run_cli):
    data = "synthetic:classes=3,train=6,val=3,size=40"
    cases = [
        ("eval", "--checkpoint", checkpoint, "--data", data, "--json", tmp_path / "no" / "r.json"),
        (
            "eval",
            "--checkpoint",
            checkpoint,
            "--data",
            data,
            "--save-scores",
            tmp_path / "no" / "s.pt",
        ),
        (
            "features",
            "--checkpoint",
            checkpoint,
            "--data",
            data,
            "--out",
            tmp_path / "no" / "f.npy",
        ),
        (
            "export",
            "--checkpoint",
            checkpoint,
            "--format",
            "onnx",
            "--out",
            tmp_path / "no" / "m.onnx",
        ),
    ]
    for args in cases:
        status, _, err = run_cli(*args)
        assert status == 2 and err.count("\n") == 1, (args, err)
        assert f"{tmp_path / 'no'} does not exist; create it first" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["eval", "--checkpoint", "x", "--data", "y", "--workers", "-1"],
            "argument --workers: -1 is below 0",
        ),
        (
            ["eval", "--checkpoint", "x", "--data", "y", "--grid", "0"],
            "argument --grid: 0 is below 1",
        ),
        (
            ["eval", "--checkpoint", "x", "--data", "y", "--batch-size", "two"],
            "argument --batch-size: 'two' is not an integer",
        ),
        (["predict", "--checkpoint", "x", "img.png", "--top", "0"], "argument --top: 0 is below 1"),
        (["demo", "--epochs", "0"], "argument --epochs: 0 is below 1"),
    ],
)
def test_out_of_range_numbers_name_the_flag(args, message, capsys):
    assert vggnet.cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1  # no usage block


def test_train_refuses_negative_workers(tmp_path, run_cli):
    status, _, err = run_cli(
        "train", "--config", "A", "--data", "synthetic:classes=3,train=8", "--out", tmp_path / "r",
        "--crop", "32", "--scale", "40", "--workers", "-2", "--device", "cpu",
    )  # fmt: skip
    assert status == 2 and "--workers must be >= 0, got -2" in err


def test_any_file_error_is_one_line(monkeypatch, run_cli):
    def broken(args):
        raise PermissionError(13, "Permission denied", "/data/locked.jpg")

    monkeypatch.setitem(vggnet.cli.COMMANDS, "info", broken)
    status, _, err = run_cli("info")
    assert status == 2 and err == "vggnet: error: /data/locked.jpg: Permission denied\n"
