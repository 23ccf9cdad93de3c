"""Decode any image Pillow reads into an upright 8-bit (C, H, W) tensor, once, at the size needed."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from vggnet.errors import VGGError

with warnings.catch_warnings():
    # torchvision 0.29 deprecates its decoders in favour of TorchCodec; without them we use Pillow.
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        decode_jpeg = None

# Pillow's own bomb limit (about 89 megapixels) raises a warning; we refuse above it.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
EXIF_ORIENTATION = 0x0112
TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class BadImage(VGGError):
    """An image file that cannot be used (truncated, empty, not an image, a bomb)."""


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """A Pillow image as a (C, H, W) uint8 tensor, without a float round trip."""
    channels = len(img.getbands())
    tensor = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return tensor.view(img.height, img.width, channels).permute(2, 0, 1)


def to_8bit(img: Image.Image, mode: str) -> Image.Image:
    """Convert any Pillow mode (CMYK, P, RGBA, LA, 16-bit, float) to 8-bit ``mode``."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit gray: keep the range instead of clipping at 255.
        array = np.asarray(img, dtype=np.float64) / 257.0
        img = Image.fromarray(np.clip(array + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img) + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "P":
        img = img.convert("RGBA")
    return img if img.mode == mode else img.convert(mode)


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__


def decode_image(
    path: str | os.PathLike, mode: str = "RGB", min_short_side: int | None = None
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Decode ``path`` upright (EXIF orientation applied) as an 8-bit ``mode`` ("RGB"/"L") tensor.

    JPEGs go through libjpeg-turbo (torchvision.io); a JPEG at least twice
    ``min_short_side`` is instead decoded at a reduced scale (libjpeg's DCT scaling
    through Pillow's draft mode) whose short side is still >= ``min_short_side``.
    Other formats go through Pillow. Returns the tensor and the full-resolution
    upright size (width, height), so that crop geometry does not depend on the
    decoding shortcut.
    """
    path = Path(path)
    if path.is_dir():
        raise BadImage(f"{path}: a folder, not an image file: pass the images in it ({path}/*)")
    if not path.exists():
        raise BadImage(f"{path}: no such file")
    try:
        if path.stat().st_size == 0:
            raise BadImage(f"{path}: empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise BadImage(
                        f"{path}: {width}x{height} pixels exceeds the {MAX_PIXELS:,} limit "
                        "(decompression bomb?)"
                    )
                full = (
                    (height, width)
                    if img.getexif().get(EXIF_ORIENTATION, 1) in TRANSPOSED
                    else (width, height)
                )
                reducible = min_short_side is not None and min(width, height) >= 2 * min_short_side
                if img.format == "JPEG" and not reducible and decode_jpeg is not None:
                    data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
                    read_mode = ImageReadMode.RGB if mode == "RGB" else ImageReadMode.GRAY
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)
                        image = decode_jpeg(data, mode=read_mode, apply_exif_orientation=True)
                    return image, full
                if img.format == "JPEG" and min_short_side is not None:
                    img.draft("RGB" if img.mode == "RGB" else None, (min_short_side,) * 2)
                img.load()
                upright = to_8bit(ImageOps.exif_transpose(img), mode)
        return pil_to_tensor(upright), full
    except BadImage:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise BadImage(
            f"{path}: too many pixels, over the {MAX_PIXELS:,} limit (decompression bomb?)"
        ) from None
    except (OSError, ValueError, SyntaxError, RuntimeError) as err:
        raise BadImage(f"{path}: cannot decode ({_reason(err)})") from None
