"""Shared helpers: small nets for fast geometry tests, CLI runner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import garment_like
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
