"""A short real training run on the GPU through the CLI: a JPEG folder (GPU decode path)
and synthetic data (CPU loader, pinned memory), bf16 + channels_last. Checks that the CUDA
paths of the training engine run end to end; prints each run's summary lines.

    PYTHONPATH=src:. python tools/bench/gpu_train_smoke.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.helpers import write_image_folder
from vggnet.cli import main

COMMON = [
    "--scale", "40:48", "--crop", "32", "--batch-size", "16", "--width", "0.25",
    "--fc-width", "64", "--init", "kaiming", "--normalize", "standard", "--batch-norm",
    "--lr", "0.01", "--epochs", "3", "--device", "cuda", "--precision", "bf16",
    "--channels-last", "--workers", "4",
]  # fmt: skip

with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp, "jpegs")
    write_image_folder(folder, classes=("a", "b", "c"), train=32, val=8, size=(60, 45))
    failures = 0
    for name, data in (
        ("folder", str(folder)),
        ("synthetic", "synthetic:classes=4,train=128,val=32,size=40"),
    ):
        print(f"== {name}", flush=True)
        status = main(
            ["train", "--config", "A", "--data", data, "--out", str(Path(tmp, name)), *COMMON]
        )
        print(f"== {name}: exit status {status}", flush=True)
        failures += status != 0
sys.exit(failures)
