"""Appendix B: deep features as image descriptors, and a linear classifier trained on them.

An image's descriptor is a layer's activations (fc7 by default) computed densely over
the whole rescaled image, averaged over locations, over its mirror and over several
test scales Q, then L2-normalised, as the paper aggregates them for VOC and Caltech.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vggnet.apps.features import check_layers, extract_features
from vggnet.data.loader import split_skipped, views_loader
from vggnet.data.transforms import BatchNormalizer
from vggnet.errors import VGGError
from vggnet.eval.protocols import group_by_size
from vggnet.model import VGG

# Normalised images (N, C, H, W) -> a layer's activations averaged over positions (N, D).
Describe = Callable[[torch.Tensor], torch.Tensor]


def torch_descriptors(model: VGG, layer: str) -> Describe:
    """``layer``'s location-averaged activations, computed by ``model`` in torch."""

    def describe(x: torch.Tensor) -> torch.Tensor:
        a = extract_features(model, x, [layer])[layer]
        return a.mean(dim=(2, 3)) if a.dim() == 4 else a

    return describe


def _descriptors(
    describe: Describe,
    normalizer: BatchNormalizer,
    images: list[torch.Tensor],
    flip: bool,
    device: torch.device,
) -> torch.Tensor:
    """Location-averaged activations of images of one scale (batched by size), with flips."""
    out: list[torch.Tensor | None] = [None] * len(images)
    for indices in group_by_size(images):
        x = normalizer(torch.stack([images[i] for i in indices]).to(device))
        views = [x, x.flip(-1)] if flip else [x]
        total = sum((describe(view).to(device) for view in views), torch.zeros((), device=device))
        for i, d in zip(indices, total / len(views), strict=True):
            out[i] = d
    return torch.stack([t for t in out if t is not None])  # every index is in one group


def dataset_features(
    model: VGG,
    source,
    scales: list[int],
    layer: str = "fc7",
    flip: bool = True,
    batch_size: int = 64,
    workers: int = 0,
    describe: Describe | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(L2-normalised descriptors (N, D), labels (N,)) of every readable image of ``source``.

    ``describe``: what computes ``layer``'s location-averaged activations (default: the
    torch net; ``cached_int8_descriptors`` gives the int8 one).
    """
    check_descriptor_request(model, scales, layer)
    model = model.eval()
    describe = describe or torch_descriptors(model, layer)
    device = next(model.parameters()).device
    normalizer = BatchNormalizer(model.preprocessing).to(device)
    loader = views_loader(source, scales, None, batch_size, workers)
    features, labels = [], []
    with torch.inference_mode():
        for items in loader:
            good, _ = split_skipped(items)
            if not good:
                continue
            per_scale = [
                _descriptors(describe, normalizer, [views[s] for views, _, _ in good], flip, device)
                for s in range(len(scales))
            ]
            features.append(F.normalize(torch.stack(per_scale).mean(0), dim=1).cpu())
            labels += [label for _, label, _ in good]
    return torch.cat(features).numpy(), np.asarray(labels, dtype=np.int64)


def check_descriptor_request(model: VGG, scales: list[int], layer: str) -> None:
    """Refuse a layer ``model`` lacks, or a test scale too small for an FC layer."""
    check_layers(model, [layer])
    small = [q for q in scales if q < model.spec.crop_size]
    if small and layer.startswith(("fc", "relu6", "relu7", "drop")):
        raise VGGError(
            f"test scale Q={small[0]} is smaller than the crop {model.spec.crop_size} needed by {layer}"
        )


def linear_probe(
    train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], c: float = 1.0
) -> float:
    """Accuracy (%) on ``val`` of a linear SVM (the paper's classifier) trained on ``train``."""
    try:
        from sklearn.svm import LinearSVC
    except ImportError:
        raise VGGError("vggnet transfer needs scikit-learn: pip install scikit-learn") from None
    classifier = LinearSVC(C=c).fit(*train)
    return 100.0 * float((classifier.predict(val[0]) == val[1]).mean())
