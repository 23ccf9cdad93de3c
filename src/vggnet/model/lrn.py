"""Krizhevsky et al.'s local response normalisation (A-LRN's ``norm1``), as a 1x1 convolution."""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn


def channel_window(channels: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """The (C, C, 1, 1) kernel of ones that sums each channel's LRN window of ``size``."""
    band = torch.ones(channels, channels, dtype=like.dtype, device=like.device)
    # Output c sums inputs c - size // 2 .. c + (size - 1) // 2, as torch's and Caffe's LRN do.
    band = band.triu(-(size // 2)).tril((size - 1) // 2)
    return band.view(channels, channels, 1, 1)


class LocalResponseNorm(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` with the channel-window sum done by a 1x1 convolution.

    Same result (the window is divided by ``size`` at the edges too); torch's version goes
    through a 5-D average pool, which cost more than the rest of an A-LRN training step on a
    CPU (docs/BENCHMARKS.md).
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() != 4 or input.numel() == 0:
            return super().forward(input)
        # In at least fp32, as autocast runs torch's pooled window: bf16 would round the sum.
        device = input.device.type
        available = torch.amp.is_autocast_available(device)  # not on "meta" (layer tables)
        with torch.autocast(device, enabled=False) if available else nullcontext():
            x = input.to(torch.promote_types(input.dtype, torch.float32))
            window = F.conv2d(x * x, channel_window(x.shape[1], self.size, x))
            factor = window.mul(self.alpha / self.size).add(self.k).pow(-self.beta)
            return (x * factor).to(input.dtype)
