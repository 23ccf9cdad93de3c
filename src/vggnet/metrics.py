"""Top-k errors (the paper's metrics) and the training run's metric log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch


def top_k_correct(
    scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> list[int]:
    """How many rows have their label among the k highest scores, for each k (k capped at K).

    Ties count against the label: its rank is the number of other classes scoring at
    least as high, so a net that outputs constant scores is always wrong.
    """
    target = scores.gather(1, labels[:, None])
    rank = (scores >= target).sum(1) - 1
    return [int((rank < min(k, scores.shape[1])).sum()) for k in ks]


def error_percent(correct: int, total: int) -> float:
    """Error in percent (100 * (1 - correct / total)); NaN for an empty set."""
    return 100.0 * (1 - correct / total) if total else float("nan")


class MetricsLog:
    """Appends JSON lines to ``metrics.jsonl`` and mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: str | os.PathLike, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))
            except ImportError:
                self.writer = None

    def write(self, record: dict) -> None:
        """Log one record ({"kind": "step"|"epoch", "step": ..., ...})."""
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("kind", "step") and isinstance(value, int | float):
                    self.writer.add_scalar(f"{record['kind']}/{key}", value, record["step"])

    def close(self) -> None:
        """Flush TensorBoard."""
        if self.writer is not None:
            self.writer.close()


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """All records of a run's ``metrics.jsonl`` (a torn last line is ignored)."""
    records = []
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
