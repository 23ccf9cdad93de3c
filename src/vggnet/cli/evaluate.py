"""``vggnet eval``, ``vggnet ensemble`` and ``vggnet predict``: the paper's test protocols.

Parsing and printing only: scoring is ``vggnet.eval``'s. Choices and defaults come from
``Protocol`` and ``evaluate_checkpoints`` themselves.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from typing import Any

from vggnet.cli.common import (
    DATA_HELP,
    SPLITS,
    add_device_flag,
    add_inference_flags,
    at_least,
    check_output,
    scales,
)
from vggnet.cli.localization import add_task_flags, run_eval_localization, run_predict_localization
from vggnet.errors import VGGError
from vggnet.eval.analysis import (
    class_errors,
    format_class_errors,
    format_shared_errors,
    shared_errors,
)
from vggnet.eval.protocols import METHODS, PARTS, Protocol, resolve_method
from vggnet.eval.report import format_results, result_row
from vggnet.eval.scores import Scores, merge_scores, save_scores
from vggnet.eval.scoring import evaluate_checkpoints, predict_images
from vggnet.serialization import strict_json, write_json

DEFAULT_PROTOCOL = Protocol()
EVAL_DEFAULTS = {
    name: p.default for name, p in inspect.signature(evaluate_checkpoints).parameters.items()
}


def add_analysis_flags(parser: argparse.ArgumentParser) -> None:
    """``--overlap`` and ``--per-class`` of ``eval`` and ``ensemble``: how and where nets err."""
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="also count each member's top-1 errors and those each pair of members shares",
    )
    parser.add_argument(
        "--per-class",
        action="store_true",
        help="also print each class's top-1 error and the classes it is mistaken for",
    )


EVAL_SCALES_HELP = (
    "test scales, the same for every --method (default: Table 4's rule from the "
    "net's training scale: S-32,S,S+32 for a fixed S (32 at crop 224, in proportion "
    "for other crops); Smin,(Smin+Smax)/2,Smax for a jittered S). The demo's rows use "
    "Table 3's single Q = S: pass --scales S for the same number"
)


def add_protocol_flags(
    parser: argparse.ArgumentParser, scales_help: str = EVAL_SCALES_HELP, grid: bool = True
) -> None:
    """The test protocol (section 3.2): --method, --scales, --no-flip and, with ``grid``,
    --grid; ``scales_help`` says which Q the command picks when --scales is not given."""
    parser.add_argument(
        "--method",
        type=resolve_method,
        choices=METHODS,
        help=f"test protocol (default {DEFAULT_PROTOCOL.method}; with --task localization: "
        "multi-crop (default), dense or center)",
    )
    parser.add_argument(
        "--scales",
        type=scales,
        metavar="Q[,Q...]",
        help=scales_help,
    )
    parser.add_argument(
        "--no-flip", action="store_true", help="do not average with mirrored images"
    )
    if grid:
        parser.add_argument(
            "--grid",
            type=at_least(1),
            default=DEFAULT_PROTOCOL.grid,
            help=f"multi-crop grid side (default {DEFAULT_PROTOCOL.grid}: "
            f"{DEFAULT_PROTOCOL.grid**2} crops, twice that with flips)",
        )


def add_eval_parser(sub: Any) -> None:
    """``vggnet eval``: one checkpoint or an ensemble, on a data split, with a protocol."""
    e = sub.add_parser(
        "eval",
        help="top-1/top-5 error with the paper's test protocols (boxes: --task localization)",
    )
    e.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="CKPT",
        help="repeat for an ensemble",
    )
    e.add_argument("--data", required=True, help=DATA_HELP)
    e.add_argument("--split", choices=SPLITS, default=EVAL_DEFAULTS["split"])
    e.add_argument("--val-labels", metavar="FILE", help="labels of a flat val folder")
    add_protocol_flags(e)
    e.add_argument(
        "--limit",
        type=at_least(1),
        metavar="N",
        help="score only N images for a quick check, stratified: the first of each class "
        "in turn, so every class is represented (default: the whole split)",
    )
    e.add_argument(
        "--batch-size",
        type=at_least(1),
        default=EVAL_DEFAULTS["batch_size"],
        help="images (or crops) per forward pass",
    )
    add_device_flag(e)
    add_inference_flags(e)
    e.add_argument(
        "--workers", type=at_least(0), default=EVAL_DEFAULTS["workers"], help="decoding processes"
    )
    e.add_argument(
        "--class-order",
        choices=("name", "index"),
        default="name",
        help="match model and data classes by name or by sorted position",
    )
    add_analysis_flags(e)
    e.add_argument("--json", metavar="FILE", help="write the result as JSON")
    e.add_argument(
        "--save-scores", metavar="FILE", help="write per-image posteriors (for vggnet ensemble)"
    )
    e.add_argument("--dist-timeout", type=float, default=EVAL_DEFAULTS["dist_timeout"])
    add_task_flags(e)


def add_ensemble_parser(sub: Any) -> None:
    """``vggnet ensemble``: recombine saved posteriors without running the nets again."""
    n = sub.add_parser("ensemble", help="recombine saved scores: ensembles, protocols, scales")
    n.add_argument(
        "scores", nargs="+", metavar="SCORES", help="files written by vggnet eval --save-scores"
    )
    n.add_argument(
        "--method",
        type=resolve_method,
        choices=METHODS,
        action="append",
        help="parts to average (default: those every file holds); once for all files, or "
        "once per file in their order (each net with its own protocol)",
    )
    n.add_argument(
        "--scales",
        type=scales,
        action="append",
        metavar="Q[,Q...]",
        help="scales to average (default: all saved); once for all files, or once per file "
        "in their order (each net at its own Q)",
    )
    add_analysis_flags(n)
    n.add_argument("--json", metavar="FILE")
    n.add_argument(
        "--save-scores",
        metavar="FILE",
        help="write the members' posteriors at these --method parts and --scales only, side "
        "by side in one file (small enough to keep with the results)",
    )


def add_predict_parser(sub: Any) -> None:
    """``vggnet predict``: class names and probabilities for image files."""
    p = sub.add_parser(
        "predict",
        help="class names and probabilities for image files (boxes: --task localization)",
    )
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=at_least(1), default=5)
    add_protocol_flags(p, "default: Q = S (Table 3's rule)", grid=False)
    add_device_flag(p)
    add_inference_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_task_flags(p, predict=True)


def run_eval(args: argparse.Namespace) -> None:
    """Evaluate one checkpoint or an ensemble with a protocol; print the table."""
    if args.task == "localization":
        return run_eval_localization(args)
    check_classification(args)
    args.method = args.method or DEFAULT_PROTOCOL.method
    check_output(args.json, "--json", args.checkpoint)
    check_output(args.save_scores, "--save-scores", [*args.checkpoint, *filter(None, [args.json])])
    scores = evaluate_checkpoints(
        args.checkpoint,
        args.data,
        Protocol(args.method, args.scales, not args.no_flip, args.grid),
        split=args.split,
        val_labels=args.val_labels,
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last,
        batch_size=args.batch_size,
        workers=args.workers,
        by_index=args.class_order == "index",
        dist_timeout=args.dist_timeout,
        limit=args.limit,
        backend=args.backend,
        calibration=args.calibration,
        winograd=args.winograd,
    )
    if scores is None:  # not rank 0
        return
    for item in scores.skipped:
        print(f"vggnet: warning: skipped {item.reason}", file=sys.stderr)
    row = result_row(scores, args.method)
    if args.scales is None:
        print(f"test scales: {row['scales']}, Table 4's rule from the training scale (--scales Q)")
    print(format_results([row]))
    if scores.skipped:
        print(
            f"({len(scores.skipped)} unreadable images skipped: errors are over the "
            f"{row['images']} scored)"
        )
    finish_result(args, row, scores, None)


def finish_result(
    args: argparse.Namespace, row: dict, scores: Scores, parts: tuple[str, ...] | None
) -> None:
    """What eval and ensemble add under their row: --overlap, --per-class, --json, --save-scores."""
    if args.overlap:
        row["overlap"] = shared_errors(scores, parts)
        print(format_shared_errors(row["overlap"]))
    if args.per_class:
        row["per_class"] = class_errors(scores, parts)
        print(format_class_errors(row["per_class"]))
    if args.json:
        write_json(args.json, row)
    if args.save_scores:
        save_scores(scores, args.save_scores)


def check_classification(args: argparse.Namespace) -> None:
    """Refuse the localisation flags without --task localization, naming the flag."""
    for flag in ("classifier", "boxes", "out"):
        if getattr(args, flag, None):
            raise VGGError(
                f"--{flag} applies to --task localization only: add it, or drop --{flag}"
            )


def one_per_file(values: list | None, count: int, flag: str) -> list:
    """A flag given once for all scores files or once per file: one value per file ([] if not given)."""
    if not values:
        return []
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise VGGError(
            f"{flag} is given {len(values)} times for {count} scores files: give it "
            "once for all of them, or once per file in their order"
        )
    return values


def run_ensemble(args: argparse.Namespace) -> None:
    """Recombine saved per-image posteriors without running the networks again."""
    check_output(args.json, "--json", args.scores)
    check_output(args.save_scores, "--save-scores", [*args.scores, *filter(None, [args.json])])
    files = [Scores.load(p) for p in args.scores]
    chosen_scales = one_per_file(args.scales, len(files), "--scales")
    if chosen_scales:
        files = [
            f.at_scales(q, p) for f, q, p in zip(files, chosen_scales, args.scores, strict=True)
        ]
    methods = one_per_file(args.method, len(files), "--method")
    if methods:
        for f, m, p in zip(files, methods, args.scores, strict=True):
            f.part_indices(PARTS[m], p)  # a file without the parts asked of it is named
    if len(set(methods)) > 1:
        label = " | ".join(methods)
        files = [
            f.as_one_part(PARTS[m], label, p)
            for f, m, p in zip(files, methods, args.scores, strict=True)
        ]
        methods = []
    merged = merge_scores(files, args.scores)
    method = methods[0] if methods else "+".join(merged.parts)
    parts = PARTS[methods[0]] if methods else None
    row = result_row(merged, method, parts)
    print(format_results([row]))
    finish_result(args, row, merged.with_parts(parts) if parts else merged, parts)


def run_predict(args: argparse.Namespace) -> int:
    """Top classes and probabilities for each image file.

    Exit status 0: every image predicted; 1: some files failed (named on stderr, the rest
    printed); a refused command (a flag, the checkpoint) is 2, from ``main``.
    """
    if args.task == "localization":
        return run_predict_localization(args)
    check_classification(args)
    args.method = args.method or DEFAULT_PROTOCOL.method
    protocol = Protocol(args.method, args.scales, not args.no_flip)
    results, failures, used_scales = predict_images(
        args.checkpoint,
        args.images,
        protocol,
        args.top,
        args.device,
        args.precision,
        args.channels_last,
        args.backend,
        args.calibration,
        args.winograd,
    )
    for reason in failures:
        print(f"vggnet: error: {reason}", file=sys.stderr)
    if args.json:
        summary = {
            "checkpoint": args.checkpoint,
            "method": args.method,
            "scales": used_scales,
            "results": results,
            "failures": failures,  # "IMAGE: reason", one per file that could not be read
        }
        print(strict_json(summary, indent=1))
    else:
        for r in results:
            print(r["image"])
            for rank, t in enumerate(r["top"], start=1):
                print(f"  {rank}. {t['probability'] * 100:6.2f}%  {t['class']}")
    return 1 if failures else 0
