"""The class scores an int8 crop graph gives on this machine, to compare two machines'.

Runs FILE (a ``CKPT.int8.crops.onnx``) on the centre crops (Q = S) of the first N val
images of DATA and saves the scores; ``--against`` another machine's saved scores prints
how far apart they are. Used with tools/emulated_zen3.sh to show which int8 files an
AVX2-only CPU computes exactly as a VNNI one does (docs/BENCHMARKS.md).

Usage: python tools/int8_scores.py CKPT DATA FILE --images N --out S.npy [--against T.npy]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vggnet.checkpoint import load_checkpoint
from vggnet.data import open_source
from vggnet.data.geometry import Scale, single_test_scale
from vggnet.data.transforms import BatchNormalizer, center_crop, rescale
from vggnet.interop.runtime import run_session, runtime_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("data")
    parser.add_argument("file")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--out", required=True)
    parser.add_argument("--against")
    args = parser.parse_args()
    model = load_checkpoint(args.checkpoint)
    if model.train_scale is None:
        parser.error(f"{args.checkpoint} stores no training scale, so no test scale Q = S")
    q = single_test_scale(Scale(*model.train_scale))
    source = open_source(args.data, "val")
    crops = torch.stack(
        [
            center_crop(rescale(source.read(i)[0], q), model.spec.crop_size)
            for i in range(args.images)
        ]
    )
    x = BatchNormalizer(model.preprocessing)(crops)
    scores = run_session(runtime_session(args.file), x).numpy()
    np.save(args.out, scores)
    if args.against:
        other = np.load(args.against)
        if other.shape != scores.shape:
            parser.error(f"--against {args.against} holds {other.shape} scores, not {scores.shape}")
        same = float((scores.argmax(1) == other.argmax(1)).mean()) * 100
        print(
            f"{len(scores)} images: top-1 the same on {same:.2f}%, largest score difference "
            f"{np.abs(scores - other).max():.3g} (scores up to {np.abs(other).max():.3g})"
        )


if __name__ == "__main__":
    main()
