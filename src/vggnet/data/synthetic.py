"""A generated image set whose class is visible (shape and colour), for tests and benchmarks."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("disc", "square", "triangle", "cross", "ring", "bar")
SPLIT_SEEDS = {"train": 0, "val": 1}


def synthetic_label(index: int, num_classes: int) -> int:
    """Balanced labels: image i belongs to class i mod K."""
    return index % num_classes


def synthetic_image(
    index: int, num_classes: int, size: int, seed: int = 0, split: str = "train"
) -> Image.Image:
    """Image ``index`` of a split: a class-coloured, class-shaped object on a textured ground.

    Class c has shape ``SHAPES[c % 6]`` and hue ``c / K``; position, size, aspect of the
    canvas, background and stripe texture vary per image. A pure function of its arguments.
    """
    label = synthetic_label(index, num_classes)
    rng = np.random.default_rng((3, seed, SPLIT_SEEDS.get(split, 2), index))
    aspect = rng.uniform(0.75, 1.33)
    width, height = (size, round(size * aspect)) if aspect >= 1 else (round(size / aspect), size)
    ground = rng.uniform(0, 90, 3) + rng.normal(0, 12, (height, width, 3))
    stripes = np.sin(np.arange(width) * rng.uniform(0.2, 1.0) + rng.uniform(0, 6))[None, :, None]
    canvas = np.clip(ground + 15 * stripes, 0, 255).astype(np.uint8)
    img = Image.fromarray(canvas, "RGB")
    draw = ImageDraw.Draw(img)
    r, g, b = colorsys.hsv_to_rgb(label / num_classes, 0.9, rng.uniform(0.75, 1.0))
    colour = (int(r * 255), int(g * 255), int(b * 255))
    radius = rng.uniform(0.18, 0.32) * size
    cx = rng.uniform(radius, width - radius)
    cy = rng.uniform(radius, height - radius)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    shape = SHAPES[label % len(SHAPES)]
    if shape == "disc":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon(
            [(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], colour
        )
    elif shape == "cross":
        t = radius / 3
        draw.rectangle((cx - radius, cy - t, cx + radius, cy + t), fill=colour)
        draw.rectangle((cx - t, cy - radius, cx + t, cy + radius), fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=max(2, int(radius / 3)))
    else:
        draw.rectangle((cx - radius, cy - radius / 4, cx + radius, cy + radius / 4), fill=colour)
    return img
