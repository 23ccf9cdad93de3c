"""A new user's first hour: a word on untrained nets, and no training extras for inference."""

import subprocess
import sys
import warnings

import pytest
import torch

from tests.helpers import tiny
from vggnet import PerceptualLoss, extract_features
from vggnet.interop.torchvision import export_torchvision, import_torchvision
from vggnet.metrics import MetricsLog
from vggnet.plots import plot_run


def test_features_of_an_untrained_net_warn_once_per_net():
    model = tiny("A", crop_size=32)
    x = torch.rand(1, 3, 32, 32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        extract_features(model, x, "relu1_1")
        extract_features(model, x, "relu2_1")
        PerceptualLoss(model, layers="relu1_1")(x, x)
    untrained = [w for w in caught if "looks untrained" in str(w.message)]
    assert len(untrained) == 1 and "load_pretrained" in str(untrained[0].message)
    with pytest.warns(UserWarning, match="PerceptualLoss: the net looks untrained"):
        PerceptualLoss(tiny("A", crop_size=32), layers="relu1_1")


def test_an_imported_net_is_not_called_untrained():
    model = tiny("A", num_classes=1000, crop_size=32)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    imported = import_torchvision(export_torchvision(model))  # carries classes and a card
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extract_features(imported, torch.rand(1, 3, 32, 32), ["fc7"])


def test_inference_never_imports_the_training_extras():
    code = (
        "import sys, torch, vggnet\n"
        "m = vggnet.build_model('A', num_classes=3, width=0.25, fc_width=8, crop_size=32)\n"
        "vggnet.PerceptualLoss(m, layers='relu1_1')(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))\n"
        "vggnet.create_transform(m)\n"
        "loaded = [n for n in ('matplotlib', 'tensorboard', 'onnx', 'sklearn', 'h5py') if n in sys.modules]\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_training_without_matplotlib_warns_with_the_install_line(tmp_path, monkeypatch):
    (tmp_path / "metrics.jsonl").write_text(
        '{"kind": "step", "step": 1, "epoch": 1, "loss": 1.0}\n'
    )
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    said = []
    assert plot_run(tmp_path, warn=said.append) is None
    assert len(said) == 1 and "pip install 'vggnet[train]'" in said[0]


def test_training_without_tensorboard_says_so_once(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    said = []
    log = MetricsLog(tmp_path, warn=said.append)
    log.write({"kind": "step", "step": 1, "epoch": 1, "loss": 1.0})
    log.close()
    assert (
        len(said) == 1 and "TensorBoard is not installed" in said[0] and "vggnet[train]" in said[0]
    )
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 1
