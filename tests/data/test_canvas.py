"""``fashion-mnist-canvas``: boxes, the documented distributions, determinism, labels, options."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.test_sources import REAL_FASHION_MNIST
from tests.helpers import garment_like
from vggnet import VGGError
from vggnet.data import open_source
from vggnet.data.canvas import CanvasOptions, parse_canvas_options, render_scene, tight_crop
from vggnet.data.check import find_bad_images
from vggnet.data.sheet import contact_sheet
from vggnet.data.subset import limit_source


def test_the_box_is_where_the_garment_was_pasted():
    """Swap the garment for a uniformly white patch of the same outline: outside the box the
    scene is unchanged, and the white patch fills the box exactly."""
    rng = np.random.default_rng(1)
    garments = garment_like(rng, 50)
    opts = CanvasOptions(clutter=4)
    for index in range(20):
        scene = render_scene(garments, index, "train", opts)
        white = garments.copy()
        white[index][white[index] > 0] = 255
        crop = tight_crop(garments[index])
        assert crop.all()  # our rectangles fill their outline, so the patch is solid
        patched = render_scene(white, index, "train", opts)
        x0, y0, x1, y1 = scene.box
        outside = np.ones(scene.image.shape[:2], bool)
        outside[y0:y1, x0:x1] = False
        assert np.array_equal(scene.image[outside], patched.image[outside])
        rows, cols = np.nonzero(patched.image[..., 0] == 255)
        assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == scene.box


def test_object_scale_and_canvas_follow_the_documented_distributions():
    garments = garment_like(np.random.default_rng(2), 100)
    shares, shorts, aspects = [], [], []
    for seed in range(15):
        for index in range(100):
            scene = render_scene(garments, index, "train", CanvasOptions(seed=seed))
            height, width = scene.image.shape[:2]
            x0, y0, x1, y1 = scene.box
            shares.append(max(x1 - x0, y1 - y0) / min(height, width))
            shorts.append(min(height, width))
            aspects.append(width / height)
    shares, shorts, aspects = map(np.asarray, (shares, shorts, aspects))
    assert shares.min() >= 0.25 - 0.02 and shares.max() <= 0.9 + 0.02
    assert abs(np.median(shares) - 0.575) < 0.03  # uniform on [0.25, 0.9]
    assert abs(np.mean(shares < 0.4125) - 0.25) < 0.04  # its first quartile
    assert shorts.min() >= 64 and shorts.max() <= 128 and abs(shorts.mean() - 96) < 2.5
    assert aspects.min() >= 0.75 - 0.01 and aspects.max() <= 4 / 3 + 0.01
    assert abs(np.mean(aspects > 1) - 0.5) < 0.05  # log-uniform: as many wide as tall


def test_labels_and_split_are_fashion_mnists(fake_fashion):
    for split in ("train", "val"):
        scenes = open_source(f"fashion-mnist-canvas:root={fake_fashion}", split)
        plain = open_source(f"fashion-mnist:{fake_fashion}", split)
        assert np.array_equal(scenes.labels, plain.labels) and scenes.classes == plain.classes
    limited = open_source(f"fashion-mnist-canvas:root={fake_fashion},train=50", "train")
    assert len(limited) == 50
    full = open_source(f"fashion-mnist-canvas:root={fake_fashion}", "train")
    assert torch.equal(limited.read(7)[0], full.read(7)[0])  # a limit never changes a scene


@pytest.mark.skipif(not REAL_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist is missing")
def test_real_labels():
    scenes = open_source("fashion-mnist-canvas", "val")
    assert len(scenes) == 10_000
    assert np.array_equal(scenes.labels, open_source("fashion-mnist", "val").labels)


def test_scenes_are_the_same_in_every_worker_and_process(fake_fashion):
    spec = f"fashion-mnist-canvas:root={fake_fashion},colour=1"
    source = open_source(spec, "train")
    here = [source.read(i)[0] for i in range(12)]
    loader = torch.utils.data.DataLoader(
        [i for i in range(12)],
        batch_size=None,
        num_workers=2,
        collate_fn=lambda i: source.read(i)[0],
    )
    assert all(torch.equal(a, b) for a, b in zip(here, loader, strict=True))
    code = (
        "import sys, hashlib\n"
        "from vggnet.data import open_source\n"
        f"s = open_source({spec!r}, 'train')\n"
        "print(hashlib.sha256(b''.join(s.read(i)[0].numpy().tobytes() for i in range(12))).hexdigest())\n"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mine = hashlib.sha256(b"".join(t.numpy().tobytes() for t in here)).hexdigest()
    assert other.stdout.strip() == mine


def test_gray_and_colour_scenes(fake_fashion):
    gray = open_source(f"fashion-mnist-canvas:root={fake_fashion}", "train")
    colour = open_source(f"fashion-mnist-canvas:root={fake_fashion},colour=1", "train")
    assert gray.channels == 1 and gray.read(0)[0].shape[0] == 1
    image = colour.read(0)[0]
    assert colour.channels == 3 and image.shape[0] == 3
    assert not torch.equal(image[0], image[2])  # tinted, not gray in three channels


def test_data_check_stats_and_sheet_work_on_it(fake_fashion, run_cli, tmp_path):
    spec = f"fashion-mnist-canvas:root={fake_fashion},train=40,val=20"
    assert find_bad_images(limit_source(open_source(spec, "val"), 20)) == []
    status, out, err = run_cli("data", "check", spec)
    assert status == 0 and "train: 40 images, 0 unusable" in out, err
    status, out, err = run_cli("data", "stats", spec, "--out", tmp_path / "s.json")
    assert status == 0 and "mean (0..255)" in out, err
    sheet = contact_sheet(open_source(spec, "train"), 16)
    assert sheet.size == (8 * 128, 2 * (128 + 14))
    red = np.asarray(sheet)[..., 0] > 200
    assert red.any()  # the boxes are drawn


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("scale=0.2-1.5", "option scale=0.2-1.5: give 0 < lo <= hi <= 1"),
        ("scale=0-0.5", "option scale=0.0-0.5: give 0 < lo <= hi <= 1"),
        ("size=8-16", "option size=8-16: give 16 <= lo <= hi"),
        ("size=16-20,scale=0.1-0.5", "a canvas this small makes objects under 4 px"),
        ("zoom=2", "unknown option 'zoom'; choose from scale, size"),
        ("clutter=many", "option 'clutter=many': bad value"),
        ("aspect=2-1", "option aspect=2.0-1.0: give 0 < lo <= hi"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(options, message):
    with pytest.raises(VGGError) as err:
        parse_canvas_options(options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_options_parse():
    opts, root = parse_canvas_options("scale=0.5-0.5,size=64,colour=1,root=/x,clutter=0")
    assert opts == CanvasOptions(scale=(0.5, 0.5), size=(64, 64), colour=True, clutter=0)
    assert root == "/x"
    assert Path(root).name == "x"


@pytest.mark.slow
def test_a_tiny_scale_study_on_canvas_writes_every_table(fake_fashion, tmp_path, run_cli):
    data = f"fashion-mnist-canvas:root={fake_fashion},train=32,val=12,size=64-80"
    tiny = ["--epochs", "1", "--finetune-epochs", "1", "--width", "0.0625", "--fc-width", "16",
            "--batch-size", "16", "--grid", "2", "--device", "cpu", "--workers", "0"]  # fmt: skip
    out = tmp_path / "grid"
    status, stdout, err = run_cli(
        "reproduce", "--data", data, "--out", out, "--configs", "A", "D", *tiny
    )
    assert status == 0, err
    assert "crop 64, S1 = 73, S2 = 110, jittered [73, 146]" in stdout  # the scales
    report = json.loads((out / "results.json").read_text())
    assert {r["table"] for r in report["rows"]} >= {3, 4, 5}
    text = (out / "RESULTS.md").read_text()
    for title in ("## Table 3", "## Table 4", "## Table 5", "findings hold", "## Compute"):
        assert title in text
    compute = {r["net"]: r for r in report["compute"]}
    assert set(compute) == {"A-S1", "D-S1", "D-S2", "D-jitter"}
    assert all(
        r["epochs"] == 1 and r["hours"] > 0 and r["images_per_s"] > 0 for r in compute.values()
    )


def test_the_crop_coverage_tool_measures_the_share_of_the_garment_in_the_crop(fake_fashion):
    """tools/canvas_coverage.py (issue #35's sweep): shares by hand, and S = crop sees more."""
    import importlib.util
    from pathlib import Path

    import torch

    from vggnet.data.boxes import box_source
    from vggnet.data.geometry import Scale

    path = Path(__file__).parents[2] / "tools" / "canvas_coverage.py"
    spec = importlib.util.spec_from_file_location("canvas_coverage", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0], [48.0, 0.0, 80.0, 32.0], [70.0, 0, 80, 10]])
    assert tool.covered_share(boxes, 64).tolist() == [1.0, 0.5, 0.0]
    source = box_source(
        open_source(f"fashion-mnist-canvas:train=200,val=4,root={fake_fashion}"), None
    )
    small, large = (tool.coverage(source, Scale(s, s), 64, 200).mean() for s in (64, 146))
    assert 0.9 < small <= 1 and large < 0.5
