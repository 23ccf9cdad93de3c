"""Forked loader workers never free what they inherited from the parent.

On a GPU, a reference cycle holding a CUDA tensor that was garbage in the parent when a
loader forked its workers got freed inside a worker, which aborted it ("CUDA error:
initialization error"): the third net of tools/bench/gpu_accuracy.py died that way on an
H200. Without CUDA here, a cycle whose finaliser records the process it runs in stands
in for that tensor.
"""

import gc
import os

import pytest
import torch
from torch.utils.data import Dataset

from vggnet.data.loader import (
    batch_loader,
    center_loader,
    collate_views,
    views_loader,
    worker_options,
)
from vggnet.data.sampler import GlobalBatchSampler


class Witness:
    """A reference cycle whose finaliser appends the pid of the process that frees it."""

    def __init__(self, path):
        self.path = path
        self.me = self

    def __del__(self):
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()}\n")


class CollectingSource:
    """A tiny image source whose every read runs a full garbage collection (in the worker)."""

    classes = ("a", "b")
    channels = 1

    def __init__(self, n: int = 8):
        self.labels = [i % 2 for i in range(n)]

    def __len__(self):
        return len(self.labels)

    def read(self, index, min_short_side=None):
        gc.collect()
        return torch.full((1, 8, 8), index, dtype=torch.uint8), None

    def name(self, index):
        return f"image{index}"


class CollectingSet(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        gc.collect()
        return index


def loaders():
    source = CollectingSource()
    return {
        "train": lambda: batch_loader(
            CollectingSet(), GlobalBatchSampler(8, 4, 1, 0, 0), list, workers=2
        ),
        "validation": lambda: center_loader(source, 8, 8, range(8), 4, workers=2),
        "evaluation": lambda: views_loader(source, [8], None, 4, workers=2),
    }


def drain(loader) -> int:
    return sum(1 for _ in loader)


@pytest.mark.parametrize("kind", ["train", "validation", "evaluation"])
@pytest.mark.parametrize("garbage_made", ["before the loader", "after the loader, before forking"])
def test_workers_do_not_free_the_parents_garbage(tmp_path, kind, garbage_made, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # as if CUDA tensors lived
    record = tmp_path / "freed-by"
    was_enabled = gc.isenabled()
    gc.disable()  # keep the witness uncollected in the parent until the workers have forked
    try:
        if garbage_made == "before the loader":
            Witness(record)
            loader = loaders()[kind]()
            assert record.read_text().split() == [str(os.getpid())], "not freed before forking"
        else:
            loader = loaders()[kind]()
            Witness(record)
        assert drain(loader) == 2
        del loader
        gc.collect()
    finally:
        if was_enabled:
            gc.enable()
    freed_by = record.read_text().split()
    assert freed_by == [str(os.getpid())], "a worker freed an object it inherited"


def test_collate_views_is_the_evaluation_loaders_collation():
    batch = next(iter(views_loader(CollectingSource(), [8, 10], None, 4)))
    assert batch == collate_views(batch) and len(batch) == 4
    views, label, index = batch[1]
    assert [v.shape[-1] for v in views] == [8, 10] and (label, index) == (1, 1)


@pytest.mark.parametrize("cuda", [False, True])
def test_the_parent_collects_before_forking_only_where_cuda_is_in_use(monkeypatch, cuda):
    """A full collection costs a large process a third of a second; only CUDA needs it."""
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: cuda)
    runs = []

    def count(phase, info):
        if phase == "start" and info["generation"] == 2:
            runs.append(1)

    gc.callbacks.append(count)
    try:
        worker_options(2)
    finally:
        gc.callbacks.remove(count)
    assert bool(runs) == cuda
