"""Appendix B descriptors and the linear classifier on them; scikit-learn's digits as a source."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import tiny
from vggnet import VGGError, extract_features, save_checkpoint
from vggnet.apps.transfer import dataset_features, linear_probe
from vggnet.data import open_source, rescale
from vggnet.data.transforms import BatchNormalizer

DATA = "synthetic:classes=3,train=30,val=15,size=40"


def test_descriptor_by_hand():
    torch.manual_seed(0)
    model = tiny("A", num_classes=3, crop_size=32, width=0.25, fc_width=16)
    source = open_source(DATA, "val")
    features, labels = dataset_features(model, source, [32, 40], "fc7", flip=True)
    assert features.shape == (15, 16) and labels.tolist() == source.labels.tolist()
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1, rtol=1e-5)
    image, _ = source.read(4)
    normalize = BatchNormalizer(model.preprocessing)
    per_scale = []
    with torch.no_grad():
        for q in (32, 40):
            x = normalize(rescale(image, q)[None])
            views = [extract_features(model, v, ["fc7"])["fc7"] for v in (x, x.flip(-1))]
            per_scale.append(sum(v.mean(dim=(2, 3)) if v.dim() == 4 else v for v in views) / 2)
    expected = F.normalize(torch.stack(per_scale).mean(0), dim=1)[0]
    np.testing.assert_allclose(features[4], expected.numpy(), rtol=1e-5, atol=1e-6)


def test_linear_probe_beats_chance_on_a_tiny_set():
    torch.manual_seed(0)
    model = tiny("A", num_classes=3, crop_size=32, width=0.25, fc_width=16)
    train = dataset_features(model, open_source(DATA, "train"), [40], "relu3_2")
    val = dataset_features(model, open_source(DATA, "val"), [40], "relu3_2")
    assert linear_probe(train, val) > 60.0  # chance is 33%


def test_fc_layers_refuse_scales_below_the_crop():
    model = tiny("A", num_classes=3, crop_size=32)
    with pytest.raises(VGGError, match="Q=24 is smaller than the crop 32 needed by fc7"):
        dataset_features(model, open_source(DATA, "val"), [24], "fc7")


def test_digits_source():
    train, val = open_source("sklearn-digits", "train"), open_source("sklearn-digits", "val")
    assert len(train) + len(val) == 1797 and len(val) == 450
    image, size = val.read(0)
    assert image.shape == (1, 8, 8) and size == (8, 8) and image.max() <= 255 and image.max() > 200


def test_features_and_transfer_commands(tmp_path, run_cli):
    torch.manual_seed(0)
    model = tiny("A", num_classes=3, crop_size=32, width=0.25, fc_width=16)
    model.classes, model.train_scale = ["class0", "class1", "class2"], (40, 40)
    save_checkpoint(tmp_path / "m.ckpt", model)
    status, out, err = run_cli(
        "features",
        "--checkpoint",
        tmp_path / "m.ckpt",
        "--data",
        DATA,
        "--layer",
        "pool5",
        "--out",
        tmp_path / "f.npy",
        "--device",
        "cpu",
    )
    assert status == 0, err
    assert np.load(tmp_path / "f.npy").shape == (30, 128) and np.load(
        tmp_path / "f.labels.npy"
    ).shape == (30,)
    assert "Q=[35, 40, 45]" in out  # Table 4's rule for S = 40 at crop 32
    status, out, err = run_cli(
        "transfer",
        "--checkpoint",
        tmp_path / "m.ckpt",
        "--data",
        DATA,
        "--layer",
        "relu3_2",
        "--device",
        "cpu",
        "--json",
        tmp_path / "t.json",
    )
    assert status == 0, err
    result = json.loads((tmp_path / "t.json").read_text())
    assert result["val_images"] == 15 and 0 <= result["accuracy"] <= 100
    status, _, err = run_cli(
        "transfer",
        "--checkpoint",
        tmp_path / "m.ckpt",
        "--data",
        "sklearn-digits",
        "--device",
        "cpu",
    )
    assert status == 2 and "takes 3-channel images, --data sklearn-digits has 1" in err
