"""benchmarks/gpu_accuracy.py (run once on a lent GPU) works end to end: its smoke mode on a CPU."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import worker_env

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_accuracy.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_accuracy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_trains_sizes_scores_and_ensembles(tmp_path):
    report_dir = tmp_path / "report"
    args = ["--smoke", "--out", tmp_path, "--report", report_dir, "--deadline-s", "2"]
    args += ["--nets", "D,D-jittered"]
    done = subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)], env=worker_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "accuracy.json").read_text())
    assert json.loads((report_dir / "accuracy.json").read_text())["results"] == report["results"]
    for name in ("D", "D-jittered"):
        net = report["nets"][name]
        assert net["epochs"] >= 1 and len(net["val_top1_error_by_epoch"]) == net["epochs"]
        assert net["settings"]["schedule"] == "linear" and net["settings"]["width"] == 0.125
    assert report["nets"]["D-jittered"]["settings"]["scale"] == "32:42"
    rows = {(r["net"], r["method"], tuple(r["scales"])) for r in report["results"]}
    for net in ("D", "D-jittered", "D+D-jittered"):
        for method in ("dense", "multi-crop", "dense+multi-crop"):
            assert (net, method, (37,)) in rows and (net, method, (32, 37, 42)) in rows
    assert ("D", "center", (37,)) in rows and len(report["results"]) == 2 * 7 + 6
    # Scored from the end of each schedule, never from the epoch that was best on the test set.
    singles = [r for r in report["results"] if "+" not in r["net"]]
    assert all(r["checkpoints"] == [str(tmp_path / r["net"] / "last.ckpt")] for r in singles)
    assert all(0 <= r["top1_error"] <= 100 and r["images"] == 16 for r in report["results"])
    assert (tmp_path / "accuracy.log").read_text().startswith("cpu")


def test_steady_rate_leaves_out_the_first_steps(tmp_path):
    # Rates are since the epoch began: 30 steps of 10 in 3 s, 60 in 4 s -> 300 images/s between.
    records = [
        {"kind": "step", "epoch": 1, "step": 1, "images_per_s": 1.0},
        {"kind": "step", "epoch": 1, "step": 30, "images_per_s": 100.0},
        {"kind": "step", "epoch": 1, "step": 60, "images_per_s": 150.0},
        {"kind": "epoch", "epoch": 1, "step": 60, "val_top1_error": 50.0},
        {"kind": "step", "epoch": 2, "step": 61, "images_per_s": 5.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert load_script().steady_images_per_s(tmp_path, 10) == 300.0


def test_an_unknown_net_is_refused_in_one_line(tmp_path):
    args = ["--smoke", "--out", tmp_path, "--nets", "D,VGG16"]
    done = subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)], env=worker_env(), capture_output=True, text=True
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip() == "gpu_accuracy.py: --nets VGG16: choose from D, E, D-jittered, D-b512"
    )
    assert not (tmp_path / "D").exists()  # refused before any training
