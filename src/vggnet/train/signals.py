"""How a run is told to stop (SIGTERM, SIGINT) and what to say when its loss diverges."""

from __future__ import annotations

import signal
from contextlib import suppress
from typing import Any

from vggnet.train.config import TrainConfig


class StopSignal:
    """Turns SIGTERM / SIGINT into a flag the loop checks after each step."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with suppress(ValueError):  # not the main thread: no handlers
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def divergence_hints(cfg: TrainConfig) -> str:
    """What may keep a run that diverged from diverging again, among the settings it has."""
    hints = [f"lower --lr (now {cfg.lr:g})"]
    if cfg.init != "paper" and cfg.normalize == "paper":
        hints.append(f"use --normalize standard with --init {cfg.init}")
    if cfg.precision != "fp32":
        hints.append(f"use --precision fp32 (now {cfg.precision})")
    if not cfg.batch_norm:
        hints.append("add --batch-norm")
    return ", or ".join(hints)
