"""The paper's learning-rate schedule: divide by 10 when validation accuracy stops improving."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class PlateauSchedule:
    """Divide the learning rate by ``factor`` after ``patience`` epochs without improvement.

    Improvement means the validation top-1 error fell by more than ``threshold``
    points below the best so far. The rate is decreased at most ``max_decreases``
    times (3 in the paper); the next plateau after that ends training.
    """

    lr: float
    patience: int = 3
    factor: float = 0.1
    max_decreases: int = 3
    threshold: float = 0.0
    best: float = float("inf")
    bad_epochs: int = 0
    decreases: int = 0
    finished: bool = False

    def step(self, val_error: float) -> str | None:
        """Record an epoch's validation error; returns "decrease", "stop" or None."""
        if val_error < self.best - self.threshold:
            self.best = val_error
            self.bad_epochs = 0
            return None
        self.bad_epochs += 1
        if self.bad_epochs < self.patience:
            return None
        self.bad_epochs = 0
        if self.decreases >= self.max_decreases:
            self.finished = True
            return "stop"
        self.decreases += 1
        self.lr *= self.factor
        return "decrease"

    def state_dict(self) -> dict:
        """Plain data for checkpoints."""
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        """Restore from ``state_dict``."""
        for key, value in state.items():
            setattr(self, key, value)
