"""kill -9 while a checkpoint is written, a full disk, a failing metrics file: nothing lost."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_vggnet, state, train_args, worker_env
from tests.reliability.common import assert_same_weights
from vggnet.checkpoint import load_checkpoint

DATA = "synthetic:classes=4,train=400,val=16,size=40"  # 50 steps an epoch
COMMON = ("--max-steps", "12", "--epochs", "1", "--checkpoint-every", "4")

# Runs `vggnet ARGS` with torch.save killing its own process (SIGKILL) halfway through the
# given call: as if the machine lost power while writing a checkpoint.
KILL_DURING_SAVE = """
import os, signal, sys, torch
real_save, calls, kill_on = torch.save, [0], int(sys.argv[1])
def save(obj, f, *args, **kwargs):
    calls[0] += 1
    if calls[0] == kill_on:
        f.write(b"half a checkpoint" * 1000)
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
torch.save = save
from vggnet.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_child(args, script: str | None = None, *script_args: str) -> subprocess.CompletedProcess:
    """vggnet ARGS in a child (one thread), optionally under a fault-injecting ``script``."""
    if script is None:
        proc = run_vggnet(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=120)
        return subprocess.CompletedProcess(args, proc.returncode, out, err)
    command = [sys.executable, "-c", script, *script_args, *map(str, args)]
    return subprocess.run(command, env=worker_env(), capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # two training processes; CI runs it (make test-slow)
def test_kill_9_while_writing_a_checkpoint_keeps_the_previous_one_and_resumes(tmp_path):
    out = tmp_path / "run"
    killed = run_child(train_args(out, *COMMON, data=DATA), KILL_DURING_SAVE, "2")
    assert killed.returncode == -9, killed.stderr
    _, at = state(out / "last.ckpt")  # the save of step 4 is whole; step 8's never landed
    assert at["step"] == 4
    assert len(list(out.glob(".last.ckpt.*.tmp"))) == 1  # the half-written file, not last.ckpt

    resumed = run_child(train_args(out, *COMMON, "--resume", data=DATA))
    assert resumed.returncode == 0, resumed.stderr
    assert not list(out.glob(".*.tmp"))  # cleaned up on resume
    straight = run_child(train_args(tmp_path / "straight", *COMMON, data=DATA))
    assert straight.returncode == 0, straight.stderr
    (a, ta), (b, tb) = state(out / "last.ckpt"), state(tmp_path / "straight/last.ckpt")
    assert ta["step"] == tb["step"] == 12
    assert_same_weights(a, b)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs: a disk that really fills up (needs root and mount; skipped elsewhere)."""
    where = tmp_path / "disk"
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Write until the disk is full, then free ``leave`` bytes; returns the filler file."""
    reserve = disk / "reserve"
    reserve.write_bytes(b"\0" * leave)
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    reserve.unlink()
    return filler


@pytest.mark.parametrize(
    ("leave", "failing"),
    [
        pytest.param(  # room for the logs, not for the checkpoint (~1.2 MB)
            256 * 1024, "last.ckpt", marks=pytest.mark.slow
        ),
        pytest.param(  # nothing at all: the first file the resumed run writes
            0, "config.json", marks=pytest.mark.slow
        ),
    ],
)
def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_previous_checkpoint(
    tmp_path, small_disk, leave, failing
):
    out = small_disk / "run"
    quiet = ("--log-every", "1000")  # step records off: the first write after resume is a save
    first = run_child(train_args(out, *COMMON, *quiet, data=DATA))
    assert first.returncode == 0, first.stderr
    before = (out / "last.ckpt").read_bytes()
    filler = fill(small_disk, leave)

    more = ("--max-steps", "20", "--epochs", "1", "--checkpoint-every", "4")
    full = run_child(train_args(out, *more, *quiet, "--resume", data=DATA))
    assert full.returncode == 2
    assert "Traceback" not in full.stderr, full.stderr
    lines = [line for line in full.stderr.splitlines() if line.startswith("vggnet: error:")]
    assert len(lines) == 1, full.stderr
    assert f"cannot write {out / failing}: No space left on device" in lines[0]
    assert (out / "last.ckpt").read_bytes() == before
    assert not list(out.glob(".*.tmp"))

    filler.unlink()  # space again: the run goes on from its last checkpoint
    again = run_child(train_args(out, *more, *quiet, "--resume", data=DATA))
    assert again.returncode == 0, again.stderr
    assert state(out / "last.ckpt")[1]["step"] == 20


def test_a_failing_metrics_file_stops_with_one_line_naming_it(tmp_path):
    out = tmp_path / "run"
    first = run_child(train_args(out, *COMMON, data=DATA))
    assert first.returncode == 0, first.stderr
    before = (out / "last.ckpt").read_bytes()
    (out / "metrics.jsonl").unlink()
    (out / "metrics.jsonl").symlink_to("/dev/full")  # every write: No space left on device
    full = run_child(train_args(out, "--max-steps", "20", "--epochs", "1", "--resume", data=DATA))
    assert full.returncode == 2
    assert full.stderr.strip().splitlines()[-1] == (
        f"vggnet: error: cannot append to {out / 'metrics.jsonl'}: No space left on device; "
        "the last checkpoint is untouched: free space and continue with --resume"
    )
    assert (out / "last.ckpt").read_bytes() == before
    load_checkpoint(out / "last.ckpt")


def test_a_failing_tensorboard_mirror_warns_once_and_the_json_log_goes_on(tmp_path, capsys):
    from vggnet.metrics import MetricsLog, read_metrics

    log = MetricsLog(tmp_path)
    assert log.writer is not None

    def full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    log.writer.add_scalar = full
    for step in (1, 2, 3):
        log.write({"kind": "step", "step": step, "loss": 1.0})
    log.close()
    err = capsys.readouterr().err
    assert err.count("TensorBoard logging to") == 1 and "No space left on device" in err
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]


def test_tensorboards_writer_thread_failing_on_a_full_disk_prints_no_traceback(
    tmp_path, capfd, monkeypatch
):
    """Its thread's OSError is left to MetricsLog's one-line warning; other threads still print."""
    import threading

    from vggnet.metrics import MetricsLog

    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)  # not pytest's
    MetricsLog(tmp_path).close()  # installs the filter

    def full():
        raise OSError(28, "No space left on device")

    class _AsyncWriterThread(threading.Thread):  # the name of TensorBoard's writer thread
        pass

    for thread in (_AsyncWriterThread(target=full), threading.Thread(target=full)):
        thread.start()
        thread.join()
    err = capfd.readouterr().err
    assert err.count("Traceback") == 1 and "_AsyncWriterThread" not in err
