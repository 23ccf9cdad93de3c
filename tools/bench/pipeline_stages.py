"""Where a training image's time goes, one core: decode, rescale, crop, float conversion,
for vggnet's pipeline and the torchvision reference, on generated ~500x375 JPEGs.

    python tools/bench/pipeline_stages.py [--images 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torchvision.transforms as T
from PIL import Image

from vggnet.bench.common import machine
from vggnet.bench.pipeline import write_jpegs
from vggnet.data import BatchNormalizer, TrainTransform, open_source, parse_scale
from vggnet.data.transforms import resize_short_side
from vggnet.preprocessing import Preprocessing


def per_image_ms(fn, count: int) -> float:
    """Milliseconds per call of ``fn(i)`` over ``count`` images (after one warm-up pass)."""
    for i in range(min(count, 8)):
        fn(i)
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return (time.perf_counter() - start) / count * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(Path(tmp), args.images)
        source = open_source(tmp, "train")
        n = len(source)
        decoded = [source.read(i)[0] for i in range(n)]
        pil = [Image.open(source.paths[i]).convert("RGB") for i in range(n)]
        transform = TrainTransform(parse_scale("256", 224), 224)
        reference = T.Compose(
            [T.Resize(256), T.RandomCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
             T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
        )  # fmt: skip
        batch = torch.randint(0, 256, (64, 3, 224, 224), dtype=torch.uint8)
        normalize = BatchNormalizer(
            Preprocessing.paper(), torch.tensor([0.2, 0.02, 0.005]), torch.eye(3)
        )
        rows = {
            "decode, Pillow (reference)": per_image_ms(
                lambda i: Image.open(source.paths[i]).convert("RGB"), n
            ),
            "decode, vggnet (libjpeg-turbo to uint8)": per_image_ms(
                lambda i: source.read(i, 256), n
            ),
            "rescale to S=256, vggnet (uint8 tensor)": per_image_ms(
                lambda i: resize_short_side(
                    decoded[i], (decoded[i].shape[2], decoded[i].shape[1]), 256
                ),
                n,
            ),
            "whole vggnet transform (decode+rescale+crop+flip)": per_image_ms(
                lambda i: transform(source, i, 0), n
            ),
            "reference transforms after decode (PIL)": per_image_ms(lambda i: reference(pil[i]), n),
            "vggnet float conversion + colour shift + mean": per_image_ms(
                lambda i: normalize(batch, torch.zeros(64, 3)), 4
            )
            / 64,
        }
    print(f"per image, 1 thread, {n} JPEGs ~500x375, on {machine(torch.device('cpu'))}")
    for name, ms in rows.items():
        print(f"  {name:52s} {ms:6.2f} ms")


if __name__ == "__main__":
    main()
