"""The paper's transforms: scale-jittered random crops, flips, PCA colour shift, mean subtraction.

Per-image work (decode, rescale, crop, flip) stays in uint8 and happens in loader
workers; the float work (colour shift, mean subtraction) is done once per batch on
the training device by ``BatchNormalizer``. Every random choice for an image is a
pure function of (seed, epoch, index), whatever the number of workers or processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch import nn

from vggnet.data.geometry import Scale, center_offset, grid_offsets, rescaled_size
from vggnet.preprocessing import Preprocessing

# Krizhevsky et al.'s colour shift: alpha ~ N(0, 0.1) per principal component.
LIGHTING_STD = 0.1
AUGMENT_STREAM = 2  # keeps per-image streams apart from the sampler's


@dataclass(frozen=True)
class CropParams:
    """The random choices for one training image."""

    scale: int
    left: int
    top: int
    flip: bool
    alpha: tuple[float, ...]


def image_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream of one image in one epoch."""
    return np.random.default_rng((AUGMENT_STREAM, seed, epoch, index))


def resize_short_side(image: torch.Tensor, full_size: tuple[int, int], short: int) -> torch.Tensor:
    """Rescale a (C, H, W) uint8 image isotropically so the short side of its full size is ``short``.

    ``image`` may be a reduced-size decode of an image of ``full_size``; the output size
    is computed from the full size, so it does not depend on the decoding shortcut.
    """
    width, height = rescaled_size(*full_size, short)
    if image.shape[-2:] == (height, width):
        return image
    return TF.resize(image, [height, width], antialias=True)


def draw_crop(
    rng: np.random.Generator,
    scale: int,
    full_size: tuple[int, int],
    crop: int,
    channels: int,
    flip: bool = True,
) -> CropParams:
    """The crop position, flip and colour-shift draws for an image of ``full_size`` at ``scale``."""
    width, height = rescaled_size(*full_size, scale)
    left = int(rng.integers(0, width - crop + 1))
    top = int(rng.integers(0, height - crop + 1))
    mirrored = bool(rng.random() < 0.5) and flip
    alpha = tuple(float(a) for a in rng.normal(0.0, LIGHTING_STD, channels))
    return CropParams(scale, left, top, mirrored, alpha)


def apply_crop(
    image: torch.Tensor, full_size: tuple[int, int], params: CropParams, crop: int
) -> torch.Tensor:
    """Rescale (short side ``params.scale``), cut the ``crop`` square, mirror: on any device."""
    rescaled = resize_short_side(image, full_size, params.scale)
    out = rescaled[:, params.top : params.top + crop, params.left : params.left + crop]
    return out.flip(-1) if params.flip else out


def random_crop(
    image: torch.Tensor,
    full_size: tuple[int, int],
    rng: np.random.Generator,
    scale: int,
    crop: int,
    flip: bool = True,
) -> tuple[torch.Tensor, CropParams]:
    """Rescale isotropically so the short side is ``scale``, take a random ``crop`` square, flip."""
    params = draw_crop(rng, scale, full_size, crop, image.shape[0], flip)
    return apply_crop(image, full_size, params, crop), params


@dataclass(frozen=True)
class TrainTransform:
    """Training view of image ``index`` in ``epoch``: S (fixed or ~U[Smin, Smax]), crop, flip."""

    scale: Scale
    crop: int = 224
    seed: int = 0
    flip: bool = True

    def draw_scale(self, index: int, epoch: int) -> tuple[np.random.Generator, int]:
        """The image's random stream and its training scale S (the first draw)."""
        rng = image_rng(self.seed, epoch, index)
        return rng, int(rng.integers(self.scale.smin, self.scale.smax + 1))

    def __call__(self, source, index: int, epoch: int) -> tuple[torch.Tensor, CropParams]:
        """(uint8 crop (C, crop, crop), its parameters) for image ``index`` of ``source``."""
        rng, s = self.draw_scale(index, epoch)
        image, full = source.read(index, min_short_side=s)
        return random_crop(image, full, rng, s, self.crop, self.flip)


def rescale(image: torch.Tensor, short: int) -> torch.Tensor:
    """The whole (C, H, W) image rescaled isotropically to smallest side ``short`` (test scale Q)."""
    return resize_short_side(image, (image.shape[-1], image.shape[-2]), short)


def center_crop(image: torch.Tensor, crop: int) -> torch.Tensor:
    """The centred ``crop`` square of a (..., H, W) tensor."""
    top = center_offset(image.shape[-2], crop)
    left = center_offset(image.shape[-1], crop)
    return image[..., top : top + crop, left : left + crop]


def grid_crops(image: torch.Tensor, crop: int, grid: int) -> torch.Tensor:
    """A regular ``grid`` x ``grid`` of ``crop`` squares of a (C, H, W) tensor: (grid^2, C, crop, crop)."""
    tops = grid_offsets(image.shape[-2], crop, grid)
    lefts = grid_offsets(image.shape[-1], crop, grid)
    return torch.stack([image[:, t : t + crop, x : x + crop] for t in tops for x in lefts])


class BatchNormalizer(nn.Module):
    """uint8 batch -> network input: PCA colour shift (training) and the model's preprocessing.

    The shift adds ``eigvecs @ (alpha * pc_std)`` to every pixel of an image (0..1 units),
    Krizhevsky et al.'s formula with ``pc_std`` the standard deviation along each principal
    component (square root of the RGB covariance's eigenvalue), which keeps the shift in
    pixel units as fb.resnet.torch and most ports do.
    """

    def __init__(
        self,
        preprocessing: Preprocessing,
        pc_std: torch.Tensor | None = None,
        eigvecs: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.preprocessing = preprocessing
        self.register_buffer("pc_std", pc_std if pc_std is not None else torch.empty(0))
        self.register_buffer("eigvecs", eigvecs if eigvecs is not None else torch.empty(0))

    def forward(self, images: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C, H, W) uint8 -> float network input; ``alpha`` (N, C) turns the colour shift on."""
        x = images.float()
        # One affine map per image and channel: (pixel / 255 + shift - mean) / std.
        mean = torch.tensor(self.preprocessing.mean, device=x.device)
        std = torch.tensor(self.preprocessing.std, device=x.device)
        bgr = self.preprocessing.channel_order == "BGR"
        if bgr:  # the images are RGB: work in RGB, reorder at the end
            mean, std = mean.flip(0), std.flip(0)
        offset = -mean / std
        if alpha is not None and self.pc_std.numel():
            shift = (alpha.to(x) * self.pc_std.to(x)) @ self.eigvecs.to(x).T  # (N, C)
            offset = offset + shift / std
        x.mul_((1 / (255 * std))[:, None, None]).add_(offset.reshape(-1, x.shape[1], 1, 1))
        return x.flip(1) if bgr else x
