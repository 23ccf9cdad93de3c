"""``vggnet info``, ``vggnet import`` and ``vggnet export``: the nets themselves, in and out."""

from __future__ import annotations

import argparse
from typing import Any

from vggnet.checkpoint import export_safetensors, load_checkpoint, save_checkpoint
from vggnet.cli.common import add_shape_flags, check_output, shape_of
from vggnet.errors import VGGError
from vggnet.interop.caffe import import_caffe
from vggnet.interop.export import ONNX_OUTPUTS, export_onnx
from vggnet.interop.keras import import_keras
from vggnet.interop.pretrained import (
    PRETRAINED,
    cache_dir,
    cached_candidates,
    list_pretrained,
    load_pretrained,
)
from vggnet.interop.timm import import_timm
from vggnet.interop.torchvision import export_torchvision, import_torchvision
from vggnet.model import VGG, VGGSpec, configs
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
    info.add_argument(
        "--pretrained", action="store_true", help="list the published weights and their cache"
    )

    imp = sub.add_parser("import", help="convert weights from another library to a checkpoint")
    imp.add_argument("file", nargs="?", metavar="FILE", help="the weights file to convert")
    imp.add_argument("--format", choices=IMPORT_FORMATS, help="the file's layout (with FILE)")
    imp.add_argument(
        "--pretrained",
        metavar="NAME",
        help="published weights instead of FILE, from torch.hub's cache or downloaded: "
        f"{', '.join(list_pretrained())} (list: vggnet info --pretrained)",
    )
    imp.add_argument("--config", help="Table 1 config (inferred from the file when omitted)")
    imp.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write")

    exp = sub.add_parser("export", help="write a checkpoint's weights in another layout")
    exp.add_argument("--checkpoint", required=True, metavar="CKPT")
    exp.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    exp.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="file to write; ONNX is one self-contained file (weights inside, the card in its "
        "metadata) for nets under 2 GB",
    )
    exp.add_argument(
        "--output",
        choices=ONNX_OUTPUTS,
        help="ONNX only: scores (default), the dense class score map (N, K, h, w); posteriors, the "
        "dense protocol's (N, K) soft-max of the averaged map. The input is (N, C, H, W), "
        "preprocessed, H and W at least the crop size (the graph fails on a smaller one)",
    )


def run_info(args: argparse.Namespace) -> None:
    """Print Table 1 for all configs, or a per-layer table for each named config."""
    if args.pretrained:
        print(format_pretrained())
        return
    names = args.configs or list(configs.CONFIGS)  # VGGSpec reads vgg16_bn as D with BN
    specs = [VGGSpec(name, **shape_of(args)) for name in names]  # type: ignore[arg-type]
    if args.configs:
        print("\n\n".join(format_layer_table(spec) for spec in specs))
    else:
        print(format_overview(specs))


def run_import(args: argparse.Namespace) -> None:
    """Convert a foreign weights file, or published weights by name, into a vggnet checkpoint."""
    if (args.file is None) == (args.pretrained is None):
        raise VGGError("vggnet import takes a FILE with --format, or --pretrained NAME: give one")
    if args.pretrained is not None:
        given = [flag for flag, v in (("--format", args.format), ("--config", args.config)) if v]
        if given:
            raise VGGError(f"{given[0]} does not go with --pretrained: the name fixes the weights")
        check_output(args.out, "--out")
        model = load_pretrained(args.pretrained)
    else:
        if args.format is None:
            raise VGGError(
                f"--format is needed with {args.file}: one of {', '.join(IMPORT_FORMATS)}"
            )
        check_output(args.out, "--out", [args.file])
        model = import_file(args.file, args.format, args.config)
    save_checkpoint(args.out, model)
    print(f"wrote {args.out}: config {model.spec.config}, {model.spec.num_classes} classes")


def import_file(path: str, fmt: str, config: str | None) -> VGG:
    """The model in a foreign weights file of layout ``fmt``."""
    if fmt == "keras":
        return import_keras(path, config)
    if fmt == "caffe":
        return import_caffe(path, config)
    convert = {"torchvision": import_torchvision, "timm": import_timm}[fmt]
    return convert(safe_load(path, f"{fmt} file"), config, f"{fmt} file {path}")


def format_pretrained() -> str:
    """The published weights: name, source format, where the file is cached (or would be)."""
    rows = [f"{'name':18s} {'format':11s} {'cached':6s} reported"]
    for name in list_pretrained():
        w = PRETRAINED[name]
        cached = any(p.is_file() for p in cached_candidates(w))
        rows.append(f"{name:18s} {w.format:11s} {'yes' if cached else 'no':6s} {w.reported}")
    rows.append(f"cache: {cache_dir()} (TORCH_HOME moves it)")
    return "\n".join(rows)


def run_export(args: argparse.Namespace) -> None:
    """Write a checkpoint's weights in another library's layout."""
    check_output(args.out, "--out", [args.checkpoint])
    if args.output is not None and args.format != "onnx":
        raise VGGError(f"--output is for --format onnx; a {args.format} file holds weights only")
    model = load_checkpoint(args.checkpoint)
    if args.format == "torchvision":
        atomic_save(export_torchvision(model), args.out)
    elif args.format == "safetensors":
        export_safetensors(model, args.out)
    else:
        export_onnx(model, args.out, args.output or ONNX_OUTPUTS[0])
    print(f"wrote {args.out} ({args.format} layout)")
