"""Random erasing (Zhong et al., 2017): not the paper's; an opt-in regulariser for small data.

With probability ``p`` a training crop loses one rectangle of area ``U(0.02, 0.4)`` of the
crop and aspect ratio log-uniform in ``[0.3, 1 / 0.3]``, placed uniformly where it fits
(up to ten tries, as torchvision's ``RandomErasing``); the rectangle is set to 0 in the
network's input, which after mean subtraction is the mean pixel (their "RE-M"). Every
draw is a pure function of (seed, epoch, index), from its own counter stream, so the
crops, flips and colour shifts of a run are the same with or without it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vggnet.data.transforms import counter_uniforms

ERASE_STREAM = 3  # apart from the crops' stream (2) and the sampler's
AREA = (0.02, 0.4)
RATIO = (0.3, 1 / 0.3)
TRIES = 10


def erasing_boxes(
    seed: int, epoch: int, indices: np.ndarray, height: int, width: int, p: float
) -> np.ndarray:
    """(N, 4) int boxes (top, left, h, w) of images ``indices`` in ``epoch``; h = w = 0: none."""
    indices = np.asarray(indices)
    u = counter_uniforms(seed, epoch, indices, 1 + 4 * TRIES, stream=ERASE_STREAM)
    tries = u[:, 1:].reshape(len(indices), TRIES, 4)
    area = height * width * (AREA[0] + (AREA[1] - AREA[0]) * tries[..., 0])
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    ratio = np.exp(log_lo + (log_hi - log_lo) * tries[..., 1])
    h = np.rint(np.sqrt(area * ratio)).astype(np.int64)
    w = np.rint(np.sqrt(area / ratio)).astype(np.int64)
    fits = (h < height) & (w < width) & (h > 0) & (w > 0)
    top = (tries[..., 2] * (height - h + 1)).astype(np.int64)
    left = (tries[..., 3] * (width - w + 1)).astype(np.int64)
    boxes = np.zeros((len(indices), 4), dtype=np.int64)
    chosen = fits.argmax(axis=1)
    rows = np.arange(len(indices))
    keep = (u[:, 0] < p) & fits[rows, chosen]
    picked = np.stack([top, left, h, w], axis=-1)[rows, chosen]
    boxes[keep] = picked[keep]
    return boxes


def erase(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Zero each image's box of a (N, C, H, W) batch; ``boxes`` (N, 4) as ``erasing_boxes``."""
    boxes = boxes.to(x.device)
    rows = torch.arange(x.shape[-2], device=x.device)
    cols = torch.arange(x.shape[-1], device=x.device)
    top, left, h, w = boxes.unbind(1)
    in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])
    inside = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    return x.masked_fill(inside, 0.0)
