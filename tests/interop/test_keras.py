"""Keras .h5 import against Keras 3 itself (torch backend): identical outputs, same preprocessing."""

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

from vggnet import VGGError  # noqa: E402
from vggnet.interop.keras import import_keras  # noqa: E402


@pytest.fixture(scope="module")
def keras_vgg16(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None)
    path = tmp_path_factory.mktemp("keras") / "vgg16.weights.h5"
    model.save_weights(path)
    return model, path


def test_keras3_weights_give_keras_outputs(keras_vgg16, run_cli, tmp_path):
    reference, path = keras_vgg16
    ours = import_keras(path)
    assert ours.spec.config == "D" and len(ours.classes) == 1000
    x = (
        np.random.default_rng(0).normal(0, 50, (2, 224, 224, 3)).astype(np.float32)
    )  # preprocessed, BGR
    expected = keras.ops.convert_to_numpy(reference.predict(x, verbose=0))  # soft-max posteriors
    with torch.no_grad():
        got = ours(torch.from_numpy(x).permute(0, 3, 1, 2)).softmax(1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-6)
    status, out, err = run_cli("import", "--format", "keras", path, "--out", tmp_path / "k.ckpt")
    assert status == 0 and "config D" in out, err


def test_recorded_preprocessing_is_keras_caffe_mode(keras_vgg16):
    _, path = keras_vgg16
    rgb = np.random.default_rng(1).uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    expected = keras.applications.vgg16.preprocess_input(rgb.copy())  # RGB -> BGR, minus mean
    ours = import_keras(path).preprocessing.normalize(
        torch.from_numpy(rgb).permute(0, 3, 1, 2) / 255
    )
    np.testing.assert_allclose(ours.permute(0, 2, 3, 1).numpy(), expected, rtol=1e-4, atol=1e-3)


def test_keras2_layout_and_bad_files(tmp_path, keras_vgg16):
    reference, path = keras_vgg16
    ours = import_keras(path)
    # The Keras 2 release layout, written from the model itself: a group per named layer.
    legacy = tmp_path / "legacy.h5"
    with h5py.File(legacy, "w") as f:
        names = []
        for layer in reference.layers:
            weights = [keras.ops.convert_to_numpy(w) for w in layer.weights]
            group = f.create_group(layer.name)
            labels = [f"{layer.name}/{kind}:0" for kind in ("kernel", "bias")][: len(weights)]
            for label, value in zip(labels, weights, strict=True):
                group.create_dataset(label, data=value)
            group.attrs["weight_names"] = [label.encode() for label in labels]
            names.append(layer.name.encode())
        f.attrs["layer_names"] = names
    again = import_keras(legacy)
    for key, value in ours.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_group("something")
    with pytest.raises(VGGError, match="neither Keras 3 'layers' nor Keras 2 'layer_names'"):
        import_keras(tmp_path / "empty.h5")
    (tmp_path / "cut.h5").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(VGGError, match=r"is not a readable Keras \.h5 weight file"):
        import_keras(tmp_path / "cut.h5")
    with pytest.raises(VGGError, match="has 13 conv layers but config E has 16"):
        import_keras(path, "E")
