"""The ``vggnet`` command line: parsing and printing, one module per command group.

``common`` (shared flags, argument types, output checks) -> ``train``, ``evaluate``
(eval, ensemble, predict), ``interop`` (info, import, export), ``features`` (features,
transfer), ``data`` (stats, check), ``apps`` (demo, reproduce, bench). Each module adds
its parsers and holds the ``run_*`` functions that call the library; ``main`` maps a
``VGGError`` or a file error to one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import torch
import torchvision

import vggnet
from vggnet.cli.apps import (
    add_bench_parser,
    add_demo_parser,
    add_reproduce_parser,
    run_bench_command,
    run_demo,
    run_reproduce,
)
from vggnet.cli.common import OneLineParser, check_output
from vggnet.cli.data import add_data_parser, run_data
from vggnet.cli.evaluate import (
    add_ensemble_parser,
    add_eval_parser,
    add_predict_parser,
    run_ensemble,
    run_eval,
    run_predict,
)
from vggnet.cli.features import add_features_parsers, run_features, run_transfer
from vggnet.cli.interop import (
    EXPORT_FORMATS,
    IMPORT_FORMATS,
    add_interop_parsers,
    run_export,
    run_import,
    run_info,
)
from vggnet.cli.train import add_train_parser, run_train
from vggnet.errors import VGGError

__all__ = ["COMMANDS", "EXPORT_FORMATS", "IMPORT_FORMATS", "build_parser", "check_output", "main"]

COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {
    "info": run_info,
    "train": run_train,
    "eval": run_eval,
    "ensemble": run_ensemble,
    "predict": run_predict,
    "import": run_import,
    "export": run_export,
    "features": run_features,
    "transfer": run_transfer,
    "data": run_data,
    "demo": run_demo,
    "reproduce": run_reproduce,
    "bench": run_bench_command,
}


def version_line() -> str:
    """vggnet's version, and the torch and torchvision it runs on (what a bug report needs)."""
    return f"vggnet {vggnet.__version__} (torch {torch.__version__}, torchvision {torchvision.__version__})"


def build_parser() -> argparse.ArgumentParser:
    """The ``vggnet`` argument parser with all subcommands."""
    parser = OneLineParser(
        prog="vggnet",
        description="The VGG ConvNets of Simonyan & Zisserman (ICLR 2015).",
    )
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        add_interop_parsers,
        add_train_parser,
        add_eval_parser,
        add_ensemble_parser,
        add_predict_parser,
        add_features_parsers,
        add_data_parser,
        add_demo_parser,
        add_reproduce_parser,
        add_bench_parser,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vggnet``; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already printed in one line
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        status = COMMANDS[args.command](args)
    except VGGError as err:
        print(f"vggnet: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file the command reads or writes, named with the reason
        where = err.filename or "a file"
        print(f"vggnet: error: {where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vggnet: interrupted", file=sys.stderr)
        return 130
    return status or 0
