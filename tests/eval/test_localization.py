"""Appendix A's test protocols: greedy merging, dense boxes, the top-5 localisation criterion."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import tiny
from vggnet.data.box_views import BoxView
from vggnet.data.boxes import from_crop_params, uncrop_box
from vggnet.data.transforms import rescale
from vggnet.eval.localization import (
    WindowBoxes,
    class_box,
    crop_window_boxes,
    dense_window_boxes,
    greedy_merge,
    localization_hits,
)
from vggnet.eval.protocols import Protocol, prepare
from vggnet.model.localization import localization_net, select_boxes


def test_greedy_merge_averages_close_boxes_and_sums_their_scores():
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 0.0, 11.0, 10.0],  # IoU with the first: 90 / 110 = 0.82
            [50.0, 50.0, 60.0, 60.0],  # far from both
        ]
    )
    merged, scores = greedy_merge(boxes, torch.tensor([0.2, 0.3, 0.4]))
    # By hand: the first two merge into their mean (0.5, 0, 10.5, 10) with score 0.5,
    # which outranks the far box's 0.4.
    torch.testing.assert_close(
        merged, torch.tensor([[0.5, 0.0, 10.5, 10.0], [50.0, 50.0, 60.0, 60.0]])
    )
    torch.testing.assert_close(scores, torch.tensor([0.5, 0.4]))


def test_greedy_merge_merges_the_closest_pair_first_and_chains_through_means():
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 12.0],  # IoU with A: 100 / 120 = 0.83 (the closest pair)
            [0.0, 4.0, 10.0, 15.0],  # IoU with B: 80 / 150 = 0.53; with A: 60 / 150 = 0.4
        ]
    )
    merged, scores = greedy_merge(boxes, torch.ones(3))
    # A and B merge first into (0, 0, 10, 11); its IoU with C is 70 / 150 = 0.47 < 0.5: stop.
    torch.testing.assert_close(
        merged, torch.tensor([[0.0, 0.0, 10.0, 11.0], [0.0, 4.0, 10.0, 15.0]])
    )
    torch.testing.assert_close(scores, torch.tensor([2.0, 1.0]))
    # With a looser threshold the three merge: the mean of all three members.
    merged, scores = greedy_merge(boxes, torch.ones(3), iou=0.45)
    torch.testing.assert_close(merged, torch.tensor([[0.0, 4 / 3, 10.0, 37 / 3]]))
    assert scores.tolist() == [3.0]


def test_greedy_merge_keeps_a_single_box_and_distant_boxes_apart():
    one = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert greedy_merge(one, torch.tensor([0.7]))[0].tolist() == one.tolist()
    apart = torch.tensor([[0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]])
    merged, scores = greedy_merge(apart, torch.tensor([0.1, 0.9]))
    assert merged.tolist() == [[5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 1.0, 1.0]]  # best first
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.1]))


@pytest.mark.parametrize(("regression", "outputs"), [("per-class", 40), ("single-class", 4)])
def test_localisation_nets_have_4k_or_4_outputs_and_keep_the_classifier_below_fc8(
    regression, outputs
):
    classifier = tiny("A", crop_size=32)
    classifier.classes = [f"c{i}" for i in range(10)]
    net = localization_net(classifier, regression)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, outputs)
    assert net.score_map(torch.randn(1, 3, 96, 64)).shape == (1, outputs, 3, 2)
    assert net.card.box_regression == regression and net.classes == classifier.classes
    for name, tensor in classifier.state_dict().items():
        if not name.startswith("fc8"):
            assert torch.equal(net.state_dict()[name], tensor), name


def test_select_boxes_takes_each_images_class_box_from_flat_and_dense_outputs():
    outputs = torch.arange(2 * 12, dtype=torch.float32).reshape(2, 12)  # 3 classes x 4
    picked = select_boxes(outputs, torch.tensor([2, 0]), "per-class")
    assert picked.tolist() == [[8.0, 9.0, 10.0, 11.0], [12.0, 13.0, 14.0, 15.0]]
    dense = outputs[:, :, None, None].expand(2, 12, 2, 3)
    assert torch.equal(select_boxes(dense, torch.tensor([2, 0]), "per-class")[:, :, 1, 2], picked)
    assert select_boxes(outputs[:, :4], torch.tensor([2, 0]), "single-class").shape == (2, 4)


def test_dense_localisation_gives_one_box_per_map_position_each_the_crop_nets_own():
    classifier = tiny("A", crop_size=32)
    classifier.classes = [f"c{i}" for i in range(10)]
    classifier.train_scale = (40, 40)
    net = localization_net(classifier, "per-class", init="kaiming").eval()
    loc = prepare(net, Protocol("center", [96]), torch.device("cpu"), "loc")
    cls = prepare(classifier, Protocol("center", [96]), torch.device("cpu"), "cls")
    image = torch.randint(0, 256, (3, 150, 100), dtype=torch.uint8)  # rescaled to 96 x 144
    view = BoxView([rescale(image, 96)], 3, 0, (100, 150), torch.zeros(1, 4))
    found = dense_window_boxes([(loc, [96])], [cls], view, [96])
    h, w = 144 // 32 - 1 + 1, 96 // 32 - 1 + 1  # fc6 sees 1x1 of pool5 at crop 32
    assert found.boxes.shape == (h * w, 10, 4) and found.confidence.shape == (h * w, 10)
    with torch.no_grad():  # the nets' own score maps, read position by position
        box_map = loc.model.score_map(loc.normalizer(view.views[0][None]))[0]
        class_map = cls.model.score_map(cls.normalizer(view.views[0][None]))[0]
    for i in range(h):
        for j in range(w):  # window (i, j) starts 32 pixels per map step into the view
            params = box_map[:, i, j].reshape(10, 4)
            in_view = from_crop_params(params, 32) + torch.tensor([32.0 * j, 32.0 * i] * 2)
            expected = uncrop_box(in_view, (100, 150), 96, 0, 0)  # x 100/96, y 150/144
            torch.testing.assert_close(found.boxes[i * w + j], expected)
            torch.testing.assert_close(found.confidence[i * w + j], class_map[:, i, j].softmax(0))


def test_top5_criterion_needs_the_true_class_in_the_top_5_and_its_box_right():
    truth = torch.tensor([[10.0, 10.0, 30.0, 30.0]])
    good, bad = [10.0, 10.0, 30.0, 29.0], [40.0, 40.0, 50.0, 50.0]
    boxes = torch.tensor([[bad] * 7, [bad] * 7])
    boxes[:, 6] = torch.tensor(good)  # class 6's box is right, every other class's wrong
    view = BoxView([], 6, 0, (64, 64), truth)
    confidence = torch.tensor([[0.3, 0.2, 0.15, 0.1, 0.09, 0.08, 0.08]] * 2)
    # class 6 ranks 7th (a tie with class 5 goes to the lower index): outside the top 5
    assert not localization_hits(WindowBoxes(boxes, confidence), view)[0]
    confidence[:, 6] = 0.12  # now 4th
    assert localization_hits(WindowBoxes(boxes, confidence), view) == (True, False)  # top-1: 0
    confidence[:, 6] = 0.5
    assert localization_hits(WindowBoxes(boxes, confidence), view) == (True, True)
    assert not localization_hits(
        WindowBoxes(boxes, confidence), BoxView([], 0, 0, (64, 64), truth)
    )[0]
    single = WindowBoxes(boxes[:, 6:7], confidence)  # single-class: one box for every class
    assert torch.equal(class_box(single, 2), torch.tensor(good))


def test_multi_crop_localisation_runs_each_grid_crop_through_the_plain_net():
    classifier = tiny("A", crop_size=32)
    classifier.classes = [f"c{i}" for i in range(10)]
    net = localization_net(classifier, "single-class", init="kaiming").eval()
    loc = prepare(net, Protocol("center", [48]), torch.device("cpu"), "loc")
    cls = prepare(classifier, Protocol("center", [48]), torch.device("cpu"), "cls")
    image = torch.randint(0, 256, (3, 60, 80), dtype=torch.uint8)  # rescaled to 64 x 48
    view = BoxView([rescale(image, 48)], 3, 0, (80, 60), torch.zeros(1, 4))
    found = crop_window_boxes([(loc, [48])], [cls], view, [48], grid=3)
    # grid offsets by hand: x in {0, 16, 32}, y in {0, 8, 16}: nine distinct crops
    offsets = [(x, y) for y in (0, 8, 16) for x in (0, 16, 32)]
    assert found.boxes.shape == (9, 1, 4) and found.confidence.shape == (9, 10)
    for k, (x, y) in enumerate(offsets):
        crop = view.views[0][None, :, y : y + 32, x : x + 32]
        with torch.no_grad():
            params = loc.model(loc.normalizer(crop))[0]
            posterior = cls.model(cls.normalizer(crop)).softmax(1)[0]
        in_view = from_crop_params(params, 32) + torch.tensor([x, y, x, y], dtype=torch.float32)
        expected = uncrop_box(in_view, (80, 60), 48, 0, 0)  # x 80/64, y 60/48
        torch.testing.assert_close(found.boxes[k, 0], expected, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(found.confidence[k], posterior)


def test_several_localisation_nets_pool_their_boxes_before_merging():
    classifier = tiny("A", crop_size=32)
    classifier.classes = [f"c{i}" for i in range(10)]
    nets = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        net = localization_net(classifier, "per-class", init="kaiming").eval()
        nets.append((prepare(net, Protocol("center", [64]), torch.device("cpu"), str(seed)), [64]))
    cls = prepare(classifier, Protocol("center", [64]), torch.device("cpu"), "cls")
    view = BoxView(
        [torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)], 0, 0, (96, 64), torch.zeros(1, 4)
    )
    pooled = dense_window_boxes(nets, [cls], view, [64])
    alone = [dense_window_boxes([n], [cls], view, [64]) for n in nets]
    assert torch.equal(pooled.boxes, torch.cat([a.boxes for a in alone]))  # 2 x 3 windows each
    assert pooled.boxes.shape == (12, 10, 4)
    torch.testing.assert_close(
        class_box(pooled, 4), greedy_merge(pooled.boxes[:, 4], pooled.confidence[:, 4])[0][0]
    )
