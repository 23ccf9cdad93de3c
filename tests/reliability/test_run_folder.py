"""A run folder has one writer, resumes where --out says, and survives a damaged metrics log."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_vggnet, state, train_args
from tests.reliability.common import one_error_line, wait_for_steps
from vggnet import VGGError
from vggnet.metrics import read_metrics
from vggnet.train.folder import LOCK_NAME, RunLock

SLOW_DATA = "synthetic:classes=4,train=800,val=16,size=40"  # 100 steps an epoch


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    """Wait for a child; its exit status and stderr."""
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def folder_hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative name -> SHA-256): a byte-level snapshot."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_lock_refuses_a_second_holder_and_is_free_again_once_released(tmp_path):
    first = RunLock(tmp_path / "run").acquire()
    with pytest.raises(VGGError, match=rf"{tmp_path / 'run'} is in use .*process {os.getpid()}"):
        RunLock(tmp_path / "run").acquire()  # another open file: refused even in one process
    first.release()
    RunLock(tmp_path / "run").acquire().release()


def test_a_stale_lock_file_does_not_block(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(json.dumps({"pid": 999999, "host": "gone", "started": 0}))
    with RunLock(run):  # a file naming a dead holder is not a lock: only a live flock is
        pass


def test_a_second_training_on_a_busy_folder_is_refused_and_the_first_is_intact(tmp_path, run_cli):
    run = tmp_path / "run"
    extra = ("--max-steps", "400", "--checkpoint-every", "2")
    first = run_vggnet(train_args(run, *extra, data=SLOW_DATA), stderr=subprocess.PIPE, text=True)
    try:
        wait_for_steps(run, 3)
        for second in (
            train_args(run, "--seed", "5", config="B"),  # a new run
            ["train", "--out", run, "--resume"],  # the same run, resumed
            ["train", "--out", run, "--resume", "--max-steps", "500"],
        ):
            status, _, err = run_cli(*second)
            assert status == 2
            line = one_error_line(err)
            assert f"{run} is in use by another training run (process {first.pid}" in line
    finally:
        first.send_signal(signal.SIGTERM)  # stops at a checkpoint, status 0
        status, err = finish(first)
    assert status == 0, err
    assert len((run / "command.txt").read_text().splitlines()) == 1  # only the first's
    assert json.loads((run / "config.json").read_text())["config"] == "A"
    steps = [r["step"] for r in read_metrics(run) if r["kind"] == "step"]
    assert steps == list(range(1, len(steps) + 1))  # one run's steps, each once


def test_two_trainings_started_together_on_one_folder_one_runs_one_is_refused(tmp_path):
    run = tmp_path / "run"
    a = train_args(run, "--max-steps", "3")
    b = train_args(run, "--max-steps", "3", "--seed", "5")
    procs = [run_vggnet(args, stderr=subprocess.PIPE, text=True) for args in (a, b)]
    results = sorted(finish(p) for p in procs)
    assert [status for status, _ in results] == [0, 2], results
    line = one_error_line(results[1][1])
    assert "is in use by another training run" in line or "already holds a run" in line
    assert len((run / "command.txt").read_text().splitlines()) == 1
    steps = [r["step"] for r in read_metrics(run) if r["kind"] == "step"]
    assert steps == [1, 2, 3]


def test_a_run_killed_by_sigkill_leaves_no_lock_that_blocks_resume(tmp_path, run_cli):
    run = tmp_path / "run"
    extra = ("--max-steps", "60", "--checkpoint-every", "2")
    proc = run_vggnet(train_args(run, *extra, data=SLOW_DATA), stderr=subprocess.PIPE)
    wait_for_steps(run, 4)
    proc.kill()
    proc.wait()
    assert (run / LOCK_NAME).exists() and (run / "last.ckpt").exists()
    status, _, err = run_cli("train", "--out", run, "--resume")
    assert status == 0, err
    assert state(run / "last.ckpt")[1]["step"] == 60


def hard_link_copy(source: Path, target: Path) -> None:
    """``cp -al``: a folder tree whose files are hard links to the source's."""
    shutil.copytree(source, target, copy_function=os.link)


@pytest.mark.parametrize("copy_tree", [shutil.copytree, hard_link_copy])
def test_a_copied_run_resumes_in_place_and_the_original_is_untouched(tmp_path, run_cli, copy_tree):
    original, copy = tmp_path / "r2", tmp_path / "r2copy"
    status, _, err = run_cli(*train_args(original, "--max-steps", "2"))
    assert status == 0, err
    copy_tree(original, copy)
    before = folder_hashes(original)
    status, _, err = run_cli("train", "--out", copy, "--resume", "--max-steps", "4")
    assert status == 0, err
    assert folder_hashes(original) == before  # byte-identical
    assert state(copy / "last.ckpt")[1]["step"] == 4
    assert state(copy / "last.ckpt")[1]["config"]["out"] == str(copy)


def test_a_resume_from_another_directory_writes_only_to_its_out(tmp_path, run_cli, monkeypatch):
    run = tmp_path / "runs" / "r2"
    monkeypatch.chdir(tmp_path)
    status, _, err = run_cli(*train_args(Path("runs/r2"), "--max-steps", "2"))  # relative
    assert status == 0, err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    status, _, err = run_cli("train", "--out", run, "--resume", "--max-steps", "3")
    assert status == 0, err
    assert list(elsewhere.iterdir()) == []  # no ./runs/r2 made here
    assert state(run / "last.ckpt")[1]["step"] == 3


GARBAGE = [
    b"\xff\xfe\x00 not utf-8 \x80\n",
    b"plain text\n",
    b"[1, 2, 3]\n",
    b'{"kind": "step", "step": "seven", "epoch": 1, "loss": 1.0, "lr": 0.1}\n',
    b'{"kind": "step", "step": 2, "epoch": 1, "loss": "high", "lr": 0.1}\n',
    b'{"kind": "epoch", "step": 3, "epoch": [1], "val_top1_error": 5, "val_top5_error": 1}\n',
    b'{"kind": "resume", "step": null}\n',
    b'{"kind": 7}\n',
]


def test_garbage_in_metrics_is_skipped_with_one_warning_and_training_goes_on(tmp_path, run_cli):
    run = tmp_path / "run"
    status, _, err = run_cli(*train_args(run, "--max-steps", "2"))
    assert status == 0, err
    with (run / "metrics.jsonl").open("ab") as f:
        f.write(b"".join(GARBAGE))
    status, _, err = run_cli("train", "--out", run, "--resume", "--max-steps", "4")
    assert status == 0, err
    warnings = [line for line in err.splitlines() if "unreadable line" in line]
    assert warnings == [
        f"vggnet: warning: {run / 'metrics.jsonl'}: {len(GARBAGE)} unreadable lines skipped"
    ]
    assert "Traceback" not in err
    assert [r["step"] for r in read_metrics(run) if r["kind"] == "step"] == [1, 2, 3, 4]
    assert (run / "curves.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--data", "/nonexistent/images"), "/nonexistent/images"),
        (("--data", "synthetic:classes=0"), "classes"),
        (("--init-from", "/nonexistent/a.ckpt"), "/nonexistent/a.ckpt"),
        (("--finetune-from", "/nonexistent/a.ckpt"), "/nonexistent/a.ckpt"),
        (("--data", "{tmp}/no-val"), "no-val"),
        (("--schedule", "linear", "--warmup", "-1"), "--warmup"),
    ],
)
def test_a_command_refused_on_flags_or_data_leaves_no_run_folder(tmp_path, run_cli, extra, message):
    (tmp_path / "no-val" / "train" / "cat").mkdir(parents=True)  # a folder without its val split
    extra = [str(e).format(tmp=tmp_path) for e in extra]
    status, _, err = run_cli(*train_args(tmp_path / "run", *extra))
    assert status == 2
    assert message in one_error_line(err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["train", "demo", "reproduce"])
def test_an_out_that_is_a_file_is_one_line(tmp_path, run_cli, command):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    args = {
        "train": train_args(target, "--max-steps", "1"),
        "demo": ["demo", "--out", target],
        "reproduce": ["reproduce", "--data", "synthetic", "--out", target],
    }[command]
    status, _, err = run_cli(*args)
    assert status == 2
    assert f"--out {target} is a file, not a folder" in one_error_line(err)
    assert target.read_text() == "keep me"


def test_a_new_run_in_a_folder_a_crashed_run_left_starts_a_fresh_history(tmp_path, run_cli):
    run = tmp_path / "run"
    run.mkdir()
    old = [{"kind": "step", "step": s, "epoch": 1, "loss": 9.0, "lr": 0.1} for s in range(1, 6)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))  # no last.ckpt
    status, _, err = run_cli(*train_args(run, "--max-steps", "2"))
    assert status == 0, err
    steps = [r for r in read_metrics(run) if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [1, 2] and all(r["loss"] != 9.0 for r in steps)


def test_a_hard_linked_copy_of_a_running_run_has_a_lock_of_its_own(tmp_path):
    original, copy = tmp_path / "r", tmp_path / "copy"
    with RunLock(original):  # the original is training
        hard_link_copy(original, copy)
        lock = RunLock(copy)
        lock.check_free()  # the shared lock file names the original's holder, not the copy's
        with lock:
            assert (copy / LOCK_NAME).stat().st_nlink == 1  # the copy's own file now
        with pytest.raises(VGGError, match="is in use"):
            RunLock(original).acquire()  # and the original is still held
