"""``vggnet data stats|check|sheet``: a data set's colour statistics, the files it cannot
use, and a contact sheet of its first images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vggnet.cli.common import DATA_HELP, SPLITS, at_least, check_output
from vggnet.data.check import find_bad_images
from vggnet.data.sheet import save_sheet
from vggnet.data.sources import FolderSource, open_source
from vggnet.data.stats import SAMPLE_IMAGES, ChannelStats, compute_stats, save_stats


def add_data_parser(sub: Any) -> None:
    """``data stats`` and ``data check``."""
    data = sub.add_parser("data", help="dataset tools: colour statistics, bad-file scan")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    stats = data_sub.add_parser("stats", help="mean pixel and RGB covariance of the train split")
    stats.add_argument("spec", metavar="SPEC", help=DATA_HELP)
    stats.add_argument(
        "--out", help="JSON file to write (default: SPEC/vggnet-stats.json for folders)"
    )
    stats.add_argument(
        "--max-images",
        type=at_least(1),
        default=SAMPLE_IMAGES,
        help=f"sample size for large sets (default {SAMPLE_IMAGES})",
    )
    sheet = data_sub.add_parser(
        "sheet", help="a PNG of the first images with their classes (and boxes, if any)"
    )
    sheet.add_argument("spec", metavar="SPEC", help=DATA_HELP)
    sheet.add_argument("--out", required=True, metavar="PNG")
    sheet.add_argument("--split", choices=SPLITS, default="train")
    sheet.add_argument("--count", type=at_least(1), default=64, help="images (default 64)")
    check = data_sub.add_parser("check", help="list every file that cannot be decoded")
    check.add_argument("spec", metavar="SPEC")
    check.add_argument("--split", choices=(*SPLITS, "both"), default="both")
    check.add_argument("--val-labels", help="labels file for a flat val folder")
    check.add_argument(
        "--workers", type=at_least(0), default=0, help="decoding processes (0: this one)"
    )


def print_stats(stats: ChannelStats, spec: str, total: int) -> None:
    """The statistics in 0..255 units, and where they came from."""
    how = (
        f"a random sample of {stats.images} of {total} images"
        if stats.sampled
        else f"all {stats.images} images"
    )
    skipped = f", {stats.skipped} unreadable skipped" if stats.skipped else ""
    print(f"{spec} train split, from {how}{skipped}")
    print("mean (0..255):           " + " ".join(f"{m * 255:8.3f}" for m in stats.mean))
    std = " ".join(f"{c[i] ** 0.5 * 255:8.3f}" for i, c in enumerate(stats.cov))
    print("std (0..255):            " + std)
    print("principal std (0..255):  " + " ".join(f"{s * 255:8.3f}" for s in stats.pc_std))
    for i, row in enumerate(stats.eigvecs):
        label = "eigenvectors (columns):  " if i == 0 else " " * 25
        print(label + " ".join(f"{v:8.4f}" for v in row))


def run_data(args: argparse.Namespace) -> int:
    """``vggnet data stats|check``; check exits 1 when some file is unusable."""
    if args.data_command == "sheet":
        check_output(args.out, "--out")
        save_sheet(open_source(args.spec, args.split), args.out, args.count)
        print(f"wrote {args.out}")
        return 0
    if args.data_command == "stats":
        check_output(args.out, "--out")
        source = open_source(args.spec, "train")
        stats = compute_stats(source, max_images=args.max_images)
        print_stats(stats, args.spec, len(source))
        out = args.out or (
            Path(args.spec) / "vggnet-stats.json" if isinstance(source, FolderSource) else None
        )
        if out is not None:
            save_stats(stats, out, args.spec, len(source))
            print(f"wrote {out}")
        return 0
    splits = SPLITS if args.split == "both" else (args.split,)
    bad_total = 0
    for split in splits:
        source = open_source(args.spec, split, args.val_labels)
        bad = find_bad_images(source, workers=args.workers)
        for _, reason in bad:
            print(reason)
        print(f"{split}: {len(source)} images, {len(bad)} unusable")
        bad_total += len(bad)
    return 1 if bad_total else 0
