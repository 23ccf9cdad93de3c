"""The paper's test protocols, their equalities, ensembles, saved scores, distributed eval, predict."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T
from PIL import Image

from tests.helpers import tiny, write_image_folder
from vggnet import VGGError, save_checkpoint
from vggnet.data import open_source
from vggnet.evaluate import (
    Protocol,
    Scores,
    format_results,
    join_parts,
    load_models,
    merge_scores,
    save_scores,
    score_images,
    shared_errors,
)
from vggnet.preprocessing import Preprocessing

CLASSES = ["a", "b", "c"]


def make_checkpoint(path, seed=0, train_scale=(40, 48), **kwargs):
    torch.manual_seed(seed)
    model = tiny("A", num_classes=3, crop_size=32, width=0.25, fc_width=32, **kwargs)
    model.classes = list(CLASSES)
    model.train_scale = train_scale
    model.preprocessing = Preprocessing.paper((120.0, 110.0, 100.0))
    save_checkpoint(path, model)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_image_folder(root, classes=CLASSES, train=2, val=3, size=(52, 40))
    return root


@pytest.fixture(scope="module")
def square(tmp_path_factory):
    root = tmp_path_factory.mktemp("square")
    write_image_folder(root, classes=CLASSES, train=1, val=3, size=(40, 40), fmt="PNG")
    return root


def posteriors(ckpts, data, protocol, **kwargs):
    models = load_models([str(c) for c in ckpts], protocol, torch.device("cpu"))
    source = open_source(str(data), "val")
    return score_images(models, source, protocol, CLASSES, **kwargs)


def test_dense_at_the_crop_size_equals_the_centre_crop(tmp_path, square):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    dense = posteriors([ckpt], square, Protocol("dense", [32], flip=False)).combined()
    center = posteriors([ckpt], square, Protocol("center", [32])).combined()
    torch.testing.assert_close(dense, center, rtol=1e-5, atol=1e-6)


def test_one_crop_grid_without_flip_equals_the_centre_crop(tmp_path, folder):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    multi = posteriors(
        [ckpt], folder, Protocol("multi-crop", [40, 44], flip=False, grid=1)
    ).combined()
    center = posteriors([ckpt], folder, Protocol("center", [40, 44])).combined()
    torch.testing.assert_close(multi, center, rtol=1e-5, atol=1e-6)


def test_flip_changes_nothing_on_mirror_symmetric_images(tmp_path):
    write_image_folder(tmp_path / "sym", classes=CLASSES, train=1, val=2, size=(50, 40), fmt="PNG")
    for path in (tmp_path / "sym" / "val").rglob("*.png"):
        array = np.asarray(Image.open(path).convert("RGB"))
        half = array[:, :25]
        Image.fromarray(np.concatenate([half, half[:, ::-1]], axis=1)).save(path)
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    for method in ("dense", "multi-crop"):
        flipped = posteriors([ckpt], tmp_path / "sym", Protocol(method, [40], flip=True, grid=3))
        plain = posteriors([ckpt], tmp_path / "sym", Protocol(method, [40], flip=False, grid=3))
        # multi-crop: the grid is symmetric, so each crop's mirror is the mirror-position crop
        torch.testing.assert_close(flipped.combined(), plain.combined(), rtol=1e-5, atol=1e-6)


def test_an_ensemble_of_a_model_with_itself_is_the_model(tmp_path, folder):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    protocol = Protocol("dense+multi-crop", None, grid=2)
    one = posteriors([ckpt], folder, protocol)
    two = posteriors([ckpt, ckpt], folder, protocol)
    torch.testing.assert_close(one.combined(), two.combined())
    assert one.scales == [[40, 44, 48]]  # Table 4's rule for jittered S in [40, 48]


def test_multi_scale_averaging_ignores_the_order_of_scales(tmp_path, folder):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    a = posteriors([ckpt], folder, Protocol("dense", [40, 56, 48])).combined()
    b = posteriors([ckpt], folder, Protocol("dense", [56, 48, 40])).combined()
    torch.testing.assert_close(a, b)


def test_dense_by_hand(tmp_path, folder):
    """Rescale to Q, class score map, spatial mean, soft-max; mirror likewise; average."""
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    scores = posteriors([ckpt], folder, Protocol("dense", [48], flip=True))
    model = load_models([str(ckpt)], Protocol("dense", [48]), torch.device("cpu"))[0].model
    source = open_source(str(folder), "val")
    image, _ = source.read(4)
    small = T.functional.resize(image, 48, antialias=True)  # short side 48, as torchvision does
    x = model.preprocessing.normalize(small.float()[None] / 255)
    with torch.no_grad():
        p = model.score_map(x).mean((2, 3)).softmax(1)
        p_flip = model.score_map(x.flip(-1)).mean((2, 3)).softmax(1)
    torch.testing.assert_close(scores.combined()[4], ((p + p_flip) / 2)[0], rtol=1e-5, atol=1e-6)


def test_multi_crop_by_hand_with_repeated_windows(tmp_path, folder):
    """Q = 33 for crop 32: the 3x3 grid repeats windows; the mean is still over all nine."""
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    scores = posteriors([ckpt], folder, Protocol("multi-crop", [33], flip=True, grid=3))
    model = load_models([str(ckpt)], Protocol("center", [33]), torch.device("cpu"))[0].model
    image, _ = open_source(str(folder), "val").read(2)
    small = T.functional.resize(image, 33, antialias=True)
    height, width = small.shape[-2:]
    assert height == 33  # the short side; offsets 0, 0 (0.5 rounds to even), 1
    windows = [
        small[:, t : t + 32, x : x + 32]
        for t in (round(i * (height - 32) / 2) for i in range(3))
        for x in (round(i * (width - 32) / 2) for i in range(3))
    ]
    x = model.preprocessing.normalize(torch.stack(windows).float() / 255)
    with torch.no_grad():
        expected = (model(x).softmax(1) + model(x.flip(-1)).softmax(1)).mean(0) / 2
    torch.testing.assert_close(scores.combined()[2], expected, rtol=1e-5, atol=1e-6)


def test_multi_crop_at_the_crop_size_scores_one_window(tmp_path, square, monkeypatch):
    """At Q = crop the nine windows are one: scored once (and its mirror), same posteriors."""
    import vggnet.eval.protocols as protocols

    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    seen = []
    forward = protocols._forward
    monkeypatch.setattr(
        protocols, "_forward", lambda sm, x, *a: seen.append(len(x)) or forward(sm, x, *a)
    )
    multi = posteriors([ckpt], square, Protocol("multi-crop", [32], flip=True, grid=3))
    assert sum(seen) == 2 * len(multi.labels)
    dense = posteriors([ckpt], square, Protocol("dense", [32], flip=True)).combined()
    torch.testing.assert_close(multi.combined(), dense, rtol=1e-5, atol=1e-6)


def test_joined_dense_and_multi_crop_passes_equal_one_dense_plus_multi_crop_pass(tmp_path, folder):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    dense = posteriors([ckpt], folder, Protocol("dense", [40, 44], flip=True))
    multi = posteriors([ckpt], folder, Protocol("multi-crop", [40, 44], flip=True, grid=2))
    both = posteriors([ckpt], folder, Protocol("dense+multi-crop", [40, 44], flip=True, grid=2))
    joined = join_parts(dense, multi)
    assert joined.parts == both.parts and joined.seconds == dense.seconds + multi.seconds
    torch.testing.assert_close(joined.combined(), both.combined(), rtol=1e-5, atol=1e-6)
    with pytest.raises(VGGError, match=r"different parts \(got dense and dense\)"):
        join_parts(dense, dense)
    other = posteriors([ckpt], folder, Protocol("multi-crop", [40], flip=True, grid=2))
    with pytest.raises(VGGError, match="same checkpoints, images, scales and flip"):
        join_parts(dense, other)


def test_scoring_folds_batch_norm_without_changing_the_scores(tmp_path, folder):
    """The scored copy has no BN layers; its posteriors are the checkpoint's own net's."""
    torch.manual_seed(1)
    model = tiny("A", num_classes=3, crop_size=32, width=0.25, fc_width=32, batch_norm=True)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    model.classes, model.train_scale = list(CLASSES), (40, 40)
    model.preprocessing = Preprocessing.paper((120.0, 110.0, 100.0))
    ckpt = tmp_path / "bn.ckpt"
    save_checkpoint(ckpt, model)
    ours = posteriors([ckpt], folder, Protocol("center", [40])).combined()
    scored = load_models([str(ckpt)], Protocol("center", [40]), torch.device("cpu"))[0].model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in scored.modules())
    source = open_source(str(folder), "val")
    crops = torch.stack(
        [T.functional.center_crop(T.functional.resize(source.read(i)[0], 40), 32)
         for i in range(len(source))]
    )  # fmt: skip
    with torch.no_grad():
        expected = model.eval()(model.preprocessing.normalize(crops.float() / 255)).softmax(1)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-4)


def test_center_matches_a_torchvision_transform_pipeline(tmp_path, folder):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    ours = posteriors([ckpt], folder, Protocol("center", [44])).combined()
    model = load_models([str(ckpt)], Protocol("center", [44]), torch.device("cpu"))[0].model
    prep = model.preprocessing
    pipeline = T.Compose(
        [
            T.PILToTensor(),
            T.Resize(44, antialias=True),
            T.CenterCrop(32),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(prep.mean, prep.std),
        ]
    )
    source = open_source(str(folder), "val")
    reference = torch.stack(
        [pipeline(Image.open(source.name(i)).convert("RGB")) for i in range(len(source))]
    )
    with torch.no_grad():
        expected = model(reference).softmax(1)
    torch.testing.assert_close(ours, expected, rtol=0, atol=2e-3)


def run(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *map(str, args)], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.slow  # a torchrun-style process pair; CI runs it (make test-slow)
def test_distributed_eval_counts_each_image_once(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.ckpt", train_scale=(32, 32))
    data = "synthetic:classes=3,train=3,val=7,size=36"
    model_classes = ["class0", "class1", "class2"]
    payload = torch.load(ckpt, weights_only=True)
    payload["classes"] = model_classes
    torch.save(payload, ckpt)
    args = [
        "--checkpoint",
        ckpt,
        "--data",
        data,
        "--method",
        "dense+multi-crop",
        "--grid",
        "2",
        "--device",
        "cpu",
    ]
    single = run(
        "-m",
        "vggnet",
        "eval",
        *args,
        "--json",
        tmp_path / "one.json",
        "--save-scores",
        tmp_path / "one.pt",
    )
    assert single.returncode == 0, single.stderr
    double = run(
        "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "vggnet", "eval", *args,
        "--json", tmp_path / "two.json", "--save-scores", tmp_path / "two.pt",
    )  # fmt: skip
    assert double.returncode == 0, double.stderr[-2000:]
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert one["images"] == two["images"] == 7
    assert one["top1_error"] == two["top1_error"] and one["top5_error"] == two["top5_error"]
    a, b = Scores.load(tmp_path / "one.pt"), Scores.load(tmp_path / "two.pt")
    assert a.indices.tolist() == b.indices.tolist() == list(range(7))
    torch.testing.assert_close(a.combined(), b.combined())


def test_saved_scores_recombine_into_the_direct_ensemble(tmp_path, folder, run_cli):
    a, b = make_checkpoint(tmp_path / "a.ckpt", 1), make_checkpoint(tmp_path / "b.ckpt", 2)
    common = ["--data", folder, "--method", "dense+multi-crop", "--grid", "2", "--device", "cpu"]
    for name in ("a", "b"):
        status, _, err = run_cli(
            "eval",
            "--checkpoint",
            tmp_path / f"{name}.ckpt",
            *common,
            "--save-scores",
            tmp_path / f"{name}.pt",
            "--json",
            tmp_path / f"{name}.json",
        )
        assert status == 0, err
    status, out, err = run_cli(
        "eval", "--checkpoint", a, "--checkpoint", b, *common, "--json", tmp_path / "direct.json",
        "--overlap", "--per-class",
    )  # fmt: skip
    assert status == 0, err
    assert "dense+multi-crop" in out and "top-1 err %" in out
    status, out, _ = run_cli(
        "ensemble", tmp_path / "a.pt", tmp_path / "b.pt", "--json", tmp_path / "saved.json",
        "--overlap", "--per-class",
    )  # fmt: skip
    assert status == 0
    direct, saved = (json.loads((tmp_path / f).read_text()) for f in ("direct.json", "saved.json"))
    assert (
        direct["top1_error"] == saved["top1_error"] and direct["top5_error"] == saved["top5_error"]
    )
    assert direct["images"] == saved["images"] == 9
    # each member's errors in the overlap are its own run's, alone
    alone = [json.loads((tmp_path / f"{n}.json").read_text())["top1_error"] for n in "ab"]
    assert direct["overlap"]["wrong"] == [round(e * 9 / 100) for e in alone]
    assert direct["overlap"] == saved["overlap"]
    assert direct["per_class"] == saved["per_class"]
    per_class = direct["per_class"]
    assert sum(per_class["images"]) == 9 and len(per_class["confusion"]) == 3
    wrong = sum(per_class["images"]) - sum(row[i] for i, row in enumerate(per_class["confusion"]))
    assert wrong == round(direct["top1_error"] * 9 / 100)
    status, out, _ = run_cli("ensemble", tmp_path / "a.pt", "--method", "dense", "--scales", "44")
    assert status == 0 and "44" in out


def hand_scores(parts, values, flip=True, scales=(32,), labels=(0, 1)):
    """Scores of one model whose posteriors are ``values[part]`` (N, K) at every scale."""
    stacked = torch.stack([torch.tensor(values[p], dtype=torch.float32) for p in parts])
    return Scores(
        list(CLASSES),
        torch.tensor(labels),
        torch.arange(len(labels)),
        ["m.ckpt"],
        tuple(parts),
        flip,
        [list(scales)],
        [stacked.expand(len(scales), *stacked.shape).clone()],
    )


def test_an_ensemble_of_files_keeps_the_parts_every_file_holds(tmp_path, run_cli):
    both = hand_scores(
        ("dense", "multi-crop"),
        {"dense": [[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], "multi-crop": [[0.1, 0.1, 0.8]] * 2},
    )
    dense = hand_scores(("dense",), {"dense": [[0.0, 0.9, 0.1], [0.1, 0.8, 0.1]]})
    merged = merge_scores([both, dense], ["both.pt", "dense.pt"])
    assert merged.parts == ("dense",)
    # by hand: the mean of the two files' dense posteriors
    expected = torch.tensor([[0.3, 0.6, 0.1], [0.15, 0.5, 0.35]])
    torch.testing.assert_close(merged.combined(), expected)
    save_scores(both, tmp_path / "both.pt")
    save_scores(dense, tmp_path / "dense.pt")
    status, out, err = run_cli("ensemble", tmp_path / "both.pt", tmp_path / "dense.pt")
    assert status == 0, err
    assert out.splitlines()[1].split()[0] == "dense"
    assert out.splitlines()[1].split()[3] == "50.00"  # both images -> class 1; labels 0, 1
    status, _, err = run_cli(
        "ensemble", tmp_path / "both.pt", tmp_path / "dense.pt", "--method", "multi-crop"
    )
    assert status == 2 and err.count("\n") == 1
    assert "dense.pt holds no multi-crop: it was scored with dense" in err


def test_an_ensemble_gives_each_file_its_own_test_scales(tmp_path, run_cli):
    def by_scale(rows):  # one model, one part; rows[q] is its (N, K) posteriors at scale q
        post = torch.tensor(list(rows.values()), dtype=torch.float32).unsqueeze(1)
        return replace(
            hand_scores(("multi-crop",), {"multi-crop": rows[min(rows)]}),
            scales=[list(rows)],
            posteriors=[post],
        )

    a = by_scale({32: [[0.9, 0.1, 0.0], [0.9, 0.1, 0.0]], 34: [[0.8, 0.2, 0.0], [0.2, 0.7, 0.1]]})
    b = by_scale({32: [[0.6, 0.0, 0.4], [0.0, 0.3, 0.7]], 36: [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]})
    save_scores(a, tmp_path / "a.pt")
    save_scores(b, tmp_path / "b.pt")
    # by hand: a at Q = 34 and b at Q = 32 -> classes 0 and 1, both right
    expected = torch.tensor([[0.7, 0.1, 0.2], [0.1, 0.5, 0.4]])
    merged = merge_scores([a.at_scales([34], "a.pt"), b.at_scales([32], "b.pt")], ["a", "b"])
    torch.testing.assert_close(merged.combined(), expected)
    files = [tmp_path / "a.pt", tmp_path / "b.pt"]
    status, out, err = run_cli("ensemble", *files, "--scales", "34", "--scales", "32")
    assert status == 0, err
    assert out.splitlines()[1].split()[1:5] == ["34", "|", "32", "yes"]
    assert out.splitlines()[1].split()[5] == "0.00"
    status, out, _ = run_cli("ensemble", *files, "--scales", "32")  # one list: every file
    assert status == 0 and out.splitlines()[1].split()[3] == "50.00"  # image 1 -> class 0 at 0.45
    cases = [
        (["--scales", "34", "--scales", "32", "--scales", "32"], "--scales is given 3 times for 2"),
        (["--scales", "34", "--scales", "34"], "b.pt holds no scale 34: it was scored at 32,36"),
        (["--scales", "32,36"], "a.pt holds no scale 36: it was scored at 32,34"),  # one for all
        (["--scales", "32,32"], "'32,32' names scale 32 more than once"),
    ]
    for extra, message in cases:
        status, _, err = run_cli("ensemble", *files, *extra)
        assert status == 2 and err.count("\n") == 1, err
        assert message in err, err


def test_an_ensemble_gives_each_file_its_own_protocol(tmp_path, run_cli):
    both = hand_scores(
        ("dense", "multi-crop"),
        {"dense": [[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], "multi-crop": [[0.2, 0.1, 0.7]] * 2},
    )
    dense = hand_scores(("dense",), {"dense": [[0.1, 0.8, 0.1], [0.0, 0.9, 0.1]]})
    multi = hand_scores(("multi-crop",), {"multi-crop": [[0.9, 0.0, 0.1], [0.3, 0.3, 0.4]]})
    for name, scores in (("both", both), ("dense", dense), ("multi", multi)):
        save_scores(scores, tmp_path / f"{name}.pt")
    files = [tmp_path / "both.pt", tmp_path / "dense.pt", tmp_path / "multi.pt"]
    methods = ("--method", "dense+multi-crop", "--method", "dense", "--method", "multi-crop")
    status, out, err = run_cli("ensemble", *files, *methods, "--save-scores", tmp_path / "m.pt")
    assert status == 0, err
    # by hand: both's two parts averaged (0.4 0.2 0.4 | 0.2 0.15 0.65), then the three nets
    expected = torch.tensor([[1.4, 1.0, 0.6], [0.5, 1.35, 1.15]]) / 3
    kept = Scores.load(tmp_path / "m.pt")
    torch.testing.assert_close(kept.combined(), expected)
    assert kept.parts == ("dense+multi-crop | dense | multi-crop",)
    row = out.splitlines()[1]
    assert row.startswith("dense+multi-crop | dense | multi-crop ")
    assert row.split()[8] == "0.00"  # image 0 -> class 0, image 1 -> class 1: both right
    same = ("--method", "dense", "--method", "dense")  # all alike: the plain dense ensemble
    status, out, _ = run_cli("ensemble", *files[:2], *same)
    assert status == 0 and out.splitlines()[1].split()[0] == "dense"
    cases = [
        (methods[:4], "--method is given 2 times for 3 scores files"),
        (methods[2:] + methods[:2], "dense.pt holds no multi-crop: it was scored with dense"),
    ]
    for extra, message in cases:
        status, _, err = run_cli("ensemble", *files, *extra)
        assert status == 2 and err.count("\n") == 1, err
        assert message in err, err


def test_the_results_table_keeps_its_columns_under_long_scales():
    def row(method, scales):
        return {
            "method": method,
            "scales": scales,
            "flip": True,
            "top1_error": 4.6,
            "top5_error": 0.04,
            "images": 10000,
            "images_per_s": None,
        }

    five = [[34], [34], [34], [34], [32, 34, 36]]  # each member at its own Q: 28 characters
    lines = format_results([row("center", [34]), row("multi-crop", five)]).splitlines()
    assert "34 | 34 | 34 | 34 | 32,34,36" in lines[2]
    flip_at = lines[0].index("flip")
    assert [line[flip_at : flip_at + 3] for line in lines[1:]] == ["yes", "yes"]
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header


def test_an_ensemble_saves_only_the_parts_and_scales_it_used(tmp_path, run_cli):
    def member(name, dense, multi_crop):  # each at Q = 32 and 34, 34 = 32's posteriors reversed
        values = {"dense": dense, "multi-crop": multi_crop}
        scores = hand_scores(("dense", "multi-crop"), values, scales=(32, 34))
        post = scores.posteriors[0]
        post[1] = post[0].flip(-1)
        return replace(scores, checkpoints=[name], scales=[[32, 34]], posteriors=[post])

    a = member("a.ckpt", [[0.6, 0.3, 0.1], [0.5, 0.4, 0.1]], [[0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])
    b = member("b.ckpt", [[0.1, 0.1, 0.8], [0.3, 0.6, 0.1]], [[0.5, 0.4, 0.1], [0.3, 0.3, 0.4]])
    save_scores(a, tmp_path / "a.pt")
    save_scores(b, tmp_path / "b.pt")
    files = [tmp_path / "a.pt", tmp_path / "b.pt"]
    slim = tmp_path / "slim.pt"
    args = ("--method", "multi-crop", "--scales", "34", "--scales", "32")
    status, out, err = run_cli("ensemble", *files, *args, "--save-scores", slim)
    assert status == 0, err
    kept = Scores.load(slim)
    assert kept.parts == ("multi-crop",) and kept.scales == [[34], [32]]
    assert kept.checkpoints == ["a.ckpt", "b.ckpt"]
    # by hand: a's multi-crop reversed (Q = 34) and b's multi-crop (Q = 32), averaged
    expected = torch.tensor([[0.3, 0.55, 0.15], [0.45, 0.3, 0.25]])
    torch.testing.assert_close(kept.combined(), expected)
    status, again, _ = run_cli("ensemble", slim)
    assert status == 0 and again.splitlines()[1].split()[5:] == out.splitlines()[1].split()[5:]
    status, _, err = run_cli("ensemble", slim, "--method", "dense")
    assert status == 2 and "slim.pt holds no dense: it was scored with multi-crop" in err


def test_an_ensemble_counts_the_errors_its_members_share(tmp_path, run_cli):
    def member(name, multi_crop):  # dense is right on every image; multi-crop as given
        dense = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
        values = {"dense": dense, "multi-crop": multi_crop}
        scores = hand_scores(("dense", "multi-crop"), values, labels=(0, 1, 2, 0))
        return replace(scores, checkpoints=[name])

    # labels 0, 1, 2, 0; by hand, multi-crop: a errs on images 2, 3; b on 0, 2; c on 1, 2
    # and 3, where a tie between the label and another class counts as an error
    a = member("a.ckpt", [[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.6, 0.0, 0.4], [0.2, 0.8, 0.0]])
    b = member("b.ckpt", [[0.3, 0.7, 0.0], [0.0, 0.8, 0.2], [0.7, 0.0, 0.3], [0.9, 0.0, 0.1]])
    c = member("c.ckpt", [[0.8, 0.1, 0.1], [0.0, 0.4, 0.6], [0.5, 0.4, 0.1], [0.5, 0.5, 0.0]])
    files = []
    for name, scores in (("a", a), ("b", b), ("c", c)):
        files.append(tmp_path / f"{name}.pt")
        save_scores(scores, files[-1])
    merged = merge_scores([a, b, c], ["a", "b", "c"])
    assert shared_errors(merged, ("multi-crop",)) == {
        "members": ["a.ckpt", "b.ckpt", "c.ckpt"],
        "images": 4,
        "wrong": [2, 2, 3],
        "shared": [[2, 1, 2], [1, 2, 1], [2, 1, 3]],
        "wrong_for_all": 1,
        "wrong_for_any": 4,
    }
    assert shared_errors(merged, ("dense",))["wrong_for_any"] == 0
    out_json = tmp_path / "e.json"
    args = ("ensemble", *files, "--method", "multi-crop", "--overlap", "--json", out_json)
    status, out, err = run_cli(*args)
    assert status == 0, err
    assert json.loads(out_json.read_text())["overlap"] == shared_errors(merged, ("multi-crop",))
    rows = out.splitlines()
    assert rows[5].split() == ["2", "b.ckpt", "2", "1", "-", "1"]
    assert rows[-1] == "wrong for every member: 1; for at least one: 4"
    status, out, err = run_cli("ensemble", *files, "--method", "multi-crop", "--json", out_json)
    assert status == 0 and len(out.splitlines()) == 2, err
    assert "overlap" not in json.loads(out_json.read_text())
    assert "per_class" not in json.loads(out_json.read_text())


def test_per_class_errors_say_which_classes_are_taken_for_which(tmp_path, run_cli):
    # labels 0, 1, 2, 0, 0; by hand, the two members' average takes image 1 (a 1) for a 2 and
    # image 4 (a 0) for a 1, and image 2 ties its label with class 0 (an error, as in top-1)
    a = [[0.9, 0.1, 0.0], [0.0, 0.2, 0.8], [0.5, 0.0, 0.5], [0.6, 0.4, 0.0], [0.2, 0.8, 0.0]]
    b = [[0.7, 0.3, 0.0], [0.2, 0.4, 0.4], [0.5, 0.0, 0.5], [0.8, 0.0, 0.2], [0.4, 0.6, 0.0]]
    files = []
    for name, values in (("a", a), ("b", b)):
        scores = hand_scores(("dense",), {"dense": values}, labels=(0, 1, 2, 0, 0))
        files.append(tmp_path / f"{name}.pt")
        save_scores(replace(scores, checkpoints=[f"{name}.ckpt"]), files[-1])
    out_json = tmp_path / "e.json"
    status, out, err = run_cli("ensemble", *files, "--per-class", "--json", out_json)
    assert status == 0, err
    per_class = json.loads(out_json.read_text())["per_class"]
    assert per_class["images"] == [3, 1, 1]
    assert per_class["confusion"] == [[2, 1, 0], [0, 0, 1], [1, 0, 0]]
    assert per_class["top1_error"] == pytest.approx([100 / 3, 100.0, 100.0])
    assert per_class["classes"] == list(CLASSES)
    rows = out.splitlines()
    assert rows[3].split() == [CLASSES[0], "3", "33.33", CLASSES[1], "(1)"]
    assert rows[5].split() == [CLASSES[2], "1", "100.00", CLASSES[0], "(1)"]
    assert rows[-1].endswith(
        f"{CLASSES[0]} as {CLASSES[1]} 1, {CLASSES[1]} as {CLASSES[2]} 1, {CLASSES[2]} as {CLASSES[0]} 1"
    )


def test_an_ensemble_of_files_refuses_what_cannot_be_averaged():
    dense = {"dense": [[0.5, 0.3, 0.2]] * 2}
    a = hand_scores(("dense",), dense)
    cases = [
        (hand_scores(("dense",), dense, flip=False), "b.pt was scored without flips, a.pt with"),
        (hand_scores(("multi-crop",), {"multi-crop": dense["dense"]}), "no protocol part is in"),
        (hand_scores(("dense",), dense, labels=(0, 2)), "b.pt and a.pt scored different images"),
    ]
    for b, message in cases:
        with pytest.raises(VGGError, match=message):
            merge_scores([a, b], ["a.pt", "b.pt"])
    with pytest.raises(VGGError, match="saved scores have no dense/multi-crop"):
        hand_scores(("center",), {"center": dense["dense"]}).combined(("dense", "multi-crop"))


def test_bad_inputs_are_one_line(tmp_path, folder, run_cli):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    cases = [
        (["--scales", "30,40"], "test scale Q=30 is smaller than the crop 32"),
        (["--data", "synthetic:classes=4"], "m.ckpt has 3 classes, the data 4"),
        (["--data", "synthetic:classes=3", "--class-order", "name"], "pass --class-order index"),
        (["--checkpoint", tmp_path / "nope.ckpt"], "nope.ckpt does not exist"),
    ]
    for extra, message in cases:
        args = ["eval", "--checkpoint", ckpt, "--data", folder, "--device", "cpu", *extra]
        status, _, err = run_cli(*args)
        assert status == 2, (extra, err)
        assert message in err and err.count("\n") == 1, (extra, err)
    other = make_checkpoint(tmp_path / "o.ckpt")
    payload = torch.load(other, weights_only=True)
    payload["classes"] = ["x", "y", "z"]
    torch.save(payload, other)
    status, _, err = run_cli(
        "eval", "--checkpoint", ckpt, "--checkpoint", other, "--data", folder, "--device", "cpu"
    )
    assert status == 2 and "different class lists" in err


def test_unreadable_images_are_skipped_and_counted(tmp_path, run_cli):
    write_image_folder(tmp_path / "d", classes=CLASSES, train=1, val=2, size=(44, 40))
    (tmp_path / "d" / "val" / "b" / "1.jpg").write_bytes(b"not a jpeg")
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    status, out, err = run_cli(
        "eval",
        "--checkpoint",
        ckpt,
        "--data",
        tmp_path / "d",
        "--device",
        "cpu",
        "--json",
        tmp_path / "r.json",
    )
    assert status == 0, err
    assert "val/b/1.jpg: cannot decode" in err and "1 unreadable images skipped" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["images"] == 5 and result["skipped"] == 1


def test_predict_names_classes_with_probabilities(tmp_path, folder, run_cli):
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    image = next((folder / "val" / "b").iterdir())
    status, out, err = run_cli(
        "predict", "--checkpoint", ckpt, image, "--top", "2", "--device", "cpu"
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == str(image) and lines[1].strip().startswith("1.") and len(lines) == 3
    status, out, _ = run_cli(
        "predict", "--checkpoint", ckpt, image, "--json", "--device", "cpu", "--scales", "44"
    )
    result = json.loads(out)
    probabilities = [t["probability"] for t in result["results"][0]["top"]]
    assert [t["class"] for t in result["results"][0]["top"]] and len(probabilities) == 3
    assert abs(sum(probabilities) - 1) < 1e-5 and probabilities == sorted(
        probabilities, reverse=True
    )
    direct = posteriors([ckpt], folder, Protocol("dense", [44]))
    index = open_source(str(folder), "val").paths.index(image)
    expected = direct.combined()[index]
    got = {t["index"]: t["probability"] for t in result["results"][0]["top"]}
    for i, p in got.items():
        assert abs(p - expected[i].item()) < 1e-5
    (tmp_path / "bad.jpg").write_bytes(b"")
    status, _, err = run_cli(
        "predict", "--checkpoint", ckpt, tmp_path / "bad.jpg", "--device", "cpu"
    )
    assert status == 1 and "bad.jpg: empty file" in err


def test_predict_enters_its_inference_context_once_for_all_images(tmp_path, folder, monkeypatch):
    """Autocast keeps its bf16 weights until its context exits: one per image re-casts them all."""
    import vggnet.eval.scoring as evaluate

    entries = []
    real = evaluate.inference_context

    def counting(precision, device):
        entries.append(precision)
        return real(precision, device)

    monkeypatch.setattr(evaluate, "inference_context", counting)
    ckpt = make_checkpoint(tmp_path / "m.ckpt")
    images = sorted((folder / "val" / "b").iterdir())[:3]
    results, failures, _ = evaluate.predict_images(
        str(ckpt), [str(p) for p in images], Protocol("dense", [44]), device="cpu", precision="fp32"
    )
    assert len(results) == 3 and not failures
    assert entries == ["fp32"]


def test_protocol_refuses_unknown_method():
    with pytest.raises(VGGError, match="--method full: choose one of"):
        Protocol("full")
