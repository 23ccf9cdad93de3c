"""``vggnet demo``, ``vggnet reproduce`` and ``vggnet bench``: the jobs built on the library."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from vggnet.apps.demo import DEMO_EPOCHS
from vggnet.apps.demo import run_demo as demo
from vggnet.apps.reproduce.grid import BUDGETS
from vggnet.apps.reproduce.run import ReproduceSettings, reproduce
from vggnet.bench.agreement import FAST_PATHS, MAX_ERROR_CHANGE, precision_agreement
from vggnet.bench.runner import SECTIONS, BenchSettings, plot_bench, run_bench
from vggnet.cli.common import (
    DATA_HELP,
    INFERENCE_PRECISIONS,
    add_device_flag,
    at_least,
    check_output,
)
from vggnet.devices import PRECISIONS
from vggnet.model import configs
from vggnet.serialization import write_json
from vggnet.train.folder import check_run_folder

BENCH = BenchSettings()
GRID = {f.name: f.default for f in dataclasses.fields(ReproduceSettings)}


def add_demo_parser(sub: Any) -> None:
    m = sub.add_parser("demo", help="train and evaluate a VGG on Fashion-MNIST (the main job)")
    m.add_argument("--out", default="runs/demo", help="where the run, results.json and samples go")
    m.add_argument("--data", default="fashion-mnist", help="fashion-mnist or fashion-mnist:FOLDER")
    m.add_argument("--epochs", type=at_least(1), help=f"training epochs (default {DEMO_EPOCHS})")
    add_device_flag(m)


def add_reproduce_parser(sub: Any) -> None:
    r = sub.add_parser("reproduce", help="the paper's experiment grid (Tables 3-6), resumable")
    r.add_argument("--data", required=True, help=DATA_HELP)
    r.add_argument("--out", required=True, help="the grid's folder (rerun to continue it)")
    r.add_argument("--budget", choices=tuple(BUDGETS), default=GRID["budget"])
    r.add_argument(
        "--configs",
        nargs="+",
        metavar="CONFIG",
        help=f"subset of {' '.join(configs.CONFIGS)} (default: all)",
    )
    r.add_argument(
        "--crop-size",
        "--crop",
        dest="crop",
        type=at_least(32),
        help="default: 224, or 32 for small images",
    )
    r.add_argument("--epochs", type=at_least(1), help="override the budget's epochs")
    r.add_argument("--finetune-epochs", type=at_least(1), help="override, for fine-tuned nets")
    r.add_argument("--width", type=float, help="override the budget's channel width")
    r.add_argument("--fc-width", type=at_least(1), help="override the budget's FC width")
    r.add_argument("--batch-size", type=at_least(1), help="override the budget's batch")
    r.add_argument("--grid", type=at_least(1), default=GRID["grid"], help="multi-crop grid side")
    r.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=GRID["precision"],
        help=f"every net's training precision (default {GRID['precision']}; bf16 where the "
        "device has it natively)",
    )
    add_device_flag(r)
    r.add_argument("--workers", type=at_least(0), help="decoding processes")


def add_bench_parser(sub: Any) -> None:
    b = sub.add_parser("bench", help="speed against torchvision, same run, interleaved repeats")
    b.add_argument(
        "--sections",
        nargs="+",
        default=list(SECTIONS),
        metavar="SECTION",
        help=f"any of {', '.join(SECTIONS)} (default: all)",
    )
    b.add_argument("--device", default=BENCH.device, help="cpu, cuda or cuda:N (default: cpu)")
    b.add_argument(
        "--precision",
        choices=INFERENCE_PRECISIONS[:3],
        default=BENCH.precision,
        help="ours: auto (default) = bf16 where native, else fp32; torchvision stays fp32",
    )
    b.add_argument("--repeats", type=at_least(1), default=BENCH.repeats)
    b.add_argument("--eval-images", type=at_least(10), default=BENCH.eval_images)
    b.add_argument("--tiny", action="store_true", help="tiny nets and data: a smoke run")
    b.add_argument(
        "--agreement",
        nargs=2,
        metavar=("CKPT", "DATA"),
        help="also measure bf16's, int8's and Winograd's top-1 agreement with fp32 on DATA's val split",
    )
    b.add_argument("--json", metavar="FILE", help="write everything measured as JSON")
    b.add_argument("--plot", metavar="PNG", help="cost against batch size and test scale")


def run_demo(args: argparse.Namespace) -> None:
    """The main job: Fashion-MNIST, the paper's recipe scaled down, the paper's protocols."""
    check_run_folder(args.out)
    demo(args.out, args.data, args.epochs, args.device)


def run_reproduce(args: argparse.Namespace) -> None:
    """Train and evaluate the paper's grid of nets; RESULTS.md beside the paper's numbers."""
    check_run_folder(args.out)
    fields = ReproduceSettings.__dataclass_fields__
    reproduce(ReproduceSettings(**{k: v for k, v in vars(args).items() if k in fields}))


def run_bench_command(args: argparse.Namespace) -> None:
    """Ours against torchvision: forward, training step, input pipeline, evaluation."""
    check_output(args.json, "--json")
    check_output(args.plot, "--plot")
    settings = BenchSettings(
        args.sections, args.device, args.precision, args.repeats, args.tiny, args.eval_images
    )
    report = run_bench(settings)
    if args.agreement:
        checkpoint, data = args.agreement
        report["agreement"] = [
            precision_agreement(checkpoint, data, precision, method=m, device=args.device)
            for precision in FAST_PATHS
            for m in ("center", "dense")
        ]
        for row in report["agreement"]:
            verdict = "passes" if row["passes"] else "fails"
            print(
                f"{row['precision']} vs fp32, {row['method']} on {row['images']} images: top-1 "
                f"agreement {row['agreement']:.2f}%, error {row['fp32_top1_error']:.2f}% -> "
                f"{row['top1_error']:.2f}% ({verdict} the 99.5% / "
                f"{MAX_ERROR_CHANGE[row['precision']]}-point rule)"
            )
    if args.json:
        write_json(args.json, report)
    if args.plot:
        plot_bench(report, args.plot)
