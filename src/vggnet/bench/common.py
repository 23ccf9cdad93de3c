"""Shared by the benchmarks: machine description, interleaved repeats, ratio summaries."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import date

import torch

from vggnet.devices import cpu_name


def machine(device: torch.device) -> str:
    """One line naming the hardware and software a figure was measured on."""
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return (
        f"{device.type} ({where}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, {date.today()}"
    )


def interleaved(runs: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Call each rate function ``repeats`` times, alternating the order, so drift hits all alike."""
    results: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            results[name].append(runs[name]())
    return results


def summary(values: list[float]) -> str:
    """min / median / max of a list of rates or ratios."""
    return (
        f"min {min(values):8.2f}  median {statistics.median(values):8.2f}  max {max(values):8.2f}"
    )


def ratios(ours: list[float], baseline: list[float]) -> list[float]:
    """Per-repeat ratio ours / baseline (each pair measured back to back)."""
    return [a / b for a, b in zip(ours, baseline, strict=True)]
