"""``vggnet info``, ``vggnet import`` and ``vggnet export``: the nets themselves, in and out."""

from __future__ import annotations

import argparse
from typing import Any

from vggnet.checkpoint import export_safetensors, load_checkpoint, save_checkpoint
from vggnet.cli.common import add_shape_flags, check_output, shape_of
from vggnet.interop.caffe import import_caffe
from vggnet.interop.export import export_onnx
from vggnet.interop.keras import import_keras
from vggnet.interop.timm import import_timm
from vggnet.interop.torchvision import export_torchvision, import_torchvision
from vggnet.model import VGGSpec, configs
from vggnet.serialization import atomic_save, safe_load
from vggnet.summary import format_layer_table, format_overview

IMPORT_FORMATS = ("torchvision", "timm", "keras", "caffe")
EXPORT_FORMATS = ("torchvision", "safetensors", "onnx")


def add_interop_parsers(sub: Any) -> None:
    """``info``, ``import``, ``export``."""
    info = sub.add_parser("info", help="layer table, parameter counts and multiply-adds")
    info.add_argument(
        "configs", nargs="*", metavar="CONFIG", help=f"any of {', '.join(configs.CONFIGS)}"
    )
    add_shape_flags(info)

    imp = sub.add_parser("import", help="convert weights from another library to a checkpoint")
    imp.add_argument("file", metavar="FILE", help="the weights file to convert")
    imp.add_argument("--format", required=True, choices=IMPORT_FORMATS)
    imp.add_argument("--config", help="Table 1 config (inferred from the file when omitted)")
    imp.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write")

    exp = sub.add_parser("export", help="write a checkpoint's weights in another layout")
    exp.add_argument("--checkpoint", required=True, metavar="CKPT")
    exp.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    exp.add_argument("--out", required=True, metavar="FILE")


def run_info(args: argparse.Namespace) -> None:
    """Print Table 1 for all configs, or a per-layer table for each named config."""
    names = [configs.resolve_config(c) for c in args.configs] or list(configs.CONFIGS)
    specs = [VGGSpec(name, **shape_of(args)) for name in names]  # type: ignore[arg-type]
    if args.configs:
        print("\n\n".join(format_layer_table(spec) for spec in specs))
    else:
        print(format_overview(specs))


def run_import(args: argparse.Namespace) -> None:
    """Convert a foreign weights file into a vggnet checkpoint."""
    check_output(args.out, "--out", [args.file])
    source = f"{args.format} file {args.file}"
    if args.format == "keras":
        model = import_keras(args.file, args.config)
    elif args.format == "caffe":
        model = import_caffe(args.file, args.config)
    else:
        convert = {"torchvision": import_torchvision, "timm": import_timm}[args.format]
        model = convert(safe_load(args.file, f"{args.format} file"), args.config, source)
    save_checkpoint(args.out, model)
    print(f"wrote {args.out}: config {model.spec.config}, {model.spec.num_classes} classes")


def run_export(args: argparse.Namespace) -> None:
    """Write a checkpoint's weights in another library's layout."""
    check_output(args.out, "--out", [args.checkpoint])
    model = load_checkpoint(args.checkpoint)
    if args.format == "torchvision":
        atomic_save(export_torchvision(model), args.out)
    elif args.format == "safetensors":
        export_safetensors(model, args.out)
    else:
        export_onnx(model, args.out)
    print(f"wrote {args.out} ({args.format} layout)")
