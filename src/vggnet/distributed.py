"""torchrun / DDP set-up: process group from the environment, rank helpers, collective sums."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from vggnet.errors import VGGError

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place: rank among world_size, local rank for the device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 prints and writes."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def setup(device_type: str, timeout_s: float) -> Dist:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU), if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as err:
        raise VGGError(f"cannot join the {world_size}-process group ({backend}): {err}") from None
    return Dist(rank, world_size, local_rank)


def teardown(d: Dist) -> None:
    """Leave the process group."""
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


PEER_FAILURE_HINTS = ("gloo", "nccl", "connection", "timed out", "timeout", "broken pipe")


def is_peer_failure(err: BaseException) -> bool:
    """Whether a collective failed because another process died, hung or lost its connection."""
    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    return isinstance(err, RuntimeError) and any(h in str(err).lower() for h in PEER_FAILURE_HINTS)


def peer_failure_reason(err: BaseException) -> str:
    """The gist of a backend's error: its first sentence, without the source-file prefix."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = re.sub(r"^(\[[^\]]*\]\s*)+", "", text)
    return text.split(". ")[0].rstrip(".")


@contextmanager
def process_group(
    device_type: str, timeout_s: float, recovery: Callable[[], str]
) -> Iterator[Dist]:
    """``setup`` .. ``teardown``; a lost or hung peer becomes one line ending with ``recovery``."""
    d = setup(device_type, timeout_s)
    try:
        yield d
        barrier(d)  # leave together: a process torn down while a peer still works can abort
    except RuntimeError as err:
        if not (d.enabled and is_peer_failure(err)):
            raise
        raise VGGError(
            f"process {d.rank} of {d.world_size} lost contact with the others "
            f"({peer_failure_reason(err)}); {recovery()}"
        ) from None
    finally:
        teardown(d)


def all_sum(values: list[float], d: Dist, device: torch.device) -> list[float]:
    """Element-wise sum over processes (identity in one process)."""
    if not d.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_object(value: T, d: Dist) -> T:
    """Rank 0's ``value`` on every process (picklable plain data)."""
    if not d.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(d: Dist) -> None:
    """Wait for every process."""
    if d.enabled:
        dist.barrier()
