"""What a run is built from: its data, its network, optimiser, schedule and loaders.

Each function makes one part from the run's ``TrainConfig``; ``fit`` puts them together.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vggnet.card import Card
from vggnet.checkpoint import load_checkpoint, load_weights
from vggnet.data import (
    BatchNormalizer,
    GlobalBatchSampler,
    TrainTransform,
    center_loader,
    open_source,
    parse_scale,
    shard_indices,
    train_loader,
)
from vggnet.data.boxes import box_source
from vggnet.data.gpu import DeviceDecoder, encoded_train_loader
from vggnet.data.sources import FashionMNISTSource, FolderSource
from vggnet.data.stats import ChannelStats, cached_stats, compute_stats
from vggnet.distributed import Dist, broadcast_object
from vggnet.errors import VGGError
from vggnet.model import VGG, build_model
from vggnet.model.init import init_from_shallower
from vggnet.model.localization import freeze_convolutions, localization_net
from vggnet.schedule import LinearSchedule, PlateauSchedule
from vggnet.train.config import TrainConfig
from vggnet.train.localization import BoxLoss, box_errors, box_validation_loader
from vggnet.train.step import top1_errors


def build_schedule(cfg: TrainConfig, steps_per_epoch: int) -> PlateauSchedule | LinearSchedule:
    """The run's learning-rate schedule (--schedule); a linear one ends with --epochs."""
    assert cfg.lr is not None, "a resolved config"
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
    model.card = Card(
        stats.preprocessing(standardize=cfg.normalize == "standard"),
        tuple(classes),
        (scale.smin, scale.smax),
    )
    if cfg.init_from:
        init_from_shallower(model, load_checkpoint(cfg.init_from))
    if cfg.finetune_from:
        source = load_checkpoint(cfg.finetune_from)
        if source.classes is not None and source.classes != model.classes:
            raise VGGError(f"--finetune-from {cfg.finetune_from} was trained on other classes")
        if source.card.box_regression is not None:
            raise VGGError(
                f"--finetune-from {cfg.finetune_from} is a localisation net: "
                "start from a classification net"
            )
        load_weights(model, source.state_dict(), f"--finetune-from {cfg.finetune_from}")
    if cfg.task == "localization":
        model = localization_net(model, cfg.regression, cfg.init)
        freeze_convolutions(model, cfg.finetune_layers)
    return model


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv and FC weights only; biases and batch-norm parameters are not decayed."""
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def default_workers(source: Any) -> int:
    """Loader processes: none for in-memory Fashion-MNIST, else up to 8."""
    if isinstance(source, FashionMNISTSource):
        return 0
    return min(8, os.cpu_count() or 1)


def shared_stats(source: Any, stats_file: Path, key: str, d: Dist) -> tuple[ChannelStats, bool]:
    """The training set's colour statistics: cached or computed by rank 0, sent to every process.

    Returns the statistics and whether they were computed now (and so still to be saved).
    """
    stats = cached_stats(stats_file, key, len(source)) if d.is_main else None
    fresh = d.is_main and stats is None
    if fresh:
        stats = compute_stats(source)
    shared = broadcast_object(stats, d)
    assert shared is not None
    return shared, fresh


def wrap_for_training(model: VGG, cfg: TrainConfig, d: Dist, device: torch.device) -> nn.Module:
    """The module the steps call: the model, under DDP with several processes, compiled if asked."""
    net: nn.Module = model
    if d.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    return net


def training_batches(
    source: Any, cfg: TrainConfig, sampler: GlobalBatchSampler, device: torch.device
) -> tuple[Any, Any]:
    """The training loader, and the decoder its batches need on the device (None on the CPU).

    On CUDA, folder images travel encoded and are decoded on the GPU.
    """
    transform = TrainTransform(parse_scale(cfg.scale, cfg.crop), cfg.crop, cfg.seed)
    workers = cfg.workers if cfg.workers is not None else default_workers(source)
    boxes = cfg.task == "localization"  # boxes travel with decoded crops (CPU decoding)
    if device.type == "cuda" and isinstance(source, FolderSource) and not boxes:
        loader = encoded_train_loader(source, transform, sampler, workers)
        return loader, DeviceDecoder(cfg.crop, device)
    return train_loader(source, transform, sampler, workers, device.type == "cuda", boxes), None


def batch_normalizer(
    model: VGG, stats: ChannelStats, cfg: TrainConfig, device: torch.device
) -> BatchNormalizer:
    """Device-side normalisation, with the PCA colour shift unless --no-lighting."""
    return BatchNormalizer(
        model.preprocessing,
        torch.tensor(stats.pc_std) if cfg.lighting else None,
        torch.tensor(stats.eigvecs) if cfg.lighting else None,
    ).to(device)


def validation_loader(source: Any, cfg: TrainConfig, q: int, d: Dist) -> Any:
    """Centre crops at Q of this process's shard of the validation images (made once per run);
    for a localisation run, the images at Q with their boxes."""
    indices = shard_indices(len(source), d.world_size, d.rank)
    workers = cfg.workers if cfg.workers is not None else default_workers(source)
    if cfg.task == "localization":
        return box_validation_loader(source, q, cfg.val_batch_size or cfg.batch_size, workers, d)
    return center_loader(
        source, q, cfg.crop, indices, cfg.val_batch_size or cfg.batch_size, workers
    )


def run_sources(cfg: TrainConfig, warn: Callable[[str], None]) -> tuple[Any, Any]:
    """The run's training and validation sources; a localisation run's carry boxes."""
    train_src = open_source(cfg.data, "train")
    val_src = open_source(cfg.data, "val", cfg.val_labels)
    if cfg.task != "localization":
        return train_src, val_src
    boxed = [box_source(src, cfg.boxes, cfg.strict) for src in (train_src, val_src)]
    for split, src in zip(("train", "val"), boxed, strict=True):
        if src.missing:
            warn(f"skipped {src.missing} {split} images with no box in --boxes {cfg.boxes}")
    return boxed[0], boxed[1]


def task_loss(
    cfg: TrainConfig,
) -> tuple[nn.Module, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """The run's loss and its training-error count: cross-entropy and top-1, or the box loss
    and boxes with IoU <= 0.5."""
    if cfg.task == "localization":
        return BoxLoss(cfg.regression), partial(box_errors, regression=cfg.regression)
    return nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing), top1_errors
