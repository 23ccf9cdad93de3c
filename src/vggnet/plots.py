"""PNG figures of a training run: loss, validation top-1 / top-5 error, learning rate."""

from __future__ import annotations

import os
from pathlib import Path

from vggnet.metrics import read_metrics


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Draw ``RUN/curves.png`` from ``RUN/metrics.jsonl``; returns the file written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if steps:
        axes[0].plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=0.8)
        axes[2].plot([r["step"] for r in steps], [r["lr"] for r in steps])
    if epochs:
        x = [r["epoch"] for r in epochs]
        axes[1].plot(x, [r["val_top1_error"] for r in epochs], "o-", label="top-1")
        axes[1].plot(x, [r["val_top5_error"] for r in epochs], "s-", label="top-5")
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
