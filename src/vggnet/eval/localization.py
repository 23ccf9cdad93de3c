"""Appendix A's test protocols and the ILSVRC localisation metric.

(a) centre crop: the net's box for the ground-truth class from the central crop.
(b) dense: the net over the whole image at each test scale gives a box per window (and per
class); or multi-crop: a grid of crops, each through the plain net, gives a box per crop.
The boxes of every scale and net are pooled, merged greedily as OverFeat does
(``greedy_merge``: spatially close boxes averaged), and each merged box is rated by the
classification nets' posteriors at its windows. A box is right when its IoU with a
ground-truth box of the image's class exceeds 0.5; the top-5 localisation error counts
an image right when one of the classifier's 5 best classes is its class and that class's
box is right.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.ops import box_iou

from vggnet.data.box_views import BoxView
from vggnet.data.boxes import box_correct, from_crop_params, uncrop_box
from vggnet.data.geometry import center_offset, grid_offsets
from vggnet.data.transforms import center_crop
from vggnet.eval.protocols import ScoredModel
from vggnet.model.dense import to_dense
from vggnet.model.vgg import FEATURE_STRIDE

MERGE_IOU = 0.5  # boxes at least this close are merged (averaged)
TOP_K = 5


def greedy_merge(
    boxes: torch.Tensor, scores: torch.Tensor, iou: float = MERGE_IOU
) -> tuple[torch.Tensor, torch.Tensor]:
    """OverFeat's greedy merge: while two boxes overlap with IoU >= ``iou``, replace the closest
    pair by the mean of their members. Returns the merged boxes (m, 4) and their scores (the
    sums of their members' scores), best first.

    ``boxes``: (n, 4) (x0, y0, x1, y1); ``scores``: (n,) each box's confidence.
    """
    sums = [b.double() for b in boxes.detach()]  # coordinate sums, so a merge is the members' mean
    counts = [1] * len(sums)
    totals = scores.detach().double().tolist()
    while len(sums) > 1:
        means = torch.stack([s / c for s, c in zip(sums, counts, strict=True)])
        overlap = box_iou(means, means).fill_diagonal_(-1.0)
        best = int(overlap.argmax())
        i, j = divmod(best, len(sums))
        if overlap[i, j] < iou:
            break
        i, j = min(i, j), max(i, j)
        sums[i], counts[i], totals[i] = (
            sums[i] + sums.pop(j),
            counts[i] + counts.pop(j),
            totals[i] + totals.pop(j),
        )
    merged = torch.stack([s / c for s, c in zip(sums, counts, strict=True)]).to(boxes.dtype)
    order = torch.tensor(totals).argsort(descending=True, stable=True)
    return merged[order], torch.tensor(totals, dtype=scores.dtype)[order]


@dataclass
class WindowBoxes:
    """One image's box predictions: per window, per class (K, or 1 for single-class nets)."""

    boxes: torch.Tensor  # (windows, K or 1, 4) in image pixels
    confidence: torch.Tensor  # (windows, K) the classifiers' posteriors at each window


def map_boxes(
    outputs: torch.Tensor,
    full: tuple[int, int],
    q: int,
    crop: int,
    offsets: list[tuple[int, int]],
) -> torch.Tensor:
    """fc8 outputs (windows, 4K or 4) at (left, top) ``offsets`` of view Q -> (windows, K|1, 4) image boxes."""
    params = outputs.float().reshape(len(outputs), -1, 4)
    in_view = from_crop_params(params, crop)
    shift = torch.tensor(offsets, dtype=in_view.dtype, device=in_view.device)
    shifted = in_view + shift.repeat(1, 2)[:, None, :]
    return uncrop_box(shifted, full, q, 0, 0)


def window_offsets(height: int, width: int) -> list[tuple[int, int]]:
    """(left, top) in the view of each position of an (h, w) dense map, row by row."""
    return [(j * FEATURE_STRIDE, i * FEATURE_STRIDE) for i in range(height) for j in range(width)]


def dense_window_boxes(
    nets: list[tuple[ScoredModel, list[int]]],
    classifiers: list[ScoredModel],
    view: BoxView,
    scales: list[int],
) -> WindowBoxes:
    """Protocol (b)'s boxes: every localisation net over the whole image at each of its test
    scales (``nets``: each with its Q list; ``scales``: the Q of each of ``view.views``), one box
    per window, with the classifiers' posteriors at that window.

    A window's confidence is the classifiers' mean posterior at the same map position and Q
    when their maps line up with the net's (same crop), else their image-level posterior.
    """
    posterior_maps: dict[int, list[torch.Tensor]] = {}
    boxes, confidence = [], []
    for net, net_scales in nets:
        for q in net_scales:
            image = view.views[scales.index(q)]
            if q not in posterior_maps:
                posterior_maps[q] = [_score_map(c, image).softmax(0) for c in classifiers]
            outputs = _score_map(net, image)  # (4K or 4, h, w)
            h, w = outputs.shape[-2:]
            crop = net.model.spec.crop_size
            boxes.append(map_boxes(outputs.flatten(1).T, view.full, q, crop, window_offsets(h, w)))
            confidence.append(window_confidence(posterior_maps[q], h, w))
    return WindowBoxes(torch.cat(boxes), torch.cat(confidence))


def window_confidence(posterior_maps: list[torch.Tensor], height: int, width: int) -> torch.Tensor:
    """(h * w, K): the classifiers' mean posterior at each window, or their image-level one
    when some map does not line up with an (h, w) box map."""
    if all(p.shape[-2:] == (height, width) for p in posterior_maps):
        return torch.stack(posterior_maps).mean(0).flatten(1).T
    image_level = torch.stack([p.mean((1, 2)) for p in posterior_maps]).mean(0)
    return image_level.expand(height * width, -1)


def crop_window_boxes(
    nets: list[tuple[ScoredModel, list[int]]],
    classifiers: list[ScoredModel],
    view: BoxView,
    scales: list[int],
    grid: int,
) -> WindowBoxes:
    """Multi-crop localisation: a ``grid`` x ``grid`` of crops at each test scale, each run as
    the plain net (the boundary conditions it was trained with), rated by the classifiers'
    posteriors on the same crop (their centre crop's, when their crop size differs)."""
    boxes, confidence = [], []
    rated: dict[tuple[int, int], torch.Tensor] = {}  # (Q, crop): nets that share them share these
    for net, net_scales in nets:
        crop = net.model.spec.crop_size
        for q in net_scales:
            image = view.views[scales.index(q)]
            offsets = list(
                dict.fromkeys(
                    (x, t)
                    for t in grid_offsets(image.shape[-2], crop, grid)
                    for x in grid_offsets(image.shape[-1], crop, grid)
                )
            )
            crops = torch.stack([image[:, t : t + crop, x : x + crop] for x, t in offsets])
            boxes.append(map_boxes(_plain_scores(net, crops), view.full, q, crop, offsets))
            if (q, crop) not in rated:
                posteriors = [
                    _plain_scores(c, crops).softmax(1)
                    if c.model.spec.crop_size == crop
                    else _crop_scores(c, image).softmax(0).expand(len(crops), -1)
                    for c in classifiers
                ]
                rated[q, crop] = torch.stack(posteriors).mean(0)
            confidence.append(rated[q, crop])
    return WindowBoxes(torch.cat(boxes), torch.cat(confidence))


def center_crop_boxes(
    net: nn.Module,
    normalizer: nn.Module,
    images: list[torch.Tensor],
    fulls: list[tuple[int, int]],
    q: int,
    crop: int,
) -> torch.Tensor:
    """The boxes (N, K or 1, 4), in image pixels, that ``net`` predicts from the centre crop
    of each uint8 view at Q (``fulls``: each image's (width, height) before rescaling)."""
    device = next(net.parameters()).device
    batch = torch.stack([center_crop(image, crop) for image in images]).to(device)
    return map_center_boxes(net(normalizer(batch)).float().cpu(), images, fulls, q, crop)


def map_center_boxes(
    outputs: torch.Tensor,
    images: list[torch.Tensor],
    fulls: list[tuple[int, int]],
    q: int,
    crop: int,
) -> torch.Tensor:
    """A net's box outputs on the centre crops of ``images`` (views at Q) as boxes (N, K or
    1, 4) in image pixels."""
    boxes = []
    for output, image, full in zip(outputs, images, fulls, strict=True):
        offset = (center_offset(image.shape[-1], crop), center_offset(image.shape[-2], crop))
        boxes.append(map_boxes(output[None], full, q, crop, [offset])[0])
    return torch.stack(boxes)


def center_net_boxes(
    nets: list[tuple[ScoredModel, list[int]]], view: BoxView, scales: list[int]
) -> torch.Tensor:
    """Each localisation net's boxes (nets, K or 1, 4) from its centre crop at its first Q."""
    boxes = []
    for net, net_scales in nets:
        image = view.views[scales.index(net_scales[0])]
        outputs = _crop_scores(net, image)[None]
        crop = net.model.spec.crop_size
        boxes.append(map_center_boxes(outputs, [image], [view.full], net_scales[0], crop)[0])
    return torch.stack(boxes)


def center_window_boxes(
    nets: list[tuple[ScoredModel, list[int]]],
    classifiers: list[ScoredModel],
    view: BoxView,
    scales: list[int],
    boxes: torch.Tensor | None = None,
) -> WindowBoxes:
    """Each localisation net's centre-crop boxes (``boxes``, if already found) with the
    classifiers' mean centre-crop posteriors at the first net's first Q."""
    if boxes is None:
        boxes = center_net_boxes(nets, view, scales)
    first = view.views[scales.index(nets[0][1][0])]
    posteriors = torch.stack([_crop_scores(c, first).softmax(0) for c in classifiers]).mean(0)
    return WindowBoxes(boxes, posteriors.expand(len(boxes), -1))


def _score_map(sm: ScoredModel, image: torch.Tensor) -> torch.Tensor:
    """The net's output map (outputs, h, w) over one whole uint8 view."""
    x = sm.normalizer(image[None].to(_device(sm)))
    dense = sm.engine.score_map if sm.engine is not None else to_dense(sm.model)
    return dense(x)[0].float().cpu()


def _plain_scores(sm: ScoredModel, crops: torch.Tensor) -> torch.Tensor:
    """The plain net's outputs (N, outputs) on uint8 crops of its crop size."""
    plain = sm.engine if sm.engine is not None else sm.model
    return plain(sm.normalizer(crops.to(_device(sm)))).float().cpu()


def _crop_scores(sm: ScoredModel, image: torch.Tensor) -> torch.Tensor:
    """The net's outputs (outputs,) on the centre crop of one uint8 view."""
    return _plain_scores(sm, center_crop(image, sm.model.spec.crop_size)[None])[0]


def _device(sm: ScoredModel) -> torch.device:
    """Where a scored net's input goes (an onnxruntime net takes CPU tensors)."""
    return next(sm.model.parameters()).device


def class_column(boxes: torch.Tensor, c: int) -> torch.Tensor:
    """Class ``c``'s boxes (..., 4) of boxes (..., K or 1, 4): a single-class net's one box."""
    return boxes[:, c if boxes.shape[1] > 1 else 0]


def class_box(found: WindowBoxes, c: int) -> torch.Tensor:
    """The top merged box for class ``c``: its windows' boxes merged, rated by its posteriors."""
    merged, _ = greedy_merge(class_column(found.boxes, c), found.confidence[:, c])
    return merged[0]


def image_posteriors(found: WindowBoxes) -> torch.Tensor:
    """The image's class posteriors (K,): the mean over its windows."""
    return found.confidence.mean(0)


def localization_hits(found: WindowBoxes, view: BoxView, top_k: int = TOP_K) -> tuple[bool, bool]:
    """The ILSVRC criterion at top ``top_k`` and at top 1: the true class is among the best
    classes and its merged box is right (IoU > 0.5 with a true box)."""
    ranked = image_posteriors(found).argsort(descending=True, stable=True).tolist()
    if view.label not in ranked[:top_k]:
        return False, False
    right = box_correct(class_box(found, view.label), view.boxes)
    return right, right and ranked[0] == view.label


def true_class_box(center_boxes: torch.Tensor, label: int) -> torch.Tensor:
    """Protocol (a): the nets' mean centre-crop box (of ``center_net_boxes``) for the true class."""
    return class_column(center_boxes, label).mean(0)
