"""The input pipeline: sources -> per-image transforms -> exact global batches -> device normalisation."""

from vggnet.data.geometry import Scale, default_test_scales, parse_scale, single_test_scale
from vggnet.data.loader import (
    Batch,
    RescaledSet,
    SkipCounter,
    Skipped,
    TrainSet,
    center_loader,
    collate,
    train_loader,
)
from vggnet.data.sampler import GlobalBatchSampler, shard_indices
from vggnet.data.sources import open_source
from vggnet.data.stats import ChannelStats, compute_stats
from vggnet.data.transforms import BatchNormalizer, TrainTransform, center_crop, grid_crops, rescale

__all__ = [
    "Batch",
    "BatchNormalizer",
    "ChannelStats",
    "GlobalBatchSampler",
    "RescaledSet",
    "Scale",
    "SkipCounter",
    "Skipped",
    "TrainSet",
    "TrainTransform",
    "center_crop",
    "center_loader",
    "collate",
    "compute_stats",
    "default_test_scales",
    "grid_crops",
    "open_source",
    "parse_scale",
    "rescale",
    "shard_indices",
    "single_test_scale",
    "train_loader",
]
