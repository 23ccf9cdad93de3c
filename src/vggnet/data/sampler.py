"""Exact global batches for any number of processes, and a validation split without duplicates."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from vggnet.errors import VGGError

SAMPLER_STREAM = 1  # keeps the shuffle's stream apart from the per-image augmentation streams


class GlobalBatchSampler:
    """Yields, for each step, this rank's slice of the global batch as (epoch, index) pairs.

    The global batch of step t is a pure function of (seed, epoch, t); rank r of W gets
    its r-th contiguous share, so the union over ranks at every step is exactly the
    single-process batch. The last incomplete batch of an epoch is dropped, so every
    step has the full global batch. ``set_epoch(epoch, start_step)`` resumes mid-epoch.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if batch_size < 1:
            raise VGGError(f"--batch-size must be >= 1, got {batch_size}")
        if batch_size % world_size:
            raise VGGError(
                f"--batch-size {batch_size} is not divisible by the {world_size} processes: "
                f"use a multiple of {world_size}"
            )
        if num_samples < batch_size:
            raise VGGError(
                f"the training split has {num_samples} images, fewer than one batch of {batch_size}"
            )
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.start_step = 0
        self.stop_step: int | None = None

    @property
    def steps_per_epoch(self) -> int:
        """Full global batches per epoch."""
        return self.num_samples // self.batch_size

    def set_epoch(self, epoch: int, start_step: int = 0, stop_step: int | None = None) -> None:
        """Choose the epoch (its shuffle), the step to start from (resuming) and to stop before."""
        self.epoch = epoch
        self.start_step = start_step
        self.stop_step = stop_step

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's sample order."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng((SAMPLER_STREAM, self.seed, epoch)).permutation(
            self.num_samples
        )

    def global_batch(self, epoch: int, step: int) -> np.ndarray:
        """Indices of the whole batch of ``step`` (all ranks together)."""
        return self.order(epoch)[step * self.batch_size : (step + 1) * self.batch_size]

    def _end(self) -> int:
        end = self.steps_per_epoch
        return end if self.stop_step is None else max(self.start_step, min(end, self.stop_step))

    def __len__(self) -> int:
        return self._end() - self.start_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self.order(self.epoch)
        local = self.batch_size // self.world_size
        for step in range(self.start_step, self._end()):
            start = step * self.batch_size + self.rank * local
            yield [(self.epoch, int(i)) for i in order[start : start + local]]


def shard_indices(num_samples: int, world_size: int = 1, rank: int = 0) -> range:
    """Rank ``rank``'s contiguous share of ``num_samples`` for evaluation: no padding, no repeats."""
    return range(rank * num_samples // world_size, (rank + 1) * num_samples // world_size)
