"""Sources: ImageNet-style folders, Fashion-MNIST IDX files, synthetic images."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import write_image_folder
from vggnet import VGGError
from vggnet.data.idx import read_idx, write_idx
from vggnet.data.sources import (
    FASHION_MNIST_CLASSES,
    FashionMNISTSource,
    SyntheticSource,
    open_source,
)

REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def test_folder_classes_sorted_and_labelled(tmp_path):
    write_image_folder(tmp_path, classes=("zebra", "ant", "moth"), train=3, val=2)
    train = open_source(str(tmp_path), "train")
    assert train.classes == ["ant", "moth", "zebra"]
    assert len(train) == 9 and train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert train.name(0).endswith("train/ant/0.jpg")
    image, size = train.read(4)
    assert image.shape == (3, 60, 80) and size == (80, 60)
    val = open_source(str(tmp_path), "val")
    assert val.classes == train.classes and len(val) == 6


def test_train_and_val_classes_must_agree(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b"))
    (tmp_path / "val" / "b").rename(tmp_path / "val" / "c")
    with pytest.raises(VGGError, match=r"differ \(only in train: b; only in val: c\)"):
        open_source(str(tmp_path), "val")


def test_missing_split_and_empty_class(tmp_path):
    write_image_folder(tmp_path, classes=("a",))
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(VGGError, match=r"class folder .*train/empty has no images"):
        open_source(str(tmp_path), "train")
    (tmp_path / "nope").mkdir()
    with pytest.raises(VGGError, match=r"nope/train is not a folder"):
        open_source(str(tmp_path / "nope"), "train")


def test_flat_val_with_labels_file(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b"), val=0)
    (tmp_path / "val").mkdir(exist_ok=True)
    src = next((tmp_path / "train" / "a").iterdir())
    for name in ("x_1.jpg", "ü.jpg", "z.jpg"):
        (tmp_path / "val" / name).write_bytes(src.read_bytes())
    labels = tmp_path / "labels.txt"
    labels.write_text("x_1.jpg b\nü.jpg 0\n\nz.jpg a\n")  # names or sorted-class indices
    val = open_source(str(tmp_path), "val", labels)
    assert val.labels.tolist() == [1, 0, 0] and val.name(1).endswith("ü.jpg")
    labels.write_text("z.jpg giraffe\n")
    with pytest.raises(VGGError, match=r"labels.txt:1: class 'giraffe' is not a train class"):
        open_source(str(tmp_path), "val", labels)
    labels.write_text("missing.jpg a\n")
    with pytest.raises(VGGError, match=r"labels.txt:1: .*missing.jpg does not exist"):
        open_source(str(tmp_path), "val", labels)


def test_names_with_spaces_non_ascii_and_symlink_loops(tmp_path):
    write_image_folder(tmp_path, classes=("näive class",), train=2)
    folder = tmp_path / "train" / "näive class"
    (folder / "0.jpg").rename(folder / "a photo é.jpg")
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "notes.txt").write_text("not an image")
    source = open_source(str(tmp_path), "train")
    assert sorted(Path(source.name(i)).name for i in range(len(source))) == [
        "1.jpg",
        "a photo é.jpg",
    ]
    assert source.read(0)[0].shape == (3, 60, 80)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable folders")
def test_unreadable_folder(tmp_path):
    write_image_folder(tmp_path, classes=("a",))
    (tmp_path / "train" / "a").chmod(0)
    try:
        with pytest.raises(VGGError, match="cannot read folder"):
            open_source(str(tmp_path), "train")
    finally:
        (tmp_path / "train" / "a").chmod(0o755)


def write_fashion(root, n_train=5, n_test=3, compress=True):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        suffix = ".gz" if compress else ""
        write_idx(
            root / f"{prefix}-images-idx3-ubyte{suffix}",
            rng.integers(0, 256, (n, 28, 28)),
            compress,
        )
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n), compress)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_from_small_idx_files(tmp_path, compress):
    write_fashion(tmp_path, compress=compress)
    train = open_source(f"fashion-mnist:{tmp_path}", "train")
    test = open_source(f"fashion-mnist:{tmp_path}", "val")
    assert len(train) == 5 and len(test) == 3 and train.channels == 1
    assert train.classes == FASHION_MNIST_CLASSES
    image, size = train.read(2)
    assert image.shape == (1, 28, 28) and size == (28, 28)
    assert np.array_equal(image[0].numpy(), train.images[2])


def test_idx_errors_name_the_file(tmp_path):
    write_fashion(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[:-10]))
    with pytest.raises(
        VGGError, match=r"train-images-idx3-ubyte: IDX header says 5x28x28 .* but the file has"
    ):
        FashionMNISTSource(tmp_path, "train")
    data[2] = 0x0D
    path.write_bytes(bytes(data))
    with pytest.raises(VGGError, match=r"is not an IDX file of rank 3 \(magic 00000d03"):
        read_idx(path, 3)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(VGGError, match="has no t10k-labels-idx1-ubyte"):
        FashionMNISTSource(tmp_path, "val")
    with pytest.raises(VGGError, match="does not exist: install it with"):
        FashionMNISTSource(tmp_path / "absent", "val")


@pytest.mark.skipif(
    not REAL_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist is not installed"
)
def test_real_fashion_mnist():
    train = open_source("fashion-mnist", "train")
    test = open_source("fashion-mnist", "val")
    assert len(train) == 60_000 and len(test) == 10_000
    assert train.images.shape == (60_000, 28, 28)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10


def test_synthetic_is_deterministic_and_configurable():
    a = open_source("synthetic:classes=3,train=7,val=4,size=40,seed=5", "train")
    b = open_source("synthetic:classes=3,train=7,val=4,size=40,seed=5", "train")
    assert len(a) == 7 and a.classes == ["class0", "class1", "class2"]
    assert torch.equal(a.read(3)[0], b.read(3)[0])
    assert min(a.read(3)[1]) == 40
    assert len(open_source("synthetic:classes=3,train=7,val=4", "val")) == 4
    assert not np.array_equal(
        SyntheticSource("train").read(0)[0].numpy(),
        SyntheticSource("val").read(0)[0].numpy(),
    )


def test_synthetic_class_is_visible():
    """A nearest-mean classifier on the most saturated pixels' colour separates the classes."""
    source = SyntheticSource("train", num_classes=6, train=120, size=48)

    def feature(i):
        x = source.read(i)[0].reshape(3, -1).T.float()
        saturation = x.max(1).values - x.min(1).values
        return x[saturation >= saturation.quantile(0.9)].mean(0)

    feats = torch.stack([feature(i) for i in range(len(source))])
    labels = torch.from_numpy(source.labels)
    means = torch.stack([feats[labels == c].mean(0) for c in range(6)])
    predicted = torch.cdist(feats, means).argmin(1)
    assert (predicted == labels).float().mean() > 0.9


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nowhere/at/all", "is neither a folder nor 'fashion-mnist"),
        ("synthetic:colour=3", "bad option 'colour=3'"),
        ("synthetic:classes=0", "synthetic data needs classes >= 1"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(VGGError, match=message):
        open_source(spec, "train")
