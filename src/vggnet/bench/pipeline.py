"""Training input pipeline images/s: vggnet's loader against a plain torchvision ImageFolder
pipeline, on generated JPEGs of ImageNet-like sizes, same workers and batch, interleaved repeats.

    python -m vggnet.bench.pipeline [--images 512] [--workers 2] [--batch 64] [--repeats 3]
                                  [--scales 256 256:512] [--json FILE]

"vggnet" ends, like the reference, with a float batch ready for the network (the per-batch
mean subtraction and colour shift run on the CPU in the timed loop); "vggnet-uint8" stops at
the uint8 batch that training on a GPU ships to the device, where it is normalised.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.v2 as T2

from vggnet.bench.common import interleaved, machine, ratios, summary
from vggnet.data import (
    BatchNormalizer,
    GlobalBatchSampler,
    TrainTransform,
    open_source,
    parse_scale,
    train_loader,
)
from vggnet.data.synthetic import synthetic_image
from vggnet.preprocessing import Preprocessing

SIZES = [(500, 375), (375, 500), (500, 333), (640, 480), (500, 400), (450, 600)]


def write_jpegs(root: Path, count: int, classes: int = 10) -> None:
    """``count`` JPEGs of ImageNet-like sizes with camera-like noise, in ImageFolder layout."""
    rng = np.random.default_rng(0)
    for i in range(count):
        width, height = SIZES[i % len(SIZES)]
        img = synthetic_image(i, classes, 500, 0).resize((width, height))
        array = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, (height, width, 3))
        folder = root / "train" / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        torchvision.transforms.functional.to_pil_image(
            torch.from_numpy(np.clip(array, 0, 255).astype(np.uint8)).permute(2, 0, 1)
        ).save(folder / f"{i}.jpg", quality=90)
    (root / "val").mkdir(exist_ok=True)
    for c in range(classes):
        (root / "val" / f"class{c}").mkdir(exist_ok=True)


def ours(root: Path, scale: str, batch: int, workers: int, normalize_on_cpu: bool = True):
    """A rate function for vggnet's pipeline (persistent workers, as in training).

    With ``normalize_on_cpu`` the timed loop also turns each uint8 batch into float network
    input on the CPU; without, it stops at the uint8 batch, which training on a GPU ships
    as is (the normalisation runs there).
    """
    source = open_source(str(root), "train")
    sampler = GlobalBatchSampler(len(source), batch, seed=0)
    loader = train_loader(source, TrainTransform(parse_scale(scale, 224), 224), sampler, workers)
    normalize = BatchNormalizer(
        Preprocessing.paper(), torch.tensor([0.2, 0.02, 0.005]), torch.eye(3)
    )
    epoch = [0]

    def run() -> float:
        sampler.set_epoch(epoch[0])
        epoch[0] += 1
        start, n = time.perf_counter(), 0
        for b in loader:
            x = normalize(b.images, b.alpha) if normalize_on_cpu else b.images
            n += len(x)
        return n / (time.perf_counter() - start)

    return run


def reference(root: Path, scale: str, batch: int, workers: int):
    """A rate function for the torchvision reference pipeline."""
    smin, _, smax = scale.partition(":")
    resize = (
        T2.RandomShortestSize(list(range(int(smin), int(smax) + 1)), antialias=True)
        if smax
        else T.Resize(int(smin))
    )
    transform = T.Compose(
        [
            resize,
            T.RandomCrop(224),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    dataset = torchvision.datasets.ImageFolder(root / "train", transform)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )

    def run() -> float:
        start, n = time.perf_counter(), 0
        for x, _ in loader:
            n += len(x)
        return n / (time.perf_counter() - start)

    return run


def compare_pipeline(root: Path, scale: str, batch: int, workers: int, repeats: int) -> dict:
    """Images/s of both pipelines over the JPEGs under ``root/train``, and the ratios."""
    runs = {
        "torchvision": reference(root, scale, batch, workers),
        "vggnet": ours(root, scale, batch, workers),
        "vggnet-uint8": ours(root, scale, batch, workers, False),
    }
    for run in runs.values():  # warm-up: start the workers, fill the page cache
        run()
    results = interleaved(runs, repeats)
    report: dict[str, Any] = {"scale": scale, "images_per_s": results}
    for name in ("vggnet", "vggnet-uint8"):
        report[f"ratio {name}"] = ratios(results[name], results["torchvision"])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scales", nargs="+", default=["256", "256:512"])
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.manual_seed(0)
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpegs(root, args.images)
        print(
            f"training pipeline, {args.images} JPEGs ~500x375, batch {args.batch}, "
            f"{args.workers} workers, on {machine(torch.device('cpu'))}"
        )
        for scale in args.scales:
            report[scale] = compare_pipeline(root, scale, args.batch, args.workers, args.repeats)
            print(f"S = {scale}")
            for name, values in report[scale]["images_per_s"].items():
                print(f"  {name:13s} images/s  {summary(values)}")
            for name in ("vggnet", "vggnet-uint8"):
                print(f"  {name + '/tv':13s} ratio     {summary(report[scale][f'ratio {name}'])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": report}, indent=1))


if __name__ == "__main__":
    main()
