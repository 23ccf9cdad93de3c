"""Shared helpers: small nets for fast geometry tests, CLI runner."""

from __future__ import annotations

import pytest
import torch

from vggnet.cli import main


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
