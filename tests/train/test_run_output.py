"""What a run shows: lines that say what each number is, progress in logs, the closing
summary, the training error, and a figure readable alone."""

import contextlib
import io
import json
from pathlib import Path

import torch
from torch import nn

from tests.helpers import tiny, train_args
from vggnet import progress as progress_module
from vggnet import save_checkpoint
from vggnet.data import BatchNormalizer
from vggnet.plots import plot_run, run_figure
from vggnet.progress import LogProgress, format_duration
from vggnet.train.step import StepParts, forward_backward


def test_training_errors_are_counted_by_hand():
    model = tiny("A", num_classes=4, crop_size=32, dropout=0.0)
    x, labels = torch.randn(12, 3, 32, 32), torch.randint(0, 4, (12,))
    with torch.no_grad():
        expected = int((model(x).argmax(1) != labels).sum())
    parts = StepParts(
        model.train(),
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.amp.GradScaler("cpu", enabled=False),
        nn.CrossEntropyLoss(),
        BatchNormalizer(model.preprocessing),
        contextlib.nullcontext(),
        torch.device("cpu"),
        False,
    )
    errors = torch.zeros((), dtype=torch.long)
    forward_backward(parts, x, labels, accumulate=3, errors=errors)
    assert int(errors) == expected


def test_log_progress_prints_whole_lines(monkeypatch):
    out = io.StringIO()
    clock = iter([0.0, 31.0, 40.0, 65.0, 70.0, 80.0, 80.0])  # start, 4 updates, close
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    with LogProgress(100, "evaluating", "img", file=out) as bar:
        bar.set_postfix({"loss": "0.5"})
        for _ in range(4):
            bar.update(25)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # at 31 s and 65 s (30 s apart at least), and the last
    assert lines[0] == "evaluating: 25/100 imgs (25%), 0.8 img/s, 1:33 left, loss 0.5"
    assert lines[-1].startswith("evaluating: 100/100 imgs (100%)")
    assert format_duration(3725) == "1:02:05" and format_duration(59.6) == "1:00"


def test_a_run_in_a_log_says_what_each_number_is(tmp_path, run_cli, monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0.0)  # a progress line per step
    status, out, err = run_cli(*train_args(tmp_path / "run", "--epochs", "2"))
    assert status == 0, err
    steps = [line for line in err.splitlines() if line.startswith("epoch 1/2: ")]
    assert steps and "\r" not in err  # plain lines in a pipe, no carriage returns
    assert "loss ..." in steps[0] and "nan" not in err  # nothing read yet is not a NaN
    assert all("run_eta" in line for line in steps)
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2
    for line in epochs:
        assert "train loss" in line and "top-1 error" in line and "val error top-1" in line
        assert "best top-1 error" in line and "run ETA" in line
        assert "val top-1" not in line  # an error, never shown as if it were an accuracy
    records = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    best = min((r for r in records if r["kind"] == "epoch"), key=lambda r: r["val_top1_error"])
    assert 0 <= best["train_top1_error"] <= 100
    last = out.splitlines()[-1]
    assert last.startswith("reached --epochs 2 at step ") and " after " in last
    assert f"best val top-1 error {best['val_top1_error']:.2f}% at epoch {best['epoch']}" in last
    assert f"next: vggnet eval --checkpoint {tmp_path / 'run' / 'best.ckpt'} --data " in last


def test_a_stopped_run_says_how_to_resume(tmp_path, run_cli):
    status, out, _ = run_cli(*train_args(tmp_path / "run", "--max-steps", "2"))
    assert status == 0
    assert out.splitlines()[-1].endswith(
        f"next: vggnet train --out {tmp_path / 'run'} --resume with a higher --epochs or --max-steps"
    )


def test_the_figure_reads_alone(tmp_path, run_cli):
    run = tmp_path / "short-run"
    assert run_cli(*train_args(run, "--epochs", "2"))[0] == 0
    fig = run_figure(run)
    loss, error, lr = fig.axes
    title = fig._suptitle.get_text()
    assert title.startswith("short-run: config A") and "S=40:48" in title and "crop 32" in title
    for ax in (loss, error, lr):
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    labels = [line.get_label() for line in error.get_lines()]
    assert labels == ["train top-1", "val top-1", "val top-5"]
    assert all(
        line.get_marker() not in (None, "None", "") for ax in fig.axes for line in ax.get_lines()
    )
    assert Path(plot_run(run)).stat().st_size > 10_000


def test_eval_progress_in_a_log_is_plain_lines(tmp_path, run_cli, monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 0.0)
    model = tiny("A", num_classes=4, crop_size=32)
    model.classes, model.train_scale = ["class0", "class1", "class2", "class3"], (32, 32)
    save_checkpoint(tmp_path / "m.ckpt", model)
    data = "synthetic:classes=4,train=4,val=24,size=40"
    status, _, err = run_cli(
        "eval", "--checkpoint", tmp_path / "m.ckpt", "--data", data, "--batch-size", "8",
        "--method", "center", "--device", "cpu",
    )  # fmt: skip
    assert status == 0, err
    lines = [line for line in err.splitlines() if line.startswith("evaluating: ")]
    assert lines and lines[-1].startswith("evaluating: 24/24 imgs (100%)")
    assert "\r" not in err and "0%|" not in err


def test_a_long_run_draws_lines_without_markers(tmp_path):
    records = [
        {"kind": "step", "step": s, "epoch": 1 + s // 10, "loss": 1.0, "lr": 0.1}
        for s in range(1, 400)
    ]
    records += [
        {"kind": "epoch", "step": 10 * e, "epoch": e, "train_loss": 1.0, "lr": 0.1,
         "train_top1_error": 20.0, "val_top1_error": 10.0, "val_top5_error": 1.0}
        for e in range(1, 41)
    ]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    fig = run_figure(tmp_path)
    assert all(
        line.get_marker() in (None, "None", "") for ax in fig.axes for line in ax.get_lines()
    )
    assert [line.get_label() for line in fig.axes[1].get_lines()][-1] == "val top-5"
