"""Shared helpers: small nets for fast geometry tests, CLI runner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vggnet.eval.engines
from tests.helpers import TRAINED_DATA, eager_winograd, garment_like, train_args
from vggnet.cli import main
from vggnet.data.idx import write_idx


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def run_cli(capsys):
    """Run ``vggnet ARGS`` in-process; return (exit status, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture(scope="session")
def fake_fashion(tmp_path_factory):
    """Fashion-MNIST's four IDX files with garment-like images: 300 train, 100 test."""
    root = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 300), ("t10k", 100)):
        write_idx(root / f"{prefix}-images-idx3-ubyte", garment_like(rng, n), False)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n), False)
    return root


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny net trained for a few epochs on synthetic data (its val split is the test set)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    args = train_args(
        out,
        "--epochs",
        "6",
        "--dropout",
        "0",
        "--width",
        "0.25",
        "--fc-width",
        "64",
        "--batch-norm",
        "--scale",
        "40",
        "--no-lighting",
        "--lr",
        "0.01",
        data=TRAINED_DATA,
    )  # fmt: skip  (the recipe of test_a_tiny_net_learns)
    assert main(args) == 0
    return str(out / "best.ckpt")


@pytest.fixture
def every_layer_faster(monkeypatch, tmp_path):
    """A machine where Winograd wins on every layer but conv1_1 (measured once, cached)."""
    eager_winograd(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    measured = []

    def speedups(model, height, width):
        measured.append((height, width))
        names = [n for n, m in model.named_children() if isinstance(m, torch.nn.Conv2d)]
        return {n: 1.05 if n == "conv1_1" else 1.5 for n in names}

    monkeypatch.setattr(vggnet.eval.engines, "layer_speedups", speedups)
    return measured
