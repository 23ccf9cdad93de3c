"""How far a localisation net's dense-map boxes are from the same windows run as crops.

A window of the dense map sees its neighbours where the crop it was trained on saw zero
padding. This runs both for every dense window of the first N val scenes, on the true
class's box, and prints the mean difference (dense - crop) of (cx, cy, w, h), in crop units.

    PYTHONPATH=src python3 tools/dense_vs_crop_boxes.py runs/loc/S2-PCR-all/last.ckpt 110
"""

from __future__ import annotations

import argparse

import torch

from vggnet.checkpoint import load_checkpoint
from vggnet.data import BatchNormalizer, open_source
from vggnet.data.transforms import rescale
from vggnet.model import fold_batch_norm
from vggnet.model.localization import select_boxes
from vggnet.model.vgg import FEATURE_STRIDE


def differences(net, source, q: int, images: int) -> torch.Tensor:
    """(windows, 4): dense output minus crop output, true class's box, every window."""
    norm, crop = BatchNormalizer(net.preprocessing), net.spec.crop_size
    regression = net.card.box_regression
    found = []
    for i in range(images):
        image, _ = source.read(i)
        label = torch.tensor([int(source.labels[i])])
        x = norm(rescale(image, q)[None])
        with torch.no_grad():
            dense = select_boxes(net.score_map(x), label, regression)[0]  # (4, h, w)
            for a in range(dense.shape[-2]):
                for b in range(dense.shape[-1]):
                    top, left = FEATURE_STRIDE * a, FEATURE_STRIDE * b
                    window = x[..., top : top + crop, left : left + crop]
                    found.append(dense[:, a, b] - select_boxes(net(window), label, regression)[0])
    return torch.stack(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("q", type=int)
    parser.add_argument("--data", default="fashion-mnist-canvas")
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    net = fold_batch_norm(load_checkpoint(args.checkpoint).eval())
    d = differences(net, open_source(args.data, "val"), args.q, args.images)
    print(f"{args.checkpoint} at Q={args.q}: {len(d)} windows of {args.images} val scenes")
    print(f"  mean dense - crop (cx, cy, w, h): {d.mean(0).numpy().round(3)}")
    print(f"  mean |dense - crop|:              {d.abs().mean(0).numpy().round(3)}")


if __name__ == "__main__":
    main()
