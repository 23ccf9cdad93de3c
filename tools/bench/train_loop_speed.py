"""What one training epoch costs on a GPU, for comparing two versions of the package in one call.

    git archive BASE src | tar -x -C runs/before     # the baseline's source tree
    PYTHONPATH=runs/before/src python3 tools/bench/train_loop_speed.py --label before \
        --data fashion-mnist:runs/fashion-mnist --report $OUT
    PYTHONPATH=src python3 tools/bench/train_loop_speed.py --label after ...
    python3 tools/bench/train_loop_speed.py --smoke --report DIR     # the same code path, on a CPU

Trains gpu_accuracy.py's net D-b512 (D at full width, batch 512, bf16, channels-last)
on Fashion-MNIST: a warm-up run of a few steps (cuDNN autotuning), then one epoch, then
three. An epoch costs (T3 - T1) / 2: what every run pays once (reading the data,
building the net, forking the loader's workers) cancels out, while validation and
checkpoints after each epoch are in. Appends one JSON line to REPORT/train_loop_speed.jsonl.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from gpu_accuracy import COMMON, NETS, SMOKE

from vggnet.bench.common import machine
from vggnet.data import open_source
from vggnet.eval.protocols import Protocol
from vggnet.eval.scoring import evaluate_checkpoints
from vggnet.metrics import read_metrics
from vggnet.train import train


def timed_run(settings: dict, out: Path, **extra) -> float:
    """Seconds one ``train`` call takes, from a fresh run folder."""
    shutil.rmtree(out, ignore_errors=True)
    tick = time.perf_counter()
    train({**settings, "out": str(out), **extra})
    return time.perf_counter() - tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label", default="this tree")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", default="/dev/shm/loop-speed")
    parser.add_argument("--report", default=".")
    parser.add_argument("--net", default="D-b512", choices=sorted(NETS))
    parser.add_argument("--workers", type=int, default=None, help="12 on a GPU, else 2")
    parser.add_argument("--smoke", action="store_true", help="tiny net, synthetic data, CPU")
    parser.add_argument(
        "--score", action="store_true", help="also time two scoring passes of the 3-epoch net"
    )
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and not args.smoke
    data = "synthetic:classes=4,train=320,val=16,size=28" if args.smoke else args.data
    settings = {
        **COMMON,
        **NETS[args.net],
        **(SMOKE if args.smoke else {}),
        "data": data,
        "device": "cuda" if cuda else "cpu",
        "precision": "bf16" if cuda else "fp32",
        "workers": args.workers if args.workers is not None else (12 if cuda else 2),
    }
    torch.backends.cudnn.benchmark = cuda
    out = Path(args.out)
    timed_run(settings, out / "warm-up", epochs=1, max_steps=20)
    one = timed_run(settings, out / "one", epochs=1)
    three = timed_run(settings, out / "three", epochs=3)
    per_epoch = (three - one) / 2
    epochs = [r for r in read_metrics(out / "three") if r["kind"] == "epoch"]
    parts = {  # versions that time an epoch's parts (train, val, checkpoint) log them
        key: sum(r[key] for r in epochs)
        for key in ("train_seconds", "val_seconds", "checkpoint_seconds")
        if all(key in r for r in epochs)
    }
    scoring = []
    if args.score:  # Table 4's Q set, dense + multi-crop: the protocol gpu_accuracy.py runs
        torch.backends.cudnn.benchmark = False
        protocol = Protocol("dense+multi-crop", None, flip=True, grid=3)
        for _ in range(2):
            tick = time.perf_counter()
            evaluate_checkpoints(
                [str(out / "three" / "last.ckpt")],
                protocol=protocol,
                data=data,
                device=settings["device"],
                batch_size=512,
                workers=0,
            )
            scoring.append(time.perf_counter() - tick)
    shutil.rmtree(out, ignore_errors=True)
    images = len(open_source(data, "train"))
    line = {
        "label": args.label,
        "machine": machine(torch.device(settings["device"])),
        "net": args.net,
        "seconds_one_epoch_run": one,
        "seconds_three_epoch_run": three,
        "seconds_per_epoch": per_epoch,
        "images_per_s": images / per_epoch,
        "three_epoch_run_parts_s": parts,
        "scoring_passes_s": scoring,
    }
    print(json.dumps(line), flush=True)
    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    with (report / "train_loop_speed.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
