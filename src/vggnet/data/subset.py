"""The first N images of a source, spread over its classes: quick checks on a big split."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from vggnet.data.sources import Source
from vggnet.errors import VGGError


def stratified_indices(labels: np.ndarray, limit: int) -> np.ndarray:
    """``limit`` indices taken class by class in turn, each class's images in source order.

    Deterministic: the same labels and limit give the same images. Each class gets
    ``limit // K`` images or one more (fewer if it has fewer), so a limited score is an
    unbiased sample of every class, unlike the first N of a class-sorted folder.
    Returns the chosen indices in increasing order.
    """
    if limit < 1:
        raise VGGError(f"--limit {limit}: give a number of images >= 1")
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    depth = max((len(c) for c in by_class), default=0)
    ranked = [c[r] for r in range(depth) for c in by_class if r < len(c)]
    return np.sort(np.asarray(ranked[:limit], dtype=np.int64))


@dataclass
class SubsetSource:
    """The images ``indices`` of ``source``, with the same interface (labels, classes,
    channels, ``name``, ``read``), numbered from 0."""

    source: Source
    indices: np.ndarray
    labels: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.source.labels)[self.indices]
        self.classes = self.source.classes
        self.channels = self.source.channels

    def __len__(self) -> int:
        return len(self.indices)

    def name(self, i: int) -> str:
        return self.source.name(int(self.indices[i]))

    def read(self, i: int, min_short_side: int | None = None) -> tuple[Tensor, tuple[int, int]]:
        return self.source.read(int(self.indices[i]), min_short_side)


def limit_source(source: Source, limit: int | None) -> Source | SubsetSource:
    """``source`` itself without a limit, or its stratified first ``limit`` images."""
    if limit is None or limit >= len(source):
        return source
    return SubsetSource(source, stratified_indices(source.labels, limit))
