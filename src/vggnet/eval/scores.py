"""Per-image posteriors of every model, scale and part: the ``Scores`` container and its file.

What ``vggnet eval --save-scores`` writes and ``vggnet ensemble`` reads; scores from
several processes are gathered so that each image counts exactly once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist

from vggnet.data.loader import Skipped
from vggnet.distributed import Dist
from vggnet.errors import VGGError
from vggnet.serialization import atomic_save, safe_load

SCORES_FORMAT = "vggnet-scores"


@dataclass
class Scores:
    """Per-image posteriors of every model, scale and part, plus labels: what --save-scores keeps."""

    classes: list[str]
    labels: torch.Tensor
    indices: torch.Tensor
    checkpoints: list[str]
    parts: tuple[str, ...]
    flip: bool
    scales: list[list[int]]
    posteriors: list[torch.Tensor]  # per model: (scales, parts, N, K)
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    def combined(
        self, parts: tuple[str, ...] | None = None, scales: list[int] | None = None
    ) -> torch.Tensor:
        """The ensemble's posteriors: mean over parts and scales per model, then over models."""
        return torch.stack(self.per_model(parts, scales)).mean(0)

    def per_model(
        self, parts: tuple[str, ...] | None = None, scales: list[int] | None = None
    ) -> list[torch.Tensor]:
        """Each model's posteriors, averaged over the given parts and scales: the members."""
        parts = parts or self.parts
        p_idx = self.part_indices(parts)
        per_model = []
        for model_scales, post in zip(self.scales, self.posteriors, strict=True):
            s_idx = [i for i, q in enumerate(model_scales) if scales is None or q in scales]
            if not s_idx:
                raise VGGError(
                    f"saved scores have no {'/'.join(parts)} at scales {scales}: they hold "
                    f"{'/'.join(self.parts)} at {model_scales}"
                )
            per_model.append(post[s_idx][:, p_idx].mean(dim=(0, 1)))
        return per_model

    def at_scales(self, scales: list[int], name: str) -> Scores:
        """These scores at the test scales Q given only (each model's own Q, for an ensemble)."""
        kept = []
        for model_scales in self.scales:
            lacking = [q for q in scales if q not in model_scales]
            if lacking:
                raise VGGError(
                    f"{name} holds no scale {'/'.join(map(str, lacking))}: it was scored at "
                    f"{','.join(map(str, model_scales))} (choose from those with --scales)"
                )
            kept.append([model_scales.index(q) for q in scales])
        return replace(
            self,
            scales=[list(scales) for _ in self.scales],
            posteriors=[post[idx] for post, idx in zip(self.posteriors, kept, strict=True)],
        )

    def as_one_part(self, parts: tuple[str, ...], label: str, name: str) -> Scores:
        """These scores averaged over the given parts into one part called ``label``.

        Lets files scored with different protocols join one ensemble, each net with its own.
        """
        idx = self.part_indices(parts, name)
        return replace(
            self,
            parts=(label,),
            posteriors=[post[:, idx].mean(1, keepdim=True) for post in self.posteriors],
        )

    def part_indices(self, parts: tuple[str, ...], name: str = "") -> list[int]:
        """Where the given protocol parts lie in the posteriors; refuses parts not saved."""
        missing = [p for p in parts if p not in self.parts]
        if missing and name:
            raise VGGError(
                f"{name} holds no {'/'.join(missing)}: it was scored with "
                f"{'/'.join(self.parts)} (choose from those with --method)"
            )
        if missing:
            raise VGGError(
                f"saved scores have no {'/'.join(missing)}: they hold {'/'.join(self.parts)} "
                "(choose one of those with --method)"
            )
        return [self.parts.index(p) for p in parts]

    def with_parts(self, parts: tuple[str, ...]) -> Scores:
        """These scores for the protocol parts given only (the others dropped)."""
        idx = self.part_indices(parts)
        return replace(self, parts=parts, posteriors=[post[:, idx] for post in self.posteriors])

    def to_dict(self) -> dict:
        """Plain data for ``torch.save`` (loadable with weights_only)."""
        return {
            "format": SCORES_FORMAT,
            "version": 1,
            "classes": self.classes,
            "labels": self.labels,
            "indices": self.indices,
            "checkpoints": self.checkpoints,
            "parts": list(self.parts),
            "flip": self.flip,
            "scales": self.scales,
            "posteriors": self.posteriors,
            "skipped": [[s.name, s.reason] for s in self.skipped],
        }

    @classmethod
    def load(cls, path: str | os.PathLike) -> Scores:
        """Read a --save-scores file."""
        data = safe_load(path, "scores file")
        if not isinstance(data, dict) or data.get("format") != SCORES_FORMAT:
            raise VGGError(f"{path} is not a vggnet scores file (write one with --save-scores)")
        return cls(
            data["classes"],
            data["labels"],
            data["indices"],
            data["checkpoints"],
            tuple(data["parts"]),
            data["flip"],
            data["scales"],
            data["posteriors"],
            [Skipped(n, r) for n, r in data.get("skipped", [])],
        )


def gather_scores(scores: Scores, d: Dist) -> Scores:
    """All processes' scores on every rank, in image order (each image exactly once)."""
    if not d.enabled:
        return scores
    parts: list = [None] * d.world_size
    dist.all_gather_object(parts, scores)
    order = torch.argsort(torch.cat([p.indices for p in parts]))
    return Scores(
        scores.classes,
        torch.cat([p.labels for p in parts])[order],
        torch.cat([p.indices for p in parts])[order],
        scores.checkpoints,
        scores.parts,
        scores.flip,
        scores.scales,
        [
            torch.cat([p.posteriors[m] for p in parts], dim=2)[:, :, order]
            for m in range(len(scores.posteriors))
        ],
        [s for p in parts for s in p.skipped],
        max(p.seconds for p in parts),
    )


def save_scores(scores: Scores, path: str | os.PathLike) -> None:
    """Write per-image posteriors for later recombination (``vggnet ensemble``)."""
    atomic_save(scores.to_dict(), Path(path))


def merge_scores(files: list[Scores], names: list[str]) -> Scores:
    """One ensemble from several scores files of the same images (their models side by side).

    Keeps the protocol parts that every file holds, so that a dense-only file joins a
    dense + multi-crop one on dense.
    """
    first = files[0]
    parts = tuple(p for p in first.parts if all(p in f.parts for f in files))
    for other, name in zip(files[1:], names[1:], strict=True):
        if other.classes != first.classes:
            raise VGGError(f"{name} and {names[0]} have different class lists")
        if not torch.equal(other.indices, first.indices) or not torch.equal(
            other.labels, first.labels
        ):
            raise VGGError(
                f"{name} and {names[0]} scored different images: evaluate the same --data"
            )
        if other.flip != first.flip:
            raise VGGError(
                f"{name} was scored {'with' if other.flip else 'without'} flips, {names[0]} "
                f"{'with' if first.flip else 'without'}: score both the same way (--no-flip)"
            )
    if not parts:
        held = "; ".join(f"{n}: {'/'.join(f.parts)}" for f, n in zip(files, names, strict=True))
        raise VGGError(f"no protocol part is in every scores file ({held})")
    return Scores(
        first.classes,
        first.labels,
        first.indices,
        [c for f in files for c in f.checkpoints],
        parts,
        first.flip,
        [s for f in files for s in f.scales],
        [p for f in files for p in f.with_parts(parts).posteriors],
        first.skipped,
    )


def join_parts(first: Scores, second: Scores) -> Scores:
    """The same models' scores of two protocols as one (e.g. dense and multi-crop -> both).

    Lets a caller that wants each protocol's own rate also report their combination
    without scoring the first protocol twice.
    """
    same = (
        first.checkpoints == second.checkpoints
        and first.scales == second.scales
        and first.flip == second.flip
        and torch.equal(first.indices, second.indices)
    )
    if not same or set(first.parts) & set(second.parts):
        raise VGGError(
            "join_parts needs two passes of the same checkpoints, images, scales and flip "
            f"with different parts (got {'/'.join(first.parts)} and {'/'.join(second.parts)})"
        )
    return replace(
        first,
        parts=first.parts + second.parts,
        posteriors=[
            torch.cat(pair, dim=1) for pair in zip(first.posteriors, second.posteriors, strict=True)
        ],
        seconds=first.seconds + second.seconds,
    )
