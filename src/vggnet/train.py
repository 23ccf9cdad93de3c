"""Training with the paper's recipe (section 2), on CPU, one GPU, or many through torchrun.

One step, top to bottom, is in ``train``'s loop: a global batch (this process's share),
device-side normalisation and colour shift, forward under autocast, cross-entropy,
backward (micro-batches accumulate; DDP averages across processes), SGD with momentum.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import sys
import time
from contextlib import ExitStack, nullcontext, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from vggnet import configs, devices
from vggnet.checkpoint import (
    checkpoint_payload,
    load_checkpoint,
    load_weights,
    read_checkpoint,
)
from vggnet.data import (
    BatchNormalizer,
    GlobalBatchSampler,
    SkipCounter,
    TrainTransform,
    center_loader,
    open_source,
    parse_scale,
    shard_indices,
    single_test_scale,
    train_loader,
)
from vggnet.data.erasing import erase, erasing_boxes
from vggnet.data.loader import shut_down_workers
from vggnet.data.sources import FashionMNISTSource, FolderSource
from vggnet.data.stats import ChannelStats, load_or_compute_stats
from vggnet.devices import check_precision, default_device, resolve_device
from vggnet.distributed import Dist, all_sum, barrier, process_group
from vggnet.errors import VGGError
from vggnet.init import init_from_shallower
from vggnet.lagged import LaggedScalar
from vggnet.metrics import MetricsLog, error_percent, resident_mb, top_k_correct
from vggnet.model import VGG, build_model
from vggnet.plots import plot_run
from vggnet.schedule import SCHEDULES, LinearSchedule, PlateauSchedule
from vggnet.serialization import (
    append_text,
    atomic_link,
    atomic_save,
    atomic_write_text,
    remove_stale_temporaries,
)

FINETUNE_LR = 1e-3  # the paper's rate for S=384 nets started from S=256 ones


@dataclass(frozen=True)
class StepInfo:
    """What a step's log record needs besides its loss (read from the device a step later)."""

    step: int
    epoch: int
    lr: float = 0.0
    images: int = 0  # in this step, over all processes
    epoch_images: int = 0  # in the epoch so far, this step included
    seconds: float = 0.0  # since the epoch began, when the step was queued


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
    schedule: str = "plateau"  # the paper's; "linear" for a run of known length
    warmup: float = 0.0  # epochs of linear warm-up (linear schedule)
    patience: int = 3
    plateau_threshold: float = 0.0  # top-1 error points an epoch must gain to count as improving
    normalize: str = "paper"  # or "standard": also divide by the per-channel std
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
        return TrainConfig(**{**asdict(self), "lr": lr, "device": device})


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
    stored = asdict(TrainConfig(**state["config"]))
    for key, value in given.items():
        if key == "out" or value == stored[key]:
            continue
        if key == "config" and configs.resolve_config(value) == configs.resolve_config(stored[key]):
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
    if cfg.normalize not in ("paper", "standard"):
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
    if cfg.lr <= 0:
        raise VGGError(f"--lr must be > 0, got {cfg.lr}")
    stride = configs.POOL_STRIDE**configs.NUM_POOLS
    if cfg.crop < stride or cfg.crop % stride:
        raise VGGError(
            f"--crop {cfg.crop}: use a positive multiple of {stride} "
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


def build_schedule(cfg: TrainConfig, steps_per_epoch: int) -> PlateauSchedule | LinearSchedule:
    """The run's learning-rate schedule (--schedule); a linear one ends with --epochs."""
    if cfg.schedule == "linear":
        total = cfg.epochs * steps_per_epoch
        return LinearSchedule(cfg.lr, total, round(cfg.warmup * steps_per_epoch))
    return PlateauSchedule(cfg.lr, patience=cfg.patience, threshold=cfg.plateau_threshold)


def build_run_model(
    cfg: TrainConfig, classes: list[str], channels: int, stats: ChannelStats
) -> VGG:
    """The network of a run, initialised as the paper says (random, from net A, or fine-tuned)."""
    scale = parse_scale(cfg.scale, cfg.crop)
    model = build_model(
        cfg.config,
        len(classes),
        batch_norm=cfg.batch_norm,
        in_channels=channels,
        width=cfg.width,
        fc_width=cfg.fc_width,
        crop_size=cfg.crop,
        dropout=cfg.dropout,
        init=cfg.init,
    )
    model.classes = list(classes)
    model.preprocessing = stats.preprocessing(standardize=cfg.normalize == "standard")
    model.train_scale = (scale.smin, scale.smax)
    if cfg.init_from:
        init_from_shallower(model, load_checkpoint(cfg.init_from))
    if cfg.finetune_from:
        source = load_checkpoint(cfg.finetune_from)
        if source.classes is not None and source.classes != model.classes:
            raise VGGError(f"--finetune-from {cfg.finetune_from} was trained on other classes")
        load_weights(model, source.state_dict(), f"--finetune-from {cfg.finetune_from}")
    return model


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv and FC weights only; biases and batch-norm parameters are not decayed."""
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def default_workers(source) -> int:
    """Loader processes: none for in-memory Fashion-MNIST, else up to 8."""
    if isinstance(source, FashionMNISTSource):
        return 0
    return min(8, os.cpu_count() or 1)


class StopSignal:
    """Turns SIGTERM / SIGINT into a flag the loop checks after each step."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with suppress(ValueError):  # not the main thread: no handlers
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def rng_state(device: torch.device, d: Dist) -> list[dict]:
    """Every process's torch RNG state (dropout masks), gathered on all ranks."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if not d.enabled:
        return [state]
    gathered: list[Any] = [None] * d.world_size
    dist.all_gather_object(gathered, state)
    return gathered


def restore_rng(states: list[dict], device: torch.device, d: Dist) -> None:
    """Restore this process's RNG state from a checkpoint's list (one entry per process)."""
    state = states[d.rank] if d.rank < len(states) else states[0]
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def validation_loader(source, cfg: TrainConfig, q: int, d: Dist):
    """Centre crops at Q of this process's shard of the validation images (made once per run)."""
    indices = shard_indices(len(source), d.world_size, d.rank)
    workers = cfg.workers if cfg.workers is not None else default_workers(source)
    return center_loader(
        source, q, cfg.crop, indices, cfg.val_batch_size or cfg.batch_size, workers
    )


def validate(
    model: nn.Module,
    loader,
    cfg: TrainConfig,
    normalizer: BatchNormalizer,
    device: torch.device,
    d: Dist,
    autocast,
) -> dict[str, float]:
    """Centre-crop top-1 / top-5 error at test scale Q over this process's shard, summed over all."""
    correct1 = correct5 = total = skipped = 0
    model.eval()
    with torch.no_grad(), autocast:
        for batch in loader:
            skipped += len(batch.skipped)
            if not len(batch.labels):
                continue
            x = normalizer(batch.images.to(device, non_blocking=True))
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            scores = model(x).float()
            c1, c5 = top_k_correct(scores, batch.labels.to(device), (1, 5))
            correct1, correct5, total = correct1 + c1, correct5 + c5, total + len(batch.labels)
    model.train()
    correct1, correct5, total, skipped = all_sum([correct1, correct5, total, skipped], d, device)
    return {
        "val_top1_error": error_percent(correct1, total),
        "val_top5_error": error_percent(correct5, total),
        "val_images": int(total),
        "val_skipped": int(skipped),
    }


def train(given: dict[str, Any], resume: bool = False) -> dict[str, Any]:
    """Run (or resume) training; ``given`` holds the flags the user set. Returns a summary."""
    cfg, payload = config_for_run(given, resume)
    device_type = "cuda" if cfg.device.startswith("cuda") else "cpu"
    last = Path(cfg.out) / "last.ckpt"

    def recovery() -> str:
        if last.exists():
            return f"{last} keeps the last checkpoint: restart every process with --resume"
        return "no checkpoint had been written yet: start the run again"

    with process_group(device_type, cfg.dist_timeout, recovery) as d:
        return _train(cfg, payload, d)


def _train(cfg: TrainConfig, payload: dict | None, d: Dist) -> dict[str, Any]:
    device = resolve_device(cfg.device, d.local_rank if d.enabled else None)
    check_config(cfg, d, device)
    run = Path(cfg.out)
    main = d.is_main
    say = tqdm.write if main else (lambda *_: None)
    if main:
        run.mkdir(parents=True, exist_ok=True)
        for name in ("last.ckpt", "best.ckpt"):
            remove_stale_temporaries(run / name)  # left by a process killed while saving
        atomic_write_text(run / "config.json", json.dumps(asdict(cfg), indent=1) + "\n")
        append_text(run / "command.txt", shlex.join(sys.argv) + "\n")

    # Data: sources, the training set's colour statistics (rank 0 computes, the rest read).
    train_src = open_source(cfg.data, "train")
    val_src = open_source(cfg.data, "val", cfg.val_labels)
    scale = parse_scale(cfg.scale, cfg.crop)
    stats_file = run / "stats.json"
    if main:
        stats = load_or_compute_stats(train_src, stats_file, cfg.data)
    barrier(d)
    if not main:
        stats = load_or_compute_stats(train_src, stats_file, cfg.data)

    # Model, optimiser, schedule; the state of a resumed run.
    torch.manual_seed(cfg.seed)
    model = build_run_model(cfg, train_src.classes, train_src.channels, stats)
    state = payload["train_state"] if payload else None
    if payload:
        load_weights(model, payload["state_dict"], f"checkpoint {run / 'last.ckpt'}")
    memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(
        parameter_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum
    )
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    step, epoch, step_in_epoch, best_error = 0, 0, 0, float("inf")
    torch.manual_seed(cfg.seed + 1 + d.rank)  # the dropout stream
    if state:
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step, epoch, step_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
        best_error = state["best_val_top1_error"]
        restore_rng(state["rng"], device, d)

    net: nn.Module = model
    if d.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        net = torch.compile(net)

    sampler = GlobalBatchSampler(len(train_src), cfg.batch_size, d.world_size, d.rank, cfg.seed)
    transform = TrainTransform(scale, cfg.crop, cfg.seed)
    workers = cfg.workers if cfg.workers is not None else default_workers(train_src)
    gpu_decode = device.type == "cuda" and isinstance(train_src, FolderSource)
    if gpu_decode:
        from vggnet.data.gpu import DeviceDecoder, encoded_train_loader

        loader = encoded_train_loader(train_src, transform, sampler, workers)
        decode = DeviceDecoder(cfg.crop, device)
    else:
        loader = train_loader(train_src, transform, sampler, workers, device.type == "cuda")
        decode = None
    normalizer = BatchNormalizer(
        model.preprocessing,
        torch.tensor(stats.pc_std) if cfg.lighting else None,
        torch.tensor(stats.eigvecs) if cfg.lighting else None,
    ).to(device)
    autocast = devices.autocast(cfg.precision, device)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    warn = (lambda line: tqdm.write(f"vggnet: warning: {line}", file=sys.stderr)) if main else None
    skips = SkipCounter(cfg.strict, warn=warn or (lambda _: None))
    log = MetricsLog(run, warn=warn, resume_step=step if state else None) if main else None
    q = single_test_scale(scale)
    steps_per_epoch = sampler.steps_per_epoch
    max_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
    schedule = build_schedule(cfg, steps_per_epoch)
    if state:
        schedule.load_state_dict(state["schedule"])

    saved_step: int | None = None  # the step RUN/last.ckpt holds; the same on every rank
    losses: LaggedScalar[StepInfo] = LaggedScalar(device)
    epoch_loss, epoch_images, tick, shown_loss = 0.0, 0, time.perf_counter(), float("nan")

    def account(read: tuple[float, StepInfo] | None, signalled: bool = False) -> bool:
        """Take in a step's loss once read: stop on a non-finite one (on every rank), log it.

        Returns whether some process received a stop signal.
        """
        nonlocal epoch_loss, shown_loss
        nonfinite, stop = all_sum(
            [float(read is not None and not math.isfinite(read[0])), float(signalled)], d, device
        )
        if nonfinite:
            value, info = read if read is not None else (float("nan"), StepInfo(step, epoch + 1))
            kept = (
                f"{run / 'last.ckpt'} keeps the last good state"
                if (run / "last.ckpt").exists()
                else "no checkpoint had been written yet"
            )
            raise VGGError(
                f"the loss is {value} at step {info.step} (epoch {info.epoch}); stopped "
                f"without saving what followed it, and {kept}: lower --lr, use --normalize "
                "standard with --init kaiming/glorot, or --precision fp32"
            )
        if read is not None:
            value, info = read
            shown_loss = value
            epoch_loss += value * info.images
            if log and (info.step % cfg.log_every == 0 or info.step == 1):
                log.write(
                    {
                        "kind": "step",
                        "step": info.step,
                        "epoch": info.epoch,
                        "loss": value,
                        "lr": info.lr,
                        "images_per_s": info.epoch_images / max(info.seconds, 1e-9),
                    }
                )
        return bool(stop)

    def save(path: Path) -> None:
        """Write a checkpoint of the current state (all ranks gather RNG; rank 0 writes).

        The last step's loss is read first: a state that followed a non-finite loss is never written.
        """
        nonlocal saved_step
        account(losses.take())
        if path.name == "last.ckpt":
            saved_step = step
        rngs = rng_state(device, d)
        if not main:
            return
        train_state = {
            "config": asdict(cfg),
            "step": step,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "scaler": scaler.state_dict(),
            "best_val_top1_error": best_error,
            "rng": rngs,
            "world_size": d.world_size,
        }
        atomic_save(checkpoint_payload(model, {"train_state": train_state}), path)

    if main:
        say(
            f"training {model.spec.config} ({sum(p.numel() for p in model.parameters()):,} "
            f"parameters) on {cfg.data}: {len(train_src)} images, {len(train_src.classes)} classes, "
            f"S={scale}, crop {cfg.crop}, batch {cfg.batch_size} over {d.world_size} process(es), "
            f"{device}, {cfg.precision}; {run}"
            + (f"; resuming at step {step} (epoch {epoch + 1})" if state else "")
        )
    net.train()
    val_loader = None  # made at the first validation, right before its workers fork

    def stop_workers() -> None:
        """However the run ends, its loaders' workers end with it (not at some later GC)."""
        for used in (loader, val_loader):
            if used is not None:
                shut_down_workers(used)

    stopped_by: str | None = None
    with StopSignal() as signals, ExitStack() as at_exit:
        at_exit.callback(stop_workers)
        while epoch < cfg.epochs and not schedule.finished and step < max_steps:
            stop_at = step_in_epoch + (max_steps - step)
            sampler.set_epoch(epoch, step_in_epoch, stop_at)
            bar = tqdm(
                total=steps_per_epoch,
                initial=step_in_epoch,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                unit="step",
                disable=not main,
                dynamic_ncols=True,
                leave=False,
                mininterval=0.5 if sys.stderr.isatty() else 30.0,  # quiet in logs and pipes
            )
            epoch_loss, epoch_images, tick = 0.0, 0, time.perf_counter()
            checkpoint_seconds = 0.0
            with bar:  # closed (and wiped) however the epoch ends: errors start a clean line
                for batch in loader:
                    if decode is not None:
                        batch = decode(batch)
                    skips(batch.skipped)
                    images = batch.images.to(device, non_blocking=True)
                    labels = batch.labels.to(device, non_blocking=True)
                    alpha = batch.alpha.to(device, non_blocking=True) if cfg.lighting else None
                    x = normalizer(images, alpha)
                    if cfg.random_erasing:
                        boxes = erasing_boxes(
                            cfg.seed,
                            epoch,
                            batch.indices.numpy(),
                            *x.shape[-2:],
                            cfg.random_erasing,
                        )
                        x = erase(x, torch.from_numpy(boxes))
                    if cfg.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    optimizer.zero_grad(set_to_none=True)
                    loss_sum = torch.zeros((), device=device)
                    micro_batches = list(
                        zip(x.chunk(cfg.accumulate), labels.chunk(cfg.accumulate), strict=True)
                    )
                    for i, (xm, ym) in enumerate(micro_batches):
                        last_micro = i == len(micro_batches) - 1
                        sync = net.no_sync() if d.enabled and not last_micro else nullcontext()
                        with sync, autocast:
                            loss = criterion(net(xm).float(), ym) * (len(ym) / len(labels))
                        scaler.scale(loss).backward()
                        loss_sum += loss.detach()
                    lr = schedule.lr_at(step)
                    images_done = len(labels) * d.world_size
                    epoch_images += images_done
                    info = StepInfo(
                        step + 1,
                        epoch + 1,
                        lr,
                        images_done,
                        epoch_images,
                        time.perf_counter() - tick,
                    )
                    signalled = account(
                        losses.put(loss_sum, info), signalled=signals.received is not None
                    )
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    scaler.step(optimizer)
                    scaler.update()
                    step += 1
                    step_in_epoch += 1
                    rate = epoch_images / max(time.perf_counter() - tick, 1e-9)
                    postfix = {
                        "loss": f"{shown_loss:.4f}",  # the step before: read without waiting
                        "lr": f"{lr:.1e}",
                        "img_s": f"{rate:.0f}",
                    }
                    bar.set_postfix(postfix, refresh=False)  # drawn by update(), at its own pace
                    bar.update()
                    if signalled or step % cfg.checkpoint_every == 0:
                        mark = time.perf_counter()
                        save(run / "last.ckpt")
                        checkpoint_seconds += time.perf_counter() - mark
                    if signalled:
                        stopped_by = signals.received or "a signal to another process"
                        break
            account(losses.take())  # the epoch's last step
            train_seconds = time.perf_counter() - tick - checkpoint_seconds
            if stopped_by or step_in_epoch < steps_per_epoch:
                break  # stopped mid-epoch (signal or --max-steps): the epoch resumes here

            mark = time.perf_counter()
            if val_loader is None:
                val_loader = validation_loader(val_src, cfg, q, d)
            result = validate(net, val_loader, cfg, normalizer, device, d, autocast)
            val_seconds = time.perf_counter() - mark
            action = schedule.step(result["val_top1_error"])
            epoch += 1
            step_in_epoch = 0
            improved = result["val_top1_error"] < best_error
            best_error = min(best_error, result["val_top1_error"])
            record = {
                "kind": "epoch",
                "step": step,
                "epoch": epoch,
                "train_loss": epoch_loss / max(epoch_images, 1),
                "lr": schedule.lr_at(step),
                "skipped": skips.count,
                "resident_mb": resident_mb(),
                **result,
            }
            mark = time.perf_counter()
            save(run / "last.ckpt")
            if improved and main:
                atomic_link(run / "last.ckpt", run / "best.ckpt")  # the same state: no second write
            record["train_seconds"] = train_seconds
            record["val_seconds"] = val_seconds
            record["checkpoint_seconds"] = checkpoint_seconds + time.perf_counter() - mark
            if log:
                log.write(record)  # after the checkpoint: a resumed run never logs an epoch twice
            say(
                f"epoch {epoch}/{cfg.epochs}: loss {record['train_loss']:.4f}, val top-1 "
                f"{result['val_top1_error']:.2f}% top-5 {result['val_top5_error']:.2f}% "
                f"(Q={q}, {result['val_images']} images), lr {schedule.lr_at(step):.1e}"
                + (f", {skips.count} files skipped" if skips.count else "")
                + (
                    f" -> lr / 10 after {cfg.patience} epochs without improvement"
                    if action == "decrease"
                    else ""
                )
                + (
                    " -> stop: the error stopped falling after 3 decreases"
                    if action == "stop"
                    else ""
                )
            )
    if saved_step != step:  # decided from state all ranks share: every rank joins the save
        save(run / "last.ckpt")
    if log:
        log.close()
        plot_run(run)
    reason = (
        f"stopped by {stopped_by}"
        if stopped_by
        else "schedule finished"
        if schedule.finished
        else f"reached --max-steps {cfg.max_steps}"
        if step >= max_steps and cfg.max_steps is not None
        else f"reached --epochs {cfg.epochs}"
    )
    best = f", best {run / 'best.ckpt'}" if (run / "best.ckpt").exists() else ""
    hint = f" (continue: vggnet train --out {shlex.quote(str(run))} --resume)" if stopped_by else ""
    say(f"{reason} at step {step}; {run / 'last.ckpt'}{best}{hint}")
    return {"step": step, "epoch": epoch, "best_val_top1_error": best_error, "reason": reason}
