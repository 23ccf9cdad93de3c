"""Training with the paper's recipe (section 2), on CPU, one GPU, or many through torchrun.

One step, top to bottom, is in ``train``'s loop: a global batch (this process's share),
device-side normalisation and colour shift, forward under autocast, cross-entropy,
backward (micro-batches accumulate; DDP averages across processes), SGD with momentum.
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from vggnet import devices
from vggnet.checkpoint import (
    checkpoint_payload,
    load_checkpoint,
    load_weights,
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
from vggnet.data.stats import ChannelStats, cached_stats, compute_stats, save_stats
from vggnet.devices import resolve_device
from vggnet.distributed import Dist, all_sum, broadcast_object, process_group
from vggnet.errors import VGGError
from vggnet.init import init_from_shallower
from vggnet.lagged import LaggedScalar
from vggnet.metrics import MetricsLog, error_percent, resident_mb, top_k_correct
from vggnet.model import VGG, build_model
from vggnet.plots import plot_run
from vggnet.run_folder import RunLock, check_run_folder
from vggnet.schedule import LinearSchedule, PlateauSchedule
from vggnet.serialization import (
    append_text,
    atomic_link,
    atomic_save,
    remove_stale_temporaries,
    write_json,
)
from vggnet.train_config import (  # noqa: F401 (re-exported: vggnet.train.TrainConfig ...)
    FINETUNE_LR,
    TrainConfig,
    check_config,
    config_for_run,
)


@dataclass(frozen=True)
class StepInfo:
    """What a step's log record needs besides its loss (read from the device a step later)."""

    step: int
    epoch: int
    lr: float = 0.0
    images: int = 0  # in this step, over all processes
    epoch_images: int = 0  # in the epoch so far, this step included
    seconds: float = 0.0  # since the epoch began, when the step was queued


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


def divergence_hints(cfg: TrainConfig) -> str:
    """What may keep a run that diverged from diverging again, among the settings it has."""
    hints = [f"lower --lr (now {cfg.lr:g})"]
    if cfg.init != "paper" and cfg.normalize == "paper":
        hints.append(f"use --normalize standard with --init {cfg.init}")
    if cfg.precision != "fp32":
        hints.append(f"use --precision fp32 (now {cfg.precision})")
    if not cfg.batch_norm:
        hints.append("add --batch-norm")
    return ", or ".join(hints)


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


@contextmanager
def restoring(last: Path) -> Iterator[None]:
    """Restoring a resumed run's state: a part that does not fit is one line naming the file."""
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VGGError(
            f"--resume: the training state in {last} cannot be restored ({reason}): the file is "
            "damaged; start a new run, or --finetune-from a copy of it"
        ) from None


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


def file_identity(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of a file from another: inode, size, modification time."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def train(given: dict[str, Any], resume: bool = False) -> dict[str, Any]:
    """Run (or resume) training; ``given`` holds the flags the user set. Returns a summary."""
    RunLock(check_run_folder(given["out"])).check_free()
    read = file_identity(Path(given["out"]) / "last.ckpt")
    cfg, payload = config_for_run(given, resume)
    device_type = "cuda" if cfg.device.startswith("cuda") else "cpu"
    last = Path(cfg.out) / "last.ckpt"

    def recovery() -> str:
        if last.exists():
            return f"{last} keeps the last checkpoint: restart every process with --resume"
        return "no checkpoint had been written yet: start the run again"

    with process_group(device_type, cfg.dist_timeout, recovery) as d, ExitStack() as hold:
        return _train(cfg, payload, d, RunClaim(hold, read if resume else None))


@dataclass
class RunClaim:
    """How a process holds its run folder: the lock's exit stack, and the ``last.ckpt`` it read."""

    hold: ExitStack
    resumed_from: tuple[int, int, int] | None  # file_identity of RUN/last.ckpt when resuming


def claim_run_folder(run: Path, claim: RunClaim) -> None:
    """Become the run folder's one writer, then check it still holds what this run expects."""
    claim.hold.enter_context(RunLock(run)).unshare("metrics.jsonl", "command.txt", "curves.png")
    last = run / "last.ckpt"
    if claim.resumed_from is None and last.exists():
        raise VGGError(
            f"{run} already holds a run ({last}): pass --resume to continue it, "
            "or choose another --out"
        )
    if claim.resumed_from is not None and file_identity(last) != claim.resumed_from:
        raise VGGError(
            f"{last} changed while this run started (another process wrote it): "
            "run the same command again to resume from the new checkpoint"
        )
    for name in ("last.ckpt", "best.ckpt"):
        remove_stale_temporaries(run / name)  # left by a process killed while saving


def start_run_folder(run: Path, claim: RunClaim, d: Dist, device: torch.device) -> None:
    """Rank 0 claims the folder; every process stops with it if it cannot."""
    failure: VGGError | None = None
    if d.is_main:
        try:
            claim_run_folder(run, claim)
        except VGGError as err:
            failure = err
    if all_sum([float(failure is not None)], d, device)[0]:
        raise failure or VGGError(f"process 0 could not claim {run}: see its message")


def shared_stats(source, stats_file: Path, key: str, d: Dist) -> tuple[ChannelStats, bool]:
    """The training set's colour statistics: cached or computed by rank 0, sent to every process.

    Returns the statistics and whether they were computed now (and so still to be saved).
    """
    stats = cached_stats(stats_file, key, len(source)) if d.is_main else None
    fresh = d.is_main and stats is None
    if fresh:
        stats = compute_stats(source)
    return broadcast_object(stats, d), fresh


def _train(cfg: TrainConfig, payload: dict | None, d: Dist, claim: RunClaim) -> dict[str, Any]:
    device = resolve_device(cfg.device, d.local_rank if d.enabled else None)
    check_config(cfg, d, device)
    run = Path(cfg.out)
    main = d.is_main
    say = tqdm.write if main else (lambda *_: None)

    # Everything that can fail on flags or data fails before the run folder is touched.
    train_src = open_source(cfg.data, "train")
    val_src = open_source(cfg.data, "val", cfg.val_labels)
    scale = parse_scale(cfg.scale, cfg.crop)
    stats, fresh_stats = shared_stats(train_src, run / "stats.json", cfg.data, d)
    torch.manual_seed(cfg.seed)
    model = build_run_model(cfg, train_src.classes, train_src.channels, stats)
    if payload:
        load_weights(model, payload["state_dict"], f"checkpoint {run / 'last.ckpt'}")
    start_run_folder(run, claim, d, device)
    if main:
        write_json(run / "config.json", asdict(cfg))
        append_text(run / "command.txt", shlex.join(sys.argv) + "\n")
        if fresh_stats:
            save_stats(stats, run / "stats.json", cfg.data, len(train_src))

    # Model, optimiser, schedule; the state of a resumed run.
    state = payload["train_state"] if payload else None
    memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(
        parameter_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum
    )
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    step, epoch, step_in_epoch, best_error = 0, 0, 0, float("inf")
    torch.manual_seed(cfg.seed + 1 + d.rank)  # the dropout stream
    if state:
        with restoring(run / "last.ckpt"):
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            restore_rng(state["rng"], device, d)
        step, epoch, step_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
        best_error = state["best_val_top1_error"]

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
    log = MetricsLog(run, warn=warn, start_step=step) if main else None
    q = single_test_scale(scale)
    steps_per_epoch = sampler.steps_per_epoch
    max_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
    schedule = build_schedule(cfg, steps_per_epoch)
    if state:
        with restoring(run / "last.ckpt"):
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
                f"without saving what followed it, and {kept}: {divergence_hints(cfg)}"
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
        plot_run(run, warn=warn)
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
