"""Command-line interface: argument parsing only; the work happens in the modules it calls."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from vggnet import configs
from vggnet.errors import VGGError
from vggnet.schedule import SCHEDULES

if TYPE_CHECKING:
    from vggnet.eval.scores import Scores

IMPORT_FORMATS = ("torchvision", "timm", "keras", "caffe")
EXPORT_FORMATS = ("torchvision", "safetensors", "onnx")


def _add_shape_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that change a network's shape (defaults: the paper's)."""
    parser.add_argument("--batch-norm", action="store_true", help="batch norm after every conv")
    parser.add_argument("--num-classes", type=int, default=configs.NUM_CLASSES)
    parser.add_argument("--in-channels", type=int, default=3)
    parser.add_argument("--width", type=float, default=1.0, help="scale of every conv's channels")
    parser.add_argument("--fc-width", type=int, default=configs.FC_WIDTH, help="fc6/fc7 width")
    parser.add_argument("--crop-size", type=int, default=configs.CROP_SIZE)


def add_train_parser(sub) -> None:
    """``vggnet train``: every flag defaults to None so a resumed run knows what was given."""
    t = sub.add_parser(
        "train",
        help="train a network with the paper's recipe",
        description="Train with the paper's recipe (section 2). Defaults are the paper's. "
        "Under torchrun, --batch-size is the global batch, split across processes.",
    )
    t.add_argument("--config", help="Table 1 config: A, A-LRN, B, C, D, E (or vgg11..vgg19)")
    t.add_argument("--data", help="folder, fashion-mnist[:PATH] or synthetic[:...]")
    t.add_argument(
        "--out",
        required=True,
        metavar="RUN",
        help="run folder (last.ckpt, best.ckpt, metrics.jsonl, ...)",
    )
    t.add_argument(
        "--resume", action="store_true", help="continue RUN/last.ckpt with its stored settings"
    )
    t.add_argument(
        "--scale", help="training scale S (256) or jittered Smin:Smax (256:512); default 256"
    )
    t.add_argument("--crop", type=int, help="training crop (default 224; a multiple of 32)")
    t.add_argument("--batch-size", type=int, help="global batch (default 256)")
    t.add_argument(
        "--lr", type=float, help="initial learning rate (default 1e-2; 1e-3 with --finetune-from)"
    )
    t.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    t.add_argument(
        "--weight-decay", type=float, help="L2 on conv/FC weights, not biases or BN (default 5e-4)"
    )
    t.add_argument("--dropout", type=float, help="dropout on fc6 and fc7 (default 0.5)")
    t.add_argument("--epochs", type=int, help="total epochs for the run (default 74)")
    t.add_argument("--max-steps", type=int, help="total optimiser steps for the run")
    t.add_argument(
        "--seed", type=int, help="seed of the initialisation, sampling and augmentation (default 0)"
    )
    t.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    t.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="default fp32")
    t.add_argument("--channels-last", action="store_const", const=True, help="NHWC memory format")
    t.add_argument("--compile", action="store_const", const=True, help="torch.compile the network")
    t.add_argument(
        "--workers", type=int, help="loader processes (default: 0 for Fashion-MNIST, else up to 8)"
    )
    t.add_argument("--width", type=float, help="scale of every conv's channels (default 1)")
    t.add_argument("--fc-width", type=int, help="width of fc6/fc7 (default 4096)")
    t.add_argument("--batch-norm", action="store_const", const=True, help="BN after every conv")
    t.add_argument(
        "--init", choices=("paper", "glorot", "kaiming"), help="default paper: N(0, 0.01^2)"
    )
    t.add_argument(
        "--init-from",
        metavar="CKPT",
        help="start from net A's first four convs and three FC layers",
    )
    t.add_argument(
        "--finetune-from", metavar="CKPT", help="start from a trained net of the same config"
    )
    t.add_argument(
        "--schedule",
        choices=SCHEDULES,
        help="plateau (the paper's, default): lr / 10 when the val error stops falling; "
        "linear: warm up, then decay linearly to 0 at the end of --epochs",
    )
    t.add_argument(
        "--warmup", type=float, help="epochs of linear warm-up (--schedule linear; default 0)"
    )
    t.add_argument(
        "--patience", type=int, help="epochs without improvement before lr / 10 (default 3)"
    )
    t.add_argument(
        "--plateau-threshold",
        type=float,
        help="top-1 error points an epoch must gain to count as an improvement (default 0)",
    )
    t.add_argument(
        "--normalize",
        choices=("paper", "standard"),
        help="paper: subtract the mean pixel (0..255); standard: also divide by the std "
        "(default: paper with --init paper, standard with kaiming or glorot)",
    )
    t.add_argument(
        "--label-smoothing",
        type=float,
        help="weight of the uniform target in the loss (default 0: the paper's cross-entropy)",
    )
    t.add_argument(
        "--random-erasing",
        type=float,
        help="probability of erasing a random box of each training crop to the mean "
        "(Zhong et al.; default 0: the paper's augmentation)",
    )
    t.add_argument("--accumulate", type=int, help="micro-batches per step, same result (default 1)")
    t.add_argument(
        "--no-lighting",
        dest="lighting",
        action="store_const",
        const=False,
        help="no PCA colour shift",
    )
    t.add_argument(
        "--val-labels", metavar="FILE", help="labels of a flat val folder (lines 'filename class')"
    )
    t.add_argument("--val-batch-size", type=int, help="validation batch (default: --batch-size)")
    t.add_argument(
        "--strict", action="store_const", const=True, help="stop at the first unreadable image"
    )
    t.add_argument(
        "--checkpoint-every", type=int, help="steps between last.ckpt writes (default 1000)"
    )
    t.add_argument("--log-every", type=int, help="steps between metrics.jsonl lines (default 10)")
    t.add_argument(
        "--dist-timeout",
        type=float,
        help="seconds before a stuck process group fails (default 600)",
    )


def check_output(path: str | None, flag: str, inputs: Sequence[str] = ()) -> None:
    """Refuse, before any work, an output the command could not write or should not overwrite.

    That is: a folder where a file should go, a folder that does not exist or cannot be
    written, or one of the command's own input files (``inputs``).
    """
    if path is None:
        return
    from pathlib import Path

    target = Path(path)
    if target.is_dir():
        raise VGGError(f"{flag} {path} is a folder: give a file name, e.g. {target / 'out.json'}")
    folder = target.resolve().parent
    if not folder.is_dir():
        raise VGGError(f"{flag} {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise VGGError(f"{flag} {path}: folder {folder} is not writable")
    for source in inputs:
        same = Path(source).resolve() == target.resolve()
        if same or (target.exists() and Path(source).exists() and os.path.samefile(target, source)):
            raise VGGError(
                f"{flag} {path} is also an input of this command ({source}): writing it would "
                "replace what is read; choose another file"
            )


def _at_least(minimum: int):
    """An argparse type: an integer >= ``minimum`` (argparse names the flag in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


def _scales(text: str) -> list[int]:
    try:
        scales = [int(q) for q in text.split(",") if q.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of integers like 224,256,288"
        ) from None
    if not scales:
        raise argparse.ArgumentTypeError(f"{text!r} names no scale: give integers like 224,256")
    if min(scales) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a scale is a side in pixels, >= 1")
    twice = sorted({q for q in scales if scales.count(q) > 1})
    if twice:
        raise argparse.ArgumentTypeError(
            f"{text!r} names scale {'/'.join(map(str, twice))} more than once (it would weigh double)"
        )
    return scales


def _add_overlap_flag(parser: argparse.ArgumentParser) -> None:
    """``--overlap`` of ``vggnet eval`` and ``vggnet ensemble``: how alike the members err."""
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="also count each member's top-1 errors and those each pair of members shares",
    )


def _add_per_class_flag(parser: argparse.ArgumentParser) -> None:
    """``--per-class`` of ``vggnet eval`` and ``vggnet ensemble``: which classes are mistaken."""
    parser.add_argument(
        "--per-class",
        action="store_true",
        help="also print each class's top-1 error and the classes it is mistaken for",
    )


def add_eval_parsers(sub) -> None:
    """``vggnet eval``, ``vggnet ensemble`` and ``vggnet predict``."""
    e = sub.add_parser("eval", help="top-1/top-5 error with the paper's test protocols")
    e.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="CKPT",
        help="repeat for an ensemble",
    )
    e.add_argument("--data", required=True, help="folder, fashion-mnist[:PATH] or synthetic[:...]")
    e.add_argument("--split", choices=("train", "val"), default="val")
    e.add_argument("--val-labels", metavar="FILE", help="labels of a flat val folder")
    e.add_argument(
        "--method", choices=("center", "dense", "multi-crop", "dense+multi-crop"), default="dense"
    )
    e.add_argument(
        "--scales",
        type=_scales,
        metavar="Q[,Q...]",
        help="test scales (default: Table 4's rule from the training scale)",
    )
    e.add_argument("--no-flip", action="store_true", help="do not average with mirrored images")
    e.add_argument(
        "--grid",
        type=_at_least(1),
        default=5,
        help="multi-crop grid side (default 5: 25 crops, 50 with flips)",
    )
    e.add_argument(
        "--batch-size", type=_at_least(1), default=32, help="images (or crops) per forward pass"
    )
    e.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    _add_inference_flags(e)
    e.add_argument("--workers", type=_at_least(0), default=0, help="decoding processes")
    e.add_argument(
        "--class-order",
        choices=("name", "index"),
        default="name",
        help="match model and data classes by name or by sorted position",
    )
    _add_overlap_flag(e)
    _add_per_class_flag(e)
    e.add_argument("--json", metavar="FILE", help="write the result as JSON")
    e.add_argument(
        "--save-scores", metavar="FILE", help="write per-image posteriors (for vggnet ensemble)"
    )
    e.add_argument("--dist-timeout", type=float, default=600.0)

    n = sub.add_parser("ensemble", help="recombine saved scores: ensembles, protocols, scales")
    n.add_argument(
        "scores", nargs="+", metavar="SCORES", help="files written by vggnet eval --save-scores"
    )
    n.add_argument(
        "--method",
        choices=("center", "dense", "multi-crop", "dense+multi-crop"),
        action="append",
        help="parts to average (default: those every file holds); once for all files, or "
        "once per file in their order (each net with its own protocol)",
    )
    n.add_argument(
        "--scales",
        type=_scales,
        action="append",
        metavar="Q[,Q...]",
        help="scales to average (default: all saved); once for all files, or once per file "
        "in their order (each net at its own Q)",
    )
    _add_overlap_flag(n)
    _add_per_class_flag(n)
    n.add_argument("--json", metavar="FILE")
    n.add_argument(
        "--save-scores",
        metavar="FILE",
        help="write the members' posteriors at these --method parts and --scales only, side "
        "by side in one file (small enough to keep with the results)",
    )

    for name, text in (
        ("features", "Appendix B descriptors of a split, saved as .npy"),
        ("transfer", "a linear SVM on Appendix B descriptors: accuracy on the val split"),
    ):
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
            type=_scales,
            metavar="Q[,Q...]",
            help="default: Table 4's rule from the training scale",
        )
        f.add_argument("--no-flip", action="store_true")
        f.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
        f.add_argument("--batch-size", type=_at_least(1), default=64)
        f.add_argument("--workers", type=_at_least(0), default=0)
        if name == "features":
            f.add_argument("--split", choices=("train", "val"), default="train")
            f.add_argument(
                "--out",
                required=True,
                metavar="FILE.npy",
                help="features; labels go to FILE.labels.npy",
            )
        else:
            f.add_argument("--c", type=float, default=1.0, help="the SVM's C (default 1)")
            f.add_argument("--json", metavar="FILE")

    m = sub.add_parser("demo", help="train and evaluate a VGG on Fashion-MNIST (the main job)")
    m.add_argument("--out", default="runs/demo", help="where the run, results.json and samples go")
    m.add_argument("--data", default="fashion-mnist", help="fashion-mnist or fashion-mnist:FOLDER")
    m.add_argument("--epochs", type=_at_least(1), help="training epochs (default 8)")
    m.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")

    r = sub.add_parser("reproduce", help="the paper's experiment grid (Tables 3-6), resumable")
    r.add_argument("--data", required=True, help="folder, fashion-mnist[:PATH] or synthetic[:...]")
    r.add_argument("--out", required=True, help="the grid's folder (rerun to continue it)")
    r.add_argument("--budget", choices=("small", "full"), default="small")
    r.add_argument(
        "--configs", nargs="+", metavar="CONFIG", help="subset of A A-LRN B C D E (default: all)"
    )
    r.add_argument("--crop", type=_at_least(32), help="default: 224, or 32 for small images")
    r.add_argument("--epochs", type=_at_least(1), help="override the budget's epochs")
    r.add_argument("--finetune-epochs", type=_at_least(1), help="override, for fine-tuned nets")
    r.add_argument("--width", type=float, help="override the budget's channel width")
    r.add_argument("--fc-width", type=_at_least(1), help="override the budget's FC width")
    r.add_argument("--batch-size", type=_at_least(1), help="override the budget's batch")
    r.add_argument("--grid", type=_at_least(1), default=3, help="multi-crop grid side")
    r.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="every net's training precision (default fp32; bf16 where the device has it natively)",
    )
    r.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    r.add_argument("--workers", type=_at_least(0), help="decoding processes")

    b = sub.add_parser("bench", help="speed against torchvision, same run, interleaved repeats")
    b.add_argument(
        "--sections",
        nargs="+",
        default=["forward", "train", "pipeline", "eval"],
        metavar="SECTION",
        help="any of forward, train, pipeline, eval (default: all)",
    )
    b.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    b.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="ours: auto (default) = bf16 where native, else fp32; torchvision stays fp32",
    )
    b.add_argument("--repeats", type=_at_least(1), default=3)
    b.add_argument("--eval-images", type=_at_least(10), default=32)
    b.add_argument("--tiny", action="store_true", help="tiny nets and data: a smoke run")
    b.add_argument(
        "--agreement",
        nargs=2,
        metavar=("CKPT", "DATA"),
        help="also measure bf16's top-1 agreement with fp32 on DATA's val split",
    )
    b.add_argument("--json", metavar="FILE", help="write everything measured as JSON")
    b.add_argument("--plot", metavar="PNG", help="cost against batch size and test scale")

    p = sub.add_parser("predict", help="class names and probabilities for image files")
    p.add_argument("--checkpoint", required=True, metavar="CKPT")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=_at_least(1), default=5)
    p.add_argument(
        "--method", choices=("center", "dense", "multi-crop", "dense+multi-crop"), default="dense"
    )
    p.add_argument(
        "--scales", type=_scales, metavar="Q[,Q...]", help="default: Q = S (Table 3's rule)"
    )
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    _add_inference_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_inference_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="auto (default): bf16 autocast where the device has native bf16, else fp32",
    )
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="NHWC tensors, faster on CPUs and tensor cores (default: on)",
    )


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (naming the flag) instead of the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``vggnet`` argument parser with all subcommands."""
    parser = OneLineParser(
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

    data = sub.add_parser("data", help="dataset tools: colour statistics, bad-file scan")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    stats = data_sub.add_parser("stats", help="mean pixel and RGB covariance of the train split")
    stats.add_argument(
        "spec", metavar="SPEC", help="folder, fashion-mnist[:PATH] or synthetic[:...]"
    )
    stats.add_argument(
        "--out", help="JSON file to write (default: SPEC/vggnet-stats.json for folders)"
    )
    stats.add_argument(
        "--max-images", type=_at_least(1), default=10_000, help="sample size for large sets"
    )
    check = data_sub.add_parser("check", help="list every file that cannot be decoded")
    check.add_argument("spec", metavar="SPEC")
    check.add_argument("--split", choices=("train", "val", "both"), default="both")
    check.add_argument("--val-labels", help="labels file for a flat val folder")
    check.add_argument(
        "--workers", type=_at_least(0), default=0, help="decoding processes (0: this one)"
    )

    add_train_parser(sub)
    add_eval_parsers(sub)

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
    check_output(args.out, "--out", [args.file])
    from vggnet.checkpoint import save_checkpoint
    from vggnet.interop.timm import import_timm
    from vggnet.interop.torchvision import import_torchvision
    from vggnet.serialization import safe_load

    source = f"{args.format} file {args.file}"
    if args.format == "keras":
        from vggnet.interop.keras import import_keras

        model = import_keras(args.file, args.config)
    elif args.format == "caffe":
        from vggnet.interop.caffe import import_caffe

        model = import_caffe(args.file, args.config)
    else:
        convert = {"torchvision": import_torchvision, "timm": import_timm}[args.format]
        model = convert(safe_load(args.file, f"{args.format} file"), args.config, source)
    save_checkpoint(args.out, model)
    print(f"wrote {args.out}: config {model.spec.config}, {model.spec.num_classes} classes")


def run_export(args: argparse.Namespace) -> None:
    """Write a checkpoint's weights in another library's layout."""
    check_output(args.out, "--out", [args.checkpoint])
    from vggnet.checkpoint import load_checkpoint
    from vggnet.interop.export import export_onnx, export_safetensors
    from vggnet.interop.torchvision import export_torchvision
    from vggnet.serialization import atomic_save

    model = load_checkpoint(args.checkpoint)
    if args.format == "torchvision":
        atomic_save(export_torchvision(model), args.out)
    elif args.format == "safetensors":
        export_safetensors(model, args.out)
    else:
        export_onnx(model, args.out)
    print(f"wrote {args.out} ({args.format} layout)")


def run_data(args: argparse.Namespace) -> int:
    """``vggnet data stats|check``."""
    from pathlib import Path

    from vggnet.data.check import find_bad_images
    from vggnet.data.sources import FolderSource, open_source
    from vggnet.data.stats import compute_stats, save_stats

    if args.data_command == "stats":
        check_output(args.out, "--out")
        source = open_source(args.spec, "train")
        stats = compute_stats(source, max_images=args.max_images)
        how = (
            f"a random sample of {stats.images} of {len(source)} images"
            if stats.sampled
            else f"all {stats.images} images"
        )
        print(
            f"{args.spec} train split, from {how}"
            + (f", {stats.skipped} unreadable skipped" if stats.skipped else "")
        )
        print("mean (0..255):           " + " ".join(f"{m * 255:8.3f}" for m in stats.mean))
        print(
            "std (0..255):            "
            + " ".join(f"{c[i] ** 0.5 * 255:8.3f}" for i, c in enumerate(stats.cov))
        )
        print("principal std (0..255):  " + " ".join(f"{s * 255:8.3f}" for s in stats.pc_std))
        for i, row in enumerate(stats.eigvecs):
            print(
                ("eigenvectors (columns):  " if i == 0 else " " * 25)
                + " ".join(f"{v:8.4f}" for v in row)
            )
        out = args.out or (
            Path(args.spec) / "vggnet-stats.json" if isinstance(source, FolderSource) else None
        )
        if out is not None:
            save_stats(stats, out, args.spec, len(source))
            print(f"wrote {out}")
        return 0
    splits = ("train", "val") if args.split == "both" else (args.split,)
    bad_total = 0
    for split in splits:
        source = open_source(args.spec, split, args.val_labels)
        bad = find_bad_images(source, workers=args.workers)
        for _, reason in bad:
            print(reason)
        print(f"{split}: {len(source)} images, {len(bad)} unusable")
        bad_total += len(bad)
    return 1 if bad_total else 0


def run_train(args: argparse.Namespace) -> None:
    """Train or resume a run."""
    from vggnet.train import train

    given = {
        k: v for k, v in vars(args).items() if v is not None and k not in ("command", "resume")
    }
    train(given, resume=args.resume)


def run_eval(args: argparse.Namespace) -> None:
    """Evaluate one checkpoint or an ensemble with a protocol; print the table."""
    check_output(args.json, "--json", args.checkpoint)
    check_output(args.save_scores, "--save-scores", [*args.checkpoint, *filter(None, [args.json])])

    from vggnet.eval.protocols import Protocol
    from vggnet.eval.report import format_results, result_row
    from vggnet.eval.scoring import evaluate_checkpoints

    if args.batch_size < 1:
        raise VGGError(f"--batch-size must be >= 1, got {args.batch_size}")
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
    )
    if scores is None:  # not rank 0
        return
    for item in scores.skipped:
        print(f"vggnet: warning: skipped {item.reason}", file=sys.stderr)
    row = result_row(scores, args.method)
    print(format_results([row]))
    if scores.skipped:
        print(
            f"({len(scores.skipped)} unreadable images skipped: errors are over the {row['images']} scored)"
        )
    finish_result(args, row, scores, None)


def finish_result(
    args: argparse.Namespace, row: dict, scores: Scores, parts: tuple[str, ...] | None
) -> None:
    """What eval and ensemble add under their row: --overlap, --per-class, --json, --save-scores."""

    from vggnet.eval.analysis import (
        class_errors,
        format_class_errors,
        format_shared_errors,
        shared_errors,
    )
    from vggnet.eval.scores import save_scores
    from vggnet.serialization import write_json

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


def _one_per_file(values: list | None, count: int, flag: str) -> list:
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

    from vggnet.eval.protocols import PARTS
    from vggnet.eval.report import format_results, result_row
    from vggnet.eval.scores import Scores, merge_scores

    files = [Scores.load(p) for p in args.scores]
    scales = _one_per_file(args.scales, len(files), "--scales")
    if scales:
        files = [f.at_scales(q, p) for f, q, p in zip(files, scales, args.scores, strict=True)]
    methods = _one_per_file(args.method, len(files), "--method")
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
    """Top classes and probabilities for each image file."""
    from vggnet.eval.protocols import Protocol
    from vggnet.eval.scoring import predict_images
    from vggnet.serialization import strict_json

    protocol = Protocol(args.method, args.scales, not args.no_flip)
    results, failures, scales = predict_images(
        args.checkpoint,
        args.images,
        protocol,
        args.top,
        args.device,
        args.precision,
        args.channels_last,
    )
    for reason in failures:
        print(f"vggnet: error: {reason}", file=sys.stderr)
    if args.json:
        summary = {
            "checkpoint": args.checkpoint,
            "method": args.method,
            "scales": scales,
            "results": results,
            "failures": failures,  # "IMAGE: reason", one per file that could not be read
        }
        print(strict_json(summary, indent=1))
    else:
        for r in results:
            print(r["image"])
            for rank, t in enumerate(r["top"], start=1):
                print(f"  {rank}. {t['probability'] * 100:6.2f}%  {t['class']}")
    return 1 if failures else 0  # 1: some files failed (named on stderr), the rest predicted


def _split_features(args: argparse.Namespace, split: str):
    from vggnet.checkpoint import load_checkpoint
    from vggnet.data import open_source
    from vggnet.devices import default_device, resolve_device
    from vggnet.eval.protocols import Protocol, model_scales
    from vggnet.transfer import dataset_features

    model = load_checkpoint(args.checkpoint).to(resolve_device(args.device or default_device()))
    source = open_source(args.data, split)
    if source.channels != model.spec.in_channels:
        raise VGGError(
            f"{args.checkpoint} takes {model.spec.in_channels}-channel images, --data {args.data} has {source.channels}"
        )
    scales = args.scales or model_scales(model, Protocol("dense"))
    return dataset_features(
        model, source, scales, args.layer, not args.no_flip, args.batch_size, args.workers
    ), scales


def run_features(args: argparse.Namespace) -> None:
    """Write Appendix B descriptors of one split."""
    check_output(args.out, "--out", [args.checkpoint])
    from pathlib import Path

    import numpy as np

    (features, labels), scales = _split_features(args, args.split)
    out = Path(args.out)
    np.save(out, features)
    np.save(out.with_suffix(".labels.npy"), labels)
    print(
        f"wrote {out} ({features.shape[0]} x {features.shape[1]}, {args.layer} at Q={scales}) and {out.with_suffix('.labels.npy')}"
    )


def run_transfer(args: argparse.Namespace) -> None:
    """Fit a linear SVM on train-split descriptors; report val accuracy."""
    check_output(args.json, "--json", [args.checkpoint])

    from vggnet.transfer import linear_probe

    train, scales = _split_features(args, "train")
    val, _ = _split_features(args, "val")
    accuracy = linear_probe(train, val, args.c)
    result = {
        "checkpoint": args.checkpoint,
        "data": args.data,
        "layer": args.layer,
        "scales": scales,
        "train_images": len(train[1]),
        "val_images": len(val[1]),
        "accuracy": accuracy,
    }
    print(
        f"linear SVM on {args.layer} descriptors (Q={scales}): {accuracy:.2f}% on {len(val[1])} {args.data} val images ({len(train[1])} train)"
    )
    if args.json:
        from vggnet.serialization import write_json

        write_json(args.json, result)


def run_demo(args: argparse.Namespace) -> None:
    """The main job: Fashion-MNIST, the paper's recipe scaled down, the paper's protocols."""
    from vggnet.demo import run_demo as demo
    from vggnet.train.folder import check_run_folder

    check_run_folder(args.out)
    demo(args.out, args.data, args.epochs, args.device)


def run_bench_command(args: argparse.Namespace) -> None:
    """Ours against torchvision: forward, training step, input pipeline, evaluation."""
    check_output(args.json, "--json")
    check_output(args.plot, "--plot")

    from vggnet.bench.runner import BenchSettings, plot_bench, run_bench

    settings = BenchSettings(
        args.sections, args.device, args.precision, args.repeats, args.tiny, args.eval_images
    )
    report = run_bench(settings)
    if args.agreement:
        from vggnet.bench.agreement import precision_agreement

        checkpoint, data = args.agreement
        report["agreement"] = [
            precision_agreement(checkpoint, data, "bf16", method=m, device=args.device)
            for m in ("center", "dense")
        ]
        for row in report["agreement"]:
            print(
                f"bf16 vs fp32, {row['method']} on {row['images']} images: top-1 agreement "
                f"{row['agreement']:.2f}%, error {row['fp32_top1_error']:.2f}% -> "
                f"{row['top1_error']:.2f}% ({'passes' if row['passes'] else 'fails'} the "
                "99.5% / 0.1-point rule)"
            )
    if args.json:
        from vggnet.serialization import write_json

        write_json(args.json, report)
    if args.plot:
        plot_bench(report, args.plot)


def run_reproduce(args: argparse.Namespace) -> None:
    """Train and evaluate the paper's grid of nets; RESULTS.md beside the paper's numbers."""
    from vggnet.reproduce.run import ReproduceSettings, reproduce
    from vggnet.train.folder import check_run_folder

    check_run_folder(args.out)
    fields = ReproduceSettings.__dataclass_fields__
    reproduce(ReproduceSettings(**{k: v for k, v in vars(args).items() if k in fields}))


COMMANDS = {
    "reproduce": run_reproduce,
    "bench": run_bench_command,
    "info": run_info,
    "import": run_import,
    "export": run_export,
    "data": run_data,
    "train": run_train,
    "eval": run_eval,
    "ensemble": run_ensemble,
    "predict": run_predict,
    "demo": run_demo,
    "features": run_features,
    "transfer": run_transfer,
}


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
