"""Scoring images/s with batch norm folded into the convolutions (what `prepare` does) against
the same scoring path with the BN layers kept, interleaved in one process.

    python tools/bench/batch_norm_folding.py --checkpoint runs/demo/train/last.ckpt \
        [--data fashion-mnist] [--images 2000] [--repeats 3]

The demo's protocols on the first --images test images: centre crop and dense + multi-crop
(3x3 grid, flips) at Q = the net's training scale. Prints each rate, the ratio per repeat
(min / median / max) and whether both sides gave the same top-1 predictions.
"""

from __future__ import annotations

import argparse
import time

import torch

import vggnet.eval.protocols
from vggnet import load_checkpoint
from vggnet.bench.common import interleaved, machine, ratios, summary
from vggnet.data import open_source
from vggnet.data.sources import FashionMNISTSource
from vggnet.eval.protocols import Protocol, prepare
from vggnet.eval.scoring import score_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = load_checkpoint(args.checkpoint)
    source = open_source(args.data, "val")
    if not isinstance(source, FashionMNISTSource):
        parser.error(f"--data {args.data}: this benchmark reads fashion-mnist[:FOLDER] only")
    source.images, source.labels = source.images[: args.images], source.labels[: args.images]
    q = model.train_scale[0]
    protocols = [Protocol("center", [q]), Protocol("dense+multi-crop", [q], flip=True, grid=3)]
    folding = vggnet.eval.protocols.fold_batch_norm
    predictions: dict[str, list[torch.Tensor]] = {"folded": [], "kept": []}

    def rate(fold: bool, protocol: Protocol):
        def run() -> float:
            vggnet.eval.protocols.fold_batch_norm = folding if fold else (lambda m: m)
            try:
                scored = prepare(
                    load_checkpoint(args.checkpoint), protocol, torch.device("cpu"), ""
                )
                start = time.perf_counter()
                scores = score_images([scored], source, protocol, model.classes, batch_size=256)
                seconds = time.perf_counter() - start
            finally:
                vggnet.eval.protocols.fold_batch_norm = folding
            predictions["folded" if fold else "kept"].append(scores.combined().argmax(1))
            return len(source) / seconds

        return run

    print(machine(torch.device("cpu")))
    for protocol in protocols:
        results = interleaved(
            {"folded": rate(True, protocol), "kept": rate(False, protocol)}, args.repeats
        )
        same = all(torch.equal(a, b) for a, b in zip(*predictions.values(), strict=True))
        print(
            f"{protocol.method} Q={q}, {len(source)} images: "
            f"folded {summary(results['folded'])} img/s | kept {summary(results['kept'])} img/s"
        )
        print(
            f"  ratio folded/kept {summary(ratios(results['folded'], results['kept']))}; "
            f"same top-1 predictions: {same}"
        )
        for side in predictions.values():
            side.clear()


if __name__ == "__main__":
    main()
