"""``vggnet train``: one flag per ``TrainConfig`` field, named and described here, defaulted there.

Every flag defaults to None, so that a resumed run knows which flags were given; the
default a run gets is the field's, shown in the help text from the dataclass itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from vggnet.card import BOX_REGRESSIONS
from vggnet.cli.common import DATA_HELP, DEVICE_HELP
from vggnet.devices import PRECISIONS
from vggnet.model.init import INITS
from vggnet.model.localization import FINETUNE_LAYERS
from vggnet.schedule import SCHEDULES
from vggnet.train import train
from vggnet.train.config import NORMALIZATIONS, TASKS, TrainConfig

# What each field means to a user; "(default X)" is added from the field unless the text
# says the default itself (a default that depends on other settings).
FLAG_HELP: dict[str, str] = {
    "config": "Table 1 config: A, A-LRN, B, C, D, E (or vgg11..vgg19)",
    "data": DATA_HELP,
    "scale": "training scale S (256) or jittered Smin:Smax (256:512)",
    "crop": "training crop (a multiple of 32)",
    "batch_size": "global batch (under torchrun, split across processes)",
    "lr": "initial learning rate (default 1e-2; 1e-3 with --finetune-from)",
    "momentum": "SGD momentum",
    "weight_decay": "L2 on conv/FC weights, not biases or BN",
    "label_smoothing": "weight of the uniform target in the loss (0: the paper's cross-entropy)",
    "dropout": "dropout on fc6 and fc7",
    "epochs": "total epochs for the run",
    "max_steps": "total optimiser steps for the run",
    "seed": "seed of the initialisation, sampling and augmentation",
    "device": DEVICE_HELP,
    "precision": "training precision",
    "channels_last": "NHWC memory format",
    "compile": "torch.compile the network",
    "workers": "loader processes (default: 0 for Fashion-MNIST, else up to 8)",
    "width": "scale of every conv's channels",
    "fc_width": "width of fc6/fc7",
    "batch_norm": "batch norm after every conv",
    "init": "weight initialisation (paper: N(0, 0.01^2))",
    "init_from": "start from net A's first four convs and three FC layers",
    "finetune_from": "start from a trained net of the same config (a localisation net: "
    "from the classification net of the same S)",
    "task": "classification, or localization: fc8 predicts boxes (paper Appendix A)",
    "regression": "localization: a box per class (PCR) or one box for all (SCR)",
    "finetune_layers": "localization: fine-tune all layers, or only fc6-fc8 (fc)",
    "boxes": "localization on an image folder: folder of Pascal VOC / ImageNet XML box "
    "files, one per image, matched by file name (searched recursively)",
    "schedule": "plateau (the paper's): lr / 10 when the val error stops falling; "
    "linear: warm up, then decay linearly to 0 at the end of --epochs",
    "warmup": "epochs of linear warm-up (--schedule linear)",
    "patience": "epochs without improvement before lr / 10",
    "plateau_threshold": "top-1 error points an epoch must gain to count as an improvement",
    "normalize": "paper: subtract the mean pixel (0..255); standard: also divide by the std "
    "(default: paper with --init paper, standard with kaiming or glorot)",
    "accumulate": "micro-batches per step, same result",
    "lighting": "no PCA colour shift",
    "random_erasing": "probability of erasing a random box of each training crop to the mean "
    "(Zhong et al.; 0: the paper's augmentation)",
    "val_labels": "labels of a flat val folder (lines 'filename class')",
    "val_batch_size": "validation batch (default: --batch-size)",
    "strict": "stop at the first unreadable image",
    "checkpoint_every": "steps between last.ckpt writes",
    "log_every": "steps between metrics.jsonl lines",
    "dist_timeout": "seconds before a stuck process group fails",
}
FLAG_CHOICES: dict[str, tuple[str, ...]] = {
    "precision": PRECISIONS,
    "init": INITS,
    "schedule": SCHEDULES,
    "normalize": NORMALIZATIONS,
    "task": TASKS,
    "regression": BOX_REGRESSIONS,
    "finetune_layers": FINETUNE_LAYERS,
}
FLAG_METAVARS = {"init_from": "CKPT", "finetune_from": "CKPT", "val_labels": "FILE", "boxes": "DIR"}
# One spelling across commands (--crop-size, as in `vggnet info` and ``crop_size=``); the
# older spelling stays as an alias.
FLAG_NAMES = {"crop": ("--crop-size", "--crop")}
NEGATED = {"lighting": "--no-lighting"}  # on by default: the flag turns it off
NOT_FLAGS = {"out"}  # --out is the run folder, added with --resume

missing = {f.name for f in dataclasses.fields(TrainConfig)} - set(FLAG_HELP) - NOT_FLAGS
assert not missing, f"TrainConfig fields without a flag: {missing}"


def flag_help(field: dataclasses.Field, text: str) -> str:
    """The help text, with the field's default unless the text already states it."""
    default = field.default
    if "default" in text or default is None or default is dataclasses.MISSING:
        return text
    if isinstance(default, bool):  # a switch: off unless given (or on unless --no-...)
        return text
    return f"{text} (default {field.default})"


def add_field_flag(parser: argparse.ArgumentParser, field: dataclasses.Field, hint: Any) -> None:
    """The flag of one TrainConfig field: its type from the annotation, choices from constants."""
    name = field.name
    kind = next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
    text = flag_help(field, FLAG_HELP[name])
    if kind is bool:
        flag = NEGATED.get(name, "--" + name.replace("_", "-"))
        const = not field.default if name in NEGATED else True
        parser.add_argument(flag, dest=name, action="store_const", const=const, help=text)
        return
    parser.add_argument(
        *FLAG_NAMES.get(name, ("--" + name.replace("_", "-"),)),
        dest=name,
        type=kind,
        choices=FLAG_CHOICES.get(name),
        metavar=FLAG_METAVARS.get(name),
        help=text,
    )


def add_train_parser(sub: Any) -> None:
    """``vggnet train``: every flag defaults to None so a resumed run knows what was given."""
    t = sub.add_parser(
        "train",
        help="train a network with the paper's recipe",
        description="Train with the paper's recipe (section 2). Defaults are the paper's. "
        "Under torchrun, --batch-size is the global batch, split across processes.",
    )
    t.add_argument(
        "--out", required=True, metavar="RUN", help="run folder (last.ckpt, metrics.jsonl, ...)"
    )
    t.add_argument(
        "--resume", action="store_true", help="continue RUN/last.ckpt with its stored settings"
    )
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name not in NOT_FLAGS:
            add_field_flag(t, field, hints[field.name])


def run_train(args: argparse.Namespace) -> None:
    """Train or resume a run."""
    skip = ("command", "resume")
    given = {k: v for k, v in vars(args).items() if v is not None and k not in skip}
    train(given, resume=args.resume)
