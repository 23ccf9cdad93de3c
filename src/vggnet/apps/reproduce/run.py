"""Run the grid cell by cell: train (or resume, or skip) each net, score it once, then report.

Every cell is a folder ``OUT/cells/<config>-<tag>/``: ``train/`` is an ordinary training run
(``vggnet train`` can resume it), ``trained.json`` marks it finished, ``scores.pt`` holds the
posteriors of every protocol and test scale it needs (``vggnet ensemble`` reads it). A rerun
skips what is finished and resumes what is not; SIGTERM stops cleanly between steps.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from vggnet.apps.reproduce.grid import (
    BUDGETS,
    RECIPE,
    Budget,
    Cell,
    TrainingScales,
    grid_cells,
    training_scales,
)
from vggnet.apps.reproduce.report import collect_rows, write_report
from vggnet.data import open_source
from vggnet.devices import check_precision, default_device, resolve_device
from vggnet.errors import VGGError
from vggnet.eval.protocols import Protocol
from vggnet.eval.scores import Scores, save_scores
from vggnet.eval.scoring import evaluate_checkpoints
from vggnet.serialization import write_json
from vggnet.train.config import FINETUNE_LR  # the paper's rate for S=384 from S=256 nets
from vggnet.train.fit import train
from vggnet.train.signals import StopSignal

# Settings added after grids were first written, with the value those grids ran under.
SETTINGS_OF_OLDER_GRIDS = {"precision": "fp32"}
# Cells scored with multi-crop as well (Table 5 and the D+E ensembles of Table 6).
MULTI_CROP_CELLS = ("D-jitter", "E-jitter")


@dataclass
class ReproduceSettings:
    """What ``vggnet reproduce`` was asked for; fixed for a grid once it has started."""

    data: str
    out: str
    budget: str = "small"
    configs: list[str] | None = None
    crop: int | None = None
    device: str | None = None
    workers: int | None = None
    epochs: int | None = None
    finetune_epochs: int | None = None
    width: float | None = None
    fc_width: int | None = None
    batch_size: int | None = None
    grid: int = 3
    precision: str = "fp32"


def default_crop(data: str) -> int:
    """224 for ImageNet-sized images; 32 (the smallest the five pools allow) for small ones;
    for generated scenes whose smallest side is known (fashion-mnist-canvas), the largest
    multiple of 32 that fits it (64 for the default canvases: 64 stands for 224)."""
    source = open_source(data, "train")
    smallest = getattr(source, "min_short_side", None)
    if smallest is not None:
        return min(224, max(32, smallest // 32 * 32))
    _, (width, height) = source.read(0)
    return 224 if min(width, height) >= 224 else 32


def resolve_budget(s: ReproduceSettings) -> Budget:
    """The named budget with any explicit overrides."""
    if s.budget not in BUDGETS:
        raise VGGError(f"--budget {s.budget}: choose one of {', '.join(BUDGETS)}")
    overrides = {
        k: getattr(s, k)
        for k in ("epochs", "finetune_epochs", "width", "fc_width", "batch_size")
        if getattr(s, k) is not None
    }
    return replace(BUDGETS[s.budget], **overrides)


def check_grid_file(out: Path, fixed: dict[str, Any]) -> None:
    """Refuse to continue a grid under other settings (its cells would not be comparable)."""
    path = out / "grid.json"
    if path.exists():
        stored = {**SETTINGS_OF_OLDER_GRIDS, **json.loads(path.read_text())}
        for key, value in fixed.items():
            if stored.get(key) != value:
                raise VGGError(
                    f"{out} holds a grid with {key} = {stored.get(key)!r}, not {value!r}: "
                    "rerun with the same settings, or choose another --out"
                )
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(path, fixed)


def cell_dir(out: Path, name: str) -> Path:
    return out / "cells" / name


def train_cell(
    cell: Cell, s: ReproduceSettings, scales: TrainingScales, budget: Budget, out: Path
) -> bool:
    """Train, resume or skip one cell; False if it was stopped (a signal) before finishing."""
    folder = cell_dir(out, cell.name)
    run, done = folder / "train", folder / "trained.json"
    if done.exists():
        print(f"{cell.name}: trained (skipped)", flush=True)
        return True
    if (run / "last.ckpt").exists():
        print(f"{cell.name}: resuming {run}", flush=True)
        summary = train({"out": str(run)}, resume=True)
    else:
        given: dict[str, Any] = {
            **RECIPE,
            "config": cell.config,
            "data": s.data,
            "out": str(run),
            "scale": scales.flag(cell.tag),
            "crop": scales.crop,
            "width": budget.width,
            "fc_width": budget.fc_width,
            "batch_size": budget.batch_size,
            "lr": budget.lr,
            "schedule": "linear",
            "warmup": budget.warmup,
            "dropout": budget.dropout,
            "epochs": budget.epochs,
            "precision": s.precision,
        }
        if s.device:
            given["device"] = s.device
        if s.workers is not None:
            given["workers"] = s.workers
        if cell.source:
            source = str(cell_dir(out, cell.source) / "train" / "last.ckpt")
            given["init_from" if cell.start == "init-from" else "finetune_from"] = source
        if cell.start == "finetune-from":
            given["lr"], given["epochs"] = FINETUNE_LR, budget.finetune_epochs
            given["warmup"] = 0.0
        print(f"{cell.name}: training ({cell.start}{' ' + cell.source if cell.source else ''})")
        summary = train(given)
    if summary["reason"].startswith("stopped"):
        return False
    write_json(done, summary)
    return True


def cell_protocol(cell: Cell, scales: TrainingScales, grid: int) -> Protocol:
    """Every test scale Tables 3 and 4 need for the cell; multi-crop too for Table 5's nets."""
    qs = sorted({scales.single_q(cell.tag), *scales.multi_q(cell.tag)})
    method = "dense+multi-crop" if cell.name in MULTI_CROP_CELLS else "dense"
    return Protocol(method, qs, flip=True, grid=grid)


def score_cell(cell: Cell, s: ReproduceSettings, scales: TrainingScales, out: Path) -> Scores:
    """The cell's saved posteriors, computing them the first time."""
    path = cell_dir(out, cell.name) / "scores.pt"
    if not path.exists():
        print(f"{cell.name}: scoring the val split", flush=True)
        scores = evaluate_checkpoints(
            [str(cell_dir(out, cell.name) / "train" / "last.ckpt")],
            s.data,
            cell_protocol(cell, scales, s.grid),
            device=s.device,
            batch_size=256,
            workers=s.workers or 0,
        )
        assert scores is not None  # one process: rank 0
        save_scores(scores, path)
    return Scores.load(path)


def reproduce(s: ReproduceSettings) -> dict | None:
    """Run (or continue) the grid and write the report; None if a signal stopped it."""
    out = Path(s.out)
    try:
        cells = grid_cells(s.configs)
    except ValueError as err:
        raise VGGError(f"--configs {err.args[0]}: choose from A, A-LRN, B, C, D, E") from None
    crop = s.crop or default_crop(s.data)
    scales = training_scales(crop)
    budget = resolve_budget(s)
    check_precision(s.precision, resolve_device(s.device or default_device()))
    fixed = {
        "data": s.data,
        "crop": crop,
        "budget": asdict(budget),
        "grid": s.grid,
        "precision": s.precision,
    }
    check_grid_file(out, fixed)
    print(
        f"reproducing {len(cells)} nets on {s.data}: crop {crop}, S1 = {scales.s1}, "
        f"S2 = {scales.s2}, jittered [{scales.s1}, {scales.smax}]; {s.budget} budget "
        f"(width {budget.width}, {budget.epochs} epochs, fine-tuning {budget.finetune_epochs}), "
        f"{s.precision}; {out}",
        flush=True,
    )
    scores: dict[str, Scores] = {}
    with StopSignal() as signals:
        for cell in cells:
            if signals.received or not train_cell(cell, s, scales, budget, out):
                print(f"stopped; run the same command again to continue the grid in {out}")
                return None
            scores[cell.name] = score_cell(cell, s, scales, out)
    rows = collect_rows(cells, scores, scales)
    return write_report(out, s, fixed, cells, rows, scales)
