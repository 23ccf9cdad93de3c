"""Inputs that used to slip through or end in a traceback: each a clear line, or handled."""

import hashlib
import json
import math
import warnings

import pytest
import torch
from PIL import Image

from tests.helpers import tiny, write_image_folder
from tests.reliability.common import one_error_line
from vggnet import VGGError, save_checkpoint
from vggnet.apps.features import PerceptualLoss, extract_features
from vggnet.metrics import MetricsLog, read_metrics
from vggnet.serialization import strict_json, write_json
from vggnet.train.config import TrainConfig
from vggnet.train.signals import divergence_hints

DATA = "synthetic:classes=3,train=6,val=3,size=40"


def trained(**kwargs):
    """A tiny net whose biases are not all zero, as after training (A, 3 classes, crop 32)."""
    model = tiny("A", num_classes=3, crop_size=32, width=0.25, fc_width=16, **kwargs)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.01)
    model.classes, model.train_scale = ["class0", "class1", "class2"], (40, 40)
    return model


@pytest.fixture
def checkpoint(tmp_path):
    save_checkpoint(tmp_path / "m.ckpt", trained())
    return tmp_path / "m.ckpt"


def strict_loads(text: str):
    """json.loads that refuses NaN and Infinity, as strict parsers (JavaScript, Go) do."""

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_predict_names_a_missing_file_and_a_folder_and_exits_1(tmp_path, checkpoint, run_cli):
    good = tmp_path / "good.png"
    Image.new("RGB", (48, 40), (200, 10, 10)).save(good)
    missing, folder = tmp_path / "missing.jpg", tmp_path / "photos"
    folder.mkdir()
    status, out, err = run_cli(
        "predict", "--checkpoint", checkpoint, good, missing, folder, "--json"
    )
    assert status == 1  # some files failed, the others were predicted
    lines = err.strip().splitlines()
    assert lines == [
        f"vggnet: error: {missing}: no such file",
        f"vggnet: error: {folder}: a folder, not an image file: pass the images in it ({folder}/*)",
    ]
    result = strict_loads(out)
    assert [r["image"] for r in result["results"]] == [str(good)]
    assert len(result["failures"]) == 2 and str(missing) in result["failures"][0]
    status, _, _ = run_cli("predict", "--checkpoint", checkpoint, good)
    assert status == 0


@pytest.mark.parametrize("text", [",", " , ,", "0", "224,-1"])
def test_eval_scales_that_name_no_usable_scale_are_refused(checkpoint, run_cli, text):
    status, _, err = run_cli("eval", "--checkpoint", checkpoint, "--data", DATA, "--scales", text)
    assert status == 2
    assert "--scales" in one_error_line(err)


def test_evaluation_where_no_image_can_be_read_is_one_line_and_writes_no_json(
    tmp_path, checkpoint, run_cli
):
    write_image_folder(tmp_path / "data", ("class0", "class1", "class2"), train=1, val=2)
    for image in (tmp_path / "data" / "val").rglob("*.jpg"):
        image.write_bytes(b"not a jpeg")
    result = tmp_path / "r.json"
    status, _, err = run_cli(
        "eval", "--checkpoint", checkpoint, "--data", tmp_path / "data", "--json", result
    )
    assert status == 2
    assert "none of the 6 val images could be read" in err.splitlines()[-1]
    assert "Traceback" not in err and not result.exists()


def test_json_outputs_are_strict_json_nan_becomes_null(tmp_path):
    value = {"a": float("nan"), "b": [1.0, float("inf")], "c": (float("-inf"), "x"), "d": 2}
    assert strict_loads(strict_json(value)) == {
        "a": None,
        "b": [1.0, None],
        "c": [None, "x"],
        "d": 2,
    }
    write_json(tmp_path / "r.json", value)
    assert strict_loads((tmp_path / "r.json").read_text())["a"] is None
    log = MetricsLog(tmp_path, tensorboard=False)
    log.write({"kind": "epoch", "step": 5, "epoch": 1, "val_top1_error": math.nan})
    line = (tmp_path / "metrics.jsonl").read_text()
    assert strict_loads(line)["val_top1_error"] is None
    assert read_metrics(tmp_path)[0]["epoch"] == 1  # a null value is still a record


@pytest.mark.parametrize("flag", ["--json", "--save-scores"])
def test_an_output_that_is_a_folder_is_refused_before_any_work(tmp_path, run_cli, flag):
    # The checkpoint does not exist: had any work started, the error would name it instead.
    status, _, err = run_cli(
        "eval", "--checkpoint", tmp_path / "absent.ckpt", "--data", DATA, flag, tmp_path
    )
    assert status == 2
    assert f"{flag} {tmp_path} is a folder: give a file name" in one_error_line(err)


@pytest.mark.parametrize("fmt", ["safetensors", "torchvision", "onnx"])
def test_export_refuses_to_overwrite_its_own_input(checkpoint, run_cli, fmt):
    before = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    status, _, err = run_cli(
        "export", "--checkpoint", checkpoint, "--format", fmt, "--out", checkpoint
    )
    assert status == 2
    assert "is also an input of this command" in one_error_line(err)
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == before


def test_ensemble_refuses_to_save_over_one_of_its_score_files(tmp_path, checkpoint, run_cli):
    scores = tmp_path / "s.pt"
    status, _, err = run_cli(
        "eval", "--checkpoint", checkpoint, "--data", DATA, "--method", "center",
        "--scales", "40", "--save-scores", scores,
    )  # fmt: skip
    assert status == 0, err
    before = scores.read_bytes()
    status, _, err = run_cli("ensemble", scores, "--save-scores", scores)
    assert status == 2 and "is also an input" in one_error_line(err)
    assert scores.read_bytes() == before


def test_extract_features_takes_one_layer_name_as_one_layer():
    model, x = trained(), torch.randn(2, 3, 32, 32)
    one = extract_features(model, x, "fc7")
    assert list(one) == ["fc7"]
    torch.testing.assert_close(one["fc7"], extract_features(model, x, ["fc7"])["fc7"])
    with pytest.raises(VGGError, match="layer names are strings"):
        extract_features(model, x, [7])


def test_perceptual_loss_refuses_far_out_of_range_inputs_and_other_channel_counts():
    loss = PerceptualLoss(trained(), layers="relu2_1")
    x = torch.rand(2, 3, 32, 32)
    assert loss(x, x.flip(-1)) > 0
    assert loss(x * 1.2 - 0.1, x) > 0  # a generator's small overshoot is fine
    with pytest.raises(VGGError, match=r"values in \[0, 255\], far outside input_range \(0, 1\)"):
        loss(x * 0 + torch.linspace(0, 255, 32), x)
    with pytest.raises(VGGError, match=r"\(N, 3, H, W\) .*got \(2, 1, 32, 32\).*expand"):
        loss(x[:, :1], x[:, :1])
    signed = PerceptualLoss(trained(), layers=["relu1_1"], input_range=(-1, 1))
    assert signed(x * 2 - 1, x * 2 - 1) == 0
    with pytest.raises(VGGError, match="far outside input_range"):
        signed(x * 255, x)


def test_perceptual_loss_warns_on_an_untrained_net_only():
    with pytest.warns(UserWarning, match="looks untrained"):
        PerceptualLoss(tiny("A", crop_size=32), layers=["relu1_1"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PerceptualLoss(trained(), layers=["relu1_1"])


def test_preprocessing_refuses_images_of_another_channel_count():
    model = trained()
    with pytest.raises(VGGError, match=r"\(\.\.\., 3, H, W\)"):
        model.preprocessing.normalize(torch.rand(2, 1, 32, 32))


@pytest.mark.parametrize(
    ("init", "normalize", "expected"),
    [
        ("paper", None, "paper"),
        ("kaiming", None, "standard"),
        ("glorot", None, "standard"),
        ("kaiming", "paper", "paper"),  # an explicit choice stands
    ],
)
def test_the_normalisation_follows_the_init_unless_given(init, normalize, expected):
    cfg = TrainConfig("A", "d", "o", init=init, normalize=normalize).resolved()
    assert cfg.normalize == expected


def test_a_kaiming_run_with_the_default_normalisation_does_not_diverge(tmp_path, run_cli):
    args = ["train", "--config", "A", "--data", "synthetic:classes=4,train=64,val=8,size=40"]
    args += ["--scale", "40", "--crop", "32", "--batch-size", "8", "--width", "0.25"]
    args += ["--fc-width", "64", "--workers", "0", "--device", "cpu", "--max-steps", "8"]
    status, _, err = run_cli(*args, "--init", "kaiming", "--out", tmp_path / "k")
    assert status == 0, err
    status, _, err = run_cli(
        *args, "--init", "kaiming", "--normalize", "paper", "--out", tmp_path / "p"
    )
    assert status == 2 and "the loss is nan" in err.lower()  # what the default now avoids
    assert "--normalize standard with --init kaiming" in err
    assert "--precision" not in err  # the run is fp32 already


def test_divergence_hints_name_only_settings_the_run_can_change():
    fp32 = TrainConfig("A", "d", "o", init="paper", normalize="paper", lr=0.01, batch_norm=True)
    assert divergence_hints(fp32) == "lower --lr (now 0.01)"
    bf16 = TrainConfig("A", "d", "o", init="kaiming", normalize="paper", lr=0.1, precision="bf16")
    hints = divergence_hints(bf16)
    assert "--normalize standard with --init kaiming" in hints
    assert "--precision fp32 (now bf16)" in hints and "--batch-norm" in hints
