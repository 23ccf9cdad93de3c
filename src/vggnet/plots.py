"""PNG figures of a training run: loss, validation top-1 / top-5 error, learning rate."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vggnet.errors import VGGError
from vggnet.metrics import read_metrics

PLOTS_HINT = "pip install 'vggnet[train]' (or matplotlib)"


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend; a one-line error if it is missing.

    matplotlib is an extra: nets, features and evaluation never need it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise VGGError(f"drawing figures needs matplotlib: {PLOTS_HINT}") from None
    return plt


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
    except (OSError, ValueError, RuntimeError, VGGError) as err:
        if warn is None:
            raise
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        warn(f"could not draw the curves of {run_dir} ({reason}); metrics.jsonl holds them")
        return None


FEW_POINTS = 30  # below this many points a curve gets markers, so one point still shows


def run_title(run_dir: Path) -> str:
    """The figure's title: the run's folder name and its main settings (from config.json)."""
    try:
        cfg = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return run_dir.name
    if not isinstance(cfg, dict):
        return run_dir.name
    bn = " + BN" if cfg.get("batch_norm") else ""
    parts = [
        f"config {cfg.get('config')}{bn}",
        f"S={cfg.get('scale')}",
        f"crop {cfg.get('crop')}",
        f"batch {cfg.get('batch_size')}",
        f"lr {cfg.get('lr')}",
        f"init {cfg.get('init')}",
        f"data {cfg.get('data')}",
    ]
    if cfg.get("task") == "localization":
        what = f"{cfg.get('regression')} boxes, {cfg.get('finetune_layers')} layers"
        parts.insert(0, f"localisation ({what}) from {cfg.get('finetune_from')}")
    return f"{run_dir.name}: " + ", ".join(parts)


def draw(ax: Any, x: list[float], y: list[float], label: str | None = None, **style: Any) -> None:
    """One curve, with markers when it has few points."""
    wanted = style.pop("marker", "o")
    marker = wanted if len(x) < FEW_POINTS else None
    ax.plot(x, y, marker=marker, markersize=4, label=label, **style)


def run_figure(run_dir: str | os.PathLike, warn: Callable[[str], None] | None = None) -> Any:
    """The figure of a run (a matplotlib Figure): training loss per step; training and
    validation error per epoch; learning rate per step; titled with the run and its settings."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    records = read_metrics(run_dir, warn)
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    if steps:
        step_x = [float(r["step"]) for r in steps]
        draw(axes[0], step_x, values(steps, "loss"), lw=0.8)
        draw(axes[2], step_x, values(steps, "lr"))
    if epochs:
        x = [float(r["epoch"]) for r in epochs]
        boxes = any(r.get("val_loc_error") is not None for r in epochs)
        if any(r.get("train_top1_error") is not None for r in epochs):
            label = "train box (IoU <= 0.5)" if boxes else "train top-1"
            draw(axes[1], x, values(epochs, "train_top1_error"), label, ls="--")
        if boxes:
            draw(axes[1], x, values(epochs, "val_loc_error"), "val localisation (true class)")
        else:
            draw(axes[1], x, values(epochs, "val_top1_error"), "val top-1")
            draw(axes[1], x, values(epochs, "val_top5_error"), "val top-5", marker="s")
        axes[1].legend()
    loss = "Euclidean (boxes)" if any("val_loc_error" in r for r in epochs) else "cross-entropy"
    axes[0].set(title="training loss", xlabel="step", ylabel=loss)
    axes[1].set(title="error (train: augmented crops)", xlabel="epoch", ylabel="error (%)")
    axes[2].set(title="learning rate", xlabel="step", ylabel="learning rate", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(run_title(Path(run_dir)), fontsize=10)
    fig.tight_layout()
    return fig


def _plot_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None,
    warn: Callable[[str], None] | None,
) -> Path:
    fig = run_figure(run_dir, warn)
    path = Path(out) if out else Path(run_dir) / "curves.png"
    fig.savefig(path, dpi=100)
    pyplot().close(fig)
    return path
