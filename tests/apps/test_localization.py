"""``vggnet eval --task localization`` and ``vggnet predict --task localization`` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from tests.helpers import tiny, write_box_folder
from vggnet.apps.localization import evaluate_localization
from vggnet.checkpoint import save_checkpoint
from vggnet.data.boxes import folder_boxes
from vggnet.data.sources import FolderSource
from vggnet.model.localization import localization_net


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """A folder with VOC boxes, a tiny 2-class classifier, and a localisation net from it whose
    every window predicts the window itself: (cx, cy, w, h) = (0.5, 0.5, 1, 1)."""
    root = tmp_path_factory.mktemp("locapp")
    write_box_folder(root / "data", root / "boxes", skip={"val-dog-1"}, train=2, val=4)
    classifier = tiny("A", num_classes=2, crop_size=32)
    classifier.classes = ["cat", "dog"]
    classifier.train_scale = (44, 44)
    net = localization_net(classifier, "per-class")
    with torch.no_grad():
        net.fc8.weight.zero_()
        net.fc8.bias.copy_(torch.tensor([0.5, 0.5, 1.0, 1.0] * 2))
    save_checkpoint(root / "cls.ckpt", classifier)
    save_checkpoint(root / "loc.ckpt", net)
    return root


def window_error(root, left: int, top: int) -> float:
    """By hand: the error of predicting the 32-pixel window at (left, top) of each 80x60 val
    image rescaled to 58x44 (Q = 44), against its VOC boxes."""
    source = folder_boxes(FolderSource(root / "data", "val"), root / "boxes")
    sx, sy = 80 / 58, 60 / 44
    window = torch.tensor([[left * sx, top * sy, (left + 32) * sx, (top + 32) * sy]])
    wrong = [bool((box_iou(window, source.boxes(i)) <= 0.5).all()) for i in range(len(source))]
    return 100.0 * sum(wrong) / len(wrong)


def test_errors_match_a_hand_computation_of_the_window_boxes(nets):
    common = ([str(nets / "loc.ckpt")], [str(nets / "cls.ckpt")], str(nets / "data"))
    center = evaluate_localization(
        *common, method="center", boxes=nets / "boxes", device="cpu", precision="fp32"
    )
    dense = evaluate_localization(
        *common, method="dense", boxes=nets / "boxes", device="cpu", precision="fp32"
    )
    # Centre crop of 58x44: left round(13) = 13, top 6. Dense at Q = 44: a 1x1 map, the
    # window at (0, 0). Two classes: the true class is always in the top 5.
    assert center["gt_class_localization_error"] == pytest.approx(window_error(nets, 13, 6))
    assert center["top5_localization_error"] == pytest.approx(window_error(nets, 13, 6))
    assert dense["top5_localization_error"] == pytest.approx(window_error(nets, 0, 0))
    assert dense["gt_class_localization_error"] == center["gt_class_localization_error"]
    assert 0 < window_error(nets, 0, 0) < 100 and window_error(nets, 0, 0) != window_error(
        nets, 13, 6
    )
    assert center["images"] == 7 and center["images_without_boxes"] == 1
    assert center["top1_localization_error"] >= center["top5_localization_error"]


def test_eval_cli_prints_and_writes_the_errors(nets, run_cli, tmp_path):
    args = ["eval", "--task", "localization", "--checkpoint", nets / "loc.ckpt"]
    args += ["--classifier", nets / "cls.ckpt", "--data", nets / "data", "--boxes", nets / "boxes"]
    status, out, _ = run_cli(*args, "--json", tmp_path / "r.json", "--device", "cpu")
    assert status == 0 and "top-5 localisation error" in out and "(1 images without boxes" in out
    assert "localisation, multi-crop, 7 images" in out  # the default protocol
    result = json.loads((tmp_path / "r.json").read_text())
    assert {"top5_localization_error", "gt_class_localization_error", "images"} <= set(result)
    status, _, err = run_cli(*args, "--strict", "--device", "cpu")
    assert status == 2 and "val-dog-1.png has no box" in err
    status, _, err = run_cli(*args, "--save-scores", tmp_path / "s.pt", "--device", "cpu")
    assert status == 2 and "--save-scores applies to classification only" in err
    status, _, err = run_cli(*args, "--method", "dense+multi-crop", "--device", "cpu")
    assert status == 2 and "--task localization takes dense, multi-crop or center" in err
    swapped = ["eval", "--task", "localization", "--checkpoint", nets / "cls.ckpt"]
    status, _, err = run_cli(*swapped, "--classifier", nets / "loc.ckpt", "--data", nets / "data")
    assert status == 2 and "is a classification net: pass it as --classifier" in err
    for plain in (
        ["eval", "--checkpoint", nets / "loc.ckpt", "--data", nets / "data"],
        ["predict", "--checkpoint", nets / "loc.ckpt", nets / "data/val/cat/val-cat-0.png"],
    ):  # a box net is not scored as a classifier
        status, _, err = run_cli(*plain, "--device", "cpu")
        assert status == 2 and "is a localisation net (its outputs are boxes)" in err
    status, _, err = run_cli(*args[:5], "--data", nets / "data", "--boxes", nets / "boxes")
    assert status == 2 and "give --classifier CKPT" in err
    status, _, err = run_cli(
        "eval", "--checkpoint", nets / "cls.ckpt", "--data", nets / "data", "--boxes", "x"
    )
    assert status == 2 and "--boxes applies to --task localization only" in err


def test_predict_draws_the_top_box_with_its_class(nets, run_cli, tmp_path):
    image = nets / "data/val/cat/val-cat-0.png"
    args = ["predict", "--task", "localization", "--checkpoint", nets / "loc.ckpt"]
    args += ["--classifier", nets / "cls.ckpt", image, "--out", tmp_path, "--device", "cpu"]
    status, out, _ = run_cli(*args, "--json", "--method", "dense")
    assert status == 0
    [result] = json.loads(out)["results"]
    assert result["class"] in ("cat", "dog") and 0.5 <= result["probability"] <= 1
    # The dense map at Q = 44 is one window: (0, 0, 32, 32) of 58x44 is (0, 0, 44.1, 43.6).
    assert result["box"] == pytest.approx([0.0, 0.0, 44.1, 43.6], abs=0.05)
    png = torch.from_numpy(np.array(Image.open(tmp_path / "val-cat-0.boxes.png"))).permute(2, 0, 1)
    assert png.shape == (3, 256, 341)  # enlarged to a 256-pixel short side
    red = (png[0] > 200) & (png[1] < 60) & (png[2] < 60)
    assert red[:, 150].any() and not red[:, 300].any()  # the box's edge is drawn, away from it not
    status, _, err = run_cli(*args[:-4], "--device", "cpu")
    assert status == 2 and "give --out DIR" in err


def test_a_localisation_net_exports_its_box_map_not_posteriors(nets, tmp_path):
    from vggnet.checkpoint import load_checkpoint
    from vggnet.errors import VGGError
    from vggnet.interop.export import export_onnx

    net = load_checkpoint(nets / "loc.ckpt")
    with pytest.raises(VGGError, match="export its box map with --output scores"):
        export_onnx(net, tmp_path / "loc.onnx", output="posteriors")


@pytest.mark.parametrize(
    "method",
    [
        "center",
        pytest.param("dense", marks=pytest.mark.slow),
        pytest.param("multi-crop", marks=pytest.mark.slow),
    ],
)
def test_int8_localisation_matches_the_hand_computation(nets, tmp_path, method):
    """int8 runs both nets on onnxruntime. The box regressor's fc8 stays fp32 and its
    weights are zero, so each window's box is the window, exactly as in fp32."""
    pytest.importorskip("onnxruntime")
    import shutil

    for name in ("loc.ckpt", "cls.ckpt"):
        shutil.copy(nets / name, tmp_path / name)
    kwargs = dict(method=method, boxes=nets / "boxes", device="cpu")
    common = ([str(tmp_path / "loc.ckpt")], [str(tmp_path / "cls.ckpt")], str(nets / "data"))
    fp32 = evaluate_localization(*common, precision="fp32", **kwargs)
    int8 = evaluate_localization(*common, precision="int8", **kwargs)
    assert (tmp_path / "loc.int8.crops.onnx").exists() and (tmp_path / "cls.int8.onnx").exists()
    for key in ("top5_localization_error", "gt_class_localization_error", "images"):
        assert int8[key] == fp32[key], key
    if method == "center":
        assert int8["top5_localization_error"] == pytest.approx(window_error(nets, 13, 6))


@pytest.mark.parametrize("method", ["center", "dense", "multi-crop"])
def test_winograd_localisation_finds_fp32s_boxes(nets, every_layer_faster, tmp_path, method):
    """--winograd computes the 3x3 convolutions of the box net and the classifier as
    F(4x4, 3x3) where measured faster (every one but conv1_1 here); their boxes and ratings
    equal direct fp32's. fc8 is random, so the boxes depend on the features."""
    from vggnet.apps.localization import load_localizers, localize
    from vggnet.checkpoint import load_checkpoint
    from vggnet.data.box_views import BoxView
    from vggnet.data.transforms import rescale
    from vggnet.eval.protocols import Engine
    from vggnet.model.winograd import WinogradConv2d, eligible_convs

    net = load_checkpoint(nets / "loc.ckpt")
    with torch.no_grad():
        net.fc8.weight.normal_(0, 0.01)
    save_checkpoint(tmp_path / "loc.ckpt", net)
    paths = ([str(tmp_path / "loc.ckpt")], [str(nets / "cls.ckpt")], [44, 64], torch.device("cpu"))
    direct = load_localizers(*paths)
    fast = load_localizers(*paths, Engine(None, "fp32", winograd="measured"))
    for sm in (fast.nets[0][0], fast.classifiers[0]):
        replaced = sum(isinstance(m, WinogradConv2d) for m in sm.model.children())
        assert replaced == len(eligible_convs(net)) - 1
    image = torch.randint(0, 256, (net.spec.in_channels, 60, 80), dtype=torch.uint8)
    view = BoxView([rescale(image, q) for q in fast.scales], -1, -1, (80, 60), torch.empty(0, 4))
    with torch.no_grad():
        found, expected = localize(fast, view, method), localize(direct, view, method)
    assert found.boxes.shape == expected.boxes.shape
    torch.testing.assert_close(found.boxes, expected.boxes, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(found.confidence, expected.confidence, rtol=0, atol=1e-4)


def test_localisation_cli_takes_winograd_in_fp32_only(nets, run_cli, every_layer_faster):
    args = ["eval", "--task", "localization", "--checkpoint", nets / "loc.ckpt", "--classifier"]
    args += [nets / "cls.ckpt", "--data", nets / "data", "--boxes", nets / "boxes", "--device"]
    args += ["cpu", "--method", "center"]
    status, plain, _ = run_cli(*args, "--precision", "fp32")
    assert status == 0
    status, fast, _ = run_cli(*args, "--precision", "fp32", "--winograd")
    assert status == 0 and fast == plain and every_layer_faster  # measured, then used
    status, _, err = run_cli(*args, "--precision", "bf16", "--winograd")
    assert status == 2 and "--winograd runs fp32 on torch: pass --precision fp32" in err
