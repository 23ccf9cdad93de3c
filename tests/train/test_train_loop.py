"""The training loop's bookkeeping: losses read a step late, per-epoch timings, best.ckpt, validation."""

import json
import multiprocessing
import os
import stat

import pytest
import torch

import vggnet.data
import vggnet.train.fit
from tests.helpers import state, train_args
from vggnet import VGGError
from vggnet.lagged import LaggedScalar
from vggnet.serialization import atomic_link, atomic_save


def records(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_lagged_scalar_returns_each_value_once_a_step_late():
    lagged = LaggedScalar(torch.device("cpu"))
    assert lagged.take() is None
    assert lagged.put(torch.tensor(1.5), "a") is None
    assert lagged.put(torch.tensor(2.5), "b") == (1.5, "a")
    assert lagged.take() == (2.5, "b")
    assert lagged.take() is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_lagged_scalar_on_the_gpu_reads_the_value_it_was_given():
    lagged = LaggedScalar(torch.device("cuda"))
    x = torch.full((), 3.0, device="cuda")
    lagged.put(x * 2, 1)
    x.add_(100)  # a later kernel must not change what was queued
    assert lagged.take() == (6.0, 1)


def test_every_step_is_logged_once_with_its_own_loss(tmp_path, run_cli):
    """48 images / batch 8 = 6 steps an epoch: each logged once, the epoch loss their mean."""
    common = ("--epochs", "2", "--dropout", "0", "--no-lighting")
    assert run_cli(*train_args(tmp_path / "full", *common))[0] == 0
    steps = [r for r in records(tmp_path / "full") if r["kind"] == "step"]
    epochs = [r for r in records(tmp_path / "full") if r["kind"] == "epoch"]
    assert [r["step"] for r in steps] == list(range(1, 13))
    assert [r["epoch"] for r in steps] == [1] * 6 + [2] * 6
    for epoch in epochs:
        mine = [r["loss"] for r in steps if r["epoch"] == epoch["epoch"]]
        assert epoch["train_loss"] == pytest.approx(sum(mine) / len(mine), rel=1e-6)
    # Read a step late, yet each record holds its own step's loss: a run stopped after
    # step 4 logs the same four losses, the last of them read when the run ends.
    assert run_cli(*train_args(tmp_path / "four", *common, "--max-steps", "4"))[0] == 0
    four = [r for r in records(tmp_path / "four") if r["kind"] == "step"]
    assert [r["loss"] for r in four] == [r["loss"] for r in steps[:4]]
    assert all(r["images_per_s"] > 0 for r in steps)


def test_epoch_records_say_where_the_time_went(tmp_path, run_cli):
    assert run_cli(*train_args(tmp_path / "run", "--epochs", "2"))[0] == 0
    for r in (r for r in records(tmp_path / "run") if r["kind"] == "epoch"):
        parts = (r["train_seconds"], r["val_seconds"], r["checkpoint_seconds"])
        assert all(p > 0 for p in parts), parts


def test_best_ckpt_is_the_improved_epochs_state_and_survives_the_next_save(tmp_path, run_cli):
    run = tmp_path / "run"
    args = train_args(run, "--epochs", "3", "--data", "synthetic:classes=2,train=48,val=16,size=40")
    assert run_cli(*args)[0] == 0
    epochs = [r for r in records(run) if r["kind"] == "epoch"]
    best = min(epochs, key=lambda r: r["val_top1_error"])  # the first of the lowest
    weights, train_state = state(run / "best.ckpt")
    assert train_state["epoch"] == best["epoch"]
    assert train_state["best_val_top1_error"] == best["val_top1_error"]
    if best["epoch"] < 3:  # a later last.ckpt was written over without touching best.ckpt
        last, _ = state(run / "last.ckpt")
        assert any(not torch.equal(weights[k], last[k]) for k in weights)


def test_atomic_save_gives_the_file_the_modes_of_a_plain_write(tmp_path):
    previous = os.umask(0o022)
    try:
        for mask in (0o022, 0o077, 0o002):
            os.umask(mask)
            atomic_save({"v": 1}, tmp_path / "saved")
            (tmp_path / "plain").unlink(missing_ok=True)
            (tmp_path / "plain").write_bytes(b"")
            assert stat.S_IMODE((tmp_path / "saved").stat().st_mode) == 0o666 & ~mask
            assert (tmp_path / "saved").stat().st_mode == (tmp_path / "plain").stat().st_mode
    finally:
        os.umask(previous)


def test_atomic_link_keeps_the_old_state_when_the_source_is_replaced(tmp_path):
    atomic_save({"v": 1}, tmp_path / "last")
    atomic_link(tmp_path / "last", tmp_path / "best")
    atomic_save({"v": 2}, tmp_path / "last")
    assert torch.load(tmp_path / "best")["v"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "last"]  # no temporaries


def test_atomic_link_copies_where_hard_links_fail(tmp_path, monkeypatch):
    def no_links(*_):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    atomic_save({"v": 1}, tmp_path / "last")
    atomic_link(tmp_path / "last", tmp_path / "best")
    atomic_save({"v": 2}, tmp_path / "last")
    assert torch.load(tmp_path / "best")["v"] == 1


def test_atomic_link_names_the_file_it_cannot_write(tmp_path):
    with pytest.raises(VGGError, match=r"cannot write .*best"):
        atomic_link(tmp_path / "missing", tmp_path / "best")


def test_the_validation_loader_is_made_once_per_run(tmp_path, run_cli, monkeypatch):
    made = []
    real = vggnet.train.fit.validation_loader

    def counting(*args):
        made.append(1)
        return real(*args)

    monkeypatch.setattr(vggnet.train.fit, "validation_loader", counting)
    assert run_cli(*train_args(tmp_path / "run", "--epochs", "3"))[0] == 0
    assert len(made) == 1
    loader = real(vggnet.data.open_source("synthetic:classes=2,train=4,val=4,size=40", "val"),
                  vggnet.train.TrainConfig("A", "x", "y", crop=32, workers=2), 40,
                  vggnet.train.fit.Dist(0, 1, 0))  # fmt: skip
    assert loader.persistent_workers  # its workers live across epochs


def test_a_finished_run_leaves_no_loader_workers_behind(tmp_path, run_cli):
    """Left to the GC, a finished run's workers stalled the next run about 2.5 s each."""
    args = train_args(tmp_path / "run", "--epochs", "2")
    args[args.index("--workers") + 1] = "2"  # a training and a validation loader, both with workers
    assert run_cli(*args)[0] == 0
    assert multiprocessing.active_children() == []
