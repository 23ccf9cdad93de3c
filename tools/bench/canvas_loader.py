"""Does generating fashion-mnist-canvas scenes on the fly keep up with training on this CPU?

    PYTHONPATH=src python tools/bench/canvas_loader.py [--images 1536] [--json FILE]

Measures in one run: the training loader's images/s on the canvas (gray and colour, S = 73
and jittered [73, 146], crop 64, batch 128, with 0 and 1 worker processes), and the
images/s of a training step (forward, backward, SGD) of the nets the scale study trains
(A and D at a quarter width, batch norm) and of a full-width D, at crop 64. The loader
keeps up when its rate exceeds the step's.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vggnet import build_model
from vggnet.bench.common import machine
from vggnet.data import GlobalBatchSampler, TrainTransform, open_source, parse_scale, train_loader

CROP, BATCH = 64, 128


def loader_rate(spec: str, scale: str, workers: int, images: int) -> float:
    """Scenes/s through the training loader (render, rescale, crop, flip, collate)."""
    source = open_source(spec, "train")
    sampler = GlobalBatchSampler(min(len(source), images), BATCH, seed=0)
    loader = train_loader(source, TrainTransform(parse_scale(scale, CROP), CROP), sampler, workers)
    sampler.set_epoch(0)
    start, n = time.perf_counter(), 0
    for batch in loader:
        n += len(batch.labels)
    return n / (time.perf_counter() - start)


def step_rate(config: str, width: float, fc_width: int, channels: int, steps: int = 4) -> float:
    """Images/s of forward + backward + SGD on batches of crop-64 images."""
    model = build_model(config, 10, batch_norm=True, in_channels=channels, width=width,
                        fc_width=fc_width, crop_size=CROP, init="kaiming")  # fmt: skip
    model = model.train().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, channels, CROP, CROP).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1536)
    parser.add_argument("--json")
    args = parser.parse_args()
    print(machine(torch.device("cpu")), flush=True)
    rows = []
    for spec, channels in (("fashion-mnist-canvas", 1), ("fashion-mnist-canvas:colour=1", 3)):
        for scale in ("73", "73:146"):
            for workers in (0, 1):
                rate = loader_rate(spec, scale, workers, args.images)
                rows.append(
                    {"what": f"loader {spec} S={scale} workers={workers}", "images_per_s": rate}
                )
                print(f"{rows[-1]['what']:60s} {rate:8.0f} img/s", flush=True)
        for config, width, fc in (("A", 0.25, 256), ("D", 0.25, 256), ("D", 1.0, 4096)):
            rate = step_rate(config, width, fc, channels)
            what = f"train step {config} width {width} fc {fc}, {channels} channel(s)"
            rows.append({"what": what, "images_per_s": rate})
            print(f"{what:60s} {rate:8.0f} img/s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(torch.device("cpu")), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
