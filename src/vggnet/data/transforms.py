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
from vggnet.data.images import BadImage
from vggnet.preprocessing import Preprocessing

# Krizhevsky et al.'s colour shift: alpha ~ N(0, 0.1) per principal component.
LIGHTING_STD = 0.1
AUGMENT_STREAM = 2  # keeps per-image streams apart from the sampler's
MAX_CHANNELS = 3
# Uniforms drawn per image: scale, left, top, flip, then two per colour-shift normal.
SLOTS = 4 + 2 * MAX_CHANNELS
_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 whose outputs look independent."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def counter_uniforms(
    seed: int, epoch: int, indices: np.ndarray, count: int, stream: int = AUGMENT_STREAM
) -> np.ndarray:
    """(len(indices), count) uniforms in (0, 1): pure functions of (stream, seed, epoch, index, slot).

    A counter-based generator: one vectorised hash per batch instead of a seeded
    generator per image, and the same numbers whichever worker or process asks.
    """
    key = np.zeros(1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for part in (stream, seed, epoch):
            key = _mix(key + np.uint64(part % 2**64) * _GAMMA)
        counters = np.asarray(indices, dtype=np.uint64)[:, None] * np.uint64(count)
        counters = counters + np.arange(count, dtype=np.uint64)
        bits = _mix(key + (counters + np.uint64(1)) * _GAMMA)
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


@dataclass(frozen=True)
class CropParams:
    """The random choices for one training image."""

    scale: int
    left: int
    top: int
    flip: bool
    alpha: tuple[float, ...]
    full: tuple[int, int] = (0, 0)  # the image's (width, height) before rescaling


@dataclass(frozen=True)
class Draw:
    """One image's random draws before its size is known: S, crop position as fractions, flip, alpha."""

    scale: int
    left: float
    top: float
    flip: bool
    alpha: tuple[float, ...]

    def crop_params(self, full_size: tuple[int, int], crop: int, channels: int) -> CropParams:
        """The crop of an image of ``full_size`` (width, height) once rescaled to ``self.scale``."""
        width, height = rescaled_size(*full_size, self.scale)
        left = min(int(self.left * (width - crop + 1)), width - crop)
        top = min(int(self.top * (height - crop + 1)), height - crop)
        return CropParams(
            self.scale, left, top, self.flip, self.alpha[:channels], (full_size[0], full_size[1])
        )


def draws(seed: int, epoch: int, indices, smin: int, smax: int, flip: bool = True) -> list[Draw]:
    """The draws of images ``indices`` in ``epoch``: S ~ U{smin..smax}, uniform crop, fair flip."""
    u = counter_uniforms(seed, epoch, np.asarray(indices), SLOTS)
    scales = smin + np.minimum((u[:, 0] * (smax - smin + 1)).astype(np.int64), smax - smin)
    radius = np.sqrt(-2.0 * np.log(u[:, 4 : 4 + MAX_CHANNELS]))
    alpha = LIGHTING_STD * radius * np.cos(2 * np.pi * u[:, 4 + MAX_CHANNELS :])
    return [
        Draw(int(s), float(a), float(b), bool(f < 0.5) and flip, tuple(c.tolist()))
        for s, a, b, f, c in zip(scales, u[:, 1], u[:, 2], u[:, 3], alpha, strict=True)
    ]


def resize_short_side(image: torch.Tensor, full_size: tuple[int, int], short: int) -> torch.Tensor:
    """Rescale a (..., C, H, W) uint8 image isotropically so the short side of its full size is ``short``.

    ``image`` may be a reduced-size decode of an image of ``full_size``; the output size
    is computed from the full size, so it does not depend on the decoding shortcut.
    """
    width, height = rescaled_size(*full_size, short)
    if image.shape[-2:] == (height, width):
        return image
    return TF.resize(image, [height, width], antialias=True)


def cut_crop(rescaled: torch.Tensor, params: CropParams, crop: int) -> torch.Tensor:
    """The ``crop`` square of an already rescaled image, mirrored if drawn."""
    out = rescaled[..., params.top : params.top + crop, params.left : params.left + crop]
    return out.flip(-1) if params.flip else out


def apply_crop(
    image: torch.Tensor, full_size: tuple[int, int], params: CropParams, crop: int
) -> torch.Tensor:
    """Rescale (short side ``params.scale``), cut the ``crop`` square, mirror: on any device."""
    return cut_crop(resize_short_side(image, full_size, params.scale), params, crop)


def random_crop(
    image: torch.Tensor, full_size: tuple[int, int], draw: Draw, crop: int
) -> tuple[torch.Tensor, CropParams]:
    """Rescale isotropically so the short side is ``draw.scale``, cut the drawn ``crop`` square, flip."""
    params = draw.crop_params(full_size, crop, image.shape[0])
    return apply_crop(image, full_size, params, crop), params


@dataclass(frozen=True)
class TrainTransform:
    """Training view of image ``index`` in ``epoch``: S (fixed or ~U[Smin, Smax]), crop, flip."""

    scale: Scale
    crop: int = 224
    seed: int = 0
    flip: bool = True

    def draws(self, epoch: int, indices) -> list[Draw]:
        """The random draws of images ``indices`` in ``epoch``."""
        return draws(self.seed, epoch, indices, self.scale.smin, self.scale.smax, self.flip)

    def __call__(self, source, index: int, epoch: int) -> tuple[torch.Tensor, CropParams]:
        """(uint8 crop (C, crop, crop), its parameters) for image ``index`` of ``source``."""
        [draw] = self.draws(epoch, [index])
        image, full = source.read(index, min_short_side=draw.scale)
        return random_crop(image, full, draw, self.crop)

    def batch(self, source, epoch: int, indices: list[int]) -> list:
        """``self(source, i, epoch)`` for each i, a ``BadImage`` where reading fails.

        Images that share a decoded size, full size and scale (every image of a
        fixed-size dataset) are rescaled together in one call.
        """
        out: list = [None] * len(indices)
        groups: dict[tuple, list[tuple[int, torch.Tensor, CropParams]]] = {}
        for slot, (index, draw) in enumerate(zip(indices, self.draws(epoch, indices), strict=True)):
            try:
                image, full = source.read(index, min_short_side=draw.scale)
            except BadImage as err:
                out[slot] = err
                continue
            params = draw.crop_params(full, self.crop, image.shape[0])
            key = (tuple(image.shape), tuple(full), draw.scale)
            groups.setdefault(key, []).append((slot, image, params))
        for (_, full, scale), members in groups.items():
            rescaled = resize_short_side(torch.stack([m[1] for m in members]), full, scale)
            for (slot, _, params), image in zip(members, rescaled, strict=True):
                out[slot] = (cut_crop(image, params, self.crop), params)
        return out


def rescale(image: torch.Tensor, short: int) -> torch.Tensor:
    """The whole (..., C, H, W) image rescaled isotropically to smallest side ``short`` (test scale Q)."""
    return resize_short_side(image, (image.shape[-1], image.shape[-2]), short)


def center_crop(image: torch.Tensor, crop: int) -> torch.Tensor:
    """The centred ``crop`` square of a (..., H, W) tensor."""
    top = center_offset(image.shape[-2], crop)
    left = center_offset(image.shape[-1], crop)
    return image[..., top : top + crop, left : left + crop]


def grid_crops(image: torch.Tensor, crop: int, grid: int) -> torch.Tensor:
    """A regular ``grid`` x ``grid`` of ``crop`` squares of a (C, H, W) tensor: (grid^2, C, crop, crop)."""
    crops, cells = distinct_grid_crops(image, crop, grid)
    return crops[cells]


def distinct_grid_crops(
    image: torch.Tensor, crop: int, grid: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct windows of ``grid_crops``, and for each grid cell the index of its window.

    An image barely larger than the crop repeats windows (at Q = crop all of them are one):
    scoring each distinct window once and gathering by cell gives the grid's mean for less.
    """
    cells = [
        (t, x)
        for t in grid_offsets(image.shape[-2], crop, grid)
        for x in grid_offsets(image.shape[-1], crop, grid)
    ]
    windows = list(dict.fromkeys(cells))
    crops = torch.stack([image[:, t : t + crop, x : x + crop] for t, x in windows])
    return crops, torch.tensor([windows.index(cell) for cell in cells])


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
        self.pc_std: torch.Tensor
        self.eigvecs: torch.Tensor
        self.register_buffer("pc_std", pc_std if pc_std is not None else torch.empty(0))
        self.register_buffer("eigvecs", eigvecs if eigvecs is not None else torch.empty(0))

    def forward(self, images: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C, H, W) uint8 -> float network input; ``alpha`` (N, C) turns the colour shift on."""
        x = images.float()
        # One affine map per image and channel: (pixel / 255 + shift - mean) / std.
        mean, std = self.preprocessing.image_order_stats(torch.float32, x.device)
        offset = -mean / std
        if alpha is not None and self.pc_std.numel():
            shift = (alpha.to(x) * self.pc_std.to(x)) @ self.eigvecs.to(x).T  # (N, C)
            offset = offset + shift / std
        x.mul_((1 / (255 * std))[:, None, None]).add_(offset.reshape(-1, x.shape[1], 1, 1))
        return x.flip(1) if self.preprocessing.reorders else x
