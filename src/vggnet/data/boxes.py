"""Bounding boxes for localisation: ImageNet's VOC XML files, sources with boxes, box geometry.

A box is (x0, y0, x1, y1) in pixels of the upright image, x1 and y1 exclusive (VOC's
inclusive 1-based corners are converted on reading). A localisation net predicts a box
as (centre x, centre y, width, height) in units of its crop side, measured from the
crop's top-left corner (``to_crop_params``); the crop's training view moves the box with
the image (isotropic rescale, crop, mirror: ``crop_box``), without clipping it to the
crop, so that every window of a dense evaluation predicts the whole object.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.ops import box_convert, box_iou

from vggnet.data.geometry import rescaled_size
from vggnet.data.sources import CanvasSource, FolderSource, Source
from vggnet.data.subset import SubsetSource
from vggnet.errors import VGGError

Box = tuple[float, float, float, float]
IOU_CORRECT = 0.5  # ILSVRC: a box is right when its IoU with a true box exceeds this


class BoxError(VGGError):
    """A box file that cannot be used: one line naming the file and the problem."""


@dataclass(frozen=True)
class BoxFile:
    """One VOC XML file: the image size it states (or None) and its objects as (name, box)."""

    path: Path
    size: tuple[int, int] | None
    objects: tuple[tuple[str, Box], ...]


def _number(node: ET.Element, tag: str, path: Path) -> float:
    text = node.findtext(tag)
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise BoxError(f"{path}: <{tag}> is {text!r}, not a number")
    return value


def read_voc(path: str | os.PathLike) -> BoxFile:
    """Read one Pascal VOC / ImageNet XML file (``<size>``, ``<object><name><bndbox>``).

    Returns a ``BoxFile``; a malformed file, a box with zero area or one outside the
    stated image size is one ``BoxError`` line naming the file.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise BoxError(f"{path}: not a readable VOC XML file ({err})") from None
    size_node = root.find("size")
    size = None
    if size_node is not None:
        size = (int(_number(size_node, "width", path)), int(_number(size_node, "height", path)))
    objects = []
    for obj in root.iter("object"):
        name, bndbox = (obj.findtext("name") or "").strip(), obj.find("bndbox")
        if not name or bndbox is None:
            raise BoxError(f"{path}: an <object> lacks its <name> or <bndbox>")
        x0, y0, x1, y1 = (_number(bndbox, t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
        objects.append((name, (x0 - 1, y0 - 1, x1, y1)))  # VOC: 1-based, inclusive
    found = BoxFile(path, size, tuple(objects))
    if size is not None:
        check_boxes(found, size)
    return found


def check_boxes(found: BoxFile, size: tuple[int, int]) -> None:
    """Refuse a box with no area or outside an image of ``size`` (width, height), naming the file."""
    width, height = size
    for name, (x0, y0, x1, y1) in found.objects:
        where = f"{found.path}: box of {name!r} ({x0 + 1:g}, {y0 + 1:g}, {x1:g}, {y1:g})"
        if x1 <= x0 or y1 <= y0:
            raise BoxError(f"{where} has no area: xmax must be at least xmin, ymax at least ymin")
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise BoxError(f"{where} lies outside the {width}x{height} image")


def index_box_files(folder: str | os.PathLike) -> dict[str, Path]:
    """Every ``*.xml`` under ``folder`` (recursively), by file stem; a stem found twice is refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VGGError(f"--boxes {folder} is not a folder (give the folder of VOC XML box files)")
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.xml")):
        if path.stem in found:
            raise BoxError(f"--boxes {folder}: {path.stem}.xml twice ({found[path.stem]}, {path})")
        found[path.stem] = path
    if not found:
        raise VGGError(f"--boxes {folder} holds no .xml box files")
    return found


def class_boxes(found: BoxFile, class_name: str) -> list[Box]:
    """The boxes of the image's own class; all boxes where no object has the class's name."""
    own = [box for name, box in found.objects if name == class_name]
    return own or [box for _, box in found.objects]


@dataclass
class BoxedSource(SubsetSource):
    """The images of ``source`` that have boxes, with ``boxes(i)``: an (M, 4) float tensor.

    ``boxes_of``: each usable image's boxes (its class's objects), or None for a source
    that draws its own (``source.box(i)``: a canvas scene). ``missing``: how
    many images had no box file or no object (skipped, counted; refused under ``strict``).
    """

    boxes_of: list[list[Box]] | None = None
    missing: int = 0

    def boxes(self, i: int) -> Tensor:
        """Image ``i``'s ground-truth boxes (M, 4), (x0, y0, x1, y1) pixels."""
        if self.boxes_of is None:  # a canvas: its scene's one box, rendered on demand
            found = [self.source.box(int(self.indices[i]))]  # type: ignore[union-attr]
        else:
            found = self.boxes_of[i]
        return torch.tensor(found, dtype=torch.float32).reshape(-1, 4)

    def target_box(self, i: int) -> Tensor:
        """The box a net learns for image ``i``: its largest (4,)."""
        boxes = self.boxes(i)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return boxes[int(areas.argmax())]


def folder_boxes(
    source: FolderSource, folder: str | os.PathLike, strict: bool = False
) -> BoxedSource:
    """``source`` (a folder of images) with the VOC boxes under ``folder``, matched by stem.

    An image without a box file (or without objects) is skipped and counted, or refused
    in one line under ``strict``. Each file is checked against its image's size.
    """
    files = index_box_files(folder)
    usable, boxes_of, missing = [], [], 0
    for i, path in enumerate(source.paths):
        xml = files.get(Path(path).stem)
        found = read_voc(xml) if xml is not None else None
        if found is None or not found.objects:
            if strict:
                raise BoxError(f"{path} has no box in --boxes {folder} (stopped by --strict)")
            missing += 1
            continue
        if found.size is None:
            with Image.open(path) as image:
                check_boxes(found, image.size)
        label = int(source.labels[i])
        boxes_of.append(class_boxes(found, source.classes[label]))
        usable.append(i)
    if not usable:
        raise BoxError(f"--boxes {folder}: no image of {source.root} has a box file")
    return BoxedSource(source, np.asarray(usable, dtype=np.int64), boxes_of, missing)


def canvas_boxes(source: CanvasSource) -> BoxedSource:
    """A ``fashion-mnist-canvas`` source with its built-in boxes (one object per scene)."""
    return BoxedSource(source, np.arange(len(source), dtype=np.int64))


def crop_box(
    box: Tensor, full_size: tuple[int, int], scale: int, left: int, top: int, flip: bool, crop: int
) -> Tensor:
    """Boxes (..., 4) of an image of ``full_size`` (width, height) in the frame of a training view.

    The view: rescaled so its short side is ``scale`` (each axis by its own rounded
    factor, as torchvision resizes), the ``crop`` square at (``left``, ``top``) cut out,
    then mirrored if ``flip``. Not clipped to the crop.
    """
    width, height = full_size
    new_w, new_h = rescaled_size(width, height, scale)
    factors = torch.tensor([new_w / width, new_h / height] * 2, dtype=box.dtype)
    out = box * factors - torch.tensor([left, top, left, top], dtype=box.dtype)
    if flip:
        out = torch.stack([crop - out[..., 2], out[..., 1], crop - out[..., 0], out[..., 3]], -1)
    return out


def uncrop_box(box: Tensor, full_size: tuple[int, int], scale: int, left: int, top: int) -> Tensor:
    """Inverse of ``crop_box`` without a flip: boxes in a view's frame back in image pixels."""
    width, height = full_size
    new_w, new_h = rescaled_size(width, height, scale)
    shifted = box + torch.tensor([left, top, left, top], dtype=box.dtype, device=box.device)
    return shifted / torch.tensor([new_w / width, new_h / height] * 2, dtype=box.dtype).to(box)


def to_crop_params(box: Tensor, crop: int) -> Tensor:
    """(x0, y0, x1, y1) in a view's pixels -> what a localisation net predicts: (cx, cy, w, h) / crop."""
    return box_convert(box, "xyxy", "cxcywh") / crop


def from_crop_params(params: Tensor, crop: int) -> Tensor:
    """A localisation net's (cx, cy, w, h) / crop -> (x0, y0, x1, y1) in the view's pixels."""
    return box_convert(params * crop, "cxcywh", "xyxy")


def box_source(
    source: Source, boxes: str | os.PathLike | None, strict: bool = False
) -> BoxedSource:
    """``source`` with boxes: a canvas' own, or a folder's from the VOC files under ``boxes``."""
    if isinstance(source, CanvasSource):
        if boxes is not None:
            raise VGGError(f"--boxes {boxes}: fashion-mnist-canvas carries its own boxes; drop it")
        return canvas_boxes(source)
    if boxes is None:
        raise VGGError(
            "localisation needs boxes: give --boxes DIR (VOC XML files, one per image, "
            "matched by file name) or use --data fashion-mnist-canvas"
        )
    if not isinstance(source, FolderSource):
        raise VGGError(f"--boxes {boxes} applies to image folders only")
    return folder_boxes(source, boxes, strict)


def box_correct(predicted: Tensor, truth: Tensor) -> bool:
    """Whether a predicted box (4,) overlaps some ground-truth box (M, 4) with IoU > 0.5."""
    return bool((box_iou(predicted[None].float(), truth.float()) > IOU_CORRECT).any())
