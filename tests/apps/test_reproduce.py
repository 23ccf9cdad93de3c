"""`vggnet reproduce`: the scale rule, the initialisation chain, all four tables, resuming."""

import json
import signal
import subprocess
import time

import pytest
import torch

import vggnet.devices
from tests.helpers import run_vggnet
from vggnet import VGGError, load_checkpoint
from vggnet.apps.reproduce.grid import grid_cells, training_scales
from vggnet.apps.reproduce.report import collect_rows, findings, table6_rows
from vggnet.apps.reproduce.run import ReproduceSettings, check_grid_file, reproduce
from vggnet.checkpoint import read_checkpoint
from vggnet.evaluate import Scores

DATA = "synthetic:classes=4,train=32,val=16,size=40"
TINY = ["--epochs", "1", "--finetune-epochs", "1", "--width", "0.0625", "--fc-width", "16",
        "--batch-size", "16", "--grid", "2", "--device", "cpu", "--workers", "0"]  # fmt: skip


def test_scale_rule_gives_the_papers_numbers_at_224_and_their_ratios_at_32():
    paper = training_scales(224)
    assert (paper.s1, paper.s2, paper.smax) == (256, 384, 512)
    assert paper.flag("jitter") == "256:512" and paper.single_q("jitter") == 384
    assert paper.multi_q("S1") == [224, 256, 288] and paper.multi_q("S2") == [352, 384, 416]
    assert paper.multi_q("jitter") == [256, 384, 512]
    small = training_scales(32)  # 256 / 224 x 32 = 36.6, 384 -> 54.9, 512 -> 73.1, 32 -> 4.6
    assert (small.s1, small.s2, small.smax) == (37, 55, 73)
    assert small.single_q("S1") == 37 and small.single_q("jitter") == 55
    assert small.multi_q("S1") == [32, 37, 42] and small.multi_q("jitter") == [37, 55, 73]


def test_grid_follows_the_papers_initialisation_chain():
    cells = {c.name: c for c in grid_cells()}
    assert list(cells) == [
        "A-S1", "A-LRN-S1", "B-S1", "C-S1", "D-S1", "E-S1",
        "C-S2", "D-S2", "E-S2", "C-jitter", "D-jitter", "E-jitter",
    ]  # fmt: skip
    assert cells["A-S1"].start == "scratch" and cells["E-S1"].source == "A-S1"
    assert (cells["D-S2"].start, cells["D-S2"].source) == ("finetune-from", "D-S1")
    assert (cells["D-jitter"].start, cells["D-jitter"].source) == ("finetune-from", "D-S2")
    assert [c.depth for c in grid_cells()][:6] == [11, 11, 13, 16, 16, 19]
    assert [c.name for c in grid_cells(["E"])] == ["A-S1", "E-S1", "E-S2", "E-jitter"]


def test_tiny_grid_writes_all_four_tables_figures_and_chains_the_weights(tmp_path, run_cli):
    out = tmp_path / "grid"
    status, stdout, err = run_cli("reproduce", "--data", DATA, "--out", out, *TINY)
    assert status == 0, err
    report = json.loads((out / "results.json").read_text())
    tables = {r["table"] for r in report["rows"]}
    assert tables == {3, 4, 5, 6}
    t3 = [r for r in report["rows"] if r["table"] == 3]
    assert [(r["config"], r["train_scale"], r["test_scales"]) for r in t3][:2] == [
        ("A", "37", [37]),
        ("A-LRN", "37", [37]),
    ]
    assert {r["train_scale"] for r in t3} == {"37", "55", "37:73"}
    assert all(r["paper_top1_error"] is not None for r in t3)
    assert len([r for r in report["rows"] if r["table"] == 5]) == 6
    assert {r["method"] for r in report["rows"] if r["table"] == 6} == {
        "dense", "multi-crop", "dense+multi-crop",
    }  # fmt: skip
    text = (out / "RESULTS.md").read_text()
    for title in ("## Table 3", "## Table 4", "## Table 5", "## Table 6", "findings hold"):
        assert title in text
    for png in ("depth.png", "curves.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # the chain: D at S1 starts from A's conv1_1; D-S2 from D-S1, with the paper's lr 1e-3
    cells = out / "cells"
    d_s2 = read_checkpoint(cells / "D-S2" / "train" / "last.ckpt")["train_state"]["config"]
    assert d_s2["finetune_from"].endswith("D-S1/train/last.ckpt") and d_s2["lr"] == 1e-3
    d_s1 = read_checkpoint(cells / "D-S1" / "train" / "last.ckpt")["train_state"]["config"]
    assert d_s1["init_from"].endswith("A-S1/train/last.ckpt") and d_s1["scale"] == "37"
    # the budget's recipe: linear schedule from 0.1 with warm-up, no dropout; none when fine-tuning
    recipe = ("schedule", "lr", "warmup", "dropout")
    assert [d_s1[k] for k in recipe] == ["linear", 0.1, 0.5, 0.0]
    assert [d_s2[k] for k in recipe] == ["linear", 1e-3, 0.0, 0.0]
    assert "the linear schedule (0.5 epochs of warm-up, then down to 0), dropout 0.0" in text
    jitter = load_checkpoint(cells / "E-jitter" / "train" / "last.ckpt")
    assert jitter.train_scale == (37, 73)

    # a second run finds every cell finished: nothing is trained or scored again
    before = {p: p.stat().st_mtime_ns for p in cells.rglob("*.ckpt")}
    status, stdout, err = run_cli("reproduce", "--data", DATA, "--out", out, *TINY)
    assert status == 0, err
    assert stdout.count("trained (skipped)") == 12 and "scoring" not in stdout
    assert before == {p: p.stat().st_mtime_ns for p in cells.rglob("*.ckpt")}

    status, _, err = run_cli("reproduce", "--data", DATA, "--out", out, *TINY[:-2], "--grid", "3")
    assert status == 2 and "holds a grid with grid = 2, not 3" in err


def test_table6_ensembles_the_two_best_nets_of_table4_as_the_papers_d_plus_e():
    labels = torch.tensor([0, 0, 1, 1])
    by_cell = {  # each net's posteriors per image, the same at every test scale
        "A-S1": [[0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]],  # 75% error
        "D-S1": [[0.1, 0.9], [0.9, 0.1], [0.1, 0.9], [0.2, 0.8]],  # image 0 wrong: 25%
        "D-S2": [[0.1, 0.9], [0.1, 0.9], [0.9, 0.1], [0.9, 0.1]],  # 100%
        "D-jitter": [[0.95, 0.05], [0.4, 0.6], [0.3, 0.7], [0.3, 0.7]],  # image 1 wrong: 25%
    }
    cells = grid_cells(["D"])
    scales = training_scales(32)
    scores = {}
    for cell in cells:
        qs = scales.multi_q(cell.tag)
        post = torch.tensor(by_cell[cell.name]).expand(len(qs), 1, 4, 2)
        scores[cell.name] = Scores(["a", "b"], labels, torch.arange(4), [cell.name], ("dense",),
                                   True, [qs], [post])  # fmt: skip
    rows = [r for r in collect_rows(cells, scores, scales) if r["table"] == 6]
    best = next(r for r in rows if r["config"] == "best 2")
    # D-S1 and D-jitter err on different images, less surely than the other is right
    assert best["nets"] == ["D-S1", "D-jitter"] and best["top1_error"] == 0.0
    assert (best["paper_top1_error"], best["paper_top5_error"]) == (24.0, 7.1)
    everyone = next(r for r in rows if r["config"] == "all")
    assert everyone["top1_error"] == 75.0  # images 0, 2 and 3: the weak nets outvote the two
    assert table6_rows(rows) == (
        "Rows: every net (the paper's 7-net submission); the two best nets of Table 4, each at "
        "its own test scales (the paper's two best, D and E jittered, give its D + E rows)."
    )  # no E, so no D + E rows


def test_table6_has_no_best_two_row_when_they_are_d_and_e_jittered_as_in_the_paper():
    labels = torch.tensor([0, 1])
    cells = grid_cells(["E"]) + [c for c in grid_cells(["D"]) if c.name == "D-jitter"]
    scales = training_scales(32)
    scores = {}
    for cell in cells:  # the jittered nets right on both images, the others wrong
        qs = scales.multi_q(cell.tag)
        jittered = cell.tag == "jitter"
        parts = ("dense", "multi-crop") if jittered else ("dense",)
        post = [[0.9, 0.1], [0.1, 0.9]] if jittered else [[0.1, 0.9], [0.9, 0.1]]
        post = torch.tensor(post).expand(len(qs), len(parts), 2, 2)
        scores[cell.name] = Scores(["a", "b"], labels, torch.arange(2), [cell.name], parts,
                                   True, [qs], [post])  # fmt: skip
    rows = [r for r in collect_rows(cells, scores, scales) if r["table"] == 6]
    assert [(r["config"], r["method"]) for r in rows] == [
        ("all", "dense"), ("D+E", "dense"), ("D+E", "multi-crop"), ("D+E", "dense+multi-crop"),
    ]  # fmt: skip
    assert rows[1]["top1_error"] == 0.0
    assert table6_rows(rows) == (
        "Rows: every net (the paper's 7-net submission); D and E jittered with each protocol."
    )


def test_an_ensemble_must_beat_the_best_single_net_at_any_test_scale():
    rows = [
        {"table": 3, "config": "D", "tag": "S1", "top1_error": 6.55},
        {"table": 4, "config": "D", "tag": "S1", "top1_error": 6.60},
        {"table": 6, "config": "best 2", "top1_error": 6.58},
    ]
    assert findings(rows)[-1] == (
        "Ensembles beat the best single net: does not hold "
        "(best ensemble 6.58%, best single net 6.55%)."
    )


@pytest.mark.slow  # 19 s; .ci/run runs it (make test-slow)
def test_an_interrupted_grid_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "grid"
    args = ["reproduce", "--data", "synthetic:classes=4,train=3000,val=16,size=40",
            "--out", out, "--configs", "A", "B", *TINY]  # fmt: skip
    proc = run_vggnet(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "cells" / "B-S1" / "train" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (
        metrics.exists() and metrics.read_text().count("step") >= 2
    ):
        time.sleep(0.05)
    for sig in (signal.SIGSTOP, signal.SIGTERM, signal.SIGCONT):  # lands mid-way through B
        proc.send_signal(sig)
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped; run the same command again" in stdout
    assert (out / "cells" / "A-S1" / "trained.json").exists()
    assert not (out / "cells" / "B-S1" / "trained.json").exists()

    again = run_vggnet(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "A-S1: trained (skipped)" in stdout and "B-S1: resuming" in stdout
    assert (out / "RESULTS.md").exists()


def test_bad_settings_are_one_line(tmp_path):
    with pytest.raises(VGGError, match="--configs F: choose from A, A-LRN, B, C, D, E"):
        reproduce(ReproduceSettings(DATA, str(tmp_path), configs=["F"]))
    with pytest.raises(VGGError, match="--budget huge: choose one of small, full"):
        reproduce(ReproduceSettings(DATA, str(tmp_path), budget="huge"))


def test_precision_reaches_the_cells_training_and_fixes_the_grid(tmp_path, monkeypatch, run_cli):
    monkeypatch.setattr(vggnet.devices, "supports_bf16", lambda device: True)  # any CPU, tiny net
    out = tmp_path / "grid"
    status, _, err = run_cli(
        "reproduce", "--data", DATA, "--out", out, "--configs", "A", "--precision", "bf16", *TINY
    )
    assert status == 0, err
    trained = read_checkpoint(out / "cells" / "A-S1" / "train" / "last.ckpt")
    assert trained["train_state"]["config"]["precision"] == "bf16"
    assert json.loads((out / "grid.json").read_text())["precision"] == "bf16"
    assert "batch norm, trained in bf16," in (out / "RESULTS.md").read_text()
    tiny = dict(configs=["A"], epochs=1, finetune_epochs=1, width=0.0625, fc_width=16,
                batch_size=16, grid=2, device="cpu", workers=0)  # fmt: skip
    with pytest.raises(VGGError, match="holds a grid with precision = 'bf16', not 'fp32'"):
        reproduce(ReproduceSettings(DATA, str(out), **tiny))


def test_a_grid_begun_before_precision_existed_continues_as_fp32(tmp_path):
    fixed = {"data": DATA, "crop": 32, "budget": {"epochs": 1}, "grid": 2}
    (tmp_path / "grid.json").write_text(json.dumps(fixed))
    check_grid_file(tmp_path, {**fixed, "precision": "fp32"})
    with pytest.raises(VGGError, match="holds a grid with precision = 'fp32', not 'bf16'"):
        check_grid_file(tmp_path, {**fixed, "precision": "bf16"})


def test_a_precision_the_device_lacks_is_refused_before_the_grid_is_fixed(tmp_path):
    with pytest.raises(VGGError, match="--precision fp16 needs --device cuda"):
        reproduce(ReproduceSettings(DATA, str(tmp_path), precision="fp16", device="cpu"))
    assert not (tmp_path / "grid.json").exists()
