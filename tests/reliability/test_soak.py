"""Many stop/resume cycles end where one uninterrupted run ends; memory does not grow."""

import random
import signal
import subprocess

import pytest

import vggnet.train.fit
from tests.helpers import run_vggnet, state, train_args
from tests.reliability.common import assert_same_weights
from vggnet.metrics import read_metrics

TOTAL = 300  # steps: up to 50 epochs of 6, each validated; the plateau schedule runs its course
RUN = ("--epochs", "1000", "--patience", "8", "--checkpoint-every", "5")


@pytest.mark.slow  # 17 s: 15 stop/resume cycles; .ci/run runs it (make test-slow)
def test_stop_resume_cycles_end_with_the_uninterrupted_weights(tmp_path, run_cli, monkeypatch):
    status, _, err = run_cli(*train_args(tmp_path / "straight", *RUN, "--max-steps", TOTAL))
    assert status == 0, err

    # Cycles stop at a random --max-steps or at a SIGTERM that lands after a random step.
    rng = random.Random(0)
    real_all_sum = vggnet.train.fit.all_sum
    out, reached, target, cycles, by_signal = tmp_path / "cycled", 0, 0, 0, 0
    while reached < TOTAL:
        use_signal = cycles % 2 == 1
        target = min(TOTAL, max(target, reached + rng.randint(3, 17)))  # only ever raised
        calls, fire_at = [0], rng.randint(1, max(1, target - reached - 1))

        def all_sum(values, d, device, calls=calls, fire_at=fire_at, use_signal=use_signal):
            calls[0] += 1
            if use_signal and calls[0] == fire_at:
                signal.raise_signal(signal.SIGTERM)
            return real_all_sum(values, d, device)

        monkeypatch.setattr(vggnet.train.fit, "all_sum", all_sum)
        resume = ("--resume",) if cycles else ()
        status, stdout, err = run_cli(*train_args(out, *RUN, "--max-steps", target, *resume))
        assert status == 0, err
        by_signal += "stopped by SIGTERM" in stdout
        step = state(out / "last.ckpt")[1]["step"]
        assert step > reached or "schedule finished" in stdout
        reached, cycles = (TOTAL if "schedule finished" in stdout else step), cycles + 1
    assert cycles >= 15 and by_signal >= 6

    (a, ta), (b, tb) = state(out / "last.ckpt"), state(tmp_path / "straight" / "last.ckpt")
    assert (ta["step"], ta["epoch"], ta["schedule"]) == (tb["step"], tb["epoch"], tb["schedule"])
    assert_same_weights(a, b)
    momenta = [
        {k: v["momentum_buffer"] for k, v in t["optimizer"]["state"].items()} for t in (ta, tb)
    ]
    assert_same_weights(*momenta)

    def epochs(run):
        return [
            (r["epoch"], r["val_top1_error"]) for r in read_metrics(run) if r["kind"] == "epoch"
        ]

    assert epochs(out) == epochs(tmp_path / "straight")  # each epoch validated once, same numbers


@pytest.mark.slow  # 8 s of epochs; .ci/run runs it (make test-slow)
def test_resident_memory_does_not_grow_across_epochs(tmp_path):
    data = "synthetic:classes=4,train=400,val=64,size=40"  # 50 steps an epoch
    out = tmp_path / "run"
    args = train_args(out, "--epochs", "5", "--patience", "100", "--log-every", "1000", data=data)
    proc = run_vggnet(args, stderr=subprocess.PIPE, text=True)
    assert proc.wait(timeout=180) == 0, proc.stderr.read()
    rss = {r["epoch"]: r["resident_mb"] for r in read_metrics(out) if r["kind"] == "epoch"}
    assert len(rss) == 5 and all(v > 0 for v in rss.values())
    assert rss[5] <= rss[2] * 1.02 + 4, rss  # a few percent, loosely: allocator noise
