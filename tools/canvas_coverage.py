"""How much of its garment a training crop sees on fashion-mnist-canvas, at each training scale.

Issue #35's suspected reason why jittering loses to S1 = 73 there: at larger S a 64-pixel
crop cuts or misses the garment, so the label is noisy. This measures it directly, with
the trainer's own random draws (``TrainTransform``) and box geometry (``crop_box``): for
each crop, the share of the garment's box that lies inside the crop.

    PYTHONPATH=src python3 tools/canvas_coverage.py --images 5000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vggnet.data import TrainTransform, open_source
from vggnet.data.boxes import box_source, crop_box
from vggnet.data.geometry import Scale, parse_scale

THRESHOLDS = (0.0, 0.5, 0.9)  # "misses it", "less than half", "cuts more than a tenth"


def covered_share(boxes: torch.Tensor, crop: int) -> torch.Tensor:
    """Share of each box (N, 4) in crop pixels that lies inside the [0, crop) square."""
    inside = boxes.clamp(0, crop)
    area = lambda b: (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)  # noqa: E731
    return area(inside) / area(boxes)


def coverage(source, scale: Scale, crop: int, images: int, seed: int = 0) -> np.ndarray:
    """The covered share of the garment for the training crops of the first ``images`` scenes."""
    transform = TrainTransform(scale, crop, seed)
    shares = []
    for index, draw in zip(range(images), transform.draws(0, range(images)), strict=True):
        scene = source.source.scene(index)
        full = (scene.image.shape[1], scene.image.shape[0])
        params = draw.crop_params(full, crop, 1)
        box = torch.tensor([scene.box], dtype=torch.float64)
        view = crop_box(box, full, params.scale, params.left, params.top, params.flip, crop)
        shares.append(float(covered_share(view, crop)[0]))
    return np.asarray(shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist-canvas")
    parser.add_argument("--scales", default="64,73,92,110,146,73:146")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--images", type=int, default=5000)
    args = parser.parse_args()
    source = box_source(open_source(args.data, "train"), None)
    print(f"{args.data}, crop {args.crop}, first {args.images} training scenes, epoch 0 draws")
    print("S         | garment missed | < half seen | < 90% seen | mean share seen")
    for text in args.scales.split(","):
        shares = coverage(source, parse_scale(text, args.crop), args.crop, args.images)
        below = [100 * float(np.mean(shares <= t if t == 0 else shares < t)) for t in THRESHOLDS]
        print(
            f"{text:9} | {below[0]:13.1f}% | {below[1]:10.1f}% | {below[2]:9.1f}% | "
            f"{100 * shares.mean():14.1f}%"
        )


if __name__ == "__main__":
    main()
