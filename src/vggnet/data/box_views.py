"""Test views of images with boxes: each image at every test scale Q, with its size and boxes.

The input of the localisation protocols and of a localisation run's validation: a box
predicted in a view's frame goes back to image pixels with the image's full size
(``vggnet.data.boxes.uncrop_box``) and is compared with the ground-truth boxes there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from vggnet.data.boxes import BoxedSource
from vggnet.data.images import BadImage
from vggnet.data.loader import Skipped, collate_views, ordered_loader
from vggnet.data.transforms import rescale


@dataclass
class BoxView:
    """One test image: its views (one per Q, uint8), label, index, full (width, height), boxes."""

    views: list[torch.Tensor]
    label: int
    index: int
    full: tuple[int, int]
    boxes: torch.Tensor  # (M, 4) ground truth in image pixels


class BoxViewSet(Dataset):
    """``BoxView``s of a source with boxes (``Skipped`` for an unreadable image)."""

    def __init__(self, source: BoxedSource, scales: list[int], indices: list[int]) -> None:
        self.source = source
        self.scales = list(scales)
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> BoxView | Skipped:
        index = self.indices[i]
        try:
            image, full = self.source.read(index, min_short_side=min(self.scales))
        except BadImage as err:
            return Skipped(self.source.name(index), str(err))
        views = [rescale(image, q) for q in self.scales]
        label = int(self.source.labels[index])
        return BoxView(views, label, index, (full[0], full[1]), self.source.boxes(index))


def box_views_loader(
    source: BoxedSource, scales: list[int], indices: list[int], batch_size: int, workers: int = 0
) -> DataLoader:
    """Lists of ``BoxView`` or ``Skipped``: images at every test scale, with their boxes
    (its workers persist: a run validates with it every epoch)."""
    dataset = BoxViewSet(source, scales, indices)
    return ordered_loader(dataset, batch_size, collate_views, workers, persistent=True)
