"""PNG figures of a training run: loss, validation top-1 / top-5 error, learning rate."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from vggnet.metrics import read_metrics


def values(records: list[dict], key: str) -> list[float]:
    """One field of each record, a null (NaN in strict JSON) as NaN: a gap in the curve."""
    return [math.nan if r.get(key) is None else float(r[key]) for r in records]


def plot_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    warn: Callable[[str], None] | None = None,
) -> Path | None:
    """Draw ``RUN/curves.png`` from ``RUN/metrics.jsonl``; returns the file written.

    The figure is a convenience: with ``warn`` given, a failure to draw or write it is a
    warning (and ``None``), never the end of the run that asked for it.
    """
    try:
        return _plot_run(run_dir, out, warn)
    except (OSError, ValueError, RuntimeError) as err:
        if warn is None:
            raise
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        warn(f"could not draw the curves of {run_dir} ({reason}); metrics.jsonl holds them")
        return None


def _plot_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None,
    warn: Callable[[str], None] | None,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir, warn)
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if steps:
        axes[0].plot([r["step"] for r in steps], values(steps, "loss"), lw=0.8)
        axes[2].plot([r["step"] for r in steps], values(steps, "lr"))
    if epochs:
        x = [r["epoch"] for r in epochs]
        axes[1].plot(x, values(epochs, "val_top1_error"), "o-", label="top-1")
        axes[1].plot(x, values(epochs, "val_top5_error"), "s-", label="top-5")
        axes[1].legend()
    axes[0].set(title="training loss", xlabel="step")
    axes[1].set(title="validation error (%)", xlabel="epoch")
    axes[2].set(title="learning rate", xlabel="step", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(out) if out else Path(run_dir) / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
