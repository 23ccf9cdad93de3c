"""Random erasing: the boxes' law against torchvision's RandomErasing, the erase against its erase, the loop."""

import math

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.v2.functional as TF

import vggnet.train.fit
from tests.helpers import train_args
from vggnet import VGGError
from vggnet.data.erasing import AREA, RATIO, erase, erasing_boxes
from vggnet.data.sampler import GlobalBatchSampler
from vggnet.distributed import Dist
from vggnet.train import TrainConfig, check_config

N = 20_000


def test_the_boxes_follow_torchvisions_random_erasing():
    """Same p, area and ratio ranges, ten tries: the same box sizes and places, in law."""
    torch.manual_seed(0)
    image = torch.zeros(1, 32, 32)
    theirs = np.array([T.RandomErasing.get_params(image, AREA, RATIO, [0])[:4] for _ in range(N)])
    failed = theirs[:, 2] == 32  # torchvision returns the whole image when no try fits
    theirs = theirs[~failed]
    ours = erasing_boxes(0, 0, np.arange(N), 32, 32, p=1.0)
    erased = ours[:, 2] > 0
    assert erased.mean() == pytest.approx(1 - failed.mean(), abs=0.005)
    ours = ours[erased]
    for column, name in zip(range(4), ("top", "left", "height", "width"), strict=True):
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):
            a, b = np.quantile(ours[:, column], q), np.quantile(theirs[:, column], q)
            assert abs(a - b) <= 1, f"{name} quantile {q}: ours {a}, torchvision {b}"
    areas = ours[:, 2] * ours[:, 3] / 32**2
    assert areas.min() >= AREA[0] * 0.5 and areas.max() <= AREA[1] * 1.1
    assert (ours[:, 0] + ours[:, 2] <= 32).all() and (ours[:, 1] + ours[:, 3] <= 32).all()


def test_erasing_probability_and_keying():
    half = erasing_boxes(0, 0, np.arange(N), 32, 32, p=0.5)
    assert (half[:, 2] > 0).mean() == pytest.approx(0.5, abs=0.015)
    assert not erasing_boxes(0, 0, np.arange(100), 32, 32, p=0.0).any()
    # A pure function of (seed, epoch, index): the batch an image comes in does not matter.
    again = erasing_boxes(0, 0, np.array([7, 3, 11]), 32, 32, p=0.5)
    np.testing.assert_array_equal(again, half[[7, 3, 11]])
    for other in (
        erasing_boxes(1, 0, np.arange(N), 32, 32, 0.5),
        erasing_boxes(0, 1, np.arange(N), 32, 32, 0.5),
    ):
        assert (other != half).any(axis=1).mean() > 0.4


def test_erase_is_torchvisions_erase_box_by_box():
    x = torch.randn(6, 3, 16, 20)
    boxes = torch.tensor(
        [[0, 0, 3, 4], [5, 7, 11, 13], [0, 0, 0, 0], [15, 19, 1, 1], [2, 0, 16, 20], [4, 4, 2, 9]]
    )
    got = erase(x, boxes)
    for image, out, (t, left, h, w) in zip(x, got, boxes.tolist(), strict=True):
        expected = TF.erase(image, t, left, h, w, torch.tensor(0.0)) if h else image
        torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_bad_probability_is_refused_naming_the_flag():
    cfg = TrainConfig("A", "synthetic", "x", random_erasing=1.5).resolved()
    with pytest.raises(VGGError, match=r"--random-erasing must be in \[0, 1\], got 1\.5"):
        check_config(cfg, Dist(), torch.device("cpu"))


def test_the_training_loop_erases_the_drawn_boxes_and_nothing_else(tmp_path, run_cli, monkeypatch):
    """The first step's inputs with --random-erasing 1 are those without, zero in each drawn box."""
    seen: list[torch.Tensor] = []
    build = vggnet.train.fit.build_run_model

    def spying(*args, **kwargs):
        model = build(*args, **kwargs)
        model.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].detach().clone()))
        return model

    monkeypatch.setattr(vggnet.train.fit, "build_run_model", spying)
    common = ("--epochs", "1", "--max-steps", "1", "--seed", "3")
    assert run_cli(*train_args(tmp_path / "plain", *common))[0] == 0
    assert run_cli(*train_args(tmp_path / "erased", *common, "--random-erasing", "1"))[0] == 0
    plain, erased = seen[0], seen[-1]
    sampler = GlobalBatchSampler(48, 8, 1, 0, seed=3)
    indices = [i for _, i in next(iter(sampler))]
    boxes = erasing_boxes(3, 0, np.array(indices), 32, 32, 1.0)
    assert (boxes[:, 2] > 0).sum() >= 6
    inside = torch.zeros_like(plain, dtype=torch.bool)
    for k, (t, left, h, w) in enumerate(boxes.tolist()):
        inside[k, :, t : t + h, left : left + w] = True
    assert (erased[inside] == 0).all()
    torch.testing.assert_close(erased[~inside], plain[~inside], rtol=0, atol=0)
    assert math.isclose(float((plain[inside] == 0).float().mean()), 0.0, abs_tol=0.01)
