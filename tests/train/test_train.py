"""The training engine: learning, resume to the bit, init chains, accumulation, DDP, signals, NaN."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import DATA, run_vggnet, state, train_args
from vggnet import VGGError, load_checkpoint
from vggnet.checkpoint import read_checkpoint
from vggnet.distributed import Dist
from vggnet.metrics import read_metrics
from vggnet.plots import plot_run
from vggnet.train import TrainConfig, check_config


def test_a_tiny_net_learns(tmp_path, run_cli):
    args = train_args(
        tmp_path / "run", "--data", "synthetic:classes=4,train=64,val=32,size=40",
        "--epochs", "10", "--dropout", "0", "--width", "0.25", "--fc-width", "64",
        "--batch-norm", "--scale", "40", "--no-lighting", "--lr", "0.01",
    )  # fmt: skip
    status, out, err = run_cli(*args)
    assert status == 0, err
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    epochs = [r for r in map(json.loads, lines) if r["kind"] == "epoch"]
    assert len(epochs) == 10
    assert epochs[-1]["train_loss"] < 0.5 * epochs[0]["train_loss"]
    assert min(r["val_top1_error"] for r in epochs) <= 10.0  # chance is 75%
    run = tmp_path / "run"
    for name in (
        "last.ckpt",
        "best.ckpt",
        "curves.png",
        "config.json",
        "command.txt",
        "stats.json",
    ):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    model = load_checkpoint(run / "best.ckpt")
    assert model.classes == ["class0", "class1", "class2", "class3"]
    assert model.train_scale == (40, 40) and model.spec.crop_size == 32
    assert "epoch 10/10: train loss" in out  # summary lines on stdout, progress bars on stderr


def test_label_smoothing_keeps_the_loss_above_the_smoothed_targets_entropy(tmp_path, run_cli):
    """With eps = 0.5 over 4 classes no prediction scores below the target's entropy (1.07);
    the same tiny net without smoothing goes below it (test above: loss < 0.69)."""
    eps, k = 0.5, 4
    hit, miss = 1 - eps + eps / k, eps / k
    floor = -(hit * math.log(hit) + (k - 1) * miss * math.log(miss))
    args = train_args(
        tmp_path / "run", "--data", "synthetic:classes=4,train=64,val=32,size=40",
        "--epochs", "10", "--dropout", "0", "--width", "0.25", "--fc-width", "64",
        "--batch-norm", "--scale", "40", "--no-lighting", "--lr", "0.01",
        "--label-smoothing", str(eps),
    )  # fmt: skip
    status, _, err = run_cli(*args)
    assert status == 0, err
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    steps = [r["loss"] for r in rows if r["kind"] == "step"]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert min(steps) >= floor - 1e-4
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] - 0.1  # it still learns
    assert epochs[-1]["train_loss"] < floor + 0.15
    assert min(r["val_top1_error"] for r in epochs) <= 10.0


@pytest.mark.parametrize("schedule", ["plateau", "linear"])
def test_resume_is_bit_identical(tmp_path, run_cli, schedule):
    """8 steps straight == 3 steps, stop, resume to 8 (crossing an epoch end and validation).

    The linear run also erases boxes (--random-erasing), whose draws must resume too.
    """
    extra = ("--warmup", "0.5", "--random-erasing", "0.5") if schedule == "linear" else ()
    common = ("--dropout", "0.5", "--epochs", "5", "--schedule", schedule, *extra)
    assert run_cli(*train_args(tmp_path / "straight", *common, "--max-steps", "8"))[0] == 0
    assert run_cli(*train_args(tmp_path / "split", *common, "--max-steps", "3"))[0] == 0
    _, train3 = state(tmp_path / "split" / "last.ckpt")
    assert train3["step"] == 3 and train3["step_in_epoch"] == 3
    status, _, err = run_cli("train", "--out", tmp_path / "split", "--resume", "--max-steps", "8")
    assert status == 0, err
    a_weights, a_train = state(tmp_path / "straight" / "last.ckpt")
    b_weights, b_train = state(tmp_path / "split" / "last.ckpt")
    assert a_train["step"] == b_train["step"] == 8 and a_train["epoch"] == 1
    for key in a_weights:
        assert torch.equal(a_weights[key], b_weights[key]), key
    for key, value in a_train["optimizer"]["state"].items():
        assert torch.equal(
            value["momentum_buffer"], b_train["optimizer"]["state"][key]["momentum_buffer"]
        )
    assert a_train["schedule"] == b_train["schedule"]


def test_a_resumed_run_logs_each_step_once(tmp_path, run_cli):
    """What a killed run logged past its checkpoint (and its torn last line) drops out."""
    common = ("--epochs", "5", "--log-every", "1")
    assert run_cli(*train_args(tmp_path / "straight", *common, "--max-steps", "6"))[0] == 0
    assert run_cli(*train_args(tmp_path / "split", *common, "--max-steps", "3"))[0] == 0
    killed = [{"kind": "step", "step": s, "epoch": 0, "loss": 99.0, "lr": 0.1} for s in (4, 5)]
    with (tmp_path / "split" / "metrics.jsonl").open("a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in killed) + '{"kind": "step", "st')
    status, _, err = run_cli("train", "--out", tmp_path / "split", "--resume", "--max-steps", "6")
    assert status == 0, err

    def losses(run):
        return [(r["step"], r["loss"]) for r in read_metrics(run) if r["kind"] == "step"]

    assert [step for step, _ in losses(tmp_path / "split")] == [1, 2, 3, 4, 5, 6]
    assert losses(tmp_path / "split") == losses(tmp_path / "straight")  # not the killed 99s
    assert plot_run(tmp_path / "split").exists()


def test_resume_refuses_contradicting_flags(tmp_path, run_cli):
    out = tmp_path / "run"
    assert run_cli(*train_args(out, "--max-steps", "2", "--epochs", "3"))[0] == 0
    status, _, err = run_cli(*train_args(out, "--max-steps", "4"))
    assert status == 2 and "already holds a run" in err and "--resume" in err
    status, _, err = run_cli("train", "--out", out, "--resume", "--lr", "0.1")
    assert status == 2 and err.strip().endswith(
        "--lr 0.1 contradicts the run's stored 0.02; drop --lr to continue as stored, or start a new --out"
    )
    status, _, err = run_cli("train", "--out", out, "--resume", "--epochs", "2")
    assert status == 2 and "--epochs 2 is below the run's 3" in err
    status, _, err = run_cli("train", "--out", tmp_path / "none", "--resume")
    assert status == 2 and "does not exist; start the run without --resume" in err
    status, _, err = run_cli(
        "train", "--out", out, "--resume", "--max-steps", "3", "--workers", "0"
    )
    assert status == 0, err
    assert state(out / "last.ckpt")[1]["step"] == 3


def test_init_from_a_and_finetune_from(tmp_path, run_cli):
    a_ckpt, d_ckpt = tmp_path / "a" / "last.ckpt", tmp_path / "d" / "last.ckpt"
    assert run_cli(*train_args(tmp_path / "a", "--max-steps", "2"))[0] == 0
    args = train_args(tmp_path / "d", "--max-steps", "0", "--init-from", a_ckpt, config="D")
    status, _, err = run_cli(*args)
    assert status == 0, err
    a, d = load_checkpoint(a_ckpt), load_checkpoint(d_ckpt)
    for layer in ("conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8"):
        assert torch.equal(getattr(a, layer).weight, getattr(d, layer).weight), layer
    assert d.conv1_2.weight.shape == (8, 8, 3, 3)  # a layer A does not have: left as initialised

    args = train_args(tmp_path / "d384", "--max-steps", "0", "--finetune-from", d_ckpt, config="D")
    del args[args.index("--lr") : args.index("--lr") + 2]
    status, _, err = run_cli(*args)
    assert status == 0, err
    fine = read_checkpoint(tmp_path / "d384" / "last.ckpt")
    assert fine["train_state"]["config"]["lr"] == 1e-3  # the paper's rate for fine-tuning
    for key, value in d.state_dict().items():
        assert torch.equal(fine["state_dict"][key], value), key

    args = train_args(tmp_path / "x", "--init-from", a_ckpt, "--width", "0.25", config="D")
    status, _, err = run_cli(*args)
    assert status == 2 and "cannot initialise conv1_1.weight" in err


def test_gradient_accumulation_equals_the_big_batch(tmp_path, run_cli):
    common = ("--dropout", "0", "--max-steps", "3", "--no-lighting")
    assert run_cli(*train_args(tmp_path / "one", *common))[0] == 0
    assert run_cli(*train_args(tmp_path / "acc", *common, "--accumulate", "4"))[0] == 0
    a, _ = state(tmp_path / "one" / "last.ckpt")
    b, _ = state(tmp_path / "acc" / "last.ckpt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_nan_loss_stops_with_the_step_named(tmp_path, run_cli):
    out = tmp_path / "run"
    args = train_args(out, "--checkpoint-every", "1", "--epochs", "3")
    args[args.index("--lr") + 1] = "1e6"
    args[args.index("--normalize") + 1] = "paper"
    status, _, err = run_cli(*args)
    assert status == 2
    line = err.strip().splitlines()[-1]
    assert "vggnet: error: the loss is nan" in line or "the loss is inf" in line
    assert "at step" in line
    if (out / "last.ckpt").exists():
        weights, train_state = state(out / "last.ckpt")
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
        assert f"at step {train_state['step'] + 1} " in line


def test_config_checks():
    cfg = TrainConfig("A", DATA, "x").resolved()
    cpu = torch.device("cpu")
    with pytest.raises(VGGError, match="not divisible by the 3 processes"):
        check_config(TrainConfig("A", DATA, "x", batch_size=8).resolved(), Dist(0, 3, 0), cpu)
    with pytest.raises(VGGError, match="--accumulate 3 does not divide the per-process batch 128"):
        check_config(TrainConfig("A", DATA, "x", accumulate=3).resolved(), Dist(0, 2, 0), cpu)
    with pytest.raises(VGGError, match="--precision fp16 needs --device cuda"):
        check_config(TrainConfig("A", DATA, "x", precision="fp16").resolved(), Dist(), cpu)
    with pytest.raises(VGGError, match="--schedule cosine: choose plateau or linear"):
        check_config(TrainConfig("A", DATA, "x", schedule="cosine").resolved(), Dist(), cpu)
    with pytest.raises(VGGError, match="--warmup must be >= 0 epochs, got -1"):
        check_config(TrainConfig("A", DATA, "x", warmup=-1).resolved(), Dist(), cpu)
    with pytest.raises(VGGError, match=r"--warmup 1\.0 applies to --schedule linear only"):
        check_config(TrainConfig("A", DATA, "x", warmup=1.0).resolved(), Dist(), cpu)
    with pytest.raises(VGGError, match=r"--label-smoothing must be in \[0, 1\), got 1\.0"):
        check_config(TrainConfig("A", DATA, "x", label_smoothing=1.0).resolved(), Dist(), cpu)
    check_config(cfg, Dist(), cpu)


def test_bf16_refused_without_native_support(monkeypatch):
    import vggnet.devices

    monkeypatch.setattr(vggnet.devices, "supports_bf16", lambda device: False)
    with pytest.raises(VGGError, match="--precision bf16: cpu here has no native bf16"):
        check_config(
            TrainConfig("A", DATA, "x", precision="bf16").resolved(), Dist(), torch.device("cpu")
        )


def test_bad_device_and_missing_flags(tmp_path, run_cli):
    status, _, err = run_cli(*train_args(tmp_path / "r", "--device", "tpu"))
    assert status == 2 and "--device" in err and "use cpu or cuda" in err
    status, _, err = run_cli("train", "--out", tmp_path / "r2", "--data", DATA)
    assert status == 2 and "needs --config" in err
    status, _, err = run_cli(*train_args(tmp_path / "r3", "--scale", "30"))
    assert status == 2 and "--scale 30: S = 30 is smaller than the crop 32" in err


@pytest.mark.slow  # a torchrun-style process pair; CI runs it (make test-slow)
def test_two_processes_equal_one(tmp_path):
    """torchrun with 2 CPU processes (gloo), global batch split in two == 1 process, dropout off."""
    common = ("--dropout", "0", "--max-steps", "4", "--epochs", "2")
    single = run_vggnet(train_args(tmp_path / "one", *common), stderr=subprocess.PIPE, text=True)
    assert single.wait(timeout=120) == 0, single.stderr.read()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "vggnet", *map(str, train_args(tmp_path / "two", *common))],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("reached --max-steps 4") == 1  # only rank 0 prints
    a, ta = state(tmp_path / "one" / "last.ckpt")
    b, tb = state(tmp_path / "two" / "last.ckpt")
    assert tb["world_size"] == 2 and ta["step"] == tb["step"] == 4
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
    assert Path(tmp_path / "two" / "metrics.jsonl").read_text().count('"kind": "epoch"') == 0


def test_plateau_threshold_and_patience_drive_the_learning_rate(tmp_path, run_cli):
    args = train_args(
        tmp_path / "run", "--epochs", "3", "--patience", "1", "--plateau-threshold", "100"
    )
    status, out, err = run_cli(*args)
    assert status == 0, err
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    lrs = [r["lr"] for r in map(json.loads, lines) if r["kind"] == "epoch"]
    # epoch 1 sets the best; no later epoch gains 100 points: lr / 10 after epoch 2, stop after 3
    assert lrs == pytest.approx([0.02, 0.002, 0.0002])
    assert "lr / 10 after 1 epochs without improvement" in out


def test_linear_schedule_warms_up_then_decays_to_zero_at_the_last_epoch(tmp_path, run_cli):
    """Every logged rate against the formula: 6 steps an epoch, 3 epochs, warm-up 1.5 epochs."""
    args = train_args(tmp_path / "run", "--epochs", "3", "--schedule", "linear", "--warmup", "1.5")
    status, out, err = run_cli(*args, "--lr", "0.09")
    assert status == 0, err
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    steps = {r["step"]: r["lr"] for r in records if r["kind"] == "step"}
    # 18 steps: rising over steps 1..9 (0.01 .. 0.09), then falling by 0.01 a step to 0.01
    expected = [0.01 * k for k in range(1, 10)] + [0.01 * k for k in range(9, 0, -1)]
    assert [steps[i] for i in range(1, 19)] == pytest.approx(expected)
    epochs = [r["lr"] for r in records if r["kind"] == "epoch"]
    assert epochs == pytest.approx([0.07, 0.06, 0.0])  # the rate the next step would use
    assert "lr / 10" not in out


def test_unreadable_training_images_are_skipped_and_counted_or_stop_with_strict(tmp_path, run_cli):
    from tests.helpers import write_image_folder

    write_image_folder(tmp_path / "d", classes=("a", "b"), train=8, val=2, size=(44, 40))
    (tmp_path / "d" / "train" / "b" / "3.jpg").write_bytes(b"")
    args = train_args(tmp_path / "run", "--epochs", "1", "--workers", "0")
    args[args.index("--data") + 1] = str(tmp_path / "d")
    status, out, err = run_cli(*args)
    assert status == 0, err
    assert err.count("3.jpg: empty file") == 1  # warned once, by name, on stderr
    assert "1 files skipped" in out  # and counted in the epoch summary
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [r["skipped"] for r in map(json.loads, lines) if r["kind"] == "epoch"] == [1]
    args[args.index("--out") + 1] = str(tmp_path / "strict")
    status, _, err = run_cli(*args, "--strict")
    assert status == 2 and "3.jpg: empty file (stopped by --strict" in err
