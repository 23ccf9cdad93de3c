"""Batches for training and evaluation: datasets over a source, bad-file-tolerant collation, loaders."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from vggnet.data.boxes import crop_box, to_crop_params
from vggnet.data.images import BadImage
from vggnet.data.sampler import GlobalBatchSampler
from vggnet.data.transforms import CropParams, TrainTransform, center_crop, rescale
from vggnet.errors import VGGError


@dataclass(frozen=True)
class Skipped:
    """An image that could not be used, and why (one line, naming the file)."""

    name: str
    reason: str


@dataclass
class Batch:
    """A collated batch: uint8 images, labels, colour-shift draws, sample indices, skipped files."""

    images: torch.Tensor
    labels: torch.Tensor
    alpha: torch.Tensor
    indices: torch.Tensor
    skipped: list[Skipped] = field(default_factory=list)
    boxes: torch.Tensor | None = None  # localisation: each crop's target box (N, 4)

    @classmethod
    def empty(cls, skipped: list[Skipped]) -> Batch:
        """A batch whose every file was unusable: nothing to train on, only files to report."""
        none = torch.empty(0, dtype=torch.long)
        return cls(torch.empty(0, dtype=torch.uint8), none, torch.empty(0), none, skipped)

    def pin_memory(self) -> Batch:
        """Page-lock the tensors (DataLoader calls this with ``pin_memory=True``)."""
        return Batch(
            self.images.pin_memory(),
            self.labels.pin_memory(),
            self.alpha.pin_memory(),
            self.indices,
            self.skipped,
            self.boxes.pin_memory() if self.boxes is not None else None,
        )


class SkipCounter:
    """Warns once per unusable file (naming it), counts them, or with ``strict`` stops at the first."""

    def __init__(self, strict: bool = False, warn: Callable[[str], None] | None = None) -> None:
        self.strict = strict
        self.warn = warn or (lambda line: print(f"vggnet: warning: {line}", file=sys.stderr))
        self.names: set[str] = set()
        self.count = 0

    def __call__(self, skipped: list[Skipped]) -> None:
        """Record a batch's skipped files."""
        for item in skipped:
            if self.strict:
                raise VGGError(
                    f"{item.reason} (stopped by --strict; `vggnet data check` lists all)"
                )
            self.count += 1
            if item.name not in self.names:
                self.names.add(item.name)
                self.warn(f"skipped {item.reason}")


class TrainSet(Dataset):
    """Training views of a source; items are addressed by (epoch, index) so workers need no state.

    With ``boxes``, each item also carries its target box in the crop's frame, as a
    localisation net predicts it (``vggnet.data.boxes``); the source must have boxes.
    """

    def __init__(self, source, transform: TrainTransform, boxes: bool = False) -> None:
        self.source = source
        self.transform = transform
        self.boxes = boxes

    def item(self, image: torch.Tensor, params: CropParams, index: int) -> tuple:
        """One view's item: (crop, label, colour draws, index[, target box])."""
        item = (image, int(self.source.labels[index]), params.alpha, index)
        if not self.boxes:
            return item
        box = self.source.target_box(index)
        crop = self.transform.crop
        view = crop_box(box, params.full, params.scale, params.left, params.top, params.flip, crop)
        return (*item, to_crop_params(view, crop))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        try:
            image, params = self.transform(self.source, index, epoch)
        except BadImage as err:
            return Skipped(self.source.name(index), str(err))
        return self.item(image, params, index)

    def __getitems__(self, keys: list[tuple[int, int]]) -> list:
        """A whole batch at once (the DataLoader's fast path): same items as ``__getitem__``."""
        by_epoch: dict[int, list[int]] = {}
        for slot, (epoch, _) in enumerate(keys):
            by_epoch.setdefault(epoch, []).append(slot)
        items: list = [None] * len(keys)
        for epoch, slots in by_epoch.items():
            indices = [keys[s][1] for s in slots]
            views = self.transform.batch(self.source, epoch, indices)
            for slot, index, view in zip(slots, indices, views, strict=True):
                if isinstance(view, BadImage):
                    items[slot] = Skipped(self.source.name(index), str(view))
                else:
                    image, params = view
                    items[slot] = self.item(image, params, index)
        return items


def split_skipped(items: list) -> tuple[list, list[Skipped]]:
    """(usable items, unusable files) of a list a dataset returned."""
    return [i for i in items if not isinstance(i, Skipped)], [
        i for i in items if isinstance(i, Skipped)
    ]


def collate_views(items: list) -> list:
    """Keep test views as a list: their sizes differ from image to image."""
    return items


def collate(items: list) -> Batch:
    """Stack the good items; keep the skipped ones aside so the caller can warn and count."""
    good, skipped = split_skipped(items)
    if not good:
        return Batch.empty(skipped)
    images, labels, alpha, indices, *boxes = zip(*good, strict=True)
    return Batch(
        default_collate(list(images)),  # in a worker: stacked straight into shared memory
        torch.tensor(labels, dtype=torch.long),
        torch.tensor(alpha, dtype=torch.float32),
        torch.tensor(indices, dtype=torch.long),
        skipped,
        torch.stack(boxes[0]) if boxes else None,
    )


def freeze_inherited_objects(worker_id: int) -> None:
    """Worker start: never garbage-collect the objects a forked worker inherited.

    A reference cycle that was garbage in the parent when it forked would otherwise be
    freed in the worker, and freeing a CUDA tensor there aborts the worker (CUDA cannot
    be used after a fork): a second ``train`` in one process on a GPU died that way.
    """
    gc.freeze()


def worker_options(workers: int) -> dict:
    """DataLoader arguments for forked workers: the parent's garbage freed before they
    start, where it may hold CUDA tensors (a collection took 0.37 s of a 4.3 s evaluation
    on the CPU, where there are none)."""
    if workers == 0:
        return {}
    if torch.cuda.is_initialized():
        gc.collect()  # workers fork at the loader's first iteration, right after it is made
    return {"worker_init_fn": freeze_inherited_objects}


def shut_down_workers(loader: DataLoader) -> None:
    """Stop a loader's persistent worker processes now, rather than when the GC frees it.

    A finished run's loader can end up in a reference cycle; stopped from a later garbage
    collection, its workers exited only at their 5-second status checks: the next run (or
    the scoring after it) stalled about 2.5 s a worker (12 workers and two loaders: two
    minutes on a GPU machine; tools/bench/consecutive_runs.py).
    """
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
        loader._iterator = None


def batch_loader(
    dataset: Dataset,
    sampler: GlobalBatchSampler,
    collate_fn: Callable,
    workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader of this rank's share of each global batch (persistent workers when > 0).

    Its own generator keeps the loader from drawing on the global torch RNG, so that
    creating it never shifts the dropout stream (resumed runs stay bit-identical).
    """
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator(),
        **worker_options(workers),
    )


def train_loader(
    source,
    transform: TrainTransform,
    sampler: GlobalBatchSampler,
    workers: int = 0,
    pin_memory: bool = False,
    boxes: bool = False,
) -> DataLoader:
    """Decoded, augmented uint8 training batches (see ``batch_loader``), with target boxes if asked."""
    dataset = TrainSet(source, transform, boxes)
    return batch_loader(dataset, sampler, collate, workers, pin_memory)


class RescaledSet(Dataset):
    """Test views: each image decoded once and rescaled to every test scale Q (uint8, whole image)."""

    def __init__(self, source, scales: list[int], indices: range | list[int] | None = None) -> None:
        self.source = source
        self.scales = list(scales)
        self.indices = list(indices) if indices is not None else list(range(len(source)))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        index = self.indices[i]
        try:
            image, _ = self.source.read(index, min_short_side=min(self.scales))
        except BadImage as err:
            return Skipped(self.source.name(index), str(err))
        return [rescale(image, q) for q in self.scales], int(self.source.labels[index]), index

    def __getitems__(self, positions: list[int]) -> list:
        """A whole batch at once: images of one size are rescaled together, once per Q."""
        items: list = [None] * len(positions)
        groups: dict[tuple, list[tuple[int, int, torch.Tensor]]] = {}
        for slot, i in enumerate(positions):
            index = self.indices[i]
            try:
                image, _ = self.source.read(index, min_short_side=min(self.scales))
            except BadImage as err:
                items[slot] = Skipped(self.source.name(index), str(err))
                continue
            groups.setdefault(tuple(image.shape), []).append((slot, index, image))
        for members in groups.values():
            stacked = torch.stack([image for _, _, image in members])
            views = [rescale(stacked, q) for q in self.scales]
            for k, (slot, index, _) in enumerate(members):
                label = int(self.source.labels[index])
                items[slot] = [v[k] for v in views], label, index
        return items


def center_collate(crop: int):
    """A collate function: centre ``crop`` squares of the first test scale, stacked (uint8)."""

    def collate_center(items: list) -> Batch:
        good, skipped = split_skipped(items)
        if not good:
            return Batch.empty(skipped)
        images = [center_crop(views[0], crop).contiguous() for views, _, _ in good]
        return Batch(
            default_collate(images),
            torch.tensor([label for _, label, _ in good]),
            torch.empty(0),
            torch.tensor([index for _, _, index in good]),
            skipped,
        )

    return collate_center


def center_loader(
    source, scale: int, crop: int, indices: range, batch_size: int, workers: int = 0
) -> DataLoader:
    """Centre crops at test scale Q of the given images (for validation after each epoch).

    Its workers persist: a run validates with the same loader every epoch, and forking
    them anew would pay their start-up (and a garbage collection) every epoch.
    """
    dataset = RescaledSet(source, [scale], indices)
    return ordered_loader(dataset, batch_size, center_collate(crop), workers, persistent=True)


def ordered_loader(
    dataset: Dataset, batch_size: int, collate_fn: Callable, workers: int, persistent: bool
) -> DataLoader:
    """Batches of test images in order; ``persistent``: the workers live across passes (a
    run's validation loader, used every epoch)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_fn,
        persistent_workers=persistent and workers > 0,
        **worker_options(workers),
    )


def views_loader(
    source, scales: list[int], indices: range | list[int] | None, batch_size: int, workers: int = 0
) -> DataLoader:
    """Lists of (views at every Q, label, index) or ``Skipped``: the input of test protocols."""
    dataset = RescaledSet(source, scales, indices)
    return ordered_loader(dataset, batch_size, collate_views, workers, persistent=False)
