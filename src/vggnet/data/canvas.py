"""``fashion-mnist-canvas``: Fashion-MNIST garments in scenes where object scale varies.

Each Fashion-MNIST image becomes one scene: the garment, rescaled so that its long side
covers a random share of the canvas's short side, sits at a random place on a canvas of
random size and aspect ratio, over a textured background with blurred, faint, smaller
pieces of other garments. The scene's object is the largest and clearest, so its label
stays Fashion-MNIST's; its bounding box comes with it. A scene is a pure function of
(seed, split, index): the same in every worker and process.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from vggnet.errors import VGGError

SPLIT_IDS = {"train": 0, "val": 1}
MIN_CANVAS = 16  # pixels: the smallest canvas side
MIN_OBJECT = 4  # pixels: the smallest rendered garment (long side)
CLUTTER_SCALE = (0.25, 0.6)  # a distractor's long side, as a share of the object's
CLUTTER_ALPHA = (0.2, 0.45)  # its opacity: fainter than the object (opacity 1)
CLUTTER_BLUR = (0.8, 2.0)  # its Gaussian blur radius, pixels


@dataclass(frozen=True)
class CanvasOptions:
    """How scenes vary. ``scale``: the garment's long side as a share of the canvas's short
    side (uniform); ``size``: the canvas's short side in pixels (uniform integers);
    ``aspect``: width / height (log-uniform); ``clutter``: distractor garments per scene;
    ``colour``: a random tint per garment and for the background (3 channels, else gray);
    ``seed``: which of the possible scene sets; ``train``, ``val``: use only the first N
    scenes of that split (0: all), for quick runs (scenes do not change with N)."""

    scale: tuple[float, float] = (0.25, 0.9)
    size: tuple[int, int] = (64, 128)
    aspect: tuple[float, float] = (0.75, 4 / 3)
    clutter: int = 3
    colour: bool = False
    seed: int = 0
    train: int = 0
    val: int = 0

    def __post_init__(self) -> None:
        (slo, shi), (zlo, zhi), (alo, ahi) = self.scale, self.size, self.aspect
        checks = [
            (0 < slo <= shi <= 1, f"scale={slo}-{shi}: give 0 < lo <= hi <= 1, the garment's "
             "long side as a share of the canvas's short side (above 1 it would not fit)"),
            (MIN_CANVAS <= zlo <= zhi, f"size={zlo}-{zhi}: give {MIN_CANVAS} <= lo <= hi, the "
             "canvas's short side in pixels"),
            (slo * zlo >= MIN_OBJECT, f"size={zlo}-{zhi} with scale={slo}-{shi}: a canvas this "
             f"small makes objects under {MIN_OBJECT} px; raise size or scale"),
            (0 < alo <= ahi, f"aspect={alo}-{ahi}: give 0 < lo <= hi (width / height)"),
            (self.clutter >= 0, f"clutter={self.clutter}: give a count >= 0"),
            (min(self.train, self.val) >= 0, "train/val: give a count >= 0 (0: all)"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise VGGError(f"fashion-mnist-canvas option {message}")


RANGE_OPTIONS = {"scale": float, "size": int, "aspect": float}


def parse_canvas_options(text: str) -> tuple[CanvasOptions, str | None]:
    """Options ``key=value,...`` (ranges ``lo-hi``; ``root=PATH`` is the Fashion-MNIST
    folder) as (options, root or None). An unknown option or value is one line naming it."""
    values: dict[str, Any] = {}
    root = None
    known = [f.name for f in fields(CanvasOptions)]
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        key = {"color": "colour"}.get(key.strip(), key.strip())
        try:
            if key == "root":
                root = value
            elif key in RANGE_OPTIONS:
                lo, _, hi = value.partition("-")
                kind = RANGE_OPTIONS[key]
                values[key] = (kind(lo), kind(hi or lo))
            elif key in ("clutter", "seed", "train", "val"):
                values[key] = int(value)
            elif key == "colour":
                values[key] = {"1": True, "0": False, "yes": True, "no": False}[value]
            else:
                raise VGGError(
                    f"fashion-mnist-canvas: unknown option {key!r}; choose from "
                    f"{', '.join([*known, 'root'])}"
                )
        except (ValueError, KeyError):
            raise VGGError(f"fashion-mnist-canvas option {item!r}: bad value") from None
    return CanvasOptions(**values), root


def tight_crop(garment: np.ndarray) -> np.ndarray:
    """The garment's nonzero pixels' bounding rectangle (the whole image if it is blank)."""
    rows, cols = np.flatnonzero(garment.any(1)), np.flatnonzero(garment.any(0))
    if not len(rows):
        return garment
    return garment[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def rescaled(
    garment: np.ndarray, long_side: int, blur: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The cropped garment with its long side ``long_side``: (texture 0..255, opacity 0..1)."""
    height, width = garment.shape
    factor = long_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    image = Image.fromarray(garment).resize(size, Image.Resampling.BILINEAR)
    mask = Image.fromarray(((garment > 0) * 255).astype(np.uint8)).resize(
        size, Image.Resampling.BILINEAR
    )
    if blur:
        image, mask = (im.filter(ImageFilter.GaussianBlur(blur)) for im in (image, mask))
    return np.asarray(image, np.float32), np.asarray(mask, np.float32) / 255


def canvas_shape(rng: np.random.Generator, opts: CanvasOptions) -> tuple[int, int]:
    """(height, width): a short side from ``size``, an aspect ratio from ``aspect``."""
    short = int(rng.integers(opts.size[0], opts.size[1] + 1))
    aspect = float(np.exp(rng.uniform(np.log(opts.aspect[0]), np.log(opts.aspect[1]))))
    if aspect >= 1:
        return short, max(short, round(short * aspect))
    return max(short, round(short / aspect)), short


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth random texture (0..255 float): a coarse noise field, upsampled, plus grain."""
    coarse = rng.uniform(-1, 1, (height // 8 + 2, width // 8 + 2)).astype(np.float32)
    field = np.asarray(
        Image.fromarray(coarse, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    )
    mean, amplitude = rng.uniform(30, 120), rng.uniform(15, 50)
    grain = rng.normal(0, rng.uniform(2, 8), (height, width))
    return np.clip(mean + amplitude * field + grain, 0, 255).astype(np.float32)


def tint(rng: np.random.Generator, colour: bool) -> np.ndarray:
    """A per-layer colour: RGB gains of a random hue and saturation (1 gain for gray)."""
    if not colour:
        return np.ones(1, np.float32)
    gains = rng.uniform(0.35, 1.0, 3)
    return (gains / gains.max()).astype(np.float32)


@dataclass
class Scene:
    """One rendered scene: the image (H, W, C) uint8, its object's box (x0, y0, x1, y1),
    pixels, x1 and y1 exclusive), and the object's opacity (H, W) in 0..1."""

    image: np.ndarray
    box: tuple[int, int, int, int]
    mask: np.ndarray


def paste(
    canvas: np.ndarray,
    texture: np.ndarray,
    opacity: np.ndarray,
    at: tuple[int, int],
    gain: np.ndarray,
    alpha: float,
) -> None:
    """Blend a garment layer onto ``canvas`` (H, W, C) at (top, left), clipped to the canvas."""
    top, left = at
    height, width = canvas.shape[:2]
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + texture.shape[0], height), min(left + texture.shape[1], width)
    if t0 >= t1 or l0 >= l1:
        return
    window = (slice(t0 - top, t1 - top), slice(l0 - left, l1 - left))
    a = opacity[window][..., None] * alpha
    region = canvas[t0:t1, l0:l1]
    region[:] = region * (1 - a) + texture[window][..., None] * gain * a


def render_scene(garments: np.ndarray, index: int, split: str, opts: CanvasOptions) -> Scene:
    """Scene ``index`` of ``split``: garment ``garments[index]`` over clutter drawn from
    ``garments`` (the split's 28x28 images). A pure function of its arguments."""
    rng = np.random.default_rng((7, opts.seed, SPLIT_IDS[split], index))
    height, width = canvas_shape(rng, opts)
    canvas = background(rng, height, width)[..., None] * tint(rng, opts.colour)
    long_side = max(MIN_OBJECT, round(rng.uniform(*opts.scale) * min(height, width)))
    for _ in range(opts.clutter):
        other_index = int(rng.integers(max(len(garments) - 1, 1)))
        other = garments[other_index + (other_index >= index and len(garments) > 1)]
        side = max(2, round(long_side * rng.uniform(*CLUTTER_SCALE)))
        texture, opacity = rescaled(tight_crop(other), side, float(rng.uniform(*CLUTTER_BLUR)))
        h, w = texture.shape
        at = (
            int(rng.integers(-h // 2, height - h // 2)),
            int(rng.integers(-w // 2, width - w // 2)),
        )
        paste(
            canvas, texture, opacity, at, tint(rng, opts.colour), float(rng.uniform(*CLUTTER_ALPHA))
        )
    texture, opacity = rescaled(tight_crop(garments[index]), long_side)
    h, w = texture.shape
    top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    paste(canvas, texture, opacity, (top, left), tint(rng, opts.colour), 1.0)
    mask = np.zeros((height, width), np.float32)
    mask[top : top + h, left : left + w] = opacity
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return Scene(np.clip(np.rint(canvas), 0, 255).astype(np.uint8), box, mask)
