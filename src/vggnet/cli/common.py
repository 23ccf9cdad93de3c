"""What every command's parser shares: one-line errors, argument types, common flags, output checks.

Each fact a flag states (choices, a default, the device rule) is written once here or
taken from the library's own constants.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from vggnet.devices import INFERENCE_PRECISIONS
from vggnet.errors import VGGError
from vggnet.interop.runtime import BACKENDS
from vggnet.model.vgg import VGGSpec

DEVICE_HELP = "cpu, cuda or cuda:N (default: cuda if available)"
DATA_HELP = "folder, fashion-mnist[:PATH], fashion-mnist-canvas[:k=v,...] or synthetic[:...]"
SPLITS = ("train", "val")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the flag, with a "did you mean" guess."""

    seen: Sequence[str] = ()  # the arguments this parser was last given

    def error(self, message: str) -> NoReturn:
        hint = guess(message)
        if not hint and message.startswith("the following arguments are required"):
            hint = self.unknown_flag_hint()  # a mistyped required flag reads as missing
        self.exit(2, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self.seen = list(args) if args is not None else sys.argv[1:]
        return super().parse_known_args(args, namespace)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """As argparse's, but an unknown flag is matched against the command's own flags."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            hint = did_you_mean(extras[0], command_flags(self, command))
            prog = " ".join(filter(None, [self.prog, command]))
            self.exit(2, f"{prog}: error: unknown argument {extras[0]}{hint} (see {prog} --help)\n")
        return parsed

    def unknown_flag_hint(self) -> str:
        """ "; unknown argument X; did you mean Y?" for the first given flag this parser lacks."""
        own = [flag for action in self._actions for flag in action.option_strings]
        for token in self.seen:
            if token.startswith("--") and token.split("=")[0] not in own:
                return f"; unknown argument {token}{did_you_mean(token, own)}"
        return ""


def did_you_mean(flag: str, flags: list[str]) -> str:
    """ "; did you mean X?" for the known flag closest to a mistyped one, or ""."""
    close = difflib.get_close_matches(flag.split("=")[0], flags, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def command_flags(parser: argparse.ArgumentParser, command: str | None) -> list[str]:
    """The option strings of ``command``'s sub-parser (or of ``parser`` itself)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            parser = action.choices[command]
    return [flag for action in parser._actions for flag in action.option_strings]


def guess(message: str) -> str:
    """ "; did you mean X?" for argparse's "invalid choice: 'Y' (choose from ...)" messages."""
    match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if not match:
        return ""
    choices = [c.strip(" '") for c in match.group(2).split(",")]
    close = difflib.get_close_matches(match.group(1), choices, n=1, cutoff=0.5)
    return f"; did you mean {close[0]}?" if close else ""


def at_least(minimum: int) -> Callable[[str], int]:
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


def scales(text: str) -> list[int]:
    """An argparse type: test scales "Q[,Q...]", each a side in pixels, none twice."""
    try:
        values = [int(q) for q in text.split(",") if q.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of integers like 224,256,288"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r} names no scale: give integers like 224,256")
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a scale is a side in pixels, >= 1")
    twice = sorted({q for q in values if values.count(q) > 1})
    if twice:
        raise argparse.ArgumentTypeError(
            f"{text!r} names scale {'/'.join(map(str, twice))} more than once (it would weigh double)"
        )
    return values


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help=DEVICE_HELP)


def add_inference_flags(parser: argparse.ArgumentParser) -> None:
    """``--precision``, ``--backend``, ``--calibration`` and ``--channels-last`` of the
    commands that run trained nets."""
    parser.add_argument(
        "--precision",
        choices=INFERENCE_PRECISIONS,
        default="auto",
        help="auto (default): bf16 autocast where the device has native bf16, else fp32; "
        "int8: onnxruntime's quantised kernels on the CPU (calibrated once, see --calibration)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="what runs the forward pass (default: torch; onnxruntime for --precision int8)",
    )
    parser.add_argument(
        "--calibration",
        metavar="SPEC",
        help="int8: the data whose train split calibrates the net, once (eval's default: "
        "--data); the result is kept beside the checkpoint as CKPT.int8.onnx",
    )
    parser.add_argument(
        "--winograd",
        action="store_true",
        help="fp32 on the CPU: 3x3 convolutions as Winograd F(4x4, 3x3) in the layers a "
        "one-off measurement on this machine finds faster (kept in ~/.cache/vggnet)",
    )
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="NHWC tensors, faster on CPUs and tensor cores (default: on)",
    )


# VGGSpec's fields that ``vggnet info`` takes as flags, with what each means; the types
# and defaults are the fields' own.
SHAPE_HELP = {
    "num_classes": "outputs of fc8",
    "batch_norm": "batch norm after every conv",
    "in_channels": "input channels",
    "width": "scale of every conv's channels",
    "fc_width": "width of fc6 and fc7",
    "crop_size": "training crop (fc6 sees crop/32 squared cells)",
}


def add_shape_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that change a network's shape (defaults: the paper's, from VGGSpec)."""
    for field in dataclasses.fields(VGGSpec):
        if field.name not in SHAPE_HELP:
            continue
        flag = "--" + field.name.replace("_", "-")
        text = SHAPE_HELP[field.name]
        if isinstance(field.default, bool):
            parser.add_argument(flag, action="store_true", help=text)
        else:
            kind = type(field.default)
            parser.add_argument(
                flag, type=kind, default=field.default, help=f"{text} (default {field.default})"
            )


def shape_of(args: argparse.Namespace) -> dict[str, object]:
    """The VGGSpec fields the shape flags gave."""
    return {name: getattr(args, name) for name in SHAPE_HELP}


def check_output(path: str | None, flag: str, inputs: Sequence[str] = ()) -> None:
    """Refuse, before any work, an output the command could not write or should not overwrite.

    That is: a folder where a file should go, a folder that does not exist or cannot be
    written, or one of the command's own input files (``inputs``).
    """
    if path is None:
        return
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
