"""One training step, top to bottom, and the validation pass after each epoch.

A step: a global batch (this process's share) -> device-side normalisation and colour
shift (and random erasing, if asked) -> forward under autocast -> cross-entropy ->
backward (micro-batches accumulate; DDP averages across processes) -> SGD with momentum.
The loss is read a step later (``LaggedScalar``), so the device never waits for the host;
``fit`` checks it is finite before the update is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vggnet.data import BatchNormalizer
from vggnet.data.erasing import erase, erasing_boxes
from vggnet.distributed import Dist, all_sum
from vggnet.metrics import error_percent, top_k_correct
from vggnet.train.config import TrainConfig
from vggnet.train.localization import box_targets


def top1_errors(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How many of a batch's top-1 predictions are wrong (a device count, no sync)."""
    return (scores.argmax(1) != labels).sum()


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
class StepParts:
    """What every training step uses besides the batch: the net and how to feed it."""

    net: nn.Module  # the model, or its DDP / compiled wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    normalizer: BatchNormalizer
    autocast: Any  # a context manager (bf16 / fp16 autocast, or nothing)
    device: torch.device
    distributed: bool
    # A batch's training errors, counted on the device: top-1 (or boxes with IoU <= 0.5).
    count_errors: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = top1_errors


def step_inputs(
    batch: Any, parts: StepParts, cfg: TrainConfig, epoch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader batch as network input on the device, and its labels."""
    device = parts.device
    images = batch.images.to(device, non_blocking=True)
    labels = batch.labels.to(device, non_blocking=True)
    if batch.boxes is not None:  # localisation: the class and its box
        labels = box_targets(labels, batch.boxes.to(device, non_blocking=True))
    alpha = batch.alpha.to(device, non_blocking=True) if cfg.lighting else None
    x = parts.normalizer(images, alpha)
    if cfg.random_erasing:
        height, width = x.shape[-2:]
        boxes = erasing_boxes(
            cfg.seed, epoch, batch.indices.numpy(), height, width, cfg.random_erasing
        )
        x = erase(x, torch.from_numpy(boxes))
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, labels


def forward_backward(
    parts: StepParts,
    x: torch.Tensor,
    labels: torch.Tensor,
    accumulate: int,
    errors: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gradients of the batch's mean loss, in ``accumulate`` micro-batches; returns the loss.

    Under DDP, gradients are averaged across processes on the last micro-batch only.
    ``errors``, a device counter, gains the batch's top-1 training errors (no sync).
    """
    parts.optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), device=parts.device)
    micro_batches = list(zip(x.chunk(accumulate), labels.chunk(accumulate), strict=True))
    for i, (xm, ym) in enumerate(micro_batches):
        last = i == len(micro_batches) - 1
        no_sync = parts.net.no_sync if parts.distributed and not last else nullcontext
        sync = no_sync()  # type: ignore[operator]  # DDP's no_sync
        with sync, parts.autocast:
            scores = parts.net(xm).float()
            loss = parts.criterion(scores, ym) * (len(ym) / len(labels))
        if errors is not None:
            errors += parts.count_errors(scores.detach(), ym)
        parts.scaler.scale(loss).backward()
        loss_sum += loss.detach()
    return loss_sum


def apply_update(parts: StepParts, lr: float) -> None:
    """The SGD step at learning rate ``lr`` (through the fp16 scaler when it is on)."""
    for group in parts.optimizer.param_groups:
        group["lr"] = lr
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()


def validate(parts: StepParts, loader: Any, cfg: TrainConfig, d: Dist) -> dict[str, float | int]:
    """Centre-crop top-1 / top-5 error at test scale Q over this process's shard, summed over all."""
    correct1 = correct5 = total = skipped = 0
    model = parts.net
    model.eval()
    with torch.no_grad(), parts.autocast:
        for batch in loader:
            skipped += len(batch.skipped)
            if not len(batch.labels):
                continue
            x = parts.normalizer(batch.images.to(parts.device, non_blocking=True))
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            scores = model(x).float()
            c1, c5 = top_k_correct(scores, batch.labels.to(parts.device), (1, 5))
            correct1, correct5, total = correct1 + c1, correct5 + c5, total + len(batch.labels)
    model.train()
    sums = all_sum([correct1, correct5, total, skipped], d, parts.device)
    correct1, correct5, total, skipped = (int(v) for v in sums)
    return {
        "val_top1_error": error_percent(correct1, total),
        "val_top5_error": error_percent(correct5, total),
        "val_images": total,
        "val_skipped": skipped,
    }
