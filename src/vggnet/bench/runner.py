"""`vggnet bench`: every section of ours against its plain torchvision equivalent, one process.

Sections: forward (D at 224, batch 8 and 32), engines (every inference path on the CPU:
torchvision, ours on torch, onnxruntime fp32 and int8, ours int8; dense at Q = 256, 384,
512), train (the CPU-sized net, or D at 224 on CUDA), pipeline (training transforms on
generated JPEGs), eval (centre crop against a torchvision script, fp32 and int8; every
protocol at Q = 256, 384, 512). Each comparison alternates the
two sides over repeats and reports min / median / max of the per-repeat ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import torch

from vggnet.bench import pipeline, protocols, train_step
from vggnet.bench.common import machine, summary
from vggnet.bench.engines import compare_engines, print_engines
from vggnet.bench.forward import compare_forward
from vggnet.devices import inference_precision, resolve_device, supports_bf16
from vggnet.errors import VGGError
from vggnet.plots import pyplot

SECTIONS = ("forward", "engines", "train", "pipeline", "eval")


@dataclass
class BenchSettings:
    """What to run and at which size; ``tiny`` shrinks everything to seconds (tests, smoke)."""

    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    device: str = "cpu"
    precision: str = "auto"
    repeats: int = 3
    tiny: bool = False
    eval_images: int = 32


def _forward(s: BenchSettings, device: torch.device) -> list[dict]:
    if s.tiny:
        sizes: dict[str, Any] = {"width": 1 / 16, "size": 32, "classes": 10, "iters": 2}
        batches: tuple[int, ...] = (2, 4)
    else:
        sizes = {"width": 1.0, "size": 224, "classes": 1000}
        batches = (1, 8, 32) if device.type == "cpu" else (8, 32, 128)
    rows = []
    for batch in batches:
        rows.append(
            compare_forward(
                batch,
                device=s.device,
                precision=s.precision,
                channels_last=True,
                repeats=s.repeats,
                **sizes,
            )
        )
        _say_ratio(f"forward batch {batch} ({rows[-1]['precision']}, channels_last)", rows[-1])
    return rows


def _engines(s: BenchSettings, device: torch.device) -> dict | None:
    if device.type != "cpu":
        print("engines: onnxruntime runs on the CPU here; skipped on", device.type)
        return None
    sizes: dict[str, Any] = (
        {"size": 32, "width": 1 / 16, "classes": 10, "scales": (32, 48), "iters": 1}
        | {"gemm_size": 256}
        if s.tiny
        else {}
    )
    report = compare_engines(2 if s.tiny else 8, precision=s.precision, repeats=s.repeats, **sizes)
    print_engines(report)
    return report


def _train(s: BenchSettings, device: torch.device) -> dict:
    bf16 = supports_bf16(device) and s.precision in ("auto", "bf16")
    ours = ("bf16" if bf16 else "fp32") + "-cl" + ("-compile" if device.type == "cuda" else "")
    cuda = device.type == "cuda" and not s.tiny
    args = argparse.Namespace(
        device=s.device,
        size=224 if cuda else 32,
        width=1.0 if cuda else (1 / 16 if s.tiny else 0.25),
        batch=256 if cuda else (8 if s.tiny else 64),
        classes=1000 if cuda else 10,
        iters=2 if s.tiny else 5,
        warmup=1 if s.tiny else 3,
        repeats=s.repeats,
        variants=[ours],
    )
    return train_step.run(args)


def _pipeline(s: BenchSettings) -> list[dict]:
    images, batch, workers = (16, 8, 0) if s.tiny else (256, 32, 2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pipeline.write_jpegs(Path(tmp), images)
        for scale in ("256",) if s.tiny else ("256", "256:512"):
            row = pipeline.compare_pipeline(Path(tmp), scale, batch, workers, s.repeats)
            rows.append(row)
            _say_ratio(f"pipeline S={scale} (float batches)", row, "ratio vggnet")
    return rows


def _eval(s: BenchSettings) -> dict:
    parser = argparse.ArgumentParser()
    protocols.add_arguments(parser)
    args = parser.parse_args([])
    args.device, args.precision, args.repeats = s.device, s.precision, s.repeats
    args.images = s.eval_images
    if s.tiny:
        args.images, args.width, args.crop, args.scales, args.workers = 12, 1 / 16, 32, [32, 48], 0
    report = protocols.run(args)
    protocols.print_report(report)
    return report


def _say_ratio(what: str, row: dict, key: str = "ratio") -> None:
    rates = "  ".join(
        f"{name} {statistics.median(v):.1f}" for name, v in row["images_per_s"].items()
    )
    print(f"{what}: images/s (median) {rates}; ratio {summary(row[key])}", flush=True)


def run_bench(s: BenchSettings) -> dict:
    """Run the chosen sections; returns everything measured (the JSON of ``--json``)."""
    unknown = [x for x in s.sections if x not in SECTIONS]
    if unknown:
        raise VGGError(f"--sections {unknown[0]}: choose from {', '.join(SECTIONS)}")
    device = resolve_device(s.device)
    report: dict[str, Any] = {
        "machine": machine(device),
        "date": str(date.today()),
        "settings": asdict(s),
        "inference_precision": inference_precision(s.precision, device),
    }
    print(f"vggnet bench on {report['machine']}", flush=True)
    for section in s.sections:
        if section == "forward":
            report["forward"] = _forward(s, device)
        elif section == "engines":
            report["engines"] = _engines(s, device)
        elif section == "train":
            report["train"] = _train(s, device)
        elif section == "pipeline":
            report["pipeline"] = _pipeline(s)
        else:
            report["eval"] = _eval(s)
    return report


def _plot_engines(ax: Any, engines: dict) -> None:
    """Each inference path's forward images/s (median), a bar per path."""
    paths = engines["forward"]["paths"]
    names = list(paths)
    rates = [statistics.median(paths[n]["images_per_s"]) for n in names]
    ax.barh(names, rates, color="tab:blue")
    for y, (name, value) in enumerate(zip(names, rates, strict=True)):
        ax.text(
            value,
            y,
            f" {value:.1f} ({100 * paths[name]['fraction_of_peak']:.0f}% of "
            f"{paths[name].get('peak', 'fp32')} GEMM)",
            va="center",
        )
    ax.set(
        title=f"forward, {engines['size']}x{engines['size']}, batch {engines['batch']}",
        xlabel="images/s (median)",
    )
    ax.set_xlim(0, max(rates) * 1.6)
    ax.invert_yaxis()


def _plot_dense(ax: Any, rows: list[dict]) -> None:
    """Dense evaluation: each path's speed-up over vggnet fp32 (median) against Q."""
    qs = [row["q"] for row in rows]
    for name in rows[0]["paths"]:
        ratio = [statistics.median(row["paths"][name]["ratio"]) for row in rows]
        ax.plot(qs, ratio, "o-", label=name)
    ax.set(
        title="dense evaluation (image + mirror)",
        xlabel="test scale Q",
        ylabel="speed-up over vggnet fp32 (median)",
        xticks=qs,
    )
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")


def plot_bench(report: dict, path: str | Path) -> Path:
    """``bench_figure`` written to ``path``."""
    plt = pyplot()
    fig = bench_figure(report)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def bench_figure(report: dict) -> Any:
    """Left: cost per image against batch size (forward), or each engine's forward rate.
    Right: evaluation cost against test scale, or else each engine's dense speed-up."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if report.get("forward"):
        rows = report["forward"]
        batches = [r["batch"] for r in rows]
        for name in ("torchvision", "vggnet"):
            ms = [1000 / statistics.median(r["images_per_s"][name]) for r in rows]
            axes[0].plot(batches, ms, "o-", label=name)
        axes[0].set(
            title=f"forward, {rows[0]['size']}x{rows[0]['size']}",
            xlabel="batch size",
            ylabel="ms per image",
            xscale="log",
        )
        axes[0].legend()
    elif report.get("engines"):
        _plot_engines(axes[0], report["engines"])
    if report.get("eval"):
        rows = report["eval"]["protocols"]
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["method"] == method]
            axes[1].plot(
                [r["q"] for r in mine], [1000 / r["images_per_s"] for r in mine], "o-", label=method
            )
        axes[1].set(title="evaluation end to end", xlabel="test scale Q", ylabel="ms per image")
        axes[1].set_yscale("log")
        axes[1].legend()
    elif report.get("engines", {}).get("dense"):
        _plot_dense(axes[1], report["engines"]["dense"])
    else:
        axes[1].set_axis_off()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
