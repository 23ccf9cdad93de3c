"""Training-set colour statistics: mean pixel and the RGB covariance's principal components."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vggnet.data.images import BadImage
from vggnet.errors import VGGError
from vggnet.preprocessing import Preprocessing
from vggnet.serialization import atomic_write_text

# Large sets are estimated from a random sample of this many images (all their pixels).
SAMPLE_IMAGES = 10_000


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel mean, covariance and its eigen-decomposition, in 0..1 pixel units."""

    mean: list[float]
    cov: list[list[float]]
    pc_std: list[float]  # sqrt of the covariance's eigenvalues, largest first
    eigvecs: list[list[float]]  # columns are the principal components
    images: int
    sampled: bool
    skipped: int = 0

    def preprocessing(self, standardize: bool = False) -> Preprocessing:
        """The paper's preprocessing for this data: subtract the mean pixel from 0..255 values.

        With ``standardize``, also divide by each channel's standard deviation (unit-variance
        input, which the Glorot and He initialisations assume).
        """
        if not standardize:
            return Preprocessing.paper(tuple(m * 255 for m in self.mean))
        std = tuple(max(self.cov[i][i], 1e-12) ** 0.5 for i in range(len(self.mean)))
        order = "L" if len(self.mean) == 1 else "RGB"
        return Preprocessing(tuple(self.mean), std, order)

    def to_dict(self) -> dict:
        """Plain data for JSON and checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ChannelStats:
        """Inverse of ``to_dict``."""
        return cls(**data)


def _finish(
    total: np.ndarray, outer: np.ndarray, count: int, images: int, sampled: bool, skipped: int
) -> ChannelStats:
    if count == 0:
        raise VGGError("no readable images to compute statistics from")
    mean = total / count
    cov = outer / count - np.outer(mean, mean)
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = np.argsort(eigvals)[::-1]
    return ChannelStats(
        mean=mean.tolist(),
        cov=cov.tolist(),
        pc_std=np.sqrt(np.clip(eigvals[order], 0, None)).tolist(),
        eigvecs=eigvecs[:, order].tolist(),
        images=images,
        sampled=sampled,
        skipped=skipped,
    )


def compute_stats(source, max_images: int = SAMPLE_IMAGES, seed: int = 0) -> ChannelStats:
    """Mean and covariance of the pixels of ``source`` (all images, or a random sample if larger)."""
    if hasattr(source, "images"):  # in-memory sets: exact, vectorised
        pixels = (
            source.images.reshape(len(source.images), -1, source.channels).astype(np.float64) / 255
        )
        pixels = pixels.reshape(-1, source.channels)
        return _finish(pixels.sum(0), pixels.T @ pixels, len(pixels), len(source.images), False, 0)
    n = len(source)
    sampled = n > max_images
    indices = (
        np.sort(np.random.default_rng(seed).choice(n, max_images, replace=False))
        if sampled
        else range(n)
    )
    channels = source.channels
    total, outer, count, skipped = np.zeros(channels), np.zeros((channels, channels)), 0, 0
    for i in indices:
        try:
            image, _ = source.read(int(i))
        except BadImage:
            skipped += 1
            continue
        pixels = image.reshape(channels, -1).T.numpy().astype(np.float64) / 255
        total += pixels.sum(0)
        outer += pixels.T @ pixels
        count += len(pixels)
    return _finish(total, outer, count, len(indices), sampled, skipped)


def cached_stats(cache: str | os.PathLike, key: str, split_images: int) -> ChannelStats | None:
    """The statistics ``cache`` holds if they were computed for ``key`` and this many images."""
    if not Path(cache).is_file():
        return None
    try:
        data = json.loads(Path(cache).read_text())
        if data.get("key") == key and data.get("split_images") == split_images:
            return ChannelStats.from_dict(data["stats"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # a stale or damaged cache is recomputed
    return None


def save_stats(stats: ChannelStats, path: str | os.PathLike, key: str, split_images: int) -> None:
    """Write the statistics as JSON, atomically."""
    text = json.dumps(
        {"key": key, "split_images": split_images, "stats": stats.to_dict()}, indent=1
    )
    atomic_write_text(path, text)
