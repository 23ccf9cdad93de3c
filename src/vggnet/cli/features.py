"""``vggnet features`` and ``vggnet transfer``: Appendix B descriptors, and a linear SVM on them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from vggnet.apps.transfer import check_descriptor_request, dataset_features, linear_probe
from vggnet.checkpoint import load_checkpoint
from vggnet.cli.common import SPLITS, add_device_flag, at_least, check_output, scales
from vggnet.data import open_source
from vggnet.devices import default_device, resolve_device
from vggnet.errors import VGGError
from vggnet.eval.engines import cached_int8_descriptors
from vggnet.eval.protocols import Protocol, model_scales
from vggnet.serialization import write_json

DESCRIPTOR_PRECISIONS = ("fp32", "int8")
COMMANDS = {
    "features": "Appendix B descriptors of a split, saved as .npy",
    "transfer": "a linear SVM on Appendix B descriptors: accuracy on the val split",
}


def add_features_parsers(sub: Any) -> None:
    """``features`` and ``transfer`` share every flag but their outputs."""
    for name, text in COMMANDS.items():
        f = sub.add_parser(name, help=text)
        f.add_argument("--checkpoint", required=True, metavar="CKPT")
        f.add_argument(
            "--data",
            required=True,
            help="folder, fashion-mnist[:PATH], sklearn-digits, synthetic[:...]",
        )
        f.add_argument("--layer", default="fc7", help="tap to describe images with (default fc7)")
        f.add_argument(
            "--scales",
            type=scales,
            metavar="Q[,Q...]",
            help="default: Table 4's rule from the training scale",
        )
        f.add_argument("--no-flip", action="store_true")
        f.add_argument(
            "--precision",
            choices=DESCRIPTOR_PRECISIONS,
            default="fp32",
            help="int8: onnxruntime's quantised kernels on the CPU, calibrated once "
            "(see --calibration) and kept as CKPT.int8.LAYER.onnx",
        )
        f.add_argument(
            "--calibration",
            metavar="SPEC",
            help="int8: the data whose train split calibrates the net (default: --data)",
        )
        add_device_flag(f)
        f.add_argument("--batch-size", type=at_least(1), default=64)
        f.add_argument("--workers", type=at_least(0), default=0)
        if name == "features":
            f.add_argument("--split", choices=SPLITS, default="train")
            f.add_argument(
                "--out",
                required=True,
                metavar="FILE.npy",
                help="features; labels go to FILE.labels.npy",
            )
        else:
            f.add_argument("--c", type=float, default=1.0, help="the SVM's C (default 1)")
            f.add_argument("--json", metavar="FILE")


def split_features(args: argparse.Namespace, splits: list[str]) -> tuple[list[Any], list[int]]:
    """((features, labels) of each of ``splits``, scales), from the checkpoint's ``--layer``;
    the net is loaded, and its int8 file opened, once for all of them."""
    device = resolve_device(args.device or default_device())
    model = load_checkpoint(args.checkpoint).to(device)
    sources = [open_source(args.data, split) for split in splits]
    if sources[0].channels != model.spec.in_channels:
        raise VGGError(
            f"{args.checkpoint} takes {model.spec.in_channels}-channel images, "
            f"--data {args.data} has {sources[0].channels}"
        )
    chosen = args.scales or model_scales(model, Protocol("dense"))
    check_descriptor_request(model, chosen, args.layer)
    describe = None
    if args.precision == "int8":
        calibration = args.calibration or args.data
        describe = cached_int8_descriptors(args.checkpoint, model, args.layer, calibration, device)
    features = [
        dataset_features(
            model,
            source,
            chosen,
            args.layer,
            not args.no_flip,
            args.batch_size,
            args.workers,
            describe,
        )
        for source in sources
    ]
    return features, chosen


def run_features(args: argparse.Namespace) -> None:
    """Write Appendix B descriptors of one split."""
    check_output(args.out, "--out", [args.checkpoint])
    [(features, labels)], chosen = split_features(args, [args.split])
    out = Path(args.out)
    np.save(out, features)
    np.save(out.with_suffix(".labels.npy"), labels)
    print(
        f"wrote {out} ({features.shape[0]} x {features.shape[1]}, {args.layer} at Q={chosen}) "
        f"and {out.with_suffix('.labels.npy')}"
    )


def run_transfer(args: argparse.Namespace) -> None:
    """Fit a linear SVM on train-split descriptors; report val accuracy."""
    check_output(args.json, "--json", [args.checkpoint])
    (train, val), chosen = split_features(args, ["train", "val"])
    accuracy = linear_probe(train, val, args.c)
    result = {
        "checkpoint": args.checkpoint,
        "data": args.data,
        "layer": args.layer,
        "scales": chosen,
        "train_images": len(train[1]),
        "val_images": len(val[1]),
        "accuracy": accuracy,
    }
    print(
        f"linear SVM on {args.layer} descriptors (Q={chosen}): {accuracy:.2f}% on "
        f"{len(val[1])} {args.data} val images ({len(train[1])} train)"
    )
    if args.json:
        write_json(args.json, result)
