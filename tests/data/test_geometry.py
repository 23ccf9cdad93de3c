"""Scale rules, rescale sizes, crop boxes and grids, against torchvision and hand computations."""

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vggnet import VGGError
from vggnet.data.geometry import (
    Scale,
    default_test_scales,
    grid_offsets,
    parse_scale,
    rescaled_size,
    single_test_scale,
)
from vggnet.data.transforms import center_crop, distinct_grid_crops, draws, grid_crops, random_crop


def test_parse_scale():
    assert parse_scale("256", 224) == Scale(256, 256)
    assert parse_scale("256:512", 224) == Scale(256, 512)
    assert parse_scale("256:512", 224).jittered and str(parse_scale("384", 224)) == "384"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("200", "S = 200 is smaller than the crop 224"),
        ("512:256", "Smin 512 is larger than Smax 256"),
        ("big", "is not S or Smin:Smax"),
        ("1:2:3", "is not S or Smin:Smax"),
    ],
)
def test_parse_scale_errors_name_the_flag(text, message):
    with pytest.raises(VGGError, match=f"--scale {text}.*{message}"):
        parse_scale(text, 224)


@settings(max_examples=60, deadline=None)
@given(st.integers(8, 900), st.integers(8, 900), st.integers(8, 600))
def test_rescaled_size_matches_torchvision_resize(width, height, short):
    img = Image.new("L", (width, height))
    expected = TF.resize(img, short).size
    assert rescaled_size(width, height, short) == expected
    assert min(rescaled_size(width, height, short)) == short


def test_test_scale_rules_of_tables_3_and_4():
    assert default_test_scales(Scale(256, 256)) == [224, 256, 288]
    assert default_test_scales(Scale(384, 384)) == [352, 384, 416]
    assert default_test_scales(Scale(256, 512)) == [256, 384, 512]
    assert default_test_scales(Scale(37, 37), crop=32) == [32, 37, 42]
    assert default_test_scales(Scale(224, 224)) == [224, 256]  # 192 would be below the crop
    assert default_test_scales(Scale(224, 224)) == [224, 256]  # 192 would be below the crop
    assert single_test_scale(Scale(256, 512)) == 384 and single_test_scale(Scale(256, 256)) == 256


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 700), st.integers(1, 300), st.integers(1, 7))
def test_grid_offsets_stay_inside_and_span_the_side(extra, crop, grid):
    length = crop + extra - 1
    offsets = grid_offsets(length, crop, grid)
    assert len(offsets) == grid and offsets == sorted(offsets)
    assert all(0 <= o <= length - crop for o in offsets)
    if grid > 1:
        assert offsets[0] == 0 and offsets[-1] == length - crop


def test_grid_crops_by_hand():
    image = torch.arange(256 * 288).reshape(1, 256, 288)
    crops = grid_crops(image, 224, 5)
    assert crops.shape == (25, 1, 224, 224)
    assert grid_offsets(256, 224, 5) == [0, 8, 16, 24, 32]
    assert torch.equal(crops[6], image[:, 8:232, 16:240])  # row 1, column 1
    assert torch.equal(grid_crops(image, 224, 1)[0], center_crop(image, 224))
    with pytest.raises(VGGError, match="does not fit"):
        grid_offsets(200, 224, 5)


@pytest.mark.parametrize(("height", "width", "windows"), [(32, 32, 1), (33, 40, 6), (40, 48, 9)])
def test_distinct_grid_crops_index_back_to_the_grid(height, width, windows):
    image = torch.arange(3 * height * width).reshape(3, height, width)
    crops, cells = distinct_grid_crops(image, 32, 3)
    assert len(crops) == windows  # 33: offsets 0, 0, 1 (two distinct) x 40: 0, 4, 8 (three)
    grid = torch.stack(
        [
            image[:, t : t + 32, x : x + 32]
            for t in (round(i * (height - 32) / 2) for i in range(3))
            for x in (round(i * (width - 32) / 2) for i in range(3))
        ]
    )  # the nine windows, row by row, with Python's rounding (0.5 -> 0)
    assert torch.equal(crops[cells], grid) and torch.equal(grid_crops(image, 32, 3), grid)


@pytest.mark.parametrize("size", [(255, 301), (224, 224), (300, 250)])
def test_center_crop_matches_torchvision(size):
    image = torch.randint(0, 255, (3, *size), dtype=torch.uint8)
    assert torch.equal(center_crop(image, 224), TF.center_crop(image, [224, 224]))


@pytest.mark.parametrize(
    ("size", "scale"), [((500, 375), 256), ((375, 500), 300), ((640, 480), 480)]
)
def test_random_crop_equals_torchvision_resize_then_crop(size, scale):
    """Our uint8 tensor pipeline gives the pixels of torchvision's PIL Resize + crop (within 1)."""
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    for trial, draw in enumerate(draws(0, 0, range(4), scale, scale)):
        ours, p = random_crop(TF.pil_to_tensor(img), img.size, draw, 224)
        reference = TF.pil_to_tensor(TF.resize(img, scale))
        reference = reference[:, p.top : p.top + 224, p.left : p.left + 224]
        if p.flip:
            reference = reference.flip(-1)
        diff = (ours.int() - reference.int()).abs()
        assert diff.max() <= 2 and diff.float().mean() < 0.1, (trial, diff.max())
        assert ours.shape == (3, 224, 224) and ours.dtype == torch.uint8
