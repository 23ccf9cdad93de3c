"""Boxes for localisation: VOC XML files, their errors, and box geometry through every transform."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision import tv_tensors

from tests.helpers import voc_xml
from tests.helpers import write_box_folder as folder_with_boxes
from vggnet.data import TrainTransform, open_source
from vggnet.data.boxes import (
    BoxError,
    box_correct,
    box_source,
    crop_box,
    folder_boxes,
    from_crop_params,
    index_box_files,
    read_voc,
    to_crop_params,
    uncrop_box,
)
from vggnet.data.geometry import Scale, rescaled_size
from vggnet.data.loader import TrainSet
from vggnet.data.sources import FolderSource
from vggnet.errors import VGGError


def test_read_voc_converts_inclusive_one_based_corners(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(voc_xml([("cat", 1, 1, 10, 20), ("dog", 31, 11, 80, 60)]))
    found = read_voc(path)
    assert found.size == (80, 60)
    # xmin=1..xmax=10 covers pixels 0..9: x0 = 0, x1 = 10 (exclusive), width 10
    assert found.objects == (("cat", (0.0, 0.0, 10.0, 20.0)), ("dog", (30.0, 10.0, 80.0, 60.0)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<annotation><object>", "not a readable VOC XML file"),
        (voc_xml([("cat", 5, 5, 4, 9)]), "has no area: xmax must be at least xmin"),
        (voc_xml([("cat", 5, 5, 90, 9)]), "outside the 80x60 image"),
        (voc_xml([("cat", "a", 5, 9, 9)]), "<xmin> is 'a', not a number"),
        (voc_xml([("cat", 1, "nan", 9, 9)]), "<ymin> is 'nan', not a number"),
        (voc_xml([("cat", 1, 1, 9, 9)], size=("inf", 60)), "<width> is 'inf', not a number"),
        (
            "<annotation><object><name>cat</name></object></annotation>",
            "lacks its <name> or <bndbox>",
        ),
    ],
)
def test_bad_box_files_are_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(BoxError, match=message) as err:
        read_voc(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_box_files_are_found_recursively_by_stem_and_a_stem_twice_is_refused(tmp_path):
    (tmp_path / "n1" / "deep").mkdir(parents=True)
    (tmp_path / "n1" / "deep" / "img1.xml").write_text(voc_xml([("a", 1, 1, 5, 5)]))
    (tmp_path / "img2.xml").write_text(voc_xml([("a", 1, 1, 5, 5)]))
    assert sorted(index_box_files(tmp_path)) == ["img1", "img2"]
    (tmp_path / "n1" / "img2.xml").write_text(voc_xml([("a", 1, 1, 5, 5)]))
    with pytest.raises(BoxError, match=r"img2\.xml twice"):
        index_box_files(tmp_path)
    with pytest.raises(VGGError, match="is not a folder"):
        index_box_files(tmp_path / "nope")


def test_folder_boxes_match_by_stem_take_the_class_objects_and_skip_images_without(tmp_path):
    folder_with_boxes(tmp_path / "data", tmp_path / "boxes", skip={"train-dog-1"})
    source = FolderSource(tmp_path / "data", "train")
    boxed = folder_boxes(source, tmp_path / "boxes")
    assert len(boxed) == 5 and boxed.missing == 1
    names = [boxed.name(i) for i in range(len(boxed))]
    assert not any("train-dog-1" in n for n in names)
    first = names.index(str(tmp_path / "data/train/dog/train-dog-0.png"))
    assert boxed.boxes(first).tolist() == [[11.0, 5.0, 50.0, 40.0]]  # the dog, not "other"
    assert boxed.labels[first] == 1
    with pytest.raises(BoxError, match=r"train-dog-1\.png has no box.*--strict"):
        folder_boxes(source, tmp_path / "boxes", strict=True)


def test_a_box_file_without_size_is_checked_against_the_image(tmp_path):
    folder_with_boxes(tmp_path / "data", tmp_path / "boxes")
    (tmp_path / "boxes" / "train-cat-0.xml").write_text(voc_xml([("cat", 1, 1, 81, 9)], size=None))
    with pytest.raises(BoxError, match=r"train-cat-0\.xml.*outside the 80x60 image"):
        folder_boxes(FolderSource(tmp_path / "data", "train"), tmp_path / "boxes")


def test_box_source_needs_boxes_for_folders_and_has_them_built_in_for_the_canvas(
    tmp_path, fake_fashion
):
    folder_with_boxes(tmp_path / "data", tmp_path / "boxes")
    with pytest.raises(VGGError, match="give --boxes DIR"):
        box_source(FolderSource(tmp_path / "data", "train"), None)
    canvas = open_source(f"fashion-mnist-canvas:train=4,val=4,root={fake_fashion}")
    boxed = box_source(canvas, None)
    assert boxed.boxes(2).tolist() == [list(map(float, canvas.box(2)))]
    with pytest.raises(VGGError, match="carries its own boxes"):
        box_source(canvas, tmp_path / "boxes")


def torchvision_view(box, full, scale, left, top, flip, crop):
    """The reference: torchvision's own box transforms (resize, crop, mirror), unclamped."""
    width, height = full
    boxes = tv_tensors.BoundingBoxes(
        box[None], format="XYXY", canvas_size=(height, width), clamping_mode=None
    )
    new_w, new_h = rescaled_size(width, height, scale)
    boxes = TF.resize(boxes, [new_h, new_w])
    boxes = TF.crop(boxes, top, left, crop, crop)
    if flip:
        boxes = TF.horizontal_flip(boxes)
    return boxes.as_subclass(torch.Tensor)[0]


@pytest.mark.parametrize("seed", range(6))
def test_crop_box_moves_boxes_as_torchvision_does(seed):
    g = torch.Generator().manual_seed(seed)
    width, height = (int(v) for v in torch.randint(40, 300, (2,), generator=g))
    crop = 32
    scale = int(torch.randint(crop, 2 * crop, (1,), generator=g))
    new_w, new_h = rescaled_size(width, height, scale)
    left = int(torch.randint(0, new_w - crop + 1, (1,), generator=g))
    top = int(torch.randint(0, new_h - crop + 1, (1,), generator=g))
    x0, x1 = sorted(torch.rand(2, generator=g) * width)
    y0, y1 = sorted(torch.rand(2, generator=g) * height)
    box = torch.tensor([x0, y0, x1, y1], dtype=torch.float64)  # often partly outside the crop
    for flip in (False, True):
        ours = crop_box(box, (width, height), scale, left, top, flip, crop)
        theirs = torchvision_view(box, (width, height), scale, left, top, flip, crop)
        torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=1e-5, atol=1e-4)
    back = uncrop_box(
        crop_box(box, (width, height), scale, left, top, False, crop),
        (width, height),
        scale,
        left,
        top,
    )
    torch.testing.assert_close(back, box)


def test_crop_params_are_centre_and_size_in_crop_units():
    box = torch.tensor([[8.0, 16.0, 24.0, 48.0]])
    params = to_crop_params(box, 32)
    assert params.tolist() == [[0.5, 1.0, 0.5, 1.0]]  # centre (16, 32), size 16 x 32
    torch.testing.assert_close(from_crop_params(params, 32), box)


def test_training_views_carry_their_box_through_rescale_crop_and_flip(fake_fashion):
    source = box_source(open_source(f"fashion-mnist-canvas:train=16,root={fake_fashion}"), None)
    transform = TrainTransform(Scale(70, 100), 64, seed=3)
    items = TrainSet(source, transform, boxes=True).__getitems__([(1, i) for i in range(16)])
    assert any(transform.draws(1, [i])[0].flip for i in range(16))  # both kinds are covered
    for i, (image, label, _, index, target) in enumerate(items):
        draw = transform.draws(1, [i])[0]
        full = source.read(i)[1]
        params = draw.crop_params(full, 64, 1)
        expected = torchvision_view(
            source.boxes(i)[0], full, params.scale, params.left, params.top, params.flip, 64
        )
        torch.testing.assert_close(from_crop_params(target, 64), expected)
        assert image.shape == (1, 64, 64) and label == source.labels[i] and index == i


def test_a_box_is_right_only_above_iou_one_half():
    truth = torch.tensor([[0.0, 0.0, 2.0, 1.0]])  # area 2
    assert not box_correct(torch.tensor([0.0, 0.0, 1.0, 1.0]), truth)  # IoU 1/2 exactly
    assert box_correct(torch.tensor([0.0, 0.0, 1.01, 1.0]), truth)  # IoU 0.505
    two = torch.tensor([[10.0, 10.0, 20.0, 20.0], [0.0, 0.0, 2.0, 1.0]])
    assert box_correct(torch.tensor([0.0, 0.0, 1.5, 1.0]), two)  # any true box will do
