"""Issue 6's accuracy runs on a GPU, in one go (the device is scarce: run once, record).

    PYTHONPATH=src python benchmarks/gpu_accuracy.py --data fashion-mnist:FOLDER --out DIR
    python benchmarks/gpu_accuracy.py --smoke --out DIR        # the same code path, tiny, on a CPU

Trains the nets of ``NETS`` on Fashion-MNIST one after the other. Each gets an equal share
of ``--budget-s``: a 40-step calibration run measures its images/s, and its number of
epochs is what fits the share, so the linear schedule ends exactly where the time does.
Then every net is scored with the demo's protocols at Q = 37 (centre, dense, multi-crop,
dense + multi-crop; 3x3 grid, flips) and so is the ensemble of all of them. Writes
DIR/accuracy.json (settings, per-epoch curves, results) and prints a readable log.

The device machine cannot download: carry the four IDX files, e.g. copy
/usr/share/datasets/fashion-mnist to runs/fashion-mnist (ignored by git) and pass
``carry=["runs/fashion-mnist"]`` with ``--data fashion-mnist:runs/fashion-mnist``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import torch

from vggnet.bench.common import machine
from vggnet.evaluate import Protocol, evaluate_checkpoints, merge_scores, result_row
from vggnet.reproduce.grid import RECIPE, training_scales
from vggnet.train import train

SCALES = training_scales(32)
COMMON = {
    "scale": str(SCALES.s1),
    "crop": 32,
    "batch_size": 128,
    "lr": 0.05,
    "schedule": "linear",
    "warmup": 1.0,
    **RECIPE,
}
# Full-width nets (the paper's channels) with a 1024-wide head; dropout as the paper's
# and without (the CPU runs of docs/RESULTS.md found short runs underfit).
NETS = {
    "D-w1": {"config": "D", "width": 1.0, "fc_width": 1024, "dropout": 0.5},
    "E-w1": {"config": "E", "width": 1.0, "fc_width": 1024, "dropout": 0.5},
    "D-w1-nodrop": {"config": "D", "width": 1.0, "fc_width": 1024, "dropout": 0.0},
    "C-w1": {"config": "C", "width": 1.0, "fc_width": 1024, "dropout": 0.5},
}
SMOKE = {"width": 0.125, "fc_width": 32, "batch_size": 16}
CALIBRATION_STEPS = 40
TRAIN_SHARE = 0.8  # of a net's time: the rest is validation after each epoch and scoring


def images_per_s(run: Path) -> float:
    """The training rate of a run's last logged step."""
    steps = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    return [r for r in steps if r["kind"] == "step"][-1]["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", default="runs/gpu-accuracy")
    parser.add_argument("--budget-s", type=float, default=420.0, help="training time, all nets")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--nets", default=",".join(NETS), help="names from NETS, comma-separated")
    parser.add_argument("--smoke", action="store_true", help="tiny nets, synthetic data, CPU")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    names = args.nets.split(",")
    cuda = args.device.startswith("cuda")
    data = "synthetic:classes=4,train=320,val=16,size=28" if args.smoke else args.data
    n_train = 320 if args.smoke else 60000
    share = args.budget_s / len(names)
    log_lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        log_lines.append(line)

    report: dict = {
        "machine": machine(torch.device(args.device)),
        "common": COMMON,
        "budget_s": args.budget_s,
        "nets": {},
    }
    log(f"{report['machine']}; {len(names)} nets, {share:.0f} s each")
    checkpoints = []
    for name in names:
        settings = {
            **COMMON,
            **NETS[name],
            **(SMOKE if args.smoke else {}),
            "data": data,
            "device": args.device,
            "precision": "bf16" if cuda else "fp32",
            "workers": args.workers if cuda else 0,
        }
        probe = out / f"{name}-calibration"
        shutil.rmtree(probe, ignore_errors=True)
        train({**settings, "out": str(probe), "epochs": 1000, "max_steps": CALIBRATION_STEPS})
        rate = images_per_s(probe)
        epochs = max(1, math.floor(share * TRAIN_SHARE * rate / n_train))
        run = out / name
        shutil.rmtree(run, ignore_errors=True)
        tick = time.perf_counter()
        summary = train({**settings, "out": str(run), "epochs": epochs})
        seconds = time.perf_counter() - tick
        curve = [
            round(r["val_top1_error"], 2)
            for r in map(json.loads, (run / "metrics.jsonl").open())
            if r["kind"] == "epoch"
        ]
        log(
            f"{name}: {rate:.0f} img/s (calibration) -> {epochs} epochs in {seconds:.0f} s; "
            f"centre val error by epoch {curve}"
        )
        report["nets"][name] = {
            "settings": settings,
            "calibration_images_per_s": rate,
            "epochs": epochs,
            "train_seconds": seconds,
            "val_top1_error_by_epoch": curve,
            "best_val_top1_error": summary["best_val_top1_error"],
        }
        checkpoints.append(str(run / "best.ckpt"))

    q = SCALES.s1
    both = Protocol("dense+multi-crop", [q], flip=True, grid=3)
    center = Protocol("center", [q])
    evaluate = dict(data=data, device=args.device, batch_size=512, workers=0)
    rows, multi = [], []
    for name, checkpoint in zip(names, checkpoints, strict=True):
        c = evaluate_checkpoints([checkpoint], protocol=center, **evaluate)
        s = evaluate_checkpoints([checkpoint], protocol=both, **evaluate)
        multi.append(s)
        for row in (
            result_row(c, "center"),
            result_row(s, "dense", parts=("dense",)),
            result_row(s, "multi-crop", parts=("multi-crop",)),
            result_row(s, "dense+multi-crop"),
        ):
            rows.append({"net": name, **row})
    if len(multi) > 1:
        ensemble = merge_scores(multi, checkpoints)
        for parts, method in ((("multi-crop",), "multi-crop"), (None, "dense+multi-crop")):
            rows.append({"net": "+".join(names), **result_row(ensemble, method, parts=parts)})
    for row in rows:
        log(
            f"{row['net']:28s} {row['method']:17s} Q={row['scales']}: top-1 error "
            f"{row['top1_error']:.2f}% (accuracy {100 - row['top1_error']:.2f}%)"
        )
    report["results"] = rows
    report["seconds"] = time.perf_counter() - started
    log(f"total {report['seconds']:.0f} s")
    (out / "accuracy.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / "accuracy.log").write_text("\n".join(log_lines) + "\n")


if __name__ == "__main__":
    main()
