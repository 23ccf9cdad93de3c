"""How to feed a net from outside vggnet's own loaders: timm-style data config and transform.

A net's card says how it was trained (preprocessing, training scale); these turn it into
what users of timm (``resolve_data_config`` + ``create_transform``) and torchvision
(``weights.transforms()``) expect, so images reach the net exactly as its protocols feed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torchvision.transforms import v2

from vggnet.data.geometry import Scale, single_test_scale
from vggnet.errors import VGGError
from vggnet.model import VGG
from vggnet.preprocessing import Preprocessing

TRANSFORM_METHODS = ("center", "dense")


@dataclass(frozen=True)
class DataConfig:
    """What a net's input must be: timm's ``resolve_data_config`` fields, from the card.

    ``test_scale``: the smallest side images are rescaled to (Table 3's Q: S, or the middle
    of a jittered range); ``crop_size``: the square the plain net sees; ``mean``, ``std``
    and ``channel_order``: the normalisation after scaling pixels to 0..1.
    """

    test_scale: int
    crop_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str
    interpolation: str = "bilinear"  # antialiased, as vggnet's own rescaling

    def to_dict(self) -> dict[str, Any]:
        """timm's keys: ``input_size`` (C, H, W), ``crop_pct``, ``mean``, ``std``, ..."""
        return {
            "input_size": (len(self.mean), self.crop_size, self.crop_size),
            "interpolation": self.interpolation,
            "mean": self.mean,
            "std": self.std,
            "crop_pct": self.crop_size / self.test_scale,
            "crop_mode": "center",
            "channel_order": self.channel_order,
        }


def resolve_data_config(model: VGG, test_scale: int | None = None) -> DataConfig:
    """The input a trained ``model`` expects, from its card.

    ``test_scale``: the rescaled smallest side Q; default Table 3's rule from the training
    scale (a net with none is rescaled to its crop size). Returns a ``DataConfig``.
    """
    crop = model.spec.crop_size
    if test_scale is None:
        scale = model.train_scale
        test_scale = single_test_scale(Scale(*scale)) if scale else crop
    if test_scale < crop:
        raise VGGError(f"test_scale {test_scale} is below the crop size {crop}: use >= {crop}")
    p = model.preprocessing
    return DataConfig(test_scale, crop, p.mean, p.std, p.channel_order)


class Normalize(torch.nn.Module):
    """Pixels in 0..1 (RGB or gray) to net input: the card's mean, std and channel order."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.preprocessing = preprocessing

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.preprocessing.normalize(image)


def create_transform(
    model: VGG, method: str = "center", test_scale: int | None = None
) -> v2.Compose:
    """A torchvision v2 transform from a PIL image or uint8 tensor to ``model``'s input.

    ``method``: "center" (rescale the smallest side to Q, cut the central crop: the
    ``center`` protocol) or "dense" (rescale only: feed the whole image, the ``dense``
    protocol). ``test_scale``: Q (see ``resolve_data_config``). Returns a ``v2.Compose``
    whose output is a float (C, H, W) tensor.
    """
    if method not in TRANSFORM_METHODS:
        raise VGGError(f"method {method!r}: choose one of {', '.join(TRANSFORM_METHODS)}")
    cfg = resolve_data_config(model, test_scale)
    steps: list[Any] = [v2.ToImage()]
    if cfg.channel_order == "L":
        steps.append(v2.Grayscale())
    steps.append(v2.Resize(cfg.test_scale, antialias=True))
    if method == "center":
        steps.append(v2.CenterCrop(cfg.crop_size))
    steps += [v2.ToDtype(torch.float32, scale=True), Normalize(model.preprocessing)]
    return v2.Compose(steps)
