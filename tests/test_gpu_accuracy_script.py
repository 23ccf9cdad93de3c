"""benchmarks/gpu_accuracy.py (run once on a lent GPU) works end to end: its smoke mode on a CPU."""

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import worker_env

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_accuracy.py"


def test_smoke_run_trains_sizes_scores_and_ensembles(tmp_path):
    args = ["--smoke", "--out", tmp_path, "--budget-s", "2", "--nets", "D-w1,C-w1"]
    done = subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)], env=worker_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "accuracy.json").read_text())
    for name in ("D-w1", "C-w1"):
        net = report["nets"][name]
        assert net["epochs"] >= 1 and len(net["val_top1_error_by_epoch"]) == net["epochs"]
        assert net["settings"]["schedule"] == "linear" and net["settings"]["width"] == 0.125
        assert (tmp_path / name / "best.ckpt").is_file()
    methods = [(r["net"], r["method"]) for r in report["results"]]
    assert methods.count(("D-w1", "multi-crop")) == 1
    assert ("D-w1+C-w1", "dense+multi-crop") in methods and len(methods) == 10
    assert all(0 <= r["top1_error"] <= 100 and r["images"] == 16 for r in report["results"])
    assert (tmp_path / "accuracy.log").read_text().startswith("cpu")
