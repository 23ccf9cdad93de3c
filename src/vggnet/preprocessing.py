"""How raw pixels become network input; stored in every checkpoint so users never guess."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vggnet.errors import VGGError

# ImageNet training-set mean pixel in 0..255, RGB (the Caffe release lists it as BGR).
IMAGENET_MEAN_RGB_255 = (123.68, 116.779, 103.939)
# torchvision's ImageNet normalisation for inputs in 0..1.
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)

# "raw": channels taken as given (a net with neither 1 nor 3 input channels).
CHANNEL_ORDERS = ("RGB", "BGR", "L", "raw")


@dataclass(frozen=True)
class Preprocessing:
    """Model input = (pixels in 0..1, reordered to ``channel_order``, minus ``mean``) / ``std``.

    The paper's "subtract the mean RGB" on 0..255 pixels is ``mean = m / 255``,
    ``std = 1 / 255``; torchvision's weights use their own mean and std.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS:
            raise VGGError(
                f"preprocessing channel_order {self.channel_order!r} is not one of {CHANNEL_ORDERS}"
            )
        if len(self.mean) != len(self.std):
            raise VGGError(f"preprocessing mean {self.mean} and std {self.std} differ in length")
        if any(s <= 0 for s in self.std):
            raise VGGError(f"preprocessing std {self.std} must be positive")

    @classmethod
    def paper(cls, mean_255: tuple[float, ...] = IMAGENET_MEAN_RGB_255) -> Preprocessing:
        """The paper's only preprocessing: subtract a mean pixel from 0..255 values."""
        order = "L" if len(mean_255) == 1 else "RGB"
        return cls(tuple(m / 255 for m in mean_255), (1 / 255,) * len(mean_255), order)

    @classmethod
    def default_for(cls, channels: int) -> Preprocessing:
        """A new net's preprocessing: the paper's ImageNet mean for RGB, else 0..255 values as given."""
        if channels == 3:
            return cls.paper()
        return cls((0.0,) * channels, (1 / 255,) * channels, "L" if channels == 1 else "raw")

    @classmethod
    def torchvision(cls) -> Preprocessing:
        """The normalisation torchvision's ImageNet VGG weights expect."""
        return cls(TORCHVISION_MEAN, TORCHVISION_STD, "RGB")

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Turn RGB (or gray) float images in 0..1, shape (..., C, H, W), into model input."""
        if images.dim() < 3 or images.shape[-3] != len(self.mean):
            raise VGGError(
                f"preprocessing expects images of shape (..., {len(self.mean)}, H, W) "
                f"({self.channel_order}), got {tuple(images.shape)}: give the net the channels "
                "it was trained on (gray to RGB: images.expand(-1, 3, -1, -1))"
            )
        mean, std = self.image_order_stats(images.dtype, images.device)
        x = (images - mean[:, None, None]) / std[:, None, None]
        return x.flip(-3) if self.reorders else x

    @property
    def reorders(self) -> bool:
        """Whether the net takes its channels in another order than images come (BGR)."""
        return self.channel_order == "BGR"

    def image_order_stats(
        self, dtype: torch.dtype, device: torch.device | str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean`` and ``std`` per channel in the order images come in (RGB or gray).

        Normalise in that order, then reorder the result (``reorders``): the same input as
        reordering first and using the stored (net-order) values.
        """
        mean = torch.tensor(self.mean, dtype=dtype, device=device)
        std = torch.tensor(self.std, dtype=dtype, device=device)
        return (mean.flip(0), std.flip(0)) if self.reorders else (mean, std)

    def to_dict(self) -> dict:
        """Plain-data form for checkpoints and JSON."""
        return {"mean": list(self.mean), "std": list(self.std), "channel_order": self.channel_order}

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        """Inverse of ``to_dict``."""
        return cls(tuple(data["mean"]), tuple(data["std"]), str(data["channel_order"]))
