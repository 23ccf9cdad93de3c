"""tools/bench/gpu_accuracy.py (run once on a lent GPU) works end to end: its smoke mode on a CPU."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import worker_env
from vggnet.errors import VGGError

SCRIPT = Path(__file__).parents[2] / "tools" / "bench" / "gpu_accuracy.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_accuracy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # 16 s: a tool script's smoke run; .ci/run runs it (make test-slow)
def test_smoke_run_trains_sizes_scores_and_ensembles(tmp_path):
    report_dir = tmp_path / "report"
    args = ["--smoke", "--out", tmp_path, "--report", report_dir, "--deadline-s", "2"]
    args += ["--nets", "D,D-jittered,D-b512-S32"]
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
    rows = {(r["net"], r["method"], json.dumps(r["scales"])) for r in report["results"]}
    for method in ("dense", "multi-crop", "dense+multi-crop"):
        for net in ("D", "D-jittered"):  # Q = S (the middle of the jittered range), Table 4's Q
            assert (net, method, "[37]") in rows and (net, method, "[32, 37, 42]") in rows
        assert ("D-b512-S32", method, "[32]") in rows
        assert ("D-b512-S32", method, "[32, 37]") in rows
        # Nets of different S share no Q = S: the ensemble averages each net's own Q set.
        each = "[[32, 37, 42], [32, 37, 42], [32, 37]]"
        assert ("D+D-jittered+D-b512-S32", method, each) in rows
    assert ("D", "center", "[37]") in rows and ("D-b512-S32", "center", "[32]") in rows
    assert len(report["results"]) == 3 * 7 + 3
    # Scored from the end of each schedule, never from the epoch that was best on the test set.
    singles = [r for r in report["results"] if "+" not in r["net"]]
    assert all(r["checkpoints"] == [str(tmp_path / r["net"] / "last.ckpt")] for r in singles)
    assert all(0 <= r["top1_error"] <= 100 and r["images"] == 16 for r in report["results"])
    assert (tmp_path / "accuracy.log").read_text().startswith("cpu")
    # Each net's scores come back with the report: a later `vggnet ensemble` of them
    # gives the script's own ensemble row.
    saved = [report_dir / f"{n}.scores.pt" for n in ("D", "D-jittered", "D-b512-S32")]
    row = tmp_path / "ensemble.json"
    again = subprocess.run(
        [sys.executable, "-m", "vggnet", "ensemble", *map(str, saved), "--json", str(row)],
        env=worker_env(),
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    ensemble = json.loads(row.read_text())
    [script_row] = [
        r
        for r in report["results"]
        if r["net"] == "D+D-jittered+D-b512-S32" and r["method"] == "dense+multi-crop"
    ]
    assert ensemble["top1_error"] == script_row["top1_error"]
    assert ensemble["scales"] == script_row["scales"]


def test_epoch_cost_is_the_last_epochs_parts(tmp_path):
    records = [
        {"kind": "step", "epoch": 1, "step": 1, "images_per_s": 1.0},
        {"kind": "epoch", "epoch": 1, "step": 6, "train_seconds": 9.0, "val_seconds": 2.0,
         "checkpoint_seconds": 1.0},
        {"kind": "epoch", "epoch": 2, "step": 12, "train_seconds": 3.0, "val_seconds": 0.5,
         "checkpoint_seconds": 0.25},
    ]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert load_script().epoch_cost(tmp_path) == (3.0, 0.75)


def test_epochs_that_fit_leave_room_for_the_calibration_and_the_fixed_cost():
    # 100 s share; calibration 14 s = two 2 s epochs + 10 s fixed; 100 - 14 - 10 = 76 -> 38.
    assert load_script().epochs_that_fit(100.0, 14.0, 2.0) == (38, 10.0)
    assert load_script().epochs_that_fit(10.0, 14.0, 2.0) == (1, 10.0)  # at least one


@pytest.mark.slow  # 24 s; .ci/run runs it (make test-slow)
def test_a_later_call_ensembles_with_the_nets_an_earlier_one_scored(tmp_path):
    def call(*extra):
        args = ["--smoke", "--out", tmp_path, "--deadline-s", "2", *extra]
        return subprocess.run(
            [sys.executable, SCRIPT, *map(str, args)],
            env=worker_env(),
            capture_output=True,
            text=True,
        )

    refused = call("--nets", "D", "--ensemble-with", "E")
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("gpu_accuracy.py: --ensemble-with E: no ")
    for nets, earlier in (("D,D", ""), ("D", "D")):
        twice = call("--nets", nets, "--ensemble-with", earlier)
        assert twice.returncode == 1
        assert twice.stderr.strip() == (
            "gpu_accuracy.py: D is named twice in --nets and --ensemble-with: "
            "each net trains and counts once"
        )
    assert call("--nets", "D").returncode == 0
    done = call("--nets", "D-jittered", "--ensemble-with", "D")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "accuracy.json").read_text())
    ensemble = [r for r in report["results"] if r["net"] == "D+D-jittered"]
    assert len(ensemble) == 6
    assert ensemble[0]["checkpoints"] == [
        str(tmp_path / "D" / "last.ckpt"),
        str(tmp_path / "D-jittered" / "last.ckpt"),
    ]


def test_an_unknown_net_is_refused_in_one_line(tmp_path):
    args = ["--smoke", "--out", tmp_path, "--nets", "D,VGG16"]
    done = subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)], env=worker_env(), capture_output=True, text=True
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip() == "gpu_accuracy.py: --nets VGG16: choose from D, E, D-jittered, "
        "D-b512, E-b512, D-b512-seed1, D-b512-seed2, D-b512-S32, D-b512-S34, D-b512-S34-RE, "
        "E-b512-S34-RE, D-b512-C64-S68-RE"
    )
    assert not (tmp_path / "D").exists()  # refused before any training


@pytest.mark.slow  # 9 s: a tool script's smoke run; .ci/run runs it (make test-slow)
def test_train_loop_speed_smoke_times_epochs_parts_and_scoring(tmp_path):
    script = SCRIPT.parent / "train_loop_speed.py"
    args = ["--smoke", "--score", "--out", tmp_path / "runs", "--report", tmp_path, "--label", "x"]
    done = subprocess.run(
        [sys.executable, script, *map(str, args)], env=worker_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = json.loads((tmp_path / "train_loop_speed.jsonl").read_text())
    assert line["label"] == "x" and line["seconds_per_epoch"] > 0
    per_epoch = (line["seconds_three_epoch_run"] - line["seconds_one_epoch_run"]) / 2
    assert line["seconds_per_epoch"] == per_epoch
    assert set(line["three_epoch_run_parts_s"]) == {
        "train_seconds",
        "val_seconds",
        "checkpoint_seconds",
    }
    assert len(line["scoring_passes_s"]) == 2 and not (tmp_path / "runs").exists()


def test_every_net_of_the_script_is_a_valid_training_run():
    """A typo in NETS would cost a GPU lease: each net's settings pass train's checks."""
    import torch

    from vggnet.distributed import Dist
    from vggnet.train import TrainConfig, check_config

    script = load_script()
    for name, net in script.NETS.items():
        settings = {**script.COMMON, **net, "data": "fashion-mnist", "out": name, "device": "cpu"}
        check_config(TrainConfig(**settings).resolved(), Dist(), torch.device("cpu"))
    assert script.NETS["D-b512-S34-RE"]["random_erasing"] == 0.5
    # a net of another crop is tested at its own Q = S, with the same recipe otherwise
    assert script.single_q("D-b512-C64-S68-RE") == 68 and script.single_q("D-b512-S34-RE") == 34
    larger = {
        k: v for k, v in script.NETS["D-b512-C64-S68-RE"].items() if k not in ("crop", "scale")
    }
    assert larger == {k: v for k, v in script.NETS["D-b512-S34-RE"].items() if k != "scale"}


def test_a_nets_test_scale_is_checked_against_its_own_crop(monkeypatch):
    script = load_script()
    monkeypatch.setitem(script.NETS, "D-C64-S40", {"config": "D", "crop": 64, "scale": "40"})
    with pytest.raises(VGGError, match="S = 40 is smaller than the crop 64"):
        script.single_q("D-C64-S40")
