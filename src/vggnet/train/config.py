"""A run's settings: the paper's defaults, the resume rules, and the checks on both.

``TrainConfig`` is every setting of a run, stored in the run and its checkpoints. A
resumed run takes the stored settings; the flags given may only change what
``RESUME_MAY_CHANGE`` lists. Whatever a checkpoint's training state holds, reading it ends
in a config or one ``VGGError`` naming the file and the field.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from vggnet.card import BOX_REGRESSIONS
from vggnet.checkpoint import read_checkpoint
from vggnet.checkpoint_fields import FieldChecker, is_instance
from vggnet.devices import check_precision, default_device
from vggnet.distributed import Dist
from vggnet.errors import VGGError
from vggnet.model import configs
from vggnet.model.localization import FINETUNE_LAYERS
from vggnet.model.vgg import FEATURE_STRIDE, valid_crop
from vggnet.schedule import SCHEDULES

FINETUNE_LR = 1e-3  # the paper's rate for S=384 nets started from S=256 ones


# He and Glorot initialisations assume unit-variance inputs: 0..255 pixels less the mean
# (the paper's normalisation, made for its N(0, 0.01^2) weights) make such nets diverge.
TASKS = ("classification", "localization")
NORMALIZATIONS = ("paper", "standard")  # the mean only; the mean and the per-channel std
NORMALIZE_FOR_INIT = {"paper": "paper", "kaiming": "standard", "glorot": "standard"}


@dataclass
class TrainConfig:
    """Every setting of a run; defaults are the paper's. Stored in the run and its checkpoints."""

    config: str
    data: str
    out: str
    scale: str = "256"
    crop: int = configs.CROP_SIZE
    batch_size: int = 256
    lr: float | None = None  # 1e-2, or 1e-3 with finetune_from
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0  # not the paper's: 0 keeps its plain cross-entropy
    dropout: float = configs.DROPOUT
    epochs: int = 74
    max_steps: int | None = None
    seed: int = 0
    device: str | None = None  # cuda if available, else cpu
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    workers: int | None = None
    width: float = 1.0
    fc_width: int = configs.FC_WIDTH
    batch_norm: bool = False
    init: str = "paper"
    init_from: str | None = None
    finetune_from: str | None = None
    task: str = "classification"  # or "localization": fc8 predicts boxes (Appendix A)
    regression: str = "per-class"  # localization: a box per class (PCR) or one (SCR)
    finetune_layers: str = "all"  # localization: all layers, or only fc6-fc8 ("fc")
    boxes: str | None = None  # localization on image folders: the VOC XML files
    schedule: str = "plateau"  # the paper's; "linear" for a run of known length
    warmup: float = 0.0  # epochs of linear warm-up (linear schedule)
    patience: int = 3
    plateau_threshold: float = 0.0  # top-1 error points an epoch must gain to count as improving
    normalize: str | None = None  # "paper" (the mean only); "standard" (also the std); see resolved
    accumulate: int = 1
    lighting: bool = True
    random_erasing: float = 0.0  # not the paper's: probability of erasing a box of each crop
    val_labels: str | None = None
    val_batch_size: int | None = None
    strict: bool = False
    checkpoint_every: int = 1000
    log_every: int = 10
    dist_timeout: float = 600.0

    def resolved(self) -> TrainConfig:
        """Fill the defaults that depend on other settings."""
        lr = self.lr if self.lr is not None else (FINETUNE_LR if self.finetune_from else 1e-2)
        device = self.device or default_device()
        normalize = self.normalize or NORMALIZE_FOR_INIT.get(self.init, "paper")
        config, batch_norm = configs.resolve_name(self.config)  # vgg16_bn: D with batch norm
        return TrainConfig(
            **{
                **asdict(self),
                "lr": lr,
                "device": device,
                "normalize": normalize,
                "config": config,
                "batch_norm": self.batch_norm or batch_norm,
            }
        )


# Settings a resumed run may change; the first two only upwards (they are totals).
RESUME_MAY_CHANGE = {
    "epochs",
    "max_steps",
    "workers",
    "checkpoint_every",
    "log_every",
    "strict",
    "dist_timeout",
    "val_batch_size",
}
RESUME_MAY_RAISE = {"epochs", "max_steps"}


def same_net(name: str, stored: dict[str, Any]) -> bool:
    """Whether ``--config name`` names the stored run's net (``vgg16_bn`` for D with batch norm)."""
    config, batch_norm = configs.resolve_name(name)
    return config == configs.resolve_config(stored["config"]) and (
        not batch_norm or stored["batch_norm"]
    )


def config_for_run(
    given: dict[str, Any], resume: bool
) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The run's config from the flags given, or (resuming) the stored one plus allowed changes.

    Returns the config and, when resuming, the checkpoint payload of ``RUN/last.ckpt``.
    """
    out = Path(given["out"])
    last = out / "last.ckpt"
    if not resume:
        if last.exists():
            raise VGGError(
                f"{out} already holds a run ({last}): pass --resume to continue it, "
                "or choose another --out"
            )
        missing = [k for k in ("config", "data") if given.get(k) is None]
        if missing:
            raise VGGError(f"vggnet train needs --{missing[0]}")
        return TrainConfig(**given).resolved(), None
    if not last.exists():
        raise VGGError(f"--resume: {last} does not exist; start the run without --resume")
    payload = read_checkpoint(last)
    state = payload.get("train_state")
    if not isinstance(state, dict) or "config" not in state:
        raise VGGError(f"--resume: {last} holds no training state (an imported or exported net?)")
    check_train_state(state, last)
    stored = asdict(stored_config(state["config"], last))
    stored["out"] = given["out"]  # the run lives where --out says, even moved or copied
    for key, value in given.items():
        if value == stored[key]:
            continue
        if key == "config" and same_net(value, stored):
            continue
        flag = "--" + key.replace("_", "-")
        if key not in RESUME_MAY_CHANGE:
            raise VGGError(
                f"--resume: {flag} {value} contradicts the run's stored {stored[key]}; "
                f"drop {flag} to continue as stored, or start a new --out"
            )
        if key in RESUME_MAY_RAISE and stored[key] is not None and (value or 0) < stored[key]:
            raise VGGError(
                f"--resume: {flag} {value} is below the run's {stored[key]}; "
                f"{flag} is a total for the run, so it can only be raised"
            )
        stored[key] = value
    return TrainConfig(**stored), payload


def field_types() -> dict[str, tuple[type, ...]]:
    """The Python types each TrainConfig field accepts (``X | None`` gives X and NoneType)."""
    hints = typing.get_type_hints(TrainConfig)
    types = {}
    for name, hint in hints.items():
        args = typing.get_args(hint) or (hint,)
        types[name] = tuple(float if a is float else a for a in args)
        if float in types[name]:
            types[name] += (int,)  # JSON and flags write 1.0 as 1
    return types


def stored_config(stored: Any, last: Path) -> TrainConfig:
    """The TrainConfig a checkpoint's training state holds, each field checked for its type."""
    check = FieldChecker(f"checkpoint {last}")
    check.require(isinstance(stored, dict), "train_state.config", "a dict of run settings", stored)
    types = field_types()
    unknown = [k for k in stored if k not in types]
    check.require(not unknown, "train_state.config", "keys that are TrainConfig fields", unknown)
    missing = [f.name for f in fields(TrainConfig) if f.name in ("config", "data", "out")]
    missing = [k for k in missing if k not in stored]
    check.require(not missing, "train_state.config", "a dict with config, data and out", missing)
    for key, value in stored.items():
        names = " or ".join("None" if t is type(None) else t.__name__ for t in types[key])
        check.require(is_instance(value, types[key]), f"train_state.config.{key}", names, value)
    return TrainConfig(**stored)


def check_train_state(state: dict[str, Any], last: Path) -> None:
    """The counters and states a resume restores: present, and of the right kinds."""
    check = FieldChecker(f"checkpoint {last}")
    for key in ("step", "epoch", "step_in_epoch"):
        value = state.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        check.require(ok, f"train_state.{key}", "an integer >= 0", value)
    best = state.get("best_val_top1_error")
    ok = isinstance(best, int | float) and not isinstance(best, bool)
    check.require(ok, "train_state.best_val_top1_error", "a number", best)
    for key in ("optimizer", "schedule", "scaler"):
        value = state.get(key)
        check.require(isinstance(value, dict), f"train_state.{key}", "a dict", value)
    rng = state.get("rng")
    ok = isinstance(rng, list) and len(rng) > 0
    ok = ok and all(
        isinstance(r, dict) and isinstance(r.get("cpu"), torch.Tensor) for r in rng or []
    )
    check.require(ok, "train_state.rng", "a list of RNG states (one per process)", rng)


def check_config(cfg: TrainConfig, d: Dist, device: torch.device) -> None:
    """Refuse settings that cannot work, each with one line naming the flag."""
    if cfg.schedule not in SCHEDULES:
        raise VGGError(f"--schedule {cfg.schedule}: choose {' or '.join(SCHEDULES)}")
    if not cfg.warmup >= 0:
        raise VGGError(f"--warmup must be >= 0 epochs, got {cfg.warmup}")
    if cfg.warmup and cfg.schedule != "linear":
        raise VGGError(
            f"--warmup {cfg.warmup} applies to --schedule linear only: add it, or drop --warmup"
        )
    if cfg.normalize not in NORMALIZATIONS:
        raise VGGError(f"--normalize {cfg.normalize}: choose paper or standard")
    check_precision(cfg.precision, device)
    for name in ("batch_size", "epochs", "accumulate", "patience", "checkpoint_every", "log_every"):
        if getattr(cfg, name) < 1:
            raise VGGError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.workers is not None and cfg.workers < 0:
        raise VGGError(f"--workers must be >= 0, got {cfg.workers}")
    if cfg.max_steps is not None and cfg.max_steps < 0:
        raise VGGError(f"--max-steps must be >= 0, got {cfg.max_steps}")
    if cfg.batch_size % d.world_size:
        raise VGGError(
            f"--batch-size {cfg.batch_size} is not divisible by the {d.world_size} processes: "
            f"use a multiple of {d.world_size}"
        )
    local = cfg.batch_size // d.world_size
    if local % cfg.accumulate:
        raise VGGError(
            f"--accumulate {cfg.accumulate} does not divide the per-process batch {local} "
            f"(--batch-size {cfg.batch_size} over {d.world_size} processes)"
        )
    if cfg.lr is None or cfg.lr <= 0:
        raise VGGError(f"--lr must be > 0, got {cfg.lr}")
    if not valid_crop(cfg.crop):
        raise VGGError(
            f"--crop-size {cfg.crop}: use a positive multiple of {FEATURE_STRIDE} "
            f"(the net halves the image {configs.NUM_POOLS} times)"
        )
    for name, ok, rule in (
        ("width", cfg.width > 0, "> 0"),
        ("fc_width", cfg.fc_width >= 1, ">= 1"),
        ("dropout", 0 <= cfg.dropout < 1, "in [0, 1)"),
        ("momentum", 0 <= cfg.momentum < 1, "in [0, 1)"),
        ("weight_decay", cfg.weight_decay >= 0, ">= 0"),
        ("label_smoothing", 0 <= cfg.label_smoothing < 1, "in [0, 1)"),
        ("random_erasing", 0 <= cfg.random_erasing <= 1, "in [0, 1]"),
    ):
        if not ok:
            raise VGGError(f"--{name.replace('_', '-')} must be {rule}, got {getattr(cfg, name)}")
    if cfg.init_from and cfg.finetune_from:
        raise VGGError("--init-from and --finetune-from exclude each other: pick one")
    check_task(cfg)


def check_task(cfg: TrainConfig) -> None:
    """The localisation flags: a known task, and a classification net to start from."""
    if cfg.task not in TASKS:
        raise VGGError(f"--task {cfg.task}: choose {' or '.join(TASKS)}")
    if cfg.task == "classification":
        for name, default in (
            ("boxes", None),
            ("regression", "per-class"),
            ("finetune_layers", "all"),
        ):
            if getattr(cfg, name) != default:
                flag = "--" + name.replace("_", "-")
                raise VGGError(
                    f"{flag} applies to --task localization only: add it, or drop {flag}"
                )
        return
    if not cfg.finetune_from:
        raise VGGError(
            "--task localization starts from a trained classification net (Appendix A): "
            "give --finetune-from CLS.ckpt"
        )
    if cfg.regression not in BOX_REGRESSIONS:
        raise VGGError(f"--regression {cfg.regression}: choose {' or '.join(BOX_REGRESSIONS)}")
    if cfg.finetune_layers not in FINETUNE_LAYERS:
        raise VGGError(
            f"--finetune-layers {cfg.finetune_layers}: choose {' or '.join(FINETUNE_LAYERS)}"
        )
