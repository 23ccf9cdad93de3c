"""What the fault-injection tests share: waiting for a run to get going, finding its processes."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import torch


def wait_for_steps(run: Path, steps: int, timeout: float = 90.0) -> None:
    """Block until the run's metrics.jsonl has ``steps`` step records (rank 0 logs every step)."""
    metrics = Path(run) / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metrics.exists() and metrics.read_text().count('"kind": "step"') >= steps:
            return
        time.sleep(0.05)
    raise AssertionError(f"{metrics} did not reach {steps} steps in {timeout} s")


def workers_by_rank(agent_pid: int) -> dict[int, int]:
    """The torchrun agent's worker processes, rank -> pid, read from their environments."""
    pids = subprocess.run(
        ["pgrep", "-P", str(agent_pid)], capture_output=True, text=True
    ).stdout.split()
    ranks = {}
    for pid in map(int, pids):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
        ranks[int(env["RANK"])] = pid
    return ranks


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Bitwise equality of two state dicts, naming the first tensor that differs."""
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status and os.path.exists(f"/proc/{pid}")


def one_error_line(err: str) -> str:
    """The single line a refused command prints (fails if there is more, or a traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.match(r"vggnet( [a-z]+)?: error: ", lines[0]), lines[0]  # ours, or argparse's
    return lines[0]
