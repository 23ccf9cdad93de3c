"""Localisation, the paper's winning ILSVRC-2014 track (Appendix A): evaluate and draw boxes.

``evaluate_localization`` scores localisation nets (with the classification nets that rate
their boxes) on a source with boxes: the top-5 localisation error of the chosen protocol
(centre crop, or dense with greedy merging), the top-1 one, and protocol (a)'s error with
the true class. ``predict_boxes`` draws each image's top box with its class into a PNG.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.utils import draw_bounding_boxes

from vggnet.checkpoint import load_checkpoint
from vggnet.data.box_views import BoxView, box_views_loader
from vggnet.data.boxes import BoxedSource, box_correct, box_source
from vggnet.data.geometry import Scale, single_test_scale
from vggnet.data.images import BadImage, decode_image
from vggnet.data.sources import open_source
from vggnet.data.subset import stratified_indices
from vggnet.data.transforms import rescale
from vggnet.devices import (
    default_device,
    inference_context,
    inference_precision,
    resolve_device,
)
from vggnet.errors import VGGError
from vggnet.eval.engines import winograd_mode
from vggnet.eval.localization import (
    WindowBoxes,
    center_net_boxes,
    center_window_boxes,
    class_box,
    crop_window_boxes,
    dense_window_boxes,
    image_posteriors,
    localization_hits,
    true_class_box,
)
from vggnet.eval.protocols import Engine, Protocol, ScoredModel
from vggnet.metrics import error_percent
from vggnet.model.localization import is_localization_net

# Protocol (b) with greedy merging, over the dense map's windows or a grid of crops; the
# centre crop. Multi-crop is the default: it beat dense by 28-52 points on every net of
# docs/RESULTS.md's localisation study (a box regressor leans on its crop's zero padding).
LOCALIZATION_METHODS = ("dense", "multi-crop", "center")
DEFAULT_LOCALIZATION_METHOD = "multi-crop"
LOCALIZATION_GRID = Protocol().grid  # multi-crop: the classification protocol's grid


def check_method(method: str) -> None:
    """Refuse a test protocol localisation does not have, naming the ones it has."""
    if method not in LOCALIZATION_METHODS:
        *others, last = LOCALIZATION_METHODS
        raise VGGError(
            f"--method {method}: --task localization takes {', '.join(others)} or {last}"
        )


@dataclass
class Localizers:
    """Localisation nets, each with its test scales, and the classifiers that rate their boxes."""

    nets: list[tuple[ScoredModel, list[int]]]
    classifiers: list[ScoredModel]

    @property
    def scales(self) -> list[int]:
        """Every test scale some net uses, in increasing order (the views each image gets)."""
        return sorted({q for _, scales in self.nets for q in scales})

    @property
    def classes(self) -> list[str]:
        return list(self.nets[0][0].model.card.classes or [])


def net_scales(model: Any, scales: list[int] | None, name: str) -> list[int]:
    """A localisation net's test scales: ``scales``, or Q = S (Table 9's 256/256, 384/384)."""
    if scales:
        small = [q for q in scales if q < model.spec.crop_size]
        if small:
            raise VGGError(f"--scales {small[0]} is below {name}'s crop {model.spec.crop_size}")
        return list(scales)
    if model.train_scale is None:
        raise VGGError(f"{name} stores no training scale: pass --scales Q[,Q...]")
    return [single_test_scale(Scale(*model.train_scale))]


def load_localizers(
    checkpoints: list[str],
    classifiers: list[str],
    scales: list[int] | None,
    device: torch.device,
    engine: Engine | None = None,
) -> Localizers:
    """Load the localisation and classification nets, checking each is what its flag says;
    ``engine`` runs their forward passes (default: torch, fp32)."""
    engine = engine or Engine(None, "fp32")
    if not classifiers:
        raise VGGError(
            "localisation rates its boxes with a classification net: give --classifier CKPT"
        )
    nets, rating, classes = [], [], None
    for path in checkpoints:
        model = load_checkpoint(path)
        if not is_localization_net(model):
            raise VGGError(f"--checkpoint {path} is a classification net: pass it as --classifier")
        classes = classes or model.card.classes
        if model.card.classes != classes:
            raise VGGError(
                f"--checkpoint {path} was trained on other classes than {checkpoints[0]}"
            )
        q = net_scales(model, scales, path)
        nets.append((engine.prepare(path, model, Protocol("center", q), device), q))
    for path in classifiers:
        model = load_checkpoint(path)
        if is_localization_net(model):
            raise VGGError(f"--classifier {path} is a localisation net: pass it as --checkpoint")
        if model.card.classes != classes:
            raise VGGError(
                f"--classifier {path} was trained on other classes than the localisation nets"
            )
        rating.append(engine.prepare(path, model, Protocol("center", nets[0][1]), device))
    return Localizers(nets, rating)


def localize(
    found: Localizers,
    view: BoxView,
    method: str,
    grid: int = LOCALIZATION_GRID,
    center_boxes: torch.Tensor | None = None,
) -> WindowBoxes:
    """One image's candidate boxes and their confidences under ``method`` (``center_boxes``:
    the nets' centre-crop boxes, if already found)."""
    if method == "dense":
        return dense_window_boxes(found.nets, found.classifiers, view, found.scales)
    if method == "multi-crop":
        return crop_window_boxes(found.nets, found.classifiers, view, found.scales, grid)
    return center_window_boxes(found.nets, found.classifiers, view, found.scales, center_boxes)


def score_view(
    found: Localizers, view: BoxView, method: str, grid: int = LOCALIZATION_GRID
) -> tuple[bool, bool, bool]:
    """(top-5 right, top-1 right, protocol (a) right) for one image."""
    center = center_net_boxes(found.nets, view, found.scales)
    top5, top1 = localization_hits(localize(found, view, method, grid, center), view)
    return top5, top1, box_correct(true_class_box(center, view.label), view.boxes)


def evaluate_localization(
    checkpoints: list[str],
    classifiers: list[str],
    data: str,
    method: str = DEFAULT_LOCALIZATION_METHOD,
    scales: list[int] | None = None,
    split: str = "val",
    boxes: str | os.PathLike | None = None,
    val_labels: str | None = None,
    device: str | None = None,
    precision: str = "auto",
    batch_size: int = 16,
    workers: int = 0,
    limit: int | None = None,
    strict: bool = False,
    grid: int = LOCALIZATION_GRID,
    backend: str | None = None,
    calibration: str | None = None,
    winograd: bool = False,
) -> dict[str, Any]:
    """The localisation errors (percent) of ``checkpoints`` rated by ``classifiers`` on ``data``.

    ``method``: ``multi-crop`` (protocol (b) over a ``grid`` x ``grid`` of crops per scale,
    each through the plain net: every crop's boxes, pooled over nets and scales, merged
    greedily), ``dense`` (the paper's: the same over the dense map's windows) or
    ``center``. ``scales``: test scales for every net (default Q = S of each). ``boxes``:
    VOC XML folder for image folders. ``limit``: the first N images, spread over the
    classes. ``strict``: refuse an image with no box instead of skipping it. ``grid``: the
    multi-crop grid side. ``split``, ``val_labels``, ``device``, ``precision`` (``auto``:
    bf16 where native; ``int8``: onnxruntime), ``backend``, ``calibration`` (int8's data,
    default ``data``), ``winograd`` (fp32 3x3 convolutions as F(4x4, 3x3) where measured
    faster), ``batch_size``, ``workers`` as for ``vggnet eval``.
    Returns ``top5_localization_error``, ``top1_localization_error``,
    ``gt_class_localization_error``, ``images`` and what was used.
    """
    check_method(method)
    torch_device = resolve_device(device or default_device())
    precision = inference_precision(precision, torch_device)
    engine = Engine(backend, precision, calibration or data, winograd_mode(winograd))
    found = load_localizers(checkpoints, classifiers, scales, torch_device, engine)
    source = box_source(open_source(data, split, val_labels), boxes, strict)
    if found.classes != list(source.classes):
        raise VGGError(f"--data {data} has other classes than the localisation nets")
    indices = range(len(source)) if limit is None else stratified_indices(source.labels, limit)
    counts, skipped = torch.zeros(3, dtype=torch.long), []
    loader = box_views_loader(source, found.scales, [int(i) for i in indices], batch_size, workers)
    with inference_context(precision, torch_device):
        for items in loader:
            for view in items:
                if not isinstance(view, BoxView):
                    skipped.append(view.reason)
                    continue
                counts += torch.tensor(score_view(found, view, method, grid))
    images = len(indices) - len(skipped)
    errors = [error_percent(int(c), images) for c in counts]
    return localization_result(found, source, method, errors, images, skipped)


def localization_result(
    found: Localizers,
    source: BoxedSource,
    method: str,
    errors: list[float],
    images: int,
    skipped: list[str],
) -> dict[str, Any]:
    """The JSON-ready result of ``evaluate_localization``."""
    return {
        "top5_localization_error": errors[0],
        "top1_localization_error": errors[1],
        "gt_class_localization_error": errors[2],
        "images": images,
        "method": method,
        "scales": {sm.name: q for sm, q in found.nets},
        "checkpoints": [sm.name for sm, _ in found.nets],
        "classifiers": [sm.name for sm in found.classifiers],
        "skipped": skipped,
        "images_without_boxes": source.missing,
    }


DRAW_SHORT_SIDE = 256  # small images are enlarged before drawing, so the label is legible


def draw_box(
    image: torch.Tensor, full: tuple[int, int], box: torch.Tensor, label: str
) -> torch.Tensor:
    """``image`` (C, H, W) uint8, decoded at any size from a (width, height) ``full`` one, as
    RGB with ``box`` (full-size pixels) and ``label`` drawn on it; enlarged to a
    ``DRAW_SHORT_SIDE`` short side if it is smaller."""
    if min(image.shape[-2:]) < DRAW_SHORT_SIDE:
        image = rescale(image, DRAW_SHORT_SIDE)
    box = box * torch.tensor([image.shape[-1] / full[0], image.shape[-2] / full[1]] * 2)
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    return draw_bounding_boxes(rgb, box[None].float(), [label], colors="red", width=3)


def predict_boxes(
    checkpoints: list[str],
    classifiers: list[str],
    images: list[str],
    out: str | os.PathLike,
    method: str = DEFAULT_LOCALIZATION_METHOD,
    scales: list[int] | None = None,
    device: str | None = None,
    precision: str = "auto",
    backend: str | None = None,
    calibration: str | None = None,
    winograd: bool = False,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each image's top class and its box, drawn into ``out``/<stem>.boxes.png.

    ``checkpoints``: localisation nets; ``classifiers``: the nets that name the class and rate
    the boxes; ``images``: image files; ``method``, ``scales``, ``device``, ``precision``,
    ``backend``, ``winograd`` as for ``evaluate_localization``; ``calibration``: int8's
    data, needed only until each net's int8 file exists. Returns (one dict per image:
    class, probability, box and PNG; one line per file that could not be read).
    """
    check_method(method)
    torch_device = resolve_device(device or default_device())
    precision = inference_precision(precision, torch_device)
    engine = Engine(backend, precision, calibration, winograd_mode(winograd))
    found = load_localizers(checkpoints, classifiers, scales, torch_device, engine)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    mode = "L" if found.nets[0][0].model.spec.in_channels == 1 else "RGB"
    results, failures = [], []
    with inference_context(precision, torch_device):
        for path in images:
            try:
                image, full = decode_image(path, mode, min(found.scales))
            except BadImage as err:
                failures.append(str(err))
                continue
            view = BoxView(
                [rescale(image, q) for q in found.scales], -1, -1, full, torch.empty(0, 4)
            )
            results.append(draw_prediction(found, view, image, Path(path), folder, method))
    return results, failures


def draw_prediction(
    found: Localizers, view: BoxView, image: torch.Tensor, path: Path, folder: Path, method: str
) -> dict[str, Any]:
    """Find one image's top class and box, write its PNG; returns what was found."""
    boxes = localize(found, view, method)
    posteriors = image_posteriors(boxes)
    top = int(posteriors.argmax())
    box = class_box(boxes, top)
    name = found.classes[top]
    png = folder / f"{path.stem}.boxes.png"
    drawn = draw_box(image, view.full, box, f"{name} {100 * float(posteriors[top]):.1f}%")
    Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(png)
    return {
        "image": str(path),
        "class": name,
        "probability": float(posteriors[top]),
        "box": [round(float(v), 1) for v in box],
        "png": str(png),
    }
