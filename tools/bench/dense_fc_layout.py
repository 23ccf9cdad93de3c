"""Dense evaluation's fc6 on the CPU: the unfolded pool5 windows as a strided (transposed)
3-D input, as the score map used to pass them, against one contiguous row per window, as
it does now; fp32 and bf16 autocast, each under torch.inference_mode and under
torch.no_grad (evaluation's context, `vggnet.devices.inference_context`); interleaved
repeats in one process.

    python tools/bench/dense_fc_layout.py [--positions 16] [--batch 2] [--repeats 3]

VGG-16's fc6 (25,088 -> 4,096); --positions is the number of 7x7 windows per image (the
default 16: a Q = 256 image of aspect 4:3 has 2 x 4 of them, its flip as many again).
Prints ms per call for each layout and the ratio strided / contiguous per repeat.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch
from torch import nn

from vggnet.devices import autocast


def ms_per_call(layer: nn.Module, make, precision: str, grad_off, calls: int = 5) -> float:
    """Milliseconds per ``layer(make())``, after one untimed call in the same context."""
    with grad_off(), autocast(precision, torch.device("cpu")):
        layer(make())
        start = time.perf_counter()
        for _ in range(calls):
            layer(make())
        return (time.perf_counter() - start) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    fc6 = nn.Linear(512 * 7 * 7, 4096).eval()
    windows = torch.randn(args.batch, 512 * 7 * 7, args.positions)  # what F.unfold returns
    layouts = {
        "strided": lambda: windows.transpose(1, 2),
        "contiguous": lambda: windows.transpose(1, 2).reshape(-1, 512 * 7 * 7),
    }
    for grad_off, precision in itertools.product(
        (torch.inference_mode, torch.no_grad), ("fp32", "bf16")
    ):
        times: dict[str, list[float]] = {name: [] for name in layouts}
        for r in range(args.repeats):
            for name in layouts if r % 2 == 0 else reversed(layouts):
                times[name].append(ms_per_call(fc6, layouts[name], precision, grad_off))
        ratios = [s / c for s, c in zip(times["strided"], times["contiguous"], strict=True)]
        print(
            f"{grad_off.__name__}, {precision}: strided {statistics.median(times['strided']):.1f} ms, contiguous "
            f"{statistics.median(times['contiguous']):.1f} ms per call (medians); strided / "
            f"contiguous min {min(ratios):.2f} median {statistics.median(ratios):.2f} "
            f"max {max(ratios):.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
