"""``--limit N``: a quick score on N images spread over the classes."""

import json

import numpy as np
import pytest
import torch

from tests.helpers import tiny, write_image_folder
from vggnet import VGGError, save_checkpoint
from vggnet.data import open_source
from vggnet.data.subset import limit_source, stratified_indices
from vggnet.eval.protocols import Protocol
from vggnet.eval.scoring import evaluate_checkpoints


def test_stratified_indices_by_hand():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])  # sorted by class, as folders are
    assert stratified_indices(labels, 3).tolist() == [0, 4, 6]  # the first of each class
    assert stratified_indices(labels, 5).tolist() == [0, 1, 4, 5, 6]
    assert stratified_indices(labels, 8).tolist() == [0, 1, 2, 4, 5, 6, 7, 8]  # 3: class 0 4th
    assert stratified_indices(labels, 20).tolist() == list(range(9))
    with pytest.raises(VGGError, match="--limit 0"):
        stratified_indices(labels, 0)


def test_each_class_gets_its_share_on_fashion_mnist_sized_labels():
    labels = np.random.default_rng(0).integers(0, 10, 10_000)
    chosen = stratified_indices(labels, 1000)
    assert np.bincount(labels[chosen], minlength=10).tolist() == [100] * 10
    assert stratified_indices(labels, 1000).tolist() == chosen.tolist()  # deterministic


def test_limited_source_reads_the_chosen_images(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b", "c"), train=1, val=4, size=(40, 40))
    source = open_source(str(tmp_path), "val")
    limited = limit_source(source, 5)
    assert len(limited) == 5 and limited.classes == source.classes
    assert limited.labels.tolist() == [0, 0, 1, 1, 2]
    assert limited.name(2) == source.name(4)
    assert torch.equal(limited.read(2)[0], source.read(4)[0])
    assert limit_source(source, None) is source and limit_source(source, 99) is source


def test_eval_limit_scores_that_many_images(tmp_path, run_cli):
    write_image_folder(tmp_path / "d", classes=("a", "b", "c"), train=1, val=5, size=(40, 40))
    model = tiny("A", num_classes=3, crop_size=32)
    model.classes, model.train_scale = ["a", "b", "c"], (32, 32)
    save_checkpoint(tmp_path / "m.ckpt", model)
    scores = evaluate_checkpoints(
        [str(tmp_path / "m.ckpt")], str(tmp_path / "d"), Protocol("center"), device="cpu", limit=6
    )
    assert scores is not None and scores.labels.tolist() == [0, 0, 1, 1, 2, 2]
    status, out, err = run_cli(
        "eval", "--checkpoint", tmp_path / "m.ckpt", "--data", tmp_path / "d",
        "--method", "centre", "--limit", "4", "--json", tmp_path / "r.json", "--device", "cpu",
    )  # fmt: skip
    assert status == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["images"] == 4
    assert "test scales: [32, 37], Table 4's rule" in out  # the scales used, above the table
