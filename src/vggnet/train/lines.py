"""What a run prints: the line each epoch ends with and the run's closing summary.

Every number says what it is (training or validation, loss or error), errors in percent.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from vggnet.metrics import read_metrics
from vggnet.train.config import TrainConfig
from vggnet.train.state import RunState


def epoch_line(
    record: dict[str, Any],
    cfg: TrainConfig,
    q: int,
    best_error: float,
    eta: str,
    skipped: int,
    action: str | None,
) -> str:
    """The line an epoch ends with: train loss and error, val errors, best so far, lr, time left."""
    line = (
        f"epoch {record['epoch']}/{cfg.epochs}: train loss {record['train_loss']:.4f}, "
        f"top-1 error {record['train_top1_error']:.2f}%; val error top-1 "
        f"{record['val_top1_error']:.2f}%, top-5 {record['val_top5_error']:.2f}% (Q={q}, "
        f"{record['val_images']} images; best top-1 error {best_error:.2f}%); "
        f"lr {record['lr']:.1e}; run ETA {eta}"
    )
    if skipped:
        line += f", {skipped} files skipped"
    if action == "decrease":
        line += f" -> lr / 10 after {cfg.patience} epochs without improvement"
    if action == "stop":
        line += " -> stop: the error stopped falling after 3 decreases"
    return line


def best_epoch(folder: Path) -> dict[str, Any] | None:
    """The epoch record with the lowest validation top-1 error in the run's metrics."""
    epochs = [
        r
        for r in read_metrics(folder)
        if r["kind"] == "epoch" and r.get("val_top1_error") is not None
    ]
    return min(epochs, key=lambda r: r["val_top1_error"]) if epochs else None


def run_summary(
    folder: Path,
    cfg: TrainConfig,
    state: RunState,
    reason: str,
    took: str,
    resumed: bool,
    stopped_by: str | None,
) -> str:
    """The run's last line: why it ended, the time taken, the best error and its epoch, and
    the command to run next."""
    line = f"{reason} at step {state.step} (epoch {state.epoch}) after {took}"
    line += " (this session)" if resumed else ""
    best, top = folder / "best.ckpt", best_epoch(folder)
    if best.exists() and top is not None:
        line += (
            f"; best val top-1 error {top['val_top1_error']:.2f}% at epoch {top['epoch']} ({best})"
        )
    run = shlex.quote(str(folder))
    if stopped_by:
        return f"{line}; next: vggnet train --out {run} --resume"
    if not best.exists():
        return (
            f"{line}; next: vggnet train --out {run} --resume with a higher --epochs or --max-steps"
        )
    data = shlex.quote(cfg.data)
    return f"{line}; next: vggnet eval --checkpoint {shlex.quote(str(best))} --data {data}"
