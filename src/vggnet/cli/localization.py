"""``vggnet eval --task localization`` and ``vggnet predict --task localization``: parsing and printing.

The flags that only localisation takes, and the two commands' localisation branches;
the work is ``vggnet.apps.localization``'s.
"""

from __future__ import annotations

import argparse
import sys

from vggnet.apps.localization import (
    DEFAULT_LOCALIZATION_METHOD,
    check_method,
    evaluate_localization,
    predict_boxes,
)
from vggnet.cli.common import check_output
from vggnet.errors import VGGError
from vggnet.serialization import strict_json, write_json
from vggnet.train.config import TASKS


def add_task_flags(parser: argparse.ArgumentParser, predict: bool = False) -> None:
    """--task and the flags of a localisation evaluation (or prediction)."""
    parser.add_argument(
        "--task",
        choices=TASKS,
        default="classification",
        help="localization: --checkpoint nets predict boxes (paper Appendix A)",
    )
    parser.add_argument(
        "--classifier",
        action="append",
        metavar="CKPT",
        help="localization: classification net that names the classes and rates the boxes "
        "(repeat for several)",
    )
    if predict:
        parser.add_argument(
            "--out", metavar="DIR", help="localization: folder for the PNGs (IMAGE.boxes.png)"
        )
        return
    parser.add_argument(
        "--boxes",
        metavar="DIR",
        help="localization on an image folder: Pascal VOC / ImageNet XML files, one per "
        "image, matched by file name (searched recursively)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="localization: refuse an image with no box"
    )


def chosen_method(args: argparse.Namespace) -> str:
    """The localisation method: --method, or multi-crop (protocol (b) over a grid of crops)."""
    method = args.method or DEFAULT_LOCALIZATION_METHOD
    check_method(method)
    return method


def run_eval_localization(args: argparse.Namespace) -> None:
    """Localisation errors of the --checkpoint nets rated by the --classifier nets; print them."""
    for flag in ("save_scores", "overlap", "per_class"):
        if getattr(args, flag, None):
            name = "--" + flag.replace("_", "-")
            raise VGGError(
                f"{name} applies to classification only: drop it with --task localization"
            )
    check_output(args.json, "--json", [*args.checkpoint, *(args.classifier or [])])
    result = evaluate_localization(
        args.checkpoint,
        args.classifier or [],
        args.data,
        chosen_method(args),
        args.scales,
        split=args.split,
        boxes=args.boxes,
        val_labels=args.val_labels,
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
        workers=args.workers,
        limit=args.limit,
        strict=args.strict,
        grid=args.grid,
        backend=args.backend,
        calibration=args.calibration,
        winograd=args.winograd,
    )
    for reason in result["skipped"]:
        print(f"vggnet: warning: skipped {reason}", file=sys.stderr)
    if result["images_without_boxes"]:
        print(f"({result['images_without_boxes']} images without boxes skipped)")
    scales = ", ".join(f"{name}: Q={','.join(map(str, q))}" for name, q in result["scales"].items())
    print(f"localisation, {result['method']}, {result['images']} images ({scales})")
    print(f"  top-5 localisation error          {result['top5_localization_error']:6.2f}%")
    print(f"  top-1 localisation error          {result['top1_localization_error']:6.2f}%")
    print(f"  true-class localisation error (a) {result['gt_class_localization_error']:6.2f}%")
    if args.json:
        write_json(args.json, result)


def run_predict_localization(args: argparse.Namespace) -> int:
    """Draw each image's top box and class into --out; print where. Exit 1 if some file failed."""
    if not args.out:
        raise VGGError("--task localization draws its boxes into PNGs: give --out DIR")
    results, failures = predict_boxes(
        [args.checkpoint],
        args.classifier or [],
        args.images,
        args.out,
        chosen_method(args),
        args.scales,
        args.device,
        args.precision,
        backend=args.backend,
        calibration=args.calibration,
        winograd=args.winograd,
    )
    for reason in failures:
        print(f"vggnet: error: {reason}", file=sys.stderr)
    if args.json:
        print(strict_json({"results": results, "failures": failures}, indent=1))
    else:
        for r in results:
            box = ", ".join(f"{v:g}" for v in r["box"])
            print(
                f"{r['image']}: {r['class']} {100 * r['probability']:.1f}%, box ({box}) -> {r['png']}"
            )
    return 1 if failures else 0
