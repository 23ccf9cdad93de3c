"""SIGTERM (pre-emption) and dead or hung DDP processes: consistent checkpoints, no hang."""

import os
import signal
import subprocess
import time

import pytest

from tests.helpers import free_port, run_vggnet, state, torchrun_command, train_args, worker_env
from tests.reliability.common import alive, assert_same_weights, wait_for_steps, workers_by_rank

BIG = "synthetic:classes=4,train=4000,val=16,size=40"  # 500 steps an epoch: signals land mid-epoch
STEPS = "60"


@pytest.mark.slow  # three training processes; CI runs it (make test-slow)
def test_sigterm_mid_epoch_checkpoints_and_resumes_to_the_uninterrupted_weights(tmp_path):
    common = ("--max-steps", STEPS, "--epochs", "1", "--checkpoint-every", "100000")
    out = tmp_path / "run"
    proc = run_vggnet(
        train_args(out, *common, data=BIG),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_steps(out, 3)
    proc.send_signal(signal.SIGSTOP)  # hold it still so the stop lands well before the end
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    start = time.time()
    stdout, err = proc.communicate(timeout=60)
    assert time.time() - start < 10
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM at step" in stdout and "--resume" in stdout
    stopped_at = state(out / "last.ckpt")[1]["step"]
    assert 3 <= stopped_at < int(STEPS)

    # Both in child processes: one thread each, as the interrupted part (threads change sums).
    for args in (
        train_args(out, *common, "--resume", data=BIG),
        train_args(tmp_path / "straight", *common, data=BIG),
    ):
        child = run_vggnet(args, stderr=subprocess.PIPE, text=True)
        assert child.wait(timeout=120) == 0, child.stderr.read()
    (resumed, rs), (straight, ss) = state(out / "last.ckpt"), state(tmp_path / "straight/last.ckpt")
    assert rs["step"] == ss["step"] == int(STEPS)
    assert_same_weights(resumed, straight)


def torchrun(args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        torchrun_command(args), env=worker_env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,
    )  # fmt: skip


@pytest.mark.slow  # a torchrun-style process pair; CI runs it (make test-slow)
def test_sigterm_to_one_ddp_process_stops_both_at_the_same_step_and_resumes_exactly(tmp_path):
    """torchrun, 2 gloo processes; SIGTERM reaches rank 1 only: rank 0 learns it at the next step."""
    common = ("--max-steps", STEPS, "--epochs", "1", "--checkpoint-every", "100000")
    out = tmp_path / "run"
    agent = torchrun(train_args(out, *common, data=BIG))
    wait_for_steps(out, 3)
    rank1 = workers_by_rank(agent.pid)[1]
    for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGCONT):
        os.kill(rank1, sig)
    stdout, err = agent.communicate(timeout=120)
    assert agent.returncode == 0, err[-3000:]
    assert "stopped by a signal to another process at step" in stdout
    _, stopped = state(out / "last.ckpt")
    assert stopped["world_size"] == 2 and 3 <= stopped["step"] < int(STEPS)

    resumed = torchrun(train_args(out, *common, "--resume", data=BIG))
    straight = torchrun(train_args(tmp_path / "straight", *common, data=BIG))
    for proc in (resumed, straight):
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
    (a, ta), (b, tb) = state(out / "last.ckpt"), state(tmp_path / "straight/last.ckpt")
    assert ta["step"] == tb["step"] == int(STEPS)
    assert_same_weights(a, b)


def start_pair(out, timeout_s: int) -> list[subprocess.Popen]:
    """Two ranks joined by environment variables alone: no torchrun agent to clean up after them."""
    args = train_args(out, "--epochs", "50", "--dist-timeout", str(timeout_s), data=BIG)
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        env = worker_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE="2")
        env.update(RANK=str(rank), LOCAL_RANK=str(rank))
        procs.append(
            run_vggnet(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        )
    return procs


@pytest.mark.parametrize(
    "fault",
    ["SIGKILL", pytest.param("SIGSTOP", marks=pytest.mark.slow)],  # 17 s, mostly the timeout
)
def test_a_dead_or_hung_peer_stops_the_other_with_one_line_within_the_timeout(tmp_path, fault):
    """SIGKILL: the connection drops at once. SIGSTOP (a hung node): gloo's timeout, 10 s here."""
    out = tmp_path / "run"
    rank0, rank1 = start_pair(out, timeout_s=10)
    try:
        wait_for_steps(out, 3)
        rank1.send_signal(getattr(signal, fault))
        start = time.time()
        _, err = rank0.communicate(timeout=60)
        elapsed = time.time() - start
    finally:
        rank1.kill()
        rank1.communicate()
    assert rank0.returncode == 2
    assert elapsed < (5 if fault == "SIGKILL" else 10 + 10)
    message = [line for line in err.splitlines() if "vggnet: error:" in line]
    assert len(message) == 1 and "Traceback" not in err
    assert "process 0 of 2 lost contact with the others" in message[0]
    assert "start the run again" in message[0] or "--resume" in message[0]


@pytest.mark.slow  # a torchrun job; CI runs it (make test-slow)
def test_a_killed_torchrun_worker_takes_the_others_down(tmp_path):
    """torchrun, 2 processes; SIGKILL one mid-run: the other stops, torchrun exits non-zero."""
    agent = torchrun(
        train_args(tmp_path / "run", "--epochs", "50", "--dist-timeout", "30", data=BIG)
    )
    wait_for_steps(tmp_path / "run", 3)
    workers = workers_by_rank(agent.pid)
    os.kill(workers[1], signal.SIGKILL)
    start = time.time()
    _, err = agent.communicate(timeout=120)
    assert time.time() - start < 60
    assert agent.returncode != 0
    assert "SIGKILL" in err or "exitcode" in err
    assert not alive(workers[0])


@pytest.mark.slow  # a torchrun job; CI runs it (make test-slow)
def test_sigterm_to_the_torchrun_agent_reaches_every_worker_and_they_checkpoint(tmp_path):
    """What a scheduler does on pre-emption: torchrun forwards SIGTERM; the workers save and stop."""
    out = tmp_path / "run"
    agent = torchrun(train_args(out, "--max-steps", "400", "--epochs", "1", data=BIG))
    wait_for_steps(out, 3)
    agent.send_signal(signal.SIGTERM)
    stdout, _ = agent.communicate(timeout=60)  # torchrun itself exits 1 with its own traceback
    assert "stopped by SIGTERM at step" in stdout
    _, stopped = state(out / "last.ckpt")
    assert stopped["world_size"] == 2 and 3 <= stopped["step"] < 400
