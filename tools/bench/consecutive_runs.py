"""Seconds each of several short training runs in one process takes (loader workers on).

    PYTHONPATH=src python3 tools/bench/consecutive_runs.py [--runs 3 --workers 4]
    PYTHONPATH=runs/before/src python3 tools/bench/consecutive_runs.py    # a baseline tree

A run's loader workers used to outlive it and be stopped by whatever garbage collection
came next, each worker then waiting out a 5-second status check: every run after the
first (and the scoring after a run) stalled. Net A at width 1/8 on Fashion-MNIST, ten
steps of 512 a run, so the stall, if any, dominates. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from vggnet.bench.common import machine
from vggnet.train import train

SETTINGS = {
    "config": "A",
    "crop": 32,
    "scale": "37",
    "width": 0.125,
    "fc_width": 32,
    "batch_size": 512,
    "device": "cpu",
    "batch_norm": True,
    "init": "kaiming",
    "normalize": "standard",
    "lr": 0.1,
    "schedule": "linear",
    "epochs": 1,
    "max_steps": 10,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            tick = time.perf_counter()
            train({**SETTINGS, "data": args.data, "workers": args.workers, "out": f"{tmp}/{i}"})
            seconds.append(round(time.perf_counter() - tick, 2))
    package = Path(__import__("vggnet").__file__).parent
    line = {"package": str(package), "machine": machine(torch.device("cpu")), "seconds": seconds}
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
