"""The dense (fully convolutional) view of a VGG: class score maps at any input size.

Section 3 of the paper: at test time fc6 becomes a k x k convolution and fc7, fc8 1x1
ones, so the net runs over the whole rescaled image and outputs a class score map.
``VGG.score_map`` computes it; this module gives it a module of its own (for exports and
for users who want the map) and says how large the map is.
"""

from __future__ import annotations

import torch
from torch import nn

from vggnet.errors import VGGError
from vggnet.model.vgg import FEATURE_STRIDE, VGG, VGGSpec


class DenseVGG(nn.Module):
    """The fully convolutional view of a VGG: same parameters, output a class score map.

    ``model``: the VGG whose parameters it shares (changes to one are changes to both).
    """

    def __init__(self, model: VGG) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, K, floor(H/32) - crop/32 + 1, floor(W/32) - crop/32 + 1)."""
        return self.model.score_map(x)


def to_dense(model: VGG) -> DenseVGG:
    """Return the dense (fully convolutional) net of ``model``, sharing its parameters."""
    if not isinstance(model, VGG):
        raise VGGError(f"to_dense needs a vggnet VGG model, got {type(model).__name__}")
    return DenseVGG(model)


def dense_map_size(spec: VGGSpec, height: int, width: int) -> tuple[int, int]:
    """Spatial size of the class score map for an input of ``height`` x ``width``."""
    k = spec.fc6_kernel
    return height // FEATURE_STRIDE - k + 1, width // FEATURE_STRIDE - k + 1
