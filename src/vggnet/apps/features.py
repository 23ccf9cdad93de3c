"""Named feature taps (conv3_2, relu4_3, pool5, fc7, ...) and the perceptual loss built on them.

Today the VGG nets are mostly used as fixed feature extractors: transfer learning reads
fc7, perceptual and style losses read relu1_2, relu2_2, relu3_3 and relu4_3.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vggnet.checkpoint import load_checkpoint
from vggnet.errors import VGGError
from vggnet.model import VGG

PERCEPTUAL_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
# How far past input_range (as a share of its width) inputs may stray: generators overshoot
# a little; 0..255 images given as (0, 1) are 255 times off.
RANGE_SLACK = 0.5


def looks_untrained(model: VGG) -> bool:
    """Whether ``model`` was never trained: no card (no classes, no training scale), or
    every conv and FC bias still zero, as every initialisation leaves them."""
    if model.classes is None and model.train_scale is None:
        return True
    biases = [m.bias for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    return all(b is not None and not bool(b.detach().any()) for b in biases)


_WARNED: weakref.WeakSet[VGG] = weakref.WeakSet()


def warn_if_untrained(model: VGG, user: str) -> None:
    """Warn once per net that features of an untrained net mean nothing."""
    if model in _WARNED or not looks_untrained(model):
        return
    _WARNED.add(model)
    warnings.warn(
        f"{user}: the net looks untrained (no classes or training scale, or every bias zero): "
        "its features carry no meaning; load weights with vggnet.load_pretrained('vgg16.tv_in1k') "
        "or vggnet.load_checkpoint",
        stacklevel=3,
    )


def layer_names(model: VGG) -> list[str]:
    """Every tap of ``model`` in forward order (Caffe names; no "flatten")."""
    return [name for name, _ in model.named_children() if name != "flatten"]


def layer_list(layers: str | Sequence[str]) -> list[str]:
    """Layer names as a list: one name given alone is one layer (never split into letters)."""
    if isinstance(layers, str):
        return [layers]
    names = list(layers)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise VGGError(f"layer names are strings like 'relu3_3', got {bad[0]!r}")
    return names


def check_layers(model: VGG, layers: Sequence[str]) -> None:
    """Refuse a layer name the model does not have, listing the ones it has."""
    names = layer_names(model)
    unknown = [layer for layer in layers if layer not in names]
    if unknown:
        raise VGGError(
            f"no layer {unknown[0]!r} in config {model.spec.config}: choose from {', '.join(names)}"
        )


def extract_features(
    model: VGG, images: torch.Tensor, layers: str | Sequence[str]
) -> dict[str, torch.Tensor]:
    """Outputs of ``model``'s named layers for preprocessed ``images``, in one pass to the
    deepest tap; returns a dict of layer name to tensor, in the order asked.

    ReLUs run out of place, so a tapped tensor is never overwritten and autograd works
    through every tap. Conv taps take any image size; FC taps are (N, C) at the crop
    size and maps (N, C, h, w) on larger images (the dense view). ``layers`` is a list of
    names, or one name.
    """
    layers = layer_list(layers)
    check_layers(model, layers)
    warn_if_untrained(model, "extract_features")
    names = layer_names(model)
    if not layers:
        return {}
    deepest = max(names.index(layer) for layer in layers)
    if images.dim() != 4 or images.shape[1] != model.spec.in_channels:
        raise VGGError(
            f"expected images of shape (N, {model.spec.in_channels}, H, W), got {tuple(images.shape)}"
        )
    if deepest > names.index("pool5"):  # FC taps need at least one crop; conv taps any size
        model._check_size(images)
    dense = images.shape[-2:] != (model.spec.crop_size,) * 2
    kernel = model.spec.fc6_kernel
    wanted, out, x = set(layers), {}, images
    for name in names[: deepest + 1]:
        layer = model[name]
        if isinstance(layer, nn.ReLU):
            x = F.relu(x)
        elif isinstance(layer, nn.Linear):
            if dense:
                x = F.conv2d(
                    x, layer.weight.view(layer.out_features, -1, kernel, kernel), layer.bias
                )
                kernel = 1
            else:
                x = layer(x.flatten(1))
        else:
            x = layer(x)
        if name in wanted:
            out[name] = x
    return {layer: out[layer] for layer in layers}


class PerceptualLoss(nn.Module):
    """Feature-matching loss: weighted mean squared differences of VGG features of two images.

    ``model``: a VGG or a checkpoint path; ``layers``: the taps compared (default relu1_2,
    relu2_2, relu3_3, relu4_3), each with one of ``weights`` (default 1). Inputs are RGB
    images in [0, 1] (``input_range=(0, 1)``) or [-1, 1]; the model's own stored
    preprocessing (mean, std, channel order) is applied, and its weights are frozen.
    """

    def __init__(
        self,
        model: VGG | str | os.PathLike,
        layers: str | Sequence[str] = PERCEPTUAL_LAYERS,
        weights: Sequence[float] | None = None,
        input_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__()
        net = model if isinstance(model, VGG) else load_checkpoint(model)
        layers = layer_list(layers)
        if weights is not None and len(weights) != len(layers):
            raise VGGError(f"{len(weights)} weights for {len(layers)} layers: give one per layer")
        if tuple(input_range) not in ((0.0, 1.0), (-1.0, 1.0)):
            raise VGGError(f"input_range {input_range}: use (0, 1) or (-1, 1)")
        self.net = net.eval().requires_grad_(False)
        self.layers = list(layers)
        self.weights = list(weights) if weights is not None else [1.0] * len(layers)
        self.input_range = tuple(input_range)
        check_layers(self.net, self.layers)
        warn_if_untrained(self.net, "PerceptualLoss")

    def train(self, mode: bool = True) -> PerceptualLoss:
        """The feature net stays in eval mode (no dropout, fixed batch-norm statistics)."""
        super().train(mode)
        self.net.eval()
        return self

    def _features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check_input(images)
        if self.input_range == (-1.0, 1.0):
            images = (images + 1) / 2
        return extract_features(self.net, self.net.preprocessing.normalize(images), self.layers)

    def _check_input(self, images: torch.Tensor) -> None:
        """Refuse images of another channel count, or far outside ``input_range`` (0..255?)."""
        channels = self.net.spec.in_channels
        if images.dim() != 4 or images.shape[1] != channels:
            raise VGGError(
                f"PerceptualLoss takes images of shape (N, {channels}, H, W) for this "
                f"{channels}-channel net, got {tuple(images.shape)}"
                + (": repeat a gray channel with x.expand(-1, 3, -1, -1)" if channels == 3 else "")
            )
        low, high = self.input_range
        margin = (high - low) * RANGE_SLACK
        lo, hi = torch.stack(torch.aminmax(images.detach())).tolist()  # one device sync
        if lo < low - margin or hi > high + margin:
            raise VGGError(
                f"PerceptualLoss images have values in [{lo:.3g}, {hi:.3g}], far outside "
                f"input_range ({low:g}, {high:g}): scale them (0..255 images: divide by 255), "
                "or pass the input_range they use"
            )

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """sum_k w_k * mean((phi_k(input) - phi_k(target))^2); no gradient flows into ``target``."""
        ours = self._features(input)
        with torch.no_grad():
            theirs = self._features(target)
        return sum(  # type: ignore[return-value]  # a sum of tensors is a tensor
            w * F.mse_loss(ours[k], theirs[k])
            for k, w in zip(self.layers, self.weights, strict=True)
        )


class Backbone(nn.Module):
    """timm's ``features_only`` model: the maps of a VGG's stage outputs, for detection or
    segmentation heads.

    ``out_indices`` pick entries of ``model.feature_info`` (default all five: relu1_2 ...
    relu5_3 for D). The layers past the deepest tap (pool5, the FC layers) are dropped, so
    the backbone holds only the conv weights it uses. ``forward`` returns one
    (N, C, H / reduction, W / reduction) map per tap; ``feature_info`` lists them.
    """

    def __init__(self, model: VGG, out_indices: Sequence[int] = (0, 1, 2, 3, 4)) -> None:
        super().__init__()
        taps = model.feature_info
        bad = [i for i in out_indices if not -len(taps) <= i < len(taps)]
        if bad or not out_indices:
            raise VGGError(
                f"out_indices {tuple(out_indices)}: choose from 0..{len(taps) - 1} "
                f"({', '.join(t.module for t in taps)})"
            )
        self.feature_info = [taps[i] for i in out_indices]
        names = layer_names(model)
        deepest = max(names.index(t.module) for t in self.feature_info)
        self.body = model[: deepest + 1]
        self.taps = {t.module for t in self.feature_info}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The tapped maps, in ``feature_info``'s order."""
        out = {}
        for name, layer in self.body.named_children():
            x = layer(x)
            if name in self.taps:
                out[name] = x
        return [out[t.module] for t in self.feature_info]
