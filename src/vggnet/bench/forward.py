"""Forward-pass images/s of vggnet's D against torchvision's vgg16: same weights, same inputs,
same process, interleaved repeats; prints each side and the ratio (ours / torchvision).

    python -m vggnet.bench.forward [--batch 8] [--size 224] [--repeats 5] [--device cpu|cuda]
                                   [--precision fp32|bf16|auto] [--channels-last] [--json FILE]

The reference is always torchvision's default: fp32, contiguous tensors. "Ours" runs with
the given precision and memory format (``vggnet bench`` uses inference's defaults: bf16
where native, channels_last).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torchvision
from torch import nn

from vggnet.bench.common import interleaved, machine, ratios, summary
from vggnet.bench.train_step import reference_model
from vggnet.devices import inference_context, inference_precision
from vggnet.interop.torchvision import import_torchvision


def model_pair(width: float, size: int, classes: int) -> tuple[nn.Module, nn.Module]:
    """torchvision's VGG-16 (scaled by ``width`` for small settings) and ours with its weights."""
    if width == 1 and size == 224 and classes == 1000:
        reference = torchvision.models.vgg16(weights=None)
    else:
        reference = reference_model(width, size, classes)
    return reference.eval(), import_torchvision(reference.state_dict()).eval()


def rate(model: nn.Module, x: torch.Tensor, iters: int, precision: str = "fp32") -> float:
    """Steady-state images per second over ``iters`` forward passes.

    One untimed pass first, in the same context: its first pass casts every weight to bf16
    (138M of them for VGG-16) and autocast keeps them until the context exits, which in
    evaluation is once per run, not per batch.
    """
    with inference_context(precision, x.device):
        model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iters):
            model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        return iters * x.shape[0] / (time.perf_counter() - start)


def compare_forward(
    batch: int,
    size: int = 224,
    *,
    width: float = 1.0,
    classes: int = 1000,
    device: str = "cpu",
    precision: str = "fp32",
    channels_last: bool = False,
    repeats: int = 3,
    iters: int = 0,
) -> dict:
    """Both sides' images/s per repeat, the per-repeat ratio, and their largest logit difference."""
    torch_device = torch.device(device)
    precision = inference_precision(precision, torch_device)
    torch.manual_seed(0)
    reference, ours = model_pair(width, size, classes)
    reference = reference.to(torch_device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    ours = ours.to(torch_device, memory_format=fmt)  # type: ignore[call-overload]
    x = torch.randn(batch, 3, size, size, device=torch_device)
    x_ours = x.contiguous(memory_format=fmt)
    with inference_context(precision, torch_device):
        diff = (ours(x_ours).float() - reference(x)).abs().max().item()
    iters = iters or (2 if torch_device.type == "cpu" else 20)
    results = interleaved(
        {
            "torchvision": lambda: rate(reference, x, iters),
            "vggnet": lambda: rate(ours, x_ours, iters, precision),
        },
        repeats,
    )
    return {
        "batch": batch,
        "size": size,
        "precision": precision,
        "channels_last": channels_last,
        "max_logit_difference": diff,
        "images_per_s": results,
        "ratio": ratios(results["vggnet"], results["torchvision"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iters", type=int, default=0, help="passes per repeat (0: auto)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    result = compare_forward(
        args.batch,
        args.size,
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last,
        repeats=args.repeats,
        iters=args.iters,
    )
    print(
        f"forward D/vgg16 {args.size}x{args.size} batch {args.batch}: torchvision fp32 vs ours "
        f"{result['precision']}{' channels_last' if args.channels_last else ''} "
        f"on {machine(torch.device(args.device))}"
    )
    print(f"max |logit difference|: {result['max_logit_difference']:.2e}")
    for name, values in result["images_per_s"].items():
        print(f"{name:12s} images/s  {summary(values)}")
    print(f"{'ratio':12s} ours/tv   {summary(result['ratio'])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **result}, f, indent=1)


if __name__ == "__main__":
    main()
