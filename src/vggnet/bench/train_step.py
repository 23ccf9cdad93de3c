"""Training-step images/s: vggnet's step (normalisation on the device, autocast, channels_last,
optionally torch.compile) against a plain fp32 loop over torchvision's VGG, same run.

    python -m vggnet.bench.train_step                       # CPU: D at width 0.25, crop 32, batch 64
    python -m vggnet.bench.train_step --device cuda --size 224 --width 1 --batch 256 \
        --variants fp32 bf16-cl bf16-cl-compile

Both sides: SGD with momentum 0.9 and weight decay, cross-entropy, synthetic data already in
memory (uint8 for ours, float for the reference, as each pipeline delivers it). Model FLOPs
utilisation (MFU) on CUDA = 3 x forward multiply-adds x 2 / step time / the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torchvision
from torch import nn

from vggnet import build_model
from vggnet.bench.common import interleaved, machine, summary
from vggnet.data import BatchNormalizer
from vggnet.model import VGGSpec
from vggnet.preprocessing import Preprocessing
from vggnet.summary import layer_rows
from vggnet.train.setup import parameter_groups

DENSE_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # FLOP/s, dense


def reference_model(width: float, size: int, num_classes: int) -> nn.Module:
    """torchvision's VGG class with config D's layers (channels scaled) and a matching head."""
    cfg = [v if v == "M" else max(1, round(v * width)) for v in torchvision.models.vgg.cfgs["D"]]
    features = torchvision.models.vgg.make_layers(cfg)
    model = torchvision.models.vgg.VGG(features, num_classes=num_classes, init_weights=True)
    side = size // 32
    model.avgpool = nn.AdaptiveAvgPool2d((side, side))
    hidden = max(1, round(4096 * width))
    c5 = cfg[-2]
    model.classifier = nn.Sequential(
        nn.Linear(c5 * side * side, hidden), nn.ReLU(True), nn.Dropout(),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
        nn.Linear(hidden, num_classes),
    )  # fmt: skip
    return model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_step(args, device):
    """A plain fp32 step over torchvision's model."""
    model = reference_model(args.width, args.size, args.classes).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    criterion = nn.CrossEntropyLoss()

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def our_step(args, device, variant: str):
    """Our step: uint8 batch -> device normalisation -> autocast forward/backward -> SGD."""
    bf16 = "bf16" in variant
    channels_last = "cl" in variant
    model = build_model(
        "D", args.classes, width=args.width, fc_width=max(1, round(4096 * args.width)),
        crop_size=args.size, init="kaiming",
    ).to(device)  # fmt: skip
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(parameter_groups(model, 5e-4), lr=0.01, momentum=0.9)
    net = torch.compile(model) if "compile" in variant else model
    normalizer = BatchNormalizer(
        Preprocessing.paper(), torch.tensor([0.2, 0.02, 0.005]), torch.eye(3)
    ).to(device)
    images = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8)
    images = images.to(device)
    alpha = torch.randn(args.batch, 3, device=device) * 0.1
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    criterion = nn.CrossEntropyLoss()
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )

    def step() -> float:
        x = normalizer(images, alpha)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = criterion(net(x).float(), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def measure(step, args, device) -> float:
    """Images/s over ``args.iters`` steps."""
    start = time.perf_counter()
    for _ in range(args.iters):
        loss = step()
    float(loss.detach())  # the training loop reads the loss each step; here once per repeat
    sync(device)
    return args.iters * args.batch / (time.perf_counter() - start)


def run(args) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    fc_width = max(1, round(4096 * args.width))
    spec = VGGSpec("D", args.classes, width=args.width, fc_width=fc_width, crop_size=args.size)
    macs = sum(r.macs for r in layer_rows(spec))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    peak = next((v for k, v in DENSE_BF16_PEAK.items() if k in name), None)
    print(
        f"training step, D width {args.width} at {args.size}, batch {args.batch}, "
        f"{macs / 1e9:.2f} G multiply-adds per image forward, on {machine(device)}"
    )
    results = {"machine": machine(device), "args": vars(args), "variants": {}}
    variants = ["torchvision-fp32", *args.variants]
    steps, peaks = {}, {}
    for variant in variants:  # build and warm up each (compilation happens here)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        if variant == "torchvision-fp32":
            steps[variant] = reference_step(args, device)
        else:
            steps[variant] = our_step(args, device, variant)
        for _ in range(args.warmup):
            steps[variant]()
        sync(device)
        if device.type == "cuda":
            peaks[variant] = torch.cuda.max_memory_allocated(device) / 2**20
    runs: dict[str, Callable[[], float]] = {
        v: functools.partial(measure, steps[v], args, device) for v in variants
    }
    rates = interleaved(runs, args.repeats)
    baseline = statistics.median(rates["torchvision-fp32"])
    for variant in variants:
        median = statistics.median(rates[variant])
        per_repeat = [a / b for a, b in zip(rates[variant], rates["torchvision-fp32"], strict=True)]
        row: dict[str, Any] = {
            "images_per_s": rates[variant],
            "ratio": median / baseline,
            "ratios": per_repeat,
        }
        line = f"  {variant:18s} images/s {summary(rates[variant])}  ratio {summary(per_repeat)}"
        if variant in peaks:
            row["peak_mib_all_models_so_far"] = peaks[variant]
            line += f"  peak {peaks[variant]:.0f} MiB"
        if peak:
            row["mfu"] = 3 * 2 * macs * median / peak
            line += f"  MFU {100 * row['mfu']:.1f}%"
        print(line, flush=True)
        results["variants"][variant] = row
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["fp32", "fp32-cl", "fp32-cl-compile"])
    parser.add_argument("--json")
    args = parser.parse_args()
    results = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
