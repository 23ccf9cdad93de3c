"""A run's state: where it is, and the objects whose state a checkpoint keeps.

``RunState`` is what a checkpoint's ``train_state`` holds and what ``--resume`` restores:
the position (step, epoch, step in the epoch), the best validation error, and the
optimiser, gradient scaler, schedule and random number generators.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from vggnet.distributed import Dist
from vggnet.errors import VGGError
from vggnet.model import VGG
from vggnet.schedule import LinearSchedule, PlateauSchedule
from vggnet.train.config import TrainConfig


@contextmanager
def restoring(last: Path) -> Iterator[None]:
    """Restoring a resumed run's state: a part that does not fit is one line naming the file."""
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VGGError(
            f"--resume: the training state in {last} cannot be restored ({reason}): the file is "
            "damaged; start a new run, or --finetune-from a copy of it"
        ) from None


def rng_state(device: torch.device, d: Dist) -> list[dict]:
    """Every process's torch RNG state (dropout masks), gathered on all ranks."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if not d.enabled:
        return [state]
    gathered: list[Any] = [None] * d.world_size
    dist.all_gather_object(gathered, state)
    return gathered


def restore_rng(states: list[dict], device: torch.device, d: Dist) -> None:
    """Restore this process's RNG state from a checkpoint's list (one entry per process)."""
    state = states[d.rank] if d.rank < len(states) else states[0]
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


@dataclass
class RunState:
    """Everything of a run that changes as it trains (the weights are ``model``'s)."""

    model: VGG
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: PlateauSchedule | LinearSchedule
    step: int = 0  # optimiser steps taken
    epoch: int = 0  # epochs finished (validated)
    step_in_epoch: int = 0
    best_error: float = float("inf")  # best validation top-1 error so far

    def restore(self, saved: dict[str, Any], last: Path, device: torch.device, d: Dist) -> None:
        """Continue from a checkpoint's ``train_state`` (checked by ``check_train_state``)."""
        with restoring(last):
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scaler.load_state_dict(saved["scaler"])
            restore_rng(saved["rng"], device, d)
            self.schedule.load_state_dict(saved["schedule"])
        self.step, self.epoch = saved["step"], saved["epoch"]
        self.step_in_epoch = saved["step_in_epoch"]
        self.best_error = saved["best_val_top1_error"]

    def saved(self, cfg: TrainConfig, rngs: list[dict], world_size: int) -> dict[str, Any]:
        """The ``train_state`` entry of a checkpoint of this state."""
        return {
            "config": asdict(cfg),
            "step": self.step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_val_top1_error": self.best_error,
            "rng": rngs,
            "world_size": world_size,
        }
