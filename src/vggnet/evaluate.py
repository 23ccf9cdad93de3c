"""The paper's test protocols (section 3): centre crop, dense, multi-crop, scales, flips, ensembles.

Every protocol ends in soft-max posteriors, and combinations average posteriors: over
an image and its mirror, over the crops of a grid, over test scales Q, over dense and
multi-crop, and over the models of an ensemble (each model weighted equally, each
with its own preprocessing). Each image is decoded once and rescaled once per scale,
whatever the number of models, crops and flips.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from itertools import accumulate
from pathlib import Path

import torch
import torch.distributed as dist

from vggnet.checkpoint import load_checkpoint
from vggnet.data import open_source
from vggnet.data.geometry import Scale, default_test_scales, single_test_scale
from vggnet.data.images import BadImage, decode_image
from vggnet.data.loader import Skipped, split_skipped, views_loader
from vggnet.data.sampler import shard_indices
from vggnet.data.transforms import BatchNormalizer, center_crop, distinct_grid_crops, rescale
from vggnet.devices import (
    default_device,
    inference_context,
    inference_precision,
    resolve_device,
)
from vggnet.distributed import Dist, process_group
from vggnet.errors import VGGError
from vggnet.metrics import confusion_matrix, error_percent, label_rank, top_k_correct
from vggnet.model import VGG, fold_batch_norm, to_dense
from vggnet.serialization import atomic_save, safe_load

METHODS = ("center", "dense", "multi-crop", "dense+multi-crop")
PARTS = {
    "center": ("center",),
    "dense": ("dense",),
    "multi-crop": ("multi-crop",),
    "dense+multi-crop": ("dense", "multi-crop"),
}
SCORES_FORMAT = "vggnet-scores"


@dataclass
class Protocol:
    """How to score an image: method, test scales per model (None: each model's default), flip, grid."""

    method: str = "dense"
    scales: list[int] | None = None
    flip: bool = True
    grid: int = 5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise VGGError(f"--method {self.method}: choose one of {', '.join(METHODS)}")
        if self.grid < 1:
            raise VGGError(f"--grid must be >= 1, got {self.grid}")


@dataclass
class ScoredModel:
    """A network ready to score images: eval mode, on its device, with its preprocessing."""

    model: VGG
    normalizer: BatchNormalizer
    scales: list[int]
    name: str
    channels_last: bool = False


def model_scales(model: VGG, protocol: Protocol) -> list[int]:
    """The test scales for a model: the protocol's, or Table 4's rule for its training scale."""
    if protocol.scales:
        scales = list(protocol.scales)
    elif model.train_scale is not None:
        scales = default_test_scales(Scale(*model.train_scale), model.spec.crop_size)
    else:
        raise VGGError("the checkpoint stores no training scale: pass --scales Q[,Q...]")
    crop = model.spec.crop_size
    small = [q for q in scales if q < crop]
    if small:
        raise VGGError(
            f"test scale Q={small[0]} is smaller than the crop {crop}: every Q must be >= {crop}"
        )
    return scales


def prepare(
    model: VGG, protocol: Protocol, device: torch.device, name: str, channels_last: bool = False
) -> ScoredModel:
    """Put a model in eval mode on ``device`` with a normaliser for its own preprocessing."""
    fmt = torch.channels_last if channels_last else torch.preserve_format
    model = fold_batch_norm(model.eval()).to(device, memory_format=fmt).eval()  # type: ignore[call-overload]
    normalizer = BatchNormalizer(model.preprocessing).to(device)
    return ScoredModel(model, normalizer, model_scales(model, protocol), name, channels_last)


def _forward(sm: ScoredModel, images: torch.Tensor, dense: bool, batch_size: int) -> torch.Tensor:
    """Class scores (N, K) of uint8 images: plain net (crops) or averaged score maps (dense)."""
    device = next(sm.model.parameters()).device
    out = []
    for chunk in images.split(batch_size):
        x = sm.normalizer(chunk.to(device, non_blocking=True))
        if sm.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        scores = to_dense(sm.model)(x).mean(dim=(2, 3)) if dense else sm.model(x)
        out.append(scores.float())
    return torch.cat(out)


def center_posteriors(sm: ScoredModel, images: list[torch.Tensor], batch_size: int) -> torch.Tensor:
    """Soft-max posteriors of the centre crop of each (already rescaled) image."""
    crop = sm.model.spec.crop_size
    batch = torch.stack([center_crop(image, crop) for image in images])
    return _forward(sm, batch, False, batch_size).softmax(1)


def multicrop_posteriors(
    sm: ScoredModel, images: list[torch.Tensor], grid: int, flip: bool, batch_size: int
) -> torch.Tensor:
    """Posteriors averaged over a grid x grid of crops of each image (and their mirrors)."""
    crop = sm.model.spec.crop_size
    distinct = [distinct_grid_crops(image, crop, grid) for image in images]
    crops = torch.cat([c for c, _ in distinct])  # (windows, C, s, s): repeats scored once
    starts = accumulate((len(c) for c, _ in distinct[:-1]), initial=0)
    cells = torch.stack(
        [cell + start for (_, cell), start in zip(distinct, starts, strict=True)]
    )  # (N, G*G)
    posteriors = _forward(sm, crops, False, batch_size).softmax(1)
    if flip:  # the mirrors: another pass, not a second copy of every crop
        posteriors = (posteriors + _forward(sm, crops.flip(-1), False, batch_size).softmax(1)) / 2
    return posteriors[cells.to(posteriors.device)].mean(1)


def group_by_size(images: list[torch.Tensor]) -> list[list[int]]:
    """Indices of the images, grouped so that each group has one shape and batches as one tensor."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, image in enumerate(images):
        groups[tuple(image.shape)].append(i)
    return list(groups.values())


def dense_posteriors(
    sm: ScoredModel, images: list[torch.Tensor], flip: bool, batch_size: int
) -> torch.Tensor:
    """Posteriors of the spatially averaged class score map of each whole image (and mirror).

    Images are batched by size; the result keeps the input order.
    """
    result: list[torch.Tensor | None] = [None] * len(images)
    for indices in group_by_size(images):
        batch = torch.stack([images[i] for i in indices])
        posteriors = _forward(sm, batch, True, batch_size).softmax(1)
        if flip:
            posteriors = (
                posteriors + _forward(sm, batch.flip(-1), True, batch_size).softmax(1)
            ) / 2
        for i, p in zip(indices, posteriors, strict=True):
            result[i] = p
    return torch.stack([p for p in result if p is not None])  # every index is in one group


def part_posteriors(
    sm: ScoredModel, part: str, images: list[torch.Tensor], protocol: Protocol, batch_size: int
) -> torch.Tensor:
    """Posteriors (N, K) of one protocol part at one scale."""
    if part == "center":
        return center_posteriors(sm, images, batch_size)
    if part == "dense":
        return dense_posteriors(sm, images, protocol.flip, batch_size)
    return multicrop_posteriors(sm, images, protocol.grid, protocol.flip, batch_size)


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


def check_classes(
    models: list[VGG], names: list[str], data_classes: list[str], by_index: bool
) -> list[str]:
    """The shared class list of an ensemble, checked against the data's; returns the model classes."""
    lists = []
    for model, name in zip(models, names, strict=True):
        classes = model.classes
        if classes is None:
            if model.spec.num_classes != len(data_classes):
                raise VGGError(
                    f"{name} has {model.spec.num_classes} outputs and no class names, "
                    f"the data {len(data_classes)} classes"
                )
            classes = list(data_classes)
        lists.append(list(classes))
    for classes, name in zip(lists[1:], names[1:], strict=True):
        if classes != lists[0]:
            raise VGGError(
                f"{name} and {names[0]} have different class lists: an ensemble needs the same classes"
            )
    classes = lists[0]
    if sorted(classes) != sorted(data_classes):
        if by_index and len(classes) == len(data_classes):
            return classes
        missing = sorted(set(data_classes) - set(classes))[:3]
        raise VGGError(
            f"{names[0]}'s classes differ from the data's (e.g. data class "
            f"{missing[0] if missing else '?'!r} is not among the model's {len(classes)}); "
            "pass --class-order index to match them by sorted position"
            if len(classes) == len(data_classes)
            else f"{names[0]} has {len(classes)} classes, the data {len(data_classes)}"
        )
    return classes


def label_map(model_classes: list[str], data_classes: list[str]) -> torch.Tensor:
    """Data label -> model output index (by name; by position when the names differ)."""
    position = {c: i for i, c in enumerate(model_classes)}
    if all(c in position for c in data_classes):
        return torch.tensor([position[c] for c in data_classes])
    return torch.arange(len(data_classes))


def score_images(
    models: list[ScoredModel],
    source,
    protocol: Protocol,
    classes: list[str],
    d: Dist | None = None,
    batch_size: int = 32,
    workers: int = 0,
    precision: str = "fp32",
    progress: bool = False,
) -> Scores:
    """Posteriors of every model, scale and part for this process's share of ``source``."""
    d = d or Dist()
    parts = PARTS[protocol.method]
    all_scales = sorted({q for sm in models for q in sm.scales})
    indices = shard_indices(len(source), d.world_size, d.rank)
    loader = views_loader(source, all_scales, indices, batch_size, workers)
    to_model = label_map(classes, source.classes)
    device = next(models[0].model.parameters()).device
    store: list[list[list[list[torch.Tensor]]]] = [
        [[[] for _ in parts] for _ in sm.scales] for sm in models
    ]
    labels, kept, skipped = [], [], []
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(indices),
            desc="evaluating",
            unit="img",
            dynamic_ncols=True,
            leave=False,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,  # quiet in logs and pipes
        )
    with inference_context(precision, device):
        for items in loader:
            good, bad = split_skipped(items)
            skipped += bad
            if bar:
                bar.update(len(items))
            if not good:
                continue
            for m, sm in enumerate(models):
                for s, q in enumerate(sm.scales):
                    images = [views[all_scales.index(q)] for views, _, _ in good]
                    for p, part in enumerate(parts):
                        store[m][s][p].append(
                            part_posteriors(sm, part, images, protocol, batch_size).cpu()
                        )
            labels += [int(to_model[label]) for _, label, _ in good]
            kept += [index for _, _, index in good]
    if bar:
        bar.close()
    k = len(classes)
    posteriors = [
        torch.stack(
            [
                torch.stack(
                    [torch.cat(chunks) if chunks else torch.empty(0, k) for chunks in by_part]
                )
                for by_part in by_scale
            ]
        )
        for by_scale in store
    ]
    return Scores(
        classes,
        torch.tensor(labels, dtype=torch.long),
        torch.tensor(kept, dtype=torch.long),
        [sm.name for sm in models],
        parts,
        protocol.flip and protocol.method != "center",
        [list(sm.scales) for sm in models],
        posteriors,
        skipped,
        time.perf_counter() - start,
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


def errors(posteriors: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Top-1 and top-5 error in percent."""
    c1, c5 = top_k_correct(posteriors, labels, (1, 5))
    return {
        "top1_error": error_percent(c1, len(labels)),
        "top5_error": error_percent(c5, len(labels)),
    }


def shared_errors(scores: Scores, parts: tuple[str, ...] | None = None) -> dict:
    """How alike an ensemble's members err: top-1 errors of each, of each pair, of all, of any.

    Averaging seldom rights an image that every member gets wrong, so members that
    share most of their errors gain little from being averaged.
    """
    wrong = [label_rank(p, scores.labels) > 0 for p in scores.per_model(parts)]
    stacked = torch.stack(wrong)
    return {
        "members": scores.checkpoints,
        "images": len(scores.labels),
        "wrong": [int(w.sum()) for w in wrong],
        "shared": [[int((a & b).sum()) for b in wrong] for a in wrong],
        "wrong_for_all": int(stacked.all(0).sum()),
        "wrong_for_any": int(stacked.any(0).sum()),
    }


def format_shared_errors(overlap: dict) -> str:
    """A terminal table of ``shared_errors``: members' errors and the ones each pair shares."""
    n = len(overlap["members"])
    width = max(len(m) for m in overlap["members"])
    head = f"{'member':<{width + 4}} {'wrong':>6}  " + " ".join(f"{j + 1:>6}" for j in range(n))
    lines = [
        f"top-1 errors of each member and shared by each pair, of {overlap['images']} images",
        head,
    ]
    for i, (name, row) in enumerate(zip(overlap["members"], overlap["shared"], strict=True)):
        cells = " ".join(f"{'-' if i == j else c:>6}" for j, c in enumerate(row))
        lines.append(f"{i + 1:>2}  {name:<{width}} {overlap['wrong'][i]:>6}  {cells}")
    lines.append(
        f"wrong for every member: {overlap['wrong_for_all']}; "
        f"for at least one: {overlap['wrong_for_any']}"
    )
    return "\n".join(lines)


def class_errors(scores: Scores, parts: tuple[str, ...] | None = None) -> dict:
    """Top-1 error of each class and the confusion matrix: which classes a net mistakes for which."""
    matrix = confusion_matrix(scores.combined(parts), scores.labels)
    images = matrix.sum(1)
    wrong = images - matrix.diagonal()
    return {
        "classes": list(scores.classes),
        "images": images.tolist(),
        "top1_error": [
            error_percent(int(n - w), int(n)) if n else None
            for n, w in zip(images, wrong, strict=True)
        ],
        "confusion": matrix.tolist(),
    }


def format_class_errors(per_class: dict, top: int = 5) -> str:
    """A terminal table of ``class_errors``: each class's error, what it is most often taken for."""
    classes, matrix = per_class["classes"], per_class["confusion"]
    # (-count, true, predicted), most frequent first; ties go to the lower class index
    pairs = sorted(
        (-count, i, j)
        for i, row in enumerate(matrix)
        for j, count in enumerate(row)
        if i != j and count
    )
    taken: dict[int, str] = {}
    for count, i, j in pairs:
        taken.setdefault(i, f"{classes[j]} ({-count})")
    width = max(len("class"), *(len(c) for c in classes))
    lines = [f"{'class':<{width}} {'images':>7} {'top-1 error %':>14}  most often taken for"]
    for i, name in enumerate(classes):
        error = per_class["top1_error"][i]
        shown = "-" if error is None else f"{error:.2f}"
        lines.append(
            f"{name:<{width}} {per_class['images'][i]:>7} {shown:>14}  {taken.get(i, '-')}"
        )
    common = ", ".join(f"{classes[i]} as {classes[j]} {-c}" for c, i, j in pairs[:top])
    lines.append(f"most common errors (true as predicted, images): {common or 'none'}")
    return "\n".join(lines)


def load_models(
    paths: list[str], protocol: Protocol, device: torch.device, channels_last: bool = False
) -> list[ScoredModel]:
    """Load checkpoints (never running code from them) and prepare them for scoring."""
    return [
        prepare(load_checkpoint(p, map_location="cpu"), protocol, device, str(p), channels_last)
        for p in paths
    ]


def save_scores(scores: Scores, path: str | os.PathLike) -> None:
    """Write per-image posteriors for later recombination (``vggnet ensemble``)."""
    atomic_save(scores.to_dict(), Path(path))


def result_row(scores: Scores, method: str, parts=None, scales=None) -> dict:
    """One row of results: protocol, scales, flip, errors, images, images/s."""
    combined = scores.combined(parts, scales)
    used = [[q for q in s if scales is None or q in scales] for s in scores.scales]
    return {
        "method": method,
        "scales": used[0] if all(u == used[0] for u in used) else used,
        "flip": scores.flip,
        "checkpoints": scores.checkpoints,
        "images": len(scores.labels),
        "skipped": len(scores.skipped),
        **errors(combined, scores.labels),
        "images_per_s": len(scores.labels) / scores.seconds if scores.seconds else None,
    }


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


def format_results(rows: list[dict]) -> str:
    """A terminal table: protocol, scales, top-1 / top-5 error, images, images/s."""
    texts = [_scales_text(r["scales"]) for r in rows]
    method_w = max([18, *(len(r["method"]) for r in rows)])
    scales_w = max([22, *map(len, texts)])
    lines = [
        f"{'protocol':{method_w}s} {'scales':{scales_w}s} {'flip':5s} {'top-1 err %':>11s} {'top-5 err %':>11s} {'images':>7s} {'img/s':>8s}"
    ]
    for r, text in zip(rows, texts, strict=True):
        speed = f"{r['images_per_s']:8.1f}" if r.get("images_per_s") else f"{'-':>8s}"
        lines.append(
            f"{r['method']:{method_w}s} {text:{scales_w}s} {'yes' if r['flip'] else 'no':5s} {r['top1_error']:11.2f} "
            f"{r['top5_error']:11.2f} {r['images']:7d} {speed}"
        )
    return "\n".join(lines)


def _scales_text(scales: list[int] | list[list[int]]) -> str:
    """One model's scales as "Q,Q"; an ensemble's own scales per member as "Q | Q,Q"."""
    if scales and isinstance(scales[0], int):
        return ",".join(map(str, scales))
    return " | ".join(",".join(map(str, s)) for s in scales)  # type: ignore[arg-type]


def evaluate_checkpoints(
    checkpoints: list[str],
    data: str,
    protocol: Protocol,
    *,
    split: str = "val",
    val_labels: str | None = None,
    device: str | None = None,
    precision: str = "auto",
    channels_last: bool = True,
    batch_size: int = 32,
    workers: int = 0,
    by_index: bool = False,
    dist_timeout: float = 600.0,
) -> Scores | None:
    """Score ``data`` with one checkpoint or an ensemble, in one process or under torchrun.

    Returns every image's scores on rank 0 (None on the other ranks).
    """
    name = device or default_device()
    device_type = "cuda" if name.startswith("cuda") else "cpu"
    with process_group(
        device_type, dist_timeout, lambda: "no scores were written: run it again"
    ) as d:
        torch_device = resolve_device(name, d.local_rank if d.enabled else None)
        precision = inference_precision(precision, torch_device)
        source = open_source(data, split, val_labels)
        if len(source) == 0:
            raise VGGError(f"--data {data}: the {split} split has no images")
        models = load_models(checkpoints, protocol, torch_device, channels_last)
        for sm in models:
            if sm.model.spec.in_channels != source.channels:
                raise VGGError(
                    f"{sm.name} takes {sm.model.spec.in_channels}-channel images, "
                    f"--data {data} has {source.channels}"
                )
        classes = check_classes([sm.model for sm in models], checkpoints, source.classes, by_index)
        scores = score_images(
            models, source, protocol, classes, d, batch_size, workers, precision, d.is_main
        )
        scores = gather_scores(scores, d)
        if not len(scores.labels):  # every rank has them all: every rank stops alike
            first = f" (the first: {scores.skipped[0].reason})" if scores.skipped else ""
            raise VGGError(
                f"--data {data}: none of the {len(source)} {split} images could be read{first}; "
                f"list them all with `vggnet data check {data}`"
            )
        return scores if d.is_main else None


def predict_images(
    checkpoint: str,
    images: list[str],
    protocol: Protocol,
    top: int = 5,
    device: str | None = None,
    precision: str = "auto",
    channels_last: bool = True,
) -> tuple[list[dict], list[str], list[int]]:
    """Top classes of each image file: (results, reasons for files that failed, scales used).

    Without scales in ``protocol``, Table 3's single test scale: Q = S, or (Smin + Smax) / 2.
    """
    model = load_checkpoint(checkpoint)
    if not protocol.scales:
        if model.train_scale is None:
            raise VGGError(f"{checkpoint} stores no training scale: pass --scales Q")
        protocol = Protocol(
            protocol.method,
            [single_test_scale(Scale(*model.train_scale))],
            protocol.flip,
            protocol.grid,
        )
    torch_device = resolve_device(device or default_device())
    precision = inference_precision(precision, torch_device)
    sm = prepare(model, protocol, torch_device, checkpoint, channels_last)
    classes = model.classes or [str(i) for i in range(model.spec.num_classes)]
    mode = "L" if model.spec.in_channels == 1 else "RGB"
    results, failures = [], []
    # One context for all images: autocast casts the weights to bf16 once, not per image.
    with inference_context(precision, torch_device):
        for path in images:
            try:
                image, _ = decode_image(path, mode, min(sm.scales))
            except BadImage as err:
                failures.append(str(err))
                continue
            views = [
                part_posteriors(sm, part, [rescale(image, q)], protocol, 64)[0]
                for q in sm.scales
                for part in PARTS[protocol.method]
            ]
            best = torch.stack(views).mean(0).topk(min(top, len(classes)))
            results.append(
                {
                    "image": str(path),
                    "top": [
                        {"class": classes[i], "index": int(i), "probability": float(p)}
                        for p, i in zip(best.values, best.indices, strict=True)
                    ],
                }
            )
    return results, failures, sm.scales
