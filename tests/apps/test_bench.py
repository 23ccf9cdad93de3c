"""`vggnet bench` and the inference fast path: runs end to end, same predictions as fp32."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vggnet
import vggnet.devices
from tests.data.test_sources import write_fashion
from tests.helpers import TRAINED_DATA, eager_winograd, tiny, worker_env
from vggnet import VGGError, save_checkpoint
from vggnet.bench.agreement import precision_agreement
from vggnet.bench.forward import compare_forward
from vggnet.devices import inference_context, inference_precision
from vggnet.preprocessing import Preprocessing

DATA = TRAINED_DATA


@pytest.mark.slow  # every section at tiny size: ~30 s; CI runs it (make test-slow)
def test_bench_tiny_runs_every_section_and_writes_json_and_plot(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # Winograd's per-machine choice
    eager_winograd(monkeypatch)
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    status, stdout, err = run_cli("bench", "--tiny", "--repeats", "2", "--json", out, "--plot", png)
    assert status == 0, err
    report = json.loads(out.read_text())
    assert report["inference_precision"] in ("fp32", "bf16")
    for row in report["forward"]:
        assert len(row["ratio"]) == 2 and all(r > 0 for r in row["ratio"])
        assert row["channels_last"] and row["max_logit_difference"] < 1e-3
    assert set(report["train"]["variants"]) == {"torchvision-fp32", "fp32-cl"} or set(
        report["train"]["variants"]
    ) == {"torchvision-fp32", "bf16-cl"}
    assert (
        report["pipeline"][0]["scale"] == "256" and len(report["pipeline"][0]["ratio vggnet"]) == 2
    )
    center = report["eval"]["center_vs_torchvision"]
    assert len(center["ratio"]) == 2 and all(r > 0 for r in center["ratio"])
    assert len(center["ratio vggnet int8"]) == 2
    engines = report["engines"]
    paths = {"torchvision fp32", f"vggnet {report['inference_precision']}", "vggnet int8"}
    paths |= {"vggnet fp32", "vggnet fp32 winograd"}
    paths |= {"onnxruntime fp32", "onnxruntime int8", "torch int8"}
    assert paths == set(engines["forward"]["paths"])
    assert [row["q"] for row in engines["dense"]] == [32, 48]
    for row in [engines["forward"], *engines["dense"]]:
        for p in row["paths"].values():
            assert len(p["ratio"]) == 2 and p["gflops"] > 0 and p["fraction_of_peak"] > 0
    assert engines["int8_peak_gops"] > 0 and engines["fp32_peak_gflops"] > 0
    peaks = {name: p["peak"] for name, p in engines["forward"]["paths"].items()}
    assert peaks["vggnet int8"] == peaks["onnxruntime int8"] == "int8"
    assert peaks["vggnet fp32"] == peaks["torchvision fp32"] == "fp32"
    methods = {(r["method"], r["q"]) for r in report["eval"]["protocols"]}
    assert methods == {(m, q) for m in ("center", "dense", "multi-crop") for q in (32, 48)}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "forward batch 2" in stdout and "ratio" in stdout


def test_bench_refuses_an_unknown_section(run_cli):
    status, _, err = run_cli("bench", "--tiny", "--sections", "warp")
    assert status == 2 and "--sections warp: choose from forward, engines, train, pipeline" in err


def test_flops_per_image_is_table_1s_hand_count():
    """VGG-16 at 224: 2 x (the 13 convolutions' and 3 FC layers' multiply-adds), by hand."""
    import torchvision

    from vggnet.bench.engines import flops_per_image

    side, channels, macs = 224, 3, 0
    for block in ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)):
        for width in block:
            macs += side * side * 9 * channels * width
            channels = width
        side //= 2
    macs += 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000
    assert flops_per_image(torchvision.models.vgg16(), 224, 224) == 2 * macs
    ours = vggnet.build_model("D")
    dense = flops_per_image(ours, 256, 320, dense=True)
    assert dense > flops_per_image(ours, 224, 224)  # a 2x4 score map: more fc6 windows


def test_fast_forward_path_gives_torchvisions_logits():
    """channels_last (fp32) against torchvision's contiguous fp32, same weights, above the crop."""
    row = compare_forward(
        2, 64, width=1 / 16, classes=10, precision="fp32", channels_last=True, repeats=1, iters=1
    )
    assert row["precision"] == "fp32" and row["max_logit_difference"] < 1e-4
    assert len(row["ratio"]) == 1 and row["ratio"][0] > 0


def test_auto_precision_is_bf16_only_where_native(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(vggnet.devices, "supports_bf16", lambda device: True)
    assert inference_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(vggnet.devices, "supports_bf16", lambda device: False)
    assert inference_precision("auto", cpu) == "fp32"
    assert inference_precision("fp32", cpu) == "fp32"
    with pytest.raises(VGGError, match="--precision bf16: cpu here has no native bf16"):
        inference_precision("bf16", cpu)


def test_inference_context_casts_each_weight_to_bf16_once():
    """Under torch.inference_mode autocast re-casts weights on every call: 3 passes, 3 casts."""
    from torch.utils._python_dispatch import TorchDispatchMode

    layer = torch.nn.Linear(6, 4)
    casts = []

    class CountCasts(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            is_cast = func in (torch.ops.aten._to_copy.default, torch.ops.aten.to.dtype)
            if is_cast and args[0].shape == layer.weight.shape:
                casts.append(func)
            return func(*args, **(kwargs or {}))

    with inference_context("bf16", torch.device("cpu")), CountCasts():
        outputs = [layer(torch.randn(2, 6)) for _ in range(3)]
    assert len(casts) == 1 and all(y.dtype == torch.bfloat16 for y in outputs)
    assert not outputs[0].requires_grad


@pytest.mark.parametrize("method", ["center", "dense"])
def test_bf16_and_channels_last_predict_what_fp32_predicts(trained, method):
    """bf16 autocast (emulated here if need be) + channels_last against fp32 on a trained net."""
    row = precision_agreement(trained, DATA, "bf16", method=method)
    assert row["images"] == 48
    assert row["agreement"] >= 97.9  # at most one of 48 images changes its top-1 class
    assert abs(row["error_change"]) <= 100 / 48 + 1e-9
    assert row["fp32_top1_error"] < 50  # trained: far better than chance (75%)


def test_eval_channels_last_default_equals_contiguous(trained, run_cli, tmp_path):
    results = []
    for flag in ("--channels-last", "--no-channels-last"):
        out = tmp_path / f"{flag}.json"
        status, _, err = run_cli(
            "eval", "--checkpoint", trained, "--data", DATA, "--method", "dense",
            "--device", "cpu", "--precision", "fp32", flag, "--json", out,
        )  # fmt: skip
        assert status == 0, err
        results.append(json.loads(out.read_text()))
    assert results[0]["top1_error"] == results[1]["top1_error"]
    assert results[0]["top5_error"] == results[1]["top5_error"]


@pytest.mark.slow  # a benchmark script's smoke run (9 s): make test-slow
def test_batch_norm_folding_benchmark_runs_and_agrees(tmp_path):
    """tools/bench/batch_norm_folding.py on a tiny Fashion-MNIST and BN net: both sides agree."""
    (tmp_path / "fm").mkdir()
    write_fashion(tmp_path / "fm", n_train=4, n_test=6)
    model = tiny("A", in_channels=1, crop_size=32, width=0.25, batch_norm=True)
    model.classes, model.train_scale = [str(i) for i in range(10)], (37, 37)
    model.preprocessing = Preprocessing((0.0,), (1 / 255,), "L")
    save_checkpoint(tmp_path / "bn.ckpt", model)
    script = Path(__file__).parents[2] / "tools" / "bench" / "batch_norm_folding.py"
    args = ["--checkpoint", tmp_path / "bn.ckpt", "--images", "4", "--repeats", "1"]
    run = subprocess.run(
        [sys.executable, script, *map(str, args), "--data", f"fashion-mnist:{tmp_path / 'fm'}"],
        env=worker_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("same top-1 predictions: True") == 2
    assert "center Q=37, 4 images" in run.stdout
    refused = subprocess.run(
        [sys.executable, script, *map(str, args), "--data", DATA],
        env=worker_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "--data synthetic:classes=4" in refused.stderr and "fashion-mnist" in refused.stderr


def test_an_engines_only_bench_plots_dense_speed_ups_beside_the_forward_rates():
    """Without the eval section the right panel shows each engine's dense speed-up per Q
    (it was left empty); with neither, it is switched off."""
    import matplotlib.pyplot as plt

    from vggnet.bench.runner import bench_figure

    def path(rate: float, ratio: float) -> dict:
        return {"images_per_s": [rate], "ratio": [ratio], "fraction_of_peak": 0.5, "peak": "fp32"}

    dense = [
        {"q": q, "paths": {"vggnet fp32": path(1.0, 1.0), "vggnet int8": path(3.0, r)}}
        for q, r in ((256, 4.0), (384, 3.4))
    ]
    engines = {"size": 224, "batch": 8, "forward": {"paths": {"vggnet fp32": path(5, 1)}}}
    fig = bench_figure({"engines": {**engines, "dense": dense}})
    right = fig.axes[1]
    assert right.get_title() == "dense evaluation (image + mirror)"
    lines = {line.get_label(): list(line.get_ydata()) for line in right.get_lines()}
    assert lines == {"vggnet fp32": [1.0, 1.0], "vggnet int8": [4.0, 3.4]}
    plt.close(fig)
    fig = bench_figure({"engines": {**engines, "dense": []}})
    assert not fig.axes[1].axison
    plt.close(fig)
