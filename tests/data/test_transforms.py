"""Training transforms, colour shift, mean subtraction, statistics."""

import json

import numpy as np
import pytest
import torch

from tests.helpers import write_image_folder
from vggnet.data import BatchNormalizer, TrainTransform, compute_stats, open_source, parse_scale
from vggnet.data.geometry import rescaled_size
from vggnet.data.transforms import LIGHTING_STD, counter_uniforms, draws
from vggnet.preprocessing import Preprocessing


@pytest.fixture(scope="module")
def source():
    return open_source("synthetic:classes=4,train=16,val=4,size=300", "train")


def test_augmentation_is_a_pure_function_of_seed_epoch_index(source):
    transform = TrainTransform(parse_scale("256:512", 224), 224, seed=3)
    a, pa = transform(source, 5, epoch=2)
    b, pb = transform(source, 5, epoch=2)
    assert torch.equal(a, b) and pa == pb
    _, pc = transform(source, 5, epoch=3)
    assert pc != pa
    d, _ = TrainTransform(parse_scale("256:512", 224), 224, seed=4)(source, 5, epoch=2)
    assert not torch.equal(a, d)


def test_fixed_and_jittered_scale_crop_inside_the_rescaled_image(source):
    for text in ("256", "256:512"):
        scale = parse_scale(text, 224)
        transform = TrainTransform(scale, 224)
        seen = set()
        for epoch in range(30):
            image, p = transform(source, epoch % len(source), epoch)
            assert image.shape == (3, 224, 224) and image.dtype == torch.uint8
            assert scale.smin <= p.scale <= scale.smax
            width, height = rescaled_size(*source.read(epoch % len(source))[1], p.scale)
            assert min(width, height) == p.scale
            assert 0 <= p.left <= width - 224 and 0 <= p.top <= height - 224
            seen.add(p.scale)
        assert len(seen) == (1 if text == "256" else len(seen)) and (
            text == "256" or len(seen) > 10
        )


def test_flip_happens_about_half_the_time(source):
    transform = TrainTransform(parse_scale("256", 224), 224)
    flips = [transform(source, i % 16, i // 16)[1].flip for i in range(200)]
    assert 70 < sum(flips) < 130
    assert not any(
        TrainTransform(parse_scale("256", 224), 224, flip=False)(source, i, 0)[1].flip
        for i in range(16)
    )


def test_gray_data_keep_one_channel(tmp_path):
    from tests.data.test_sources import write_fashion

    write_fashion(tmp_path)
    gray = open_source(f"fashion-mnist:{tmp_path}", "train")
    image, params = TrainTransform(parse_scale("37:42", 32), 32)(gray, 1, 0)
    assert image.shape == (1, 32, 32) and len(params.alpha) == 1


def test_colour_shift_and_mean_subtraction_by_hand():
    """pixel' = (pixel/255 + sum_k v_k * alpha_k * sigma_k - mean) / std, for every pixel."""
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (2, 3, 4, 5), dtype=np.uint8))
    pc_std = torch.tensor([0.2, 0.05, 0.01])
    eigvecs = torch.linalg.qr(torch.randn(3, 3)).Q
    alpha = torch.randn(2, 3) * 0.1
    prep = Preprocessing.paper((120.0, 110.0, 100.0))
    out = BatchNormalizer(prep, pc_std, eigvecs)(images, alpha)
    expected = np.empty((2, 3, 4, 5))
    for n in range(2):
        shift = [
            sum(eigvecs[c, k].item() * alpha[n, k].item() * pc_std[k].item() for k in range(3))
            for c in range(3)
        ]
        for c in range(3):
            for y in range(4):
                for x in range(5):
                    value = images[n, c, y, x].item() / 255 + shift[c]
                    expected[n, c, y, x] = value * 255 - (120.0, 110.0, 100.0)[c]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-3)
    plain = BatchNormalizer(prep)(images)  # no shift at test time
    np.testing.assert_allclose(
        plain.numpy(), images.numpy() - np.array([120.0, 110.0, 100.0])[:, None, None], atol=1e-3
    )


@pytest.mark.parametrize(
    "prep",
    [
        Preprocessing.paper(),
        Preprocessing.torchvision(),
        Preprocessing((0.406, 0.458, 0.485), (1 / 255, 1 / 255, 1 / 255), "BGR"),
    ],
)
def test_batch_normalizer_without_shift_equals_preprocessing(prep):
    images = torch.randint(0, 256, (2, 3, 5, 4), dtype=torch.uint8)
    expected = prep.normalize(images.float() / 255)
    torch.testing.assert_close(BatchNormalizer(prep)(images), expected, rtol=1e-5, atol=1e-4)


def all_pixels(source):
    arrays = [
        source.read(i)[0].reshape(3, -1).T.numpy().astype(np.float64) for i in range(len(source))
    ]
    return np.concatenate(arrays) / 255


def test_stats_against_numpy(source):
    pixels = all_pixels(source)
    stats = compute_stats(source)
    np.testing.assert_allclose(stats.mean, pixels.mean(0), rtol=1e-10)
    np.testing.assert_allclose(stats.cov, np.cov(pixels.T, bias=True), rtol=1e-8, atol=1e-12)
    vecs, std = np.array(stats.eigvecs), np.array(stats.pc_std)
    np.testing.assert_allclose(vecs @ np.diag(std**2) @ vecs.T, stats.cov, atol=1e-10)
    assert list(std) == sorted(std, reverse=True) and not stats.sampled
    sampled = compute_stats(source, max_images=6)
    assert sampled.sampled and sampled.images == 6
    assert stats.preprocessing().mean == pytest.approx(tuple(m for m in stats.mean))


def test_counter_uniforms_are_uniform_independent_and_keyed():
    u = counter_uniforms(0, 0, np.arange(20000), 10)
    assert u.shape == (20000, 10) and u.min() > 0 and u.max() < 1
    # Each slot ~ U(0, 1) (mean 1/2, variance 1/12) and slots are uncorrelated.
    np.testing.assert_allclose(u.mean(0), 0.5, atol=0.01)
    np.testing.assert_allclose(u.var(0), 1 / 12, atol=0.003)
    corr = np.corrcoef(u.T) - np.eye(10)
    assert np.abs(corr).max() < 0.03
    # A pure function of (seed, epoch, index): any subset or order gives the same rows.
    np.testing.assert_array_equal(counter_uniforms(0, 0, [7, 3], 10), u[[7, 3]])
    for other in (counter_uniforms(1, 0, [7], 10), counter_uniforms(0, 1, [7], 10)):
        assert not np.isin(other, u[7]).any()


def test_draws_follow_their_distributions():
    drawn = draws(5, 0, range(20000), 37, 73)
    scales = np.array([d.scale for d in drawn])
    assert scales.min() == 37 and scales.max() == 73
    counts = np.bincount(scales - 37)
    assert counts.min() > 20000 / 37 * 0.8  # every S in [37, 73] about equally often
    assert 0.48 < np.mean([d.flip for d in drawn]) < 0.52
    alpha = np.array([d.alpha for d in drawn])
    np.testing.assert_allclose(alpha.std(0), LIGHTING_STD, rtol=0.03)
    np.testing.assert_allclose(alpha.mean(0), 0, atol=0.003)
    lefts = [d.crop_params((28, 28), 32, 1).left for d in drawn if d.scale == 40]
    assert sorted(set(lefts)) == list(range(9))  # every position of a 40-wide image
    assert not any(d.flip for d in draws(5, 0, range(100), 37, 37, flip=False))


@pytest.mark.parametrize("kind", ["fashion", "folder"])
def test_batched_views_equal_one_by_one(kind, tmp_path):
    """``TrainTransform.batch`` (one resize per shared size) gives the per-image pixels."""
    if kind == "fashion":
        from tests.data.test_sources import write_fashion

        write_fashion(tmp_path)
        source = open_source(f"fashion-mnist:{tmp_path}", "train")
    else:  # two image sizes, so two groups
        write_image_folder(tmp_path, classes=("a",), size=(50, 40))
        write_image_folder(tmp_path, classes=("b",), size=(40, 64))
        source = open_source(str(tmp_path), "train")
    transform = TrainTransform(parse_scale("37:48", 32), 32, seed=1)
    indices = list(range(len(source))) * 2
    for view, index in zip(transform.batch(source, 4, indices), indices, strict=True):
        image, params = transform(source, index, 4)
        assert torch.equal(view[0], image) and view[1] == params


def test_stats_cache_is_reused_only_for_its_data_and_size(tmp_path):
    from vggnet.data.stats import cached_stats, compute_stats, save_stats

    source = open_source("synthetic:classes=2,train=6,size=24", "train")
    cache = tmp_path / "stats.json"
    assert cached_stats(cache, "key", len(source)) is None  # nothing cached yet
    save_stats(compute_stats(source), cache, "key", len(source))
    data = json.loads(cache.read_text())
    data["stats"]["mean"] = [0.5, 0.5, 0.5]
    cache.write_text(json.dumps(data))
    cached = cached_stats(cache, "key", len(source))
    assert cached is not None and cached.mean == [0.5, 0.5, 0.5]  # reused as cached
    assert cached_stats(cache, "other data", len(source)) is None  # stale: another data set
    assert cached_stats(cache, "key", len(source) + 1) is None  # stale: another size
    cache.write_text("{torn")
    assert cached_stats(cache, "key", len(source)) is None  # damaged: recomputed by the caller
