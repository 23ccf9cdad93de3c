"""Exact global batches across processes; deterministic batches across worker counts; bad files."""

import numpy as np
import pytest
import torch

from tests.helpers import write_image_folder
from vggnet import VGGError
from vggnet.data import (
    GlobalBatchSampler,
    RescaledSet,
    SkipCounter,
    Skipped,
    TrainSet,
    TrainTransform,
    open_source,
    parse_scale,
    shard_indices,
    train_loader,
)


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_union_of_rank_batches_is_the_single_process_batch(world_size):
    single = list(GlobalBatchSampler(103, 8, seed=7))
    ranks = [list(GlobalBatchSampler(103, 8, world_size, r, seed=7)) for r in range(world_size)]
    assert len(single) == 103 // 8 and all(len(r) == len(single) for r in ranks)
    for step, batch in enumerate(single):
        union = [pair for r in range(world_size) for pair in ranks[r][step]]
        assert union == batch  # same samples, same order
        assert all(len(ranks[r][step]) == 8 // world_size for r in range(world_size))


def test_each_epoch_is_a_new_permutation_without_repeats():
    sampler = GlobalBatchSampler(64, 8, seed=1)
    epochs = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        indices = [i for batch in sampler for e, i in batch if e == epoch]
        assert sorted(indices) == list(range(64))
        epochs.append(indices)
    assert epochs[0] != epochs[1]


def test_resuming_mid_epoch_continues_the_same_batches():
    sampler = GlobalBatchSampler(50, 5, seed=3)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.set_epoch(4, start_step=6)
    assert list(sampler) == full[6:] and len(sampler) == len(full) - 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((100, 6, 4, 0), "--batch-size 6 is not divisible by the 4 processes"),
        ((100, 0, 1, 0), "--batch-size must be >= 1, got 0"),
        ((3, 8, 1, 0), "fewer than one batch of 8"),
    ],
)
def test_bad_batch_sizes(args, message):
    with pytest.raises(VGGError, match=message):
        GlobalBatchSampler(*args)


@pytest.mark.parametrize("n", [0, 1, 7, 101])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_validation_shards_cover_every_sample_once(n, world_size):
    shards = [list(shard_indices(n, world_size, r)) for r in range(world_size)]
    assert sorted(i for s in shards for i in s) == list(range(n))


def batches(source, workers, world_size=1, rank=0, epochs=(0, 1)):
    sampler = GlobalBatchSampler(len(source), 8, world_size, rank, seed=11)
    loader = train_loader(
        source, TrainTransform(parse_scale("40:64", 32), 32, seed=5), sampler, workers
    )
    out = []
    for epoch in epochs:
        sampler.set_epoch(epoch)
        out.extend(loader)
    return out


def test_batches_do_not_depend_on_worker_count():
    source = open_source("synthetic:classes=3,train=24,size=48", "train")
    serial, parallel = batches(source, 0), batches(source, 2)
    assert len(serial) == len(parallel) == 6
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert torch.equal(a.alpha, b.alpha) and torch.equal(a.indices, b.indices)


def test_two_ranks_see_exactly_the_single_process_batch():
    source = open_source("synthetic:classes=3,train=24,size=48", "train")
    single = batches(source, 0)
    rank0, rank1 = batches(source, 0, 2, 0), batches(source, 1, 2, 1)
    for whole, a, b in zip(single, rank0, rank1, strict=True):
        assert torch.equal(torch.cat([a.images, b.images]), whole.images)
        assert torch.equal(torch.cat([a.alpha, b.alpha]), whole.alpha)


def test_bad_files_are_skipped_named_and_counted(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b"), train=4, size=(48, 40))
    (tmp_path / "train" / "b" / "2.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / "train" / "a" / "0.jpg").write_bytes(b"")
    source = open_source(str(tmp_path), "train")
    sampler = GlobalBatchSampler(len(source), 8, shuffle=False)
    [batch] = list(train_loader(source, TrainTransform(parse_scale("40", 32), 32), sampler))
    assert batch.images.shape == (6, 3, 32, 32)
    assert sorted(s.name.split("train/")[1] for s in batch.skipped) == ["a/0.jpg", "b/2.jpg"]
    assert all(s.reason for s in batch.skipped)
    assert np.setdiff1d(np.arange(8), batch.indices.numpy()).tolist() == [0, 6]
    # The loader's batched fetch gives what fetching item by item gives, bad files included.
    dataset = TrainSet(source, TrainTransform(parse_scale("40:44", 32), 32))
    keys = [(1, i) for i in range(8)] + [(2, 3)]
    for whole, single in zip(
        dataset.__getitems__(keys), map(dataset.__getitem__, keys), strict=True
    ):
        if isinstance(single, Skipped):
            assert whole == single
        else:
            assert torch.equal(whole[0], single[0]) and whole[1:] == single[1:]
    # So do the test views (every image rescaled to each Q), with two image sizes.
    write_image_folder(tmp_path, classes=("c",), train=3, size=(40, 64))
    tests = RescaledSet(open_source(str(tmp_path), "train"), [32, 45])
    positions = [0, 6, 1, 9, 10, 8]
    for whole, single in zip(
        tests.__getitems__(positions), map(tests.__getitem__, positions), strict=True
    ):
        if isinstance(single, Skipped):
            assert whole == single
        else:
            assert all(map(torch.equal, whole[0], single[0])) and whole[1:] == single[1:]


def test_skip_counter_warns_once_per_file_and_strict_stops():
    lines = []
    counter = SkipCounter(warn=lines.append)
    bad = [Skipped("x.jpg", "x.jpg: empty file"), Skipped("y.jpg", "y.jpg: cannot decode (oops)")]
    counter(bad)
    counter(bad[:1])
    assert counter.count == 3
    assert lines == ["skipped x.jpg: empty file", "skipped y.jpg: cannot decode (oops)"]
    with pytest.raises(VGGError, match=r"x.jpg: empty file \(stopped by --strict"):
        SkipCounter(strict=True)(bad)


def test_images_smaller_than_the_crop_are_upscaled(tmp_path):
    write_image_folder(tmp_path, classes=("a",), train=2, size=(20, 30))
    source = open_source(str(tmp_path), "train")
    image, params = TrainTransform(parse_scale("256", 224), 224)(source, 0, 0)
    assert image.shape == (3, 224, 224) and params.top <= int(30 * 256 / 20) - 224
