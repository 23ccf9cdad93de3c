"""Command-line interface: argument parsing only; the work happens in the modules it calls."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vggnet import configs
from vggnet.errors import VGGError

IMPORT_FORMATS = ("torchvision",)
EXPORT_FORMATS = ("torchvision",)


def _add_shape_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that change a network's shape (defaults: the paper's)."""
    parser.add_argument("--batch-norm", action="store_true", help="batch norm after every conv")
    parser.add_argument("--num-classes", type=int, default=configs.NUM_CLASSES)
    parser.add_argument("--in-channels", type=int, default=3)
    parser.add_argument("--width", type=float, default=1.0, help="scale of every conv's channels")
    parser.add_argument("--fc-width", type=int, default=configs.FC_WIDTH, help="fc6/fc7 width")
    parser.add_argument("--crop-size", type=int, default=configs.CROP_SIZE)


def build_parser() -> argparse.ArgumentParser:
    """The ``vggnet`` argument parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="vggnet",
        description="The VGG ConvNets of Simonyan & Zisserman (ICLR 2015).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="layer table, parameter counts and multiply-adds")
    info.add_argument(
        "configs", nargs="*", metavar="CONFIG", help=f"any of {', '.join(configs.CONFIGS)}"
    )
    _add_shape_flags(info)

    imp = sub.add_parser("import", help="convert weights from another library to a checkpoint")
    imp.add_argument("file", metavar="FILE", help="the weights file to convert")
    imp.add_argument("--format", required=True, choices=IMPORT_FORMATS)
    imp.add_argument("--config", help="Table 1 config (inferred from the file when omitted)")
    imp.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write")

    exp = sub.add_parser("export", help="write a checkpoint's weights in another layout")
    exp.add_argument("--checkpoint", required=True, metavar="CKPT")
    exp.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    exp.add_argument("--out", required=True, metavar="FILE")
    return parser


def run_info(args: argparse.Namespace) -> None:
    """Print Table 1 for all configs, or a per-layer table for each named config."""
    from vggnet.model import VGGSpec
    from vggnet.summary import format_layer_table, format_overview

    names = [configs.resolve_config(c) for c in args.configs] or list(configs.CONFIGS)
    specs = [
        VGGSpec(
            name,
            num_classes=args.num_classes,
            batch_norm=args.batch_norm,
            in_channels=args.in_channels,
            width=args.width,
            fc_width=args.fc_width,
            crop_size=args.crop_size,
        )
        for name in names
    ]
    if args.configs:
        print("\n\n".join(format_layer_table(spec) for spec in specs))
    else:
        print(format_overview(specs))


def run_import(args: argparse.Namespace) -> None:
    """Convert a foreign weights file into a vggnet checkpoint."""
    from vggnet.checkpoint import save_checkpoint
    from vggnet.interop.torchvision import import_torchvision
    from vggnet.serialization import safe_load

    source = f"{args.format} file {args.file}"
    model = import_torchvision(safe_load(args.file, f"{args.format} file"), args.config, source)
    save_checkpoint(args.out, model)
    print(f"wrote {args.out}: config {model.spec.config}, {model.spec.num_classes} classes")


def run_export(args: argparse.Namespace) -> None:
    """Write a checkpoint's weights in another library's layout."""
    from vggnet.checkpoint import load_checkpoint
    from vggnet.interop.torchvision import export_torchvision
    from vggnet.serialization import atomic_save

    model = load_checkpoint(args.checkpoint)
    atomic_save(export_torchvision(model), args.out)
    print(f"wrote {args.out} ({args.format} layout)")


COMMANDS = {"info": run_info, "import": run_import, "export": run_export}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vggnet``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except VGGError as err:
        print(f"vggnet: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vggnet: interrupted", file=sys.stderr)
        return 130
    return 0
