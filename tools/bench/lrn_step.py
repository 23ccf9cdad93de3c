"""A-LRN's training step with vggnet's LRN (a 1x1 convolution) against torch's
nn.LocalResponseNorm swapped into the same net, and net A (no LRN) as the floor; interleaved
repeats in one process.

    python tools/bench/lrn_step.py [--precision bf16] [--width 0.5] [--batch 128] [--repeats 5]

The net is the `full` grid's A-LRN cell (batch norm, fc 512, crop 32, channels_last);
SGD with momentum on synthetic data already in memory. Prints images/s for each variant
and, per repeat, the ratio ours / torch's and the LRN's cost over A for both.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from vggnet import build_model, configs
from vggnet.bench.common import interleaved, machine, ratios, summary
from vggnet.devices import autocast


def make_step(config: str, lrn: str, args):
    """One SGD step of ``config`` at the grid's shape, with ``lrn`` ('ours' or 'torch')."""
    torch.manual_seed(0)
    model = build_model(
        config, 10, batch_norm=True, width=args.width, fc_width=512, crop_size=32, init="kaiming"
    ).to(memory_format=torch.channels_last)
    if lrn == "torch" and hasattr(model, "norm1"):
        n = model.norm1
        model.norm1 = nn.LocalResponseNorm(n.size, n.alpha, n.beta, n.k)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(args.batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))
    criterion = nn.CrossEntropyLoss()

    def rate() -> float:
        start = time.perf_counter()
        for _ in range(args.iters):
            optimizer.zero_grad(set_to_none=True)
            with autocast(args.precision, torch.device("cpu")):
                loss = criterion(model(x).float(), y)
            loss.backward()
            optimizer.step()
        return args.iters * args.batch / (time.perf_counter() - start)

    rate()  # warm-up
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    where = machine(torch.device("cpu"))
    print(f"A-LRN training step, {vars(args)}, LRN size {configs.LRN_SIZE}, on {where}")
    runs = {
        "A": make_step("A", "ours", args),
        "A-LRN, torch's LRN": make_step("A-LRN", "torch", args),
        "A-LRN, vggnet's LRN": make_step("A-LRN", "ours", args),
    }
    rates = interleaved(runs, args.repeats)
    for name, values in rates.items():
        print(f"  {name:22s} images/s {summary(values)}")
    ours, theirs, floor = (rates[k] for k in ("A-LRN, vggnet's LRN", "A-LRN, torch's LRN", "A"))
    print(f"  step ratio ours / torch's: {summary(ratios(ours, theirs))}")
    for name, values in (("torch's", theirs), ("vggnet's", ours)):
        cost = [a / b - 1 for a, b in zip(floor, values, strict=True)]  # time per image over A's
        print(f"  {name:8s} LRN adds {100 * statistics.median(cost):.0f}% to A's step (median)")


if __name__ == "__main__":
    main()
