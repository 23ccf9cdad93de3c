"""Learning-rate schedules: the paper's (divide by 10 when validation accuracy stops improving)
and a fixed-length one for short budgets (linear warm-up, then linear decay to zero)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

SCHEDULES = ("plateau", "linear")


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

    def lr_at(self, step: int) -> float:
        """The rate for optimiser step ``step``: constant between plateaus."""
        return self.lr

    def state_dict(self) -> dict:
        """Plain data for checkpoints."""
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        """Restore from ``state_dict``."""
        for key, value in state.items():
            setattr(self, key, value)


@dataclass
class LinearSchedule:
    """Rise linearly to ``lr`` over ``warmup_steps``, then fall linearly to 0 at ``total_steps``.

    A run whose length is known in advance spends its whole budget at useful rates,
    where the plateau rule needs spare epochs to notice each plateau. The rate is a
    pure function of the step, so a resumed run continues it exactly; raising
    ``--epochs`` on resume stretches the decay that is left.
    """

    lr: float
    total_steps: int
    warmup_steps: int = 0
    finished: bool = False  # the run's length, not the schedule, ends training

    def lr_at(self, step: int) -> float:
        """The rate for optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        left = self.total_steps - step
        return self.lr * max(left, 0) / max(self.total_steps - self.warmup_steps, 1)

    def step(self, val_error: float) -> str | None:
        """Validation does not steer this schedule."""
        return None

    def state_dict(self) -> dict:
        """Nothing to keep: the rate follows from the step and the run's settings."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore."""
