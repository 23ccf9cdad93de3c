"""Winograd F(4x4, 3x3) against direct convolution on each of Table 1's nine 3x3 conv shapes
at 224, fp32: effective GFLOP/s (the direct convolution's FLOPs over each one's time),
eager and compiled, and each one's error against float64.

    python tools/bench/winograd_layers.py [--batch 8] [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from vggnet.bench.common import machine
from vggnet.model.winograd import (
    compiled_conv3x3,
    table1_conv_shapes,
    winograd_conv3x3,
    winograd_filters,
)


def best_time(run, repeats: int) -> float:
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.manual_seed(0)
    compiled = compiled_conv3x3()
    rows = []
    print(f"fp32 3x3 convolutions, batch {args.batch}, on {machine(torch.device('cpu'))}")
    print("shape               direct  direct-cl  winograd  compiled   (GFLOP/s)  speedup  error")
    with torch.no_grad():
        for c, k, side in table1_conv_shapes():
            x = torch.randn(args.batch, c, side, side)
            w = torch.randn(k, c, 3, 3) * (2 / (9 * c)) ** 0.5
            u = winograd_filters(w)
            x_cl, w_cl = (t.contiguous(memory_format=torch.channels_last) for t in (x, w))
            times = {
                "direct": best_time(lambda: F.conv2d(x, w, padding=1), args.repeats),  # noqa: B023
                "direct-cl": best_time(lambda: F.conv2d(x_cl, w_cl, padding=1), args.repeats),  # noqa: B023
                "winograd": best_time(lambda: winograd_conv3x3(x, u), args.repeats),  # noqa: B023
                "compiled": best_time(lambda: compiled(x, u, None), args.repeats),  # noqa: B023
            }
            exact = F.conv2d(x[:1].double(), w.double(), padding=1)
            error = float(
                (compiled(x[:1], u, None).double() - exact).abs().max() / exact.abs().max()
            )
            flops = 2 * args.batch * side * side * c * k * 9
            gflops = {name: flops / t / 1e9 for name, t in times.items()}
            fastest_direct = min(times["direct"], times["direct-cl"])
            speedup = fastest_direct / times["compiled"]
            rows.append(
                {"shape": [c, k, side], "gflops": gflops, "speedup": speedup, "error": error}
            )
            print(
                f"{c:4d}->{k:4d} @{side:3d}   "
                + "  ".join(f"{gflops[n]:8.1f}" for n in times)
                + f"   {speedup:10.2f}x  {error:.1e}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"machine": machine(torch.device("cpu")), "args": vars(args), "rows": rows},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
