"""Property-based tests of the geometry, and bounded fuzz runs over the image and IDX readers."""

import gzip
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.helpers import tiny
from vggnet import VGGError
from vggnet.data.geometry import rescaled_size
from vggnet.data.idx import read_idx, write_idx
from vggnet.data.images import BadImage, decode_image
from vggnet.data.transforms import grid_crops

FUZZ = settings(max_examples=150, deadline=None, derandomize=True)  # the same cases in every run


@pytest.fixture(scope="module")
def net():
    return tiny("A", crop_size=32)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(32, 160), st.integers(32, 160))
def test_dense_map_size_is_the_pooled_size_less_the_fc6_window(net, height, width):
    """Five 2x2 pools floor-halve each side; fc6 as a conv spans 7x7 of 224 (1x1 of 32) positions."""
    with torch.no_grad():
        scores = net.score_map(torch.zeros(1, 3, height, width))
    pooled = (height // 32, width // 32)
    assert scores.shape == (1, 10, pooled[0] - 1 + 1, pooled[1] - 1 + 1)
    with torch.no_grad():
        averaged = net(torch.zeros(2, 3, height, width))
    assert averaged.shape == (2, 10)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 3000), st.integers(1, 1000))
def test_rescale_keeps_the_aspect_ratio_and_sets_the_short_side(width, height, short):
    new_w, new_h = rescaled_size(width, height, short)
    assert min(new_w, new_h) == short
    if width != height:  # the long side follows the ratio to within rounding
        long_old, short_old = max(width, height), min(width, height)
        assert abs(max(new_w, new_h) - long_old * short / short_old) <= 1


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.integers(1, 5))
def test_grid_crops_are_exact_windows_of_the_image(extra_h, extra_w, grid):
    image = torch.arange((16 + extra_h) * (16 + extra_w)).reshape(1, 16 + extra_h, 16 + extra_w)
    crops = grid_crops(image, 16, grid)
    assert crops.shape == (grid * grid, 1, 16, 16)
    values = set(image.flatten().tolist())
    for crop in crops:  # every crop is a contiguous window: rows and columns step by one
        assert set(crop.flatten().tolist()) <= values
        assert torch.all(crop[:, :, 1:] - crop[:, :, :-1] == 1)
        assert torch.all(crop[:, 1:, :] - crop[:, :-1, :] == image.shape[2])


def seed_images() -> dict[str, bytes]:
    """Small valid files of each format a dataset may hold."""
    rng = np.random.default_rng(0)
    pixels = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    files = {}
    for fmt in ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF"):
        buffer = io.BytesIO()
        pixels.save(buffer, fmt)
        files[fmt] = buffer.getvalue()
    return files


SEEDS = seed_images()


def mutate(data: bytes, cuts: list[tuple[int, int]], truncate: float) -> bytes:
    """Overwrite bytes at the given (position fraction, value) pairs, then truncate."""
    out = bytearray(data)
    for where, value in cuts:
        out[where % len(out)] = value
    return bytes(out[: max(1, int(len(out) * truncate))])


mutations = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8)
truncations = st.sampled_from([1.0, 1.0, 0.9, 0.5, 0.1])


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), mutations, truncations)
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on damaged TIFF tags
def test_image_reader_returns_an_image_or_one_bad_image_error(fmt, cuts, truncate):
    data = mutate(SEEDS[fmt], cuts, truncate)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, f"x.{fmt.lower()}")
        path.write_bytes(data)
        try:
            image, (width, height) = decode_image(path)
        except BadImage as err:
            assert str(path) in str(err) and "\n" not in str(err)
            event("refused")
            return
    event("decoded")
    assert image.dtype == torch.uint8 and image.shape[0] == 3
    assert image.shape[1:] in ((height, width), (width, height))


@FUZZ
@given(mutations, truncations, st.booleans())
def test_idx_reader_returns_the_array_or_one_error(cuts, truncate, compress):
    with tempfile.TemporaryDirectory() as tmp:
        clean = Path(tmp, "clean")
        write_idx(clean, np.arange(3 * 5 * 4, dtype=np.uint8).reshape(3, 5, 4))
        raw = clean.read_bytes()
        data = mutate(raw, cuts, truncate)
        path = Path(tmp, "fuzzed")
        path.write_bytes(gzip.compress(data) if compress else data)
        try:
            array = read_idx(path, 3)
        except VGGError as err:
            assert str(path) in str(err) and "\n" not in str(err)
            event("refused")
            return
    event("read")
    assert array.dtype == np.uint8 and array.size == len(data) - 16


@FUZZ
@given(mutations, truncations)
def test_voc_box_reader_returns_boxes_or_one_error(cuts, truncate):
    from tests.helpers import voc_xml
    from vggnet.data.boxes import read_voc

    raw = voc_xml([("cat", 11, 6, 50, 40), ("dog", 41, 21, 80, 60)]).encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "x.xml")
        path.write_bytes(mutate(raw, cuts, truncate))
        try:
            found = read_voc(path)
        except VGGError as err:
            assert str(path) in str(err) and "\n" not in str(err)
            event("refused")
            return
    event("read")
    for _, (x0, y0, x1, y1) in found.objects:  # whatever was read is a usable box
        assert x1 > x0 and y1 > y0
        if found.size is not None:
            assert x0 >= 0 and y0 >= 0 and x1 <= found.size[0] and y1 <= found.size[1]
