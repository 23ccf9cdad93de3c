"""Forward-pass images/s of vggnet's D against torchvision's vgg16: same weights, same inputs,
same process, interleaved repeats; prints each side and the ratio (ours / torchvision).

    python benchmarks/forward.py [--batch 8] [--size 224] [--repeats 5] [--device cpu|cuda]
                                 [--precision fp32|bf16] [--channels-last] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch
import torchvision
from common import interleaved, machine, ratios, summary

from vggnet.interop.torchvision import import_torchvision


def rate(model: torch.nn.Module, x: torch.Tensor, iters: int, precision: str) -> float:
    """Images per second over ``iters`` forward passes."""
    autocast = (
        torch.autocast(x.device.type, dtype=torch.bfloat16)
        if precision == "bf16"
        else contextlib.nullcontext()
    )
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode(), autocast:
        for _ in range(iters):
            model(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return iters * x.shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iters", type=int, default=0, help="passes per repeat (0: auto)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    reference = torchvision.models.vgg16(weights=None).eval()
    ours = import_torchvision(reference.state_dict()).eval()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    reference = reference.to(device, memory_format=fmt)
    ours = ours.to(device, memory_format=fmt)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    x = x.contiguous(memory_format=fmt)
    with torch.inference_mode():
        diff = (ours(x) - reference(x)).abs().max().item()
    iters = args.iters or (2 if device.type == "cpu" else 20)
    for model in (reference, ours):  # warm-up
        rate(model, x, 1, args.precision)

    results = interleaved(
        {
            "torchvision": lambda: rate(reference, x, iters, args.precision),
            "vggnet": lambda: rate(ours, x, iters, args.precision),
        },
        args.repeats,
    )
    ratio = ratios(results["vggnet"], results["torchvision"])
    print(
        f"forward D/vgg16 {args.size}x{args.size} batch {args.batch} {args.precision}"
        f"{' channels_last' if args.channels_last else ''} on {machine(device)}"
    )
    print(f"max |logit difference|: {diff:.2e}")
    for name, values in results.items():
        print(f"{name:12s} images/s  {summary(values)}")
    print(f"{'ratio':12s} ours/tv   {summary(ratio)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "images_per_s": results, "ratio": ratio}, f, indent=1)


if __name__ == "__main__":
    main()
