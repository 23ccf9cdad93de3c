"""A device scalar read one step after it was computed, so the host never waits for the GPU.

Reading a CUDA tensor's value (``.item()``) waits for every kernel queued before the read,
so reading each step's loss at once leaves the GPU idle while the host queues the next
step. Here the value is copied into page-locked memory right after it is computed, and
read one step later, when the GPU has long finished computing it.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import torch

T = TypeVar("T")


class LaggedScalar(Generic[T]):
    """Holds one queued scalar (with a tag saying whose it is); ``put`` returns the previous one."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.queued: tuple[torch.Tensor, torch.cuda.Event | None, T] | None = None

    def put(self, value: torch.Tensor, tag: T) -> tuple[float, T] | None:
        """Queue this step's value; return the value and tag queued before it, if any."""
        previous = self.take()
        event = None
        if self.cuda:
            host = torch.empty((), dtype=value.dtype, pin_memory=True)
            host.copy_(value.detach(), non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        else:
            host = value.detach()
        self.queued = (host, event, tag)
        return previous

    def take(self) -> tuple[float, T] | None:
        """The queued value (waiting for the device only until it was computed) and its tag."""
        if self.queued is None:
            return None
        host, event, tag = self.queued
        self.queued = None
        if event is not None:
            event.synchronize()
        return float(host), tag
