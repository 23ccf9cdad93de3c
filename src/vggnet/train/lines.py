"""What a run prints: the line each epoch ends with and the run's closing summary.

Every number says what it is (training or validation, loss or error), errors in percent.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from vggnet.metrics import primary_error, read_metrics
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
    if "val_loc_error" in record:  # a localisation run: boxes right when IoU > 0.5
        errors = (
            f"box error {record['train_top1_error']:.2f}%; val localisation error "
            f"{record['val_loc_error']:.2f}% (true class, centre crop, Q={q}, "
            f"{record['val_images']} images; best {best_error:.2f}%)"
        )
    else:
        errors = (
            f"top-1 error {record['train_top1_error']:.2f}%; val error top-1 "
            f"{record['val_top1_error']:.2f}%, top-5 {record['val_top5_error']:.2f}% (Q={q}, "
            f"{record['val_images']} images; best top-1 error {best_error:.2f}%)"
        )
    line = (
        f"epoch {record['epoch']}/{cfg.epochs}: train loss {record['train_loss']:.4f}, "
        f"{errors}; lr {record['lr']:.1e}; run ETA {eta}"
    )
    if skipped:
        line += f", {skipped} files skipped"
    if action == "decrease":
        line += f" -> lr / 10 after {cfg.patience} epochs without improvement"
    if action == "stop":
        line += " -> stop: the error stopped falling after 3 decreases"
    return line


def best_epoch(folder: Path) -> dict[str, Any] | None:
    """The epoch record with the lowest validation error (top-1, or localisation) in the run."""
    epochs = [
        r
        for r in read_metrics(folder)
        if r["kind"] == "epoch"
        and (r.get("val_top1_error") is not None or r.get("val_loc_error") is not None)
    ]
    return min(epochs, key=primary_error) if epochs else None


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
        what = "localisation" if "val_loc_error" in top else "top-1"
        line += (
            f"; best val {what} error {primary_error(top):.2f}% at epoch {top['epoch']} ({best})"
        )
    run = shlex.quote(str(folder))
    if stopped_by:
        return f"{line}; next: vggnet train --out {run} --resume"
    if not best.exists():
        return (
            f"{line}; next: vggnet train --out {run} --resume with a higher --epochs or --max-steps"
        )
    data = shlex.quote(cfg.data)
    if cfg.task == "localization":
        return (
            f"{line}; next: vggnet eval --task localization --checkpoint "
            f"{shlex.quote(str(best))} --classifier {shlex.quote(str(cfg.finetune_from))} "
            f"--data {data}" + (f" --boxes {shlex.quote(cfg.boxes)}" if cfg.boxes else "")
        )
    return f"{line}; next: vggnet eval --checkpoint {shlex.quote(str(best))} --data {data}"
