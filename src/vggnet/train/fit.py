"""The training loop: a run's parts put together, epochs of steps, checkpoints, the end.

Reading order: ``train`` (one call per run) -> ``start_run`` (everything that can fail on
flags or data, then the run folder) -> ``Run.fit`` (epochs) -> ``Run.run_epoch`` (steps;
one step is in ``step.py``) -> ``Run.end_epoch`` (validation, schedule, checkpoint, log).
A run's state is one object (``RunState``); ``Run`` holds it with the parts that use it.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
from tqdm import tqdm

from vggnet import devices
from vggnet.checkpoint import checkpoint_payload, load_weights
from vggnet.data import GlobalBatchSampler, SkipCounter, parse_scale, single_test_scale
from vggnet.data.loader import shut_down_workers
from vggnet.data.stats import save_stats
from vggnet.devices import resolve_device
from vggnet.distributed import Dist, all_sum, process_group
from vggnet.errors import VGGError
from vggnet.lagged import LaggedScalar
from vggnet.metrics import MetricsLog, primary_error, resident_mb
from vggnet.plots import plot_run
from vggnet.progress import LogProgress, format_duration, progress
from vggnet.serialization import append_text, atomic_link, atomic_save, write_json
from vggnet.train.config import TrainConfig, check_config, config_for_run
from vggnet.train.folder import RunClaim, RunLock, check_run_folder, file_identity, start_run_folder
from vggnet.train.lines import epoch_line, run_summary
from vggnet.train.localization import validate_boxes
from vggnet.train.setup import (
    batch_normalizer,
    build_run_model,
    build_schedule,
    parameter_groups,
    run_sources,
    shared_stats,
    task_loss,
    training_batches,
    validation_loader,
    wrap_for_training,
)
from vggnet.train.signals import StopSignal, divergence_hints
from vggnet.train.state import RunState, rng_state
from vggnet.train.step import (
    StepInfo,
    StepParts,
    apply_update,
    forward_backward,
    step_inputs,
    validate,
)


def train(given: dict[str, Any], resume: bool = False) -> dict[str, Any]:
    """Run (or resume) training; ``given`` holds the flags the user set. Returns a summary."""
    RunLock(check_run_folder(given["out"])).check_free()
    read = file_identity(Path(given["out"]) / "last.ckpt")
    cfg, payload = config_for_run(given, resume)
    assert cfg.device is not None and cfg.lr is not None  # resolved
    device_type = "cuda" if cfg.device.startswith("cuda") else "cpu"
    last = Path(cfg.out) / "last.ckpt"

    def recovery() -> str:
        if last.exists():
            return f"{last} keeps the last checkpoint: restart every process with --resume"
        return "no checkpoint had been written yet: start the run again"

    with process_group(device_type, cfg.dist_timeout, recovery) as d, ExitStack() as hold:
        run = start_run(cfg, payload, d, RunClaim(hold, read if resume else None))
        return run.fit()


def start_run(cfg: TrainConfig, payload: dict | None, d: Dist, claim: RunClaim) -> Run:
    """Everything a run needs, checked before its folder is touched; then the folder, claimed."""
    assert cfg.device is not None and cfg.lr is not None  # resolved
    device = resolve_device(cfg.device, d.local_rank if d.enabled else None)
    check_config(cfg, d, device)
    folder = Path(cfg.out)
    train_src, val_src = run_sources(
        cfg,
        lambda line: tqdm.write(f"vggnet: warning: {line}", file=sys.stderr) if d.is_main else None,
    )
    stats, fresh_stats = shared_stats(train_src, folder / "stats.json", cfg.data, d)
    torch.manual_seed(cfg.seed)
    model = build_run_model(cfg, train_src.classes, train_src.channels, stats)
    if payload:
        load_weights(model, payload["state_dict"], f"checkpoint {folder / 'last.ckpt'}")
    start_run_folder(folder, claim, d, device)
    if d.is_main:
        write_json(folder / "config.json", asdict(cfg))
        append_text(folder / "command.txt", shlex.join(sys.argv) + "\n")
        if fresh_stats:
            save_stats(stats, folder / "stats.json", cfg.data, len(train_src))

    memory_format = torch.channels_last if cfg.channels_last else torch.preserve_format
    model = model.to(device, memory_format=memory_format)  # type: ignore[call-overload]
    sampler = GlobalBatchSampler(len(train_src), cfg.batch_size, d.world_size, d.rank, cfg.seed)
    state = RunState(
        model,
        torch.optim.SGD(
            parameter_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum
        ),
        torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16"),
        build_schedule(cfg, sampler.steps_per_epoch),
    )
    torch.manual_seed(cfg.seed + 1 + d.rank)  # the dropout stream
    if payload:
        state.restore(payload["train_state"], folder / "last.ckpt", device, d)
    criterion, count_errors = task_loss(cfg)
    parts = StepParts(
        wrap_for_training(model, cfg, d, device),
        state.optimizer,
        state.scaler,
        criterion,
        batch_normalizer(model, stats, cfg, device),
        devices.autocast(cfg.precision, device),
        device,
        d.enabled,
        count_errors,
    )
    loader, decode = training_batches(train_src, cfg, sampler, device)
    run = Run(cfg, d, folder, state, parts, sampler, loader, decode, val_src, resumed=bool(payload))
    run.announce(len(train_src), len(train_src.classes))
    return run


@dataclass
class Run:
    """A run in progress: its settings, state and parts, and the bookkeeping of its epoch."""

    cfg: TrainConfig
    d: Dist
    folder: Path
    state: RunState
    parts: StepParts
    sampler: GlobalBatchSampler
    loader: Any
    decode: Any  # the device-side decoder of encoded batches, or None
    val_src: Any
    resumed: bool = False
    val_loader: Any = None  # made at the first validation, right before its workers fork
    saved_step: int | None = None  # the step RUN/last.ckpt holds; the same on every rank
    stopped_by: str | None = None
    epoch_loss: float = 0.0
    epoch_images: int = 0
    shown_loss: float = math.nan  # the last loss read, for the progress bar
    tick: float = 0.0  # when the epoch began
    started: float = field(default_factory=time.perf_counter)  # when this process began the run
    first_step: int = 0  # the step this process began at (a resumed run's, or 0)
    losses: LaggedScalar[StepInfo] = field(init=False)
    skips: SkipCounter = field(init=False)
    log: MetricsLog | None = field(init=False)

    def __post_init__(self) -> None:
        self.first_step = self.state.step
        self.losses = LaggedScalar(self.parts.device)
        self.train_errors = torch.zeros((), dtype=torch.long, device=self.parts.device)
        self.skips = SkipCounter(self.cfg.strict, warn=self.warn)
        self.log = None
        if self.d.is_main:
            self.log = MetricsLog(self.folder, warn=self.warn, start_step=self.state.step)

    @property
    def last(self) -> Path:
        return self.folder / "last.ckpt"

    @property
    def max_steps(self) -> int:
        """The step this run stops at: --max-steps, or the end of --epochs."""
        if self.cfg.max_steps is not None:
            return self.cfg.max_steps
        return self.cfg.epochs * self.sampler.steps_per_epoch

    @property
    def q(self) -> int:
        """The validation scale: Q = S, or (Smin + Smax) / 2 (Table 3)."""
        return single_test_scale(parse_scale(self.cfg.scale, self.cfg.crop))

    def say(self, line: str) -> None:
        """Print on rank 0, between progress-bar redraws."""
        if self.d.is_main:
            tqdm.write(line)

    def warn(self, line: str) -> None:
        if self.d.is_main:
            tqdm.write(f"vggnet: warning: {line}", file=sys.stderr)

    def announce(self, images: int, classes: int) -> None:
        """The run's first line: what trains on what, where."""
        cfg, model = self.cfg, self.state.model
        what = model.spec.config
        if cfg.task == "localization":
            what += (
                f" to localise ({cfg.regression} boxes, fine-tuning {cfg.finetune_layers} layers)"
            )
        self.say(
            f"training {what} ({sum(p.numel() for p in model.parameters()):,} "
            f"parameters) on {cfg.data}: {images} images, {classes} classes, "
            f"S={parse_scale(cfg.scale, cfg.crop)}, crop {cfg.crop}, batch {cfg.batch_size} over "
            f"{self.d.world_size} process(es), {self.parts.device}, {cfg.precision}; {self.folder}"
            + (
                f"; resuming at step {self.state.step} (epoch {self.state.epoch + 1})"
                if self.resumed
                else ""
            )
        )

    def fit(self) -> dict[str, Any]:
        """Epochs until the schedule, --epochs or --max-steps ends the run, or a signal stops it."""
        state, cfg = self.state, self.cfg
        self.parts.net.train()
        with StopSignal() as signals, ExitStack() as at_exit:
            at_exit.callback(self.stop_workers)
            while state.epoch < cfg.epochs and not state.schedule.finished:
                if state.step >= self.max_steps:
                    break
                checkpoint_seconds = self.run_epoch(signals)
                train_seconds = time.perf_counter() - self.tick - checkpoint_seconds
                if self.stopped_by or state.step_in_epoch < self.sampler.steps_per_epoch:
                    break  # stopped mid-epoch (signal or --max-steps): the epoch resumes here
                self.end_epoch(train_seconds, checkpoint_seconds)
        if self.saved_step != state.step:  # state all ranks share: every rank joins the save
            self.save(self.last)
        return self.finish()

    def run_epoch(self, signals: StopSignal) -> float:
        """Steps until the epoch ends, --max-steps, or a signal; returns the checkpoint seconds."""
        state = self.state
        stop_at = state.step_in_epoch + (self.max_steps - state.step)
        self.sampler.set_epoch(state.epoch, state.step_in_epoch, stop_at)
        self.epoch_loss, self.epoch_images, self.tick = 0.0, 0, time.perf_counter()
        self.train_errors.zero_()
        checkpoint_seconds = 0.0
        with self.progress_bar() as bar:  # closed however the epoch ends: errors start clean
            for batch in self.loader:
                signalled = self.train_step(batch, signals)
                rate = self.epoch_images / max(time.perf_counter() - self.tick, 1e-9)
                postfix = {  # the loss of the step before: read without waiting
                    "loss": f"{self.shown_loss:.4f}" if math.isfinite(self.shown_loss) else "...",
                    "lr": f"{state.schedule.lr_at(state.step - 1):.1e}",
                    "img_s": f"{rate:.0f}",
                    "run_eta": self.run_eta(),
                }
                bar.set_postfix(postfix, refresh=False)  # drawn by update(), at its own pace
                bar.update()
                if signalled or state.step % self.cfg.checkpoint_every == 0:
                    mark = time.perf_counter()
                    self.save(self.last)
                    checkpoint_seconds += time.perf_counter() - mark
                if signalled:
                    self.stopped_by = signals.received or "a signal to another process"
                    break
        self.account(self.losses.take())  # the epoch's last step
        return checkpoint_seconds

    def progress_bar(self) -> tqdm | LogProgress:
        """The epoch's steps: a bar on a terminal, a line every half minute in a log."""
        state = self.state
        return progress(
            self.sampler.steps_per_epoch,
            f"epoch {state.epoch + 1}/{self.cfg.epochs}",
            "step",
            initial=state.step_in_epoch,
            enabled=self.d.is_main,
        )

    def run_eta(self) -> str:
        """Time left for the whole run, at this process's pace so far (validation included)."""
        done = self.state.step - self.first_step
        if done < 1:
            return "..."
        per_step = (time.perf_counter() - self.started) / done
        return format_duration(per_step * max(self.max_steps - self.state.step, 0))

    def train_step(self, batch: Any, signals: StopSignal) -> bool:
        """One optimiser step (see ``step.py``); returns whether some process was signalled.

        The previous step's loss is checked before this step's update is applied.
        """
        state, parts = self.state, self.parts
        if self.decode is not None:
            batch = self.decode(batch)
        self.skips(batch.skipped)
        x, labels = step_inputs(batch, parts, self.cfg, state.epoch)
        loss = forward_backward(parts, x, labels, self.cfg.accumulate, self.train_errors)
        lr = state.schedule.lr_at(state.step)
        images = len(labels) * self.d.world_size
        self.epoch_images += images
        info = StepInfo(
            state.step + 1,
            state.epoch + 1,
            lr,
            images,
            self.epoch_images,
            time.perf_counter() - self.tick,
        )
        signalled = self.account(self.losses.put(loss, info), signals.received is not None)
        apply_update(parts, lr)
        state.step += 1
        state.step_in_epoch += 1
        return signalled

    def account(self, read: tuple[float, StepInfo] | None, signalled: bool = False) -> bool:
        """Take in a step's loss once read: stop on a non-finite one (on every rank), log it.

        Returns whether some process received a stop signal.
        """
        nonfinite = read is not None and not math.isfinite(read[0])
        bad, stop = all_sum([float(nonfinite), float(signalled)], self.d, self.parts.device)
        if bad:
            self.fail_nonfinite(read)
        if read is not None:
            value, info = read
            self.shown_loss = value
            self.epoch_loss += value * info.images
            if self.log and (info.step % self.cfg.log_every == 0 or info.step == 1):
                rate = info.epoch_images / max(info.seconds, 1e-9)
                record = {"kind": "step", "step": info.step, "epoch": info.epoch}
                self.log.write({**record, "loss": value, "lr": info.lr, "images_per_s": rate})
        return bool(stop)

    def fail_nonfinite(self, read: tuple[float, StepInfo] | None) -> NoReturn:
        """Stop, naming the step whose loss was not finite (on some process)."""
        state = self.state
        value, info = (
            read if read is not None else (math.nan, StepInfo(state.step, state.epoch + 1))
        )
        kept = (
            f"{self.last} keeps the last good state"
            if self.last.exists()
            else "no checkpoint had been written yet"
        )
        raise VGGError(
            f"the loss is {value} at step {info.step} (epoch {info.epoch}); stopped "
            f"without saving what followed it, and {kept}: {divergence_hints(self.cfg)}"
        )

    def save(self, path: Path) -> None:
        """Write a checkpoint of the current state (all ranks gather RNG; rank 0 writes).

        The last step's loss is read first: a state that followed a non-finite loss is never written.
        """
        self.account(self.losses.take())
        if path.name == "last.ckpt":
            self.saved_step = self.state.step
        rngs = rng_state(self.parts.device, self.d)
        if self.d.is_main:
            train_state = self.state.saved(self.cfg, rngs, self.d.world_size)
            atomic_save(checkpoint_payload(self.state.model, {"train_state": train_state}), path)

    def end_epoch(self, train_seconds: float, checkpoint_seconds: float) -> None:
        """Validate, step the schedule, checkpoint (best.ckpt too if it improved), log the epoch."""
        state = self.state
        mark = time.perf_counter()
        if self.val_loader is None:
            self.val_loader = validation_loader(self.val_src, self.cfg, self.q, self.d)
        result = self.validate()
        val_seconds = time.perf_counter() - mark
        error = primary_error(result)
        action = state.schedule.step(error)
        state.epoch += 1
        state.step_in_epoch = 0
        improved = error < state.best_error
        state.best_error = min(state.best_error, error)
        record = {
            "kind": "epoch",
            "step": state.step,
            "epoch": state.epoch,
            "train_loss": self.epoch_loss / max(self.epoch_images, 1),
            "train_top1_error": self.train_error(),
            "lr": state.schedule.lr_at(state.step),
            "skipped": self.skips.count,
            "resident_mb": resident_mb(),
            **result,
        }
        mark = time.perf_counter()
        self.save(self.last)
        if improved and self.d.is_main:
            atomic_link(self.last, self.folder / "best.ckpt")  # the same state: no second write
        record["train_seconds"] = train_seconds
        record["val_seconds"] = val_seconds
        record["checkpoint_seconds"] = checkpoint_seconds + time.perf_counter() - mark
        if self.log:
            self.log.write(record)  # after the checkpoint: a resumed run never logs an epoch twice
        eta = self.run_eta()
        self.say(
            epoch_line(record, self.cfg, self.q, state.best_error, eta, self.skips.count, action)
        )

    def validate(self) -> dict[str, float | int]:
        """Centre-crop errors at Q: top-1 and top-5, or a localisation net's protocol (a)."""
        cfg = self.cfg
        if cfg.task == "localization":
            return validate_boxes(self.parts, self.val_loader, cfg.crop, self.q, self.d)
        return validate(self.parts, self.val_loader, cfg, self.d)

    def train_error(self) -> float:
        """The epoch's top-1 error on its training crops (augmented, dropout on), in percent."""
        wrong = all_sum([self.train_errors.item()], self.d, self.parts.device)[0]
        return 100.0 * wrong / max(self.epoch_images, 1)

    def finish(self) -> dict[str, Any]:
        """Close the log, draw the curves, say why the run ended; returns the run's summary."""
        state, cfg = self.state, self.cfg
        if self.log:
            self.log.close()
            plot_run(self.folder, warn=self.warn)
        if self.stopped_by:
            reason = f"stopped by {self.stopped_by}"
        elif state.schedule.finished:
            reason = "schedule finished"
        elif state.step >= self.max_steps and cfg.max_steps is not None:
            reason = f"reached --max-steps {cfg.max_steps}"
        else:
            reason = f"reached --epochs {cfg.epochs}"
        took = format_duration(time.perf_counter() - self.started)
        self.say(
            run_summary(self.folder, self.cfg, state, reason, took, self.resumed, self.stopped_by)
        )
        return {
            "step": state.step,
            "epoch": state.epoch,
            "best_val_top1_error": state.best_error,
            "reason": reason,
        }

    def stop_workers(self) -> None:
        """However the run ends, its loaders' workers end with it (not at some later GC)."""
        for used in (self.loader, self.val_loader):
            if used is not None:
                shut_down_workers(used)
