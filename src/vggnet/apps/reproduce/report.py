"""Tables 3-6 from the cells' saved posteriors, beside the paper's numbers; figures; findings."""

from __future__ import annotations

import shlex
import sys
from datetime import date
from pathlib import Path

import torch

from vggnet.apps.reproduce import paper
from vggnet.apps.reproduce.grid import Cell, TrainingScales
from vggnet.eval.analysis import top_errors
from vggnet.eval.scores import Scores
from vggnet.metrics import read_metrics
from vggnet.plots import pyplot
from vggnet.serialization import atomic_write_text, write_json

PAPER_TAG = {"S1": "256", "S2": "384", "jitter": "[256;512]"}
JITTERED_PAIR = ("D-jitter", "E-jitter")  # Table 6's D + E: the paper's two best nets


def _row(table, what, scales_used, method, posteriors, labels, reference, **extra) -> dict:
    ours = top_errors(posteriors, labels)
    return {
        "table": table,
        **what,
        "test_scales": scales_used,
        "method": method,
        "top1_error": ours["top1_error"],
        "top5_error": ours["top5_error"],
        "paper_top1_error": reference[0] if reference else None,
        "paper_top5_error": reference[1] if reference else None,
        **extra,
    }


METHOD_PARTS = (
    ("dense", ("dense",)),
    ("multi-crop", ("multi-crop",)),
    ("dense+multi-crop", ("dense", "multi-crop")),
)


def cell_rows(cell: Cell, sc: Scores, scales: TrainingScales) -> list[dict]:
    """One net's rows: Table 3 (one Q), Table 4 (several Q), Table 5 (jittered nets' methods)."""
    what = {"config": cell.config, "train_scale": scales.flag(cell.tag), "tag": cell.tag}
    q = [scales.single_q(cell.tag)]
    qs = scales.multi_q(cell.tag)
    key = (cell.config, cell.tag)
    rows = [
        _row(3, what, q, "dense", sc.combined(("dense",), q), sc.labels, paper.TABLE3.get(key)),
        _row(4, what, qs, "dense", sc.combined(("dense",), qs), sc.labels, paper.TABLE4.get(key)),
    ]
    if "multi-crop" in sc.parts:
        for method, parts in METHOD_PARTS:
            rows.append(
                _row(
                    5, what, qs, method, sc.combined(parts, qs), sc.labels,
                    paper.TABLE5.get((cell.config, method)),
                )
            )  # fmt: skip
    return rows


def collect_rows(
    cells: list[Cell], scores: dict[str, Scores], scales: TrainingScales
) -> list[dict]:
    """Every row of Tables 3-6 that the trained cells allow."""
    rows = [row for cell in cells for row in cell_rows(cell, scores[cell.name], scales)]
    return rows + ensemble_rows(cells, scores, scales, rows)


def ensemble_rows(
    cells: list[Cell], scores: dict[str, Scores], scales: TrainingScales, rows: list[dict]
) -> list[dict]:
    """Table 6: every net together, the two best of Table 4, and D + E jittered per method."""
    labels = next(iter(scores.values())).labels
    everyone = [scores[c.name].combined(("dense",), scales.multi_q(c.tag)) for c in cells]
    out = [
        _row(
            6, {"config": "all", "nets": [c.name for c in cells]}, "multi-scale", "dense",
            torch.stack(everyone).mean(0), labels, paper.TABLE6[("all", "dense")],
        )
    ]  # fmt: skip
    # The paper's D + E rows combine its two best nets; at another scale the best two may differ
    # (when they are D and E jittered, the D + E dense row below is that row already).
    table4 = {(r["config"], r["tag"]): r["top1_error"] for r in rows if r["table"] == 4}
    best = sorted(cells, key=lambda c: table4[(c.config, c.tag)])[:2]
    if len(best) == 2 and {c.name for c in best} != set(JITTERED_PAIR):
        out.append(
            _row(
                6, {"config": "best 2", "nets": [c.name for c in best]}, "multi-scale", "dense",
                torch.stack([everyone[cells.index(c)] for c in best]).mean(0), labels,
                paper.TABLE6[("D+E", "dense")],
            )
        )  # fmt: skip
    pair = [c for c in cells if c.name in JITTERED_PAIR]
    if len(pair) == 2:
        qs = scales.multi_q("jitter")
        for method, parts in METHOD_PARTS:
            posteriors = torch.stack([scores[c.name].combined(parts, qs) for c in pair]).mean(0)
            out.append(
                _row(
                    6, {"config": "D+E", "nets": [c.name for c in pair]}, qs, method,
                    posteriors, labels, paper.TABLE6[("D+E", method)],
                )
            )  # fmt: skip
    return out


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(title for title, _ in columns) + " |"
    rule = "|" + "---|" * len(columns)
    body = []
    for r in rows:
        cells = []
        for _, key in columns:
            value = r.get(key)
            if key == "test_scales" and isinstance(value, list):
                value = "{" + ",".join(map(str, value)) + "}" if len(value) > 1 else str(value[0])
            cells.append(_fmt(value))
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *body])


def verdict(holds: bool) -> str:
    return "holds" if holds else "does not hold"


def architecture_findings(t3: dict[tuple[str, str], float]) -> list[str]:
    """Depth, LRN, 3x3 against 1x1, and scale jittering, from Table 3."""
    lines = []
    if ("A", "S1") in t3:
        deep = [(c, t3[(c, "S1")]) for c in ("D", "E") if (c, "S1") in t3]
        if deep:
            best = min(deep, key=lambda x: x[1])
            lines.append(
                f"Depth helps (A -> {best[0]} at S1): {verdict(best[1] < t3[('A', 'S1')])} "
                f"({t3[('A', 'S1')]:.2f}% -> {best[1]:.2f}%)."
            )
    if ("A", "S1") in t3 and ("A-LRN", "S1") in t3:
        lines.append(
            f"LRN does not help (A-LRN vs A): {verdict(t3[('A-LRN', 'S1')] >= t3[('A', 'S1')])} "
            f"({t3[('A-LRN', 'S1')]:.2f}% vs {t3[('A', 'S1')]:.2f}%)."
        )
    if ("C", "S1") in t3 and ("D", "S1") in t3:
        lines.append(
            f"3x3 beats 1x1 convs (D vs C at S1): {verdict(t3[('D', 'S1')] < t3[('C', 'S1')])} "
            f"({t3[('D', 'S1')]:.2f}% vs {t3[('C', 'S1')]:.2f}%)."
        )
    for c in ("C", "D", "E"):
        if (c, "jitter") in t3 and (c, "S1") in t3:
            lines.append(
                f"Scale jittering helps ({c}, single test scale): "
                f"{verdict(t3[(c, 'jitter')] < min(t3[(c, 'S1')], t3.get((c, 'S2'), 1e9)))} "
                f"(S1 {t3[(c, 'S1')]:.2f}%, S2 {_fmt(t3.get((c, 'S2')))}%, jittered "
                f"{t3[(c, 'jitter')]:.2f}%)."
            )
    return lines


def findings(rows: list[dict]) -> list[str]:
    """Which of the paper's findings hold at this scale, each with the numbers that decide it."""
    t3 = {(r["config"], r["tag"]): r["top1_error"] for r in rows if r["table"] == 3}
    t4 = {(r["config"], r["tag"]): r["top1_error"] for r in rows if r["table"] == 4}
    lines = architecture_findings(t3)
    gains = [(k, t3[k] - t4[k]) for k in t4 if k in t3]
    if gains:
        better = sum(g > 0 for _, g in gains)
        lines.append(
            f"Multi-scale testing helps (Table 4 vs 3): {verdict(better > len(gains) / 2)} "
            f"(better for {better} of {len(gains)} nets; mean gain "
            f"{sum(g for _, g in gains) / len(gains):+.2f} points)."
        )
    t5 = [r for r in rows if r["table"] == 5]
    for c in sorted({r["config"] for r in t5}):
        by = {r["method"]: r["top1_error"] for r in t5 if r["config"] == c}
        lines.append(
            f"Dense + multi-crop beats each alone ({c} jittered): "
            f"{verdict(by['dense+multi-crop'] < min(by['dense'], by['multi-crop']))} (dense "
            f"{by['dense']:.2f}%, multi-crop {by['multi-crop']:.2f}%, both "
            f"{by['dense+multi-crop']:.2f}%)."
        )
    t6 = [r for r in rows if r["table"] == 6]
    singles = [r["top1_error"] for r in rows if r["table"] in (3, 4, 5)]
    if t6 and singles:
        best6, best1 = min(r["top1_error"] for r in t6), min(singles)
        lines.append(
            f"Ensembles beat the best single net: {verdict(best6 < best1)} "
            f"(best ensemble {best6:.2f}%, best single net {best1:.2f}%)."
        )
    return lines


def plot_depth(rows: list[dict], cells: list[Cell], path: Path) -> None:
    """Top-1 error (Table 3) against depth, one line per training scale."""
    plt = pyplot()

    depth = {c.config: c.depth for c in cells}
    fig, ax = plt.subplots(figsize=(6, 4))
    for tag in ("S1", "S2", "jitter"):
        mine = sorted(
            ((depth[r["config"]], r["top1_error"], r["config"]) for r in rows
             if r["table"] == 3 and r["tag"] == tag),
        )  # fmt: skip
        if mine:
            ax.plot([m[0] for m in mine], [m[1] for m in mine], "o-", label=f"train {tag}")
            for x, y, name in mine:
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=8)
    ax.set(
        xlabel="weight layers",
        ylabel="top-1 error (%)",
        title=f"{path.parent.name}: Table 3, error vs depth (one test scale)",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(out: Path, cells: list[Cell], path: Path) -> None:
    """Validation top-1 error per epoch of every cell."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4))
    for cell in cells:
        epochs = [
            r for r in read_metrics(out / "cells" / cell.name / "train") if r["kind"] == "epoch"
        ]
        if epochs:
            ax.plot(
                [r["epoch"] for r in epochs],
                [r["val_top1_error"] for r in epochs],
                "o-",
                ms=3,
                label=cell.name,
            )
    ax.set(xlabel="epoch (of each cell's own run)", ylabel="val top-1 error (%)")
    ax.set_title(f"{out.name}: validation error per epoch (centre crop at Q = S)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


TABLE6_ROWS = {
    "all": "every net (the paper's 7-net submission)",
    "best 2": "the two best nets of Table 4, each at its own test scales (the paper's two "
    "best, D and E jittered, give its D + E rows)",
    "D+E": "D and E jittered with each protocol",
}


def table6_rows(rows: list[dict]) -> str:
    """What Table 6's rows are, for those the grid has."""
    present = {r["config"] for r in rows if r["table"] == 6}
    return "Rows: " + "; ".join(t for k, t in TABLE6_ROWS.items() if k in present) + "."


def setup_paragraph(fixed: dict, scales: TrainingScales) -> str:
    """What the grid ran: its scales, budget, schedule, initialisation and protocols."""
    budget = fixed["budget"]
    schedule = (
        f"the linear schedule ({budget['warmup']} epochs of warm-up, then down to 0), "
        f"dropout {budget['dropout']}. "
        if "warmup" in budget
        else "the paper's plateau schedule, dropout 0.5. "
    )
    return (
        f"Scales, in the paper's ratios to the crop: crop {scales.crop} for 224, S1 = "
        f"{scales.s1} for 256, S2 = {scales.s2} for 384, jittered [{scales.s1}, {scales.smax}] "
        f"for [256, 512]; Table 4's test scales: S1 {scales.multi_q('S1')}, S2 "
        f"{scales.multi_q('S2')}, jittered {scales.multi_q('jitter')}. Budget: width "
        f"{budget['width']}, FC width {budget['fc_width']}, {budget['epochs']} epochs from "
        f"scratch or from A at learning rate {budget.get('lr', 0.05)}, "
        f"{budget['finetune_epochs']} when fine-tuning (learning rate 1e-3, as the paper), "
        f"batch {budget['batch_size']}, batch norm, trained in {fixed['precision']}, "
        + schedule
        + "Initialisation as the paper: "
        "A from scratch, B-E from A, S2 nets from S1, jittered nets from S2. Every protocol "
        f"averages with flipped images; multi-crop uses a {fixed['grid']}x{fixed['grid']} grid. "
        "Errors are on the data's val (test) split, from each net's last checkpoint. The "
        "paper's numbers are ILSVRC-2012 validation errors: compare trends, not values."
    )


def table_sections(rows: list[dict]) -> list[str]:
    """Tables 3-6 as markdown sections, shaped like the paper's."""
    columns = [("config", "config"), ("train S", "train_scale"), ("test Q", "test_scales")]
    errors_cols = [
        ("top-1 %", "top1_error"), ("top-5 %", "top5_error"),
        ("paper top-1 %", "paper_top1_error"), ("paper top-5 %", "paper_top5_error"),
    ]  # fmt: skip
    return [
        "## Table 3: single test scale (dense)",
        "",
        _table([r for r in rows if r["table"] == 3], columns + errors_cols),
        "",
        "## Table 4: several test scales (dense)",
        "",
        _table([r for r in rows if r["table"] == 4], columns + errors_cols),
        "",
        "## Table 5: dense vs multi-crop vs both (jittered nets)",
        "",
        _table(
            [r for r in rows if r["table"] == 5], [*columns, ("method", "method"), *errors_cols]
        ),
        "",
        "## Table 6: ensembles",
        "",
        _table(
            [{**r, "nets": ", ".join(r["nets"])} for r in rows if r["table"] == 6],
            [("nets", "nets"), ("test Q", "test_scales"), ("method", "method"), *errors_cols],
        ),
        "",
        table6_rows(rows),
        "",
    ]


def compute_rows(out: Path, cells: list[Cell]) -> list[dict]:
    """What each net cost to train, from its metrics.jsonl: epochs, training images/s (the
    mean of each epoch's rate) and wall-clock hours (training, validation, checkpoints)."""
    rows = []
    for cell in cells:
        records = read_metrics(out / "cells" / cell.name / "train")
        epochs = [r for r in records if r["kind"] == "epoch"]
        steps = [r for r in records if r["kind"] == "step" and r.get("images_per_s")]
        last_of_epoch = {r["epoch"]: r["images_per_s"] for r in steps}
        seconds = sum(
            r.get(k) or 0.0
            for r in epochs
            for k in ("train_seconds", "val_seconds", "checkpoint_seconds")
        )
        rate = sum(last_of_epoch.values()) / len(last_of_epoch) if last_of_epoch else None
        rows.append(
            {"net": cell.name, "epochs": len(epochs), "images_per_s": rate, "hours": seconds / 3600}
        )
    return rows


def compute_section(rows: list[dict]) -> list[str]:
    """The compute table of RESULTS.md."""
    lines = [
        "## Compute (training, this machine)",
        "",
        "| net | epochs | train img/s | wall hours |",
    ]
    lines.append("|---|---|---|---|")
    for r in rows:
        rate = f"{r['images_per_s']:.0f}" if r["images_per_s"] else "-"
        lines.append(f"| {r['net']} | {r['epochs']} | {rate} | {r['hours']:.2f} |")
    total = sum(r["hours"] for r in rows)
    return [*lines, f"| all | | | {total:.2f} |", ""]


def write_report(out, s, fixed, cells, rows, scales) -> dict:
    """RESULTS.md, results.json, depth.png and curves.png in ``out``; prints the tables."""
    out = Path(out)
    report = {
        "date": str(date.today()),
        "command": shlex.join(["vggnet", *sys.argv[1:]]) if sys.argv else "",
        "settings": fixed,
        "scales": {
            "crop": scales.crop,
            "S1": scales.s1,
            "S2": scales.s2,
            "jitter": [scales.s1, scales.smax],
            "table4_q": {tag: scales.multi_q(tag) for tag in ("S1", "S2", "jitter")},
        },
        "rows": rows,
        "findings": findings(rows),
        "compute": compute_rows(out, cells),
    }
    write_json(out / "results.json", report)
    plot_depth(rows, cells, out / "depth.png")
    plot_curves(out, cells, out / "curves.png")
    text = [
        f"# The paper's experiments on {fixed['data']}",
        "",
        f"`{report['command']}` — {report['date']}.",
        "",
        setup_paragraph(fixed, scales),
        "",
        *table_sections(rows),
        "## Which of the paper's findings hold here",
        "",
        *[f"- {line}" for line in report["findings"]],
        "",
        *compute_section(report["compute"]),
        "Figures: `depth.png` (Table 3's error against depth per training scale), "
        "`curves.png` (each net's validation error per epoch).",
        "",
    ]
    atomic_write_text(out / "RESULTS.md", "\n".join(text))
    print("\n".join(text[text.index("## Table 3: single test scale (dense)") :]))
    return report
