"""Training a localisation net: the Euclidean box loss, its checkpoint, its flags, a whole run."""

from __future__ import annotations

import json

import pytest
import torch

from tests.helpers import tiny, train_args, write_box_folder
from vggnet.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from vggnet.errors import VGGError
from vggnet.model.localization import localization_net
from vggnet.serialization import atomic_save
from vggnet.train.localization import BoxLoss, box_errors, box_targets


def test_box_loss_is_caffes_euclidean_loss_on_the_class_box():
    outputs = torch.tensor(
        [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [1.0, 1.0, 1.0, 1.0, 0, 0, 0, 0]]
    )
    targets = box_targets(
        torch.tensor([1, 0]), torch.tensor([[0.5, 0.5, 0.5, 0.5], [1.0, 1.0, 1.0, 2.0]])
    )
    # By hand: image 0 uses outputs 4..7 -> (0, 0.1^2, 0.2^2, 0.3^2) = 0.14; image 1 uses
    # outputs 0..3 -> 1^2 = 1; Euclidean loss: (0.14 + 1) / (2 * 2) = 0.285.
    torch.testing.assert_close(BoxLoss("per-class")(outputs, targets), torch.tensor(0.285))
    # single-class: outputs 0..3 for both: (0.16+0.09+0.04+0.01 = 0.30, then 1) / 4 = 0.325
    torch.testing.assert_close(
        BoxLoss("single-class")(outputs[:, :4], targets), torch.tensor(0.325)
    )


def test_box_errors_count_boxes_with_iou_at_most_one_half():
    targets = box_targets(torch.tensor([0, 0]), torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 2))
    outputs = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.25, 0.5]])  # IoU 1; IoU 0.5
    assert int(box_errors(outputs, targets, "single-class")) == 1


def test_a_localisation_checkpoint_knows_what_it_is(tmp_path):
    classifier = tiny("A", crop_size=32)
    classifier.classes = [f"c{i}" for i in range(10)]
    net = localization_net(classifier, "single-class")
    save_checkpoint(tmp_path / "loc.ckpt", net)
    loaded = load_checkpoint(tmp_path / "loc.ckpt")
    assert loaded.card.box_regression == "single-class" and loaded.spec.num_classes == 4
    assert loaded.classes == classifier.classes
    payload = read_checkpoint(tmp_path / "loc.ckpt")
    for field, value, message in (
        ("box_regression", "per-box", "box_regression must be None or one of"),
        ("box_regression", "per-class", "per-class box regression, 4 outputs"),
    ):
        atomic_save({**payload, field: value}, tmp_path / "bad.ckpt")
        with pytest.raises(VGGError, match=message):
            load_checkpoint(tmp_path / "bad.ckpt")
    with pytest.raises(VGGError, match="not another one"):
        localization_net(net)


@pytest.fixture(scope="module")
def box_run(tmp_path_factory):
    """A tiny classifier and a localisation run from it, on an image folder with VOC files."""
    from vggnet.cli import main

    root = tmp_path_factory.mktemp("loc")
    write_box_folder(root / "data", root / "boxes", skip={"train-cat-2"}, train=6, val=3)
    data = str(root / "data")
    assert main(train_args(root / "cls", "--epochs", "1", data=data)) == 0
    loc = train_args(root / "loc", "--epochs", "2", data=data)
    loc += ["--task", "localization", "--finetune-from", str(root / "cls/last.ckpt")]
    loc += ["--boxes", str(root / "boxes")]
    assert main([*loc, "--max-steps", "1"]) == 0  # stops after its first epoch (one step)
    return root, loc


def test_a_localisation_run_resumes_and_trains_only_what_it_should(box_run, capsys):
    from vggnet.cli import main

    root, loc = box_run
    assert main([*loc, "--resume", "--max-steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "val localisation error" in out and "vggnet eval --task localization" in out
    records = [json.loads(line) for line in (root / "loc/metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2] and all(r["val_images"] == 6 for r in epochs)
    net = load_checkpoint(root / "loc/last.ckpt")
    assert net.card.box_regression == "per-class" and net.spec.num_classes == 8
    classifier = load_checkpoint(root / "cls/last.ckpt")
    changed = [
        k for k, v in classifier.state_dict().items() if not torch.equal(v, net.state_dict()[k])
    ]
    assert any(k.startswith("conv") for k in changed)  # all layers fine-tuned by default
    from vggnet.plots import run_figure

    figure = run_figure(root / "loc")
    labels = [t.get_text() for t in figure.axes[1].get_legend().get_texts()]
    assert labels == ["train box (IoU <= 0.5)", "val localisation (true class)"]
    assert figure.axes[0].get_ylabel() == "Euclidean (boxes)"
    assert "localisation (per-class boxes, all layers) from" in figure._suptitle.get_text()


def test_fc_only_fine_tuning_leaves_the_convolutions_as_they_were(box_run, tmp_path):
    from vggnet.cli import main

    root, loc = box_run
    for batch_norm in (False, True):
        out = tmp_path / f"fc-{batch_norm}"
        args = [a if a != str(root / "loc") else str(out) for a in loc]
        cls = str(root / "cls/last.ckpt")
        if batch_norm:  # a batch-norm classifier: its running statistics must stay too
            args = [a if a != cls else str(tmp_path / "cls-bn/last.ckpt") for a in args]
            cls = str(tmp_path / "cls-bn/last.ckpt")
            first = train_args(
                tmp_path / "cls-bn",
                "--epochs",
                "1",
                "--batch-norm",
                data=args[args.index("--data") + 1],
            )
            assert main(first) == 0
            args.append("--batch-norm")
        assert main([*args, "--finetune-layers", "fc", "--regression", "single-class"]) == 0
        net = load_checkpoint(out / "last.ckpt")
        classifier = load_checkpoint(cls)
        for key, value in classifier.state_dict().items():
            if key.startswith("fc8") or key.endswith("num_batches_tracked"):
                continue
            same = torch.equal(value, net.state_dict()[key])
            assert same == (not key.startswith(("fc6", "fc7"))), key
        assert net.spec.num_classes == 4
        assert any(k.startswith("bn") for k in net.state_dict()) == batch_norm


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "localization"], "give --finetune-from CLS.ckpt"),
        (["--boxes", "x"], "--boxes applies to --task localization only"),
        (["--regression", "single-class"], "--regression applies to --task localization only"),
    ],
)
def test_localisation_flags_are_checked_in_one_line(run_cli, tmp_path, extra, message):
    status, _, err = run_cli(*train_args(tmp_path / "run", *extra))
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_localisation_net_cannot_be_the_start_of_another(box_run, run_cli, tmp_path):
    root, loc = box_run
    args = [a if a != str(root / "cls/last.ckpt") else str(root / "loc/last.ckpt") for a in loc]
    args = [a if a != str(root / "loc") else str(tmp_path / "again") for a in args]
    status, _, err = run_cli(*args)
    assert status == 2 and "is a localisation net: start from a classification net" in err


@pytest.mark.slow
def test_two_localisation_processes_equal_one(tmp_path, fake_fashion):
    """torchrun with 2 CPU processes (gloo) == 1 process: the same weights, and validation
    that counts every image once (the same protocol (a) error)."""
    import os
    import subprocess
    import sys

    from tests.helpers import run_vggnet, state
    from vggnet import build_model
    from vggnet.data.sources import FASHION_MNIST_CLASSES

    classifier = build_model(
        "A", 10, in_channels=1, width=0.125, fc_width=32, crop_size=32, init="kaiming"
    )
    classifier.classes = FASHION_MNIST_CLASSES
    save_checkpoint(tmp_path / "cls.ckpt", classifier)
    data = f"fashion-mnist-canvas:train=32,val=15,root={fake_fashion}"
    common = (
        "--dropout",
        "0",
        "--max-steps",
        "4",
        "--epochs",
        "2",
        "--scale",
        "40",
        "--lr",
        "1e-3",
    )
    common += ("--task", "localization", "--finetune-from", str(tmp_path / "cls.ckpt"))
    one = run_vggnet(
        train_args(tmp_path / "one", *common, data=data), stderr=subprocess.PIPE, text=True
    )
    assert one.wait(timeout=120) == 0, one.stderr.read()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "vggnet", *map(str, train_args(tmp_path / "two", *common, data=data))],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    a, _ = state(tmp_path / "one" / "last.ckpt")
    b, tb = state(tmp_path / "two" / "last.ckpt")
    assert tb["world_size"] == 2
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
    epochs = []
    for run in ("one", "two"):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        epochs.append([r for r in map(json.loads, lines) if r["kind"] == "epoch"])
    assert [r["val_images"] for r in epochs[1]] == [15]  # 8 + 7 over two processes
    assert epochs[0][0]["val_loc_error"] == epochs[1][0]["val_loc_error"]
