"""Winograd F(4x4, 3x3) against direct convolution in float64, on every layer shape of Table 1."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import eager_winograd, tiny
from vggnet import to_dense
from vggnet.model.winograd import (
    WinogradConv2d,
    eligible_convs,
    layer_speedups,
    table1_conv_shapes,
    winograd_conv3x3,
    winograd_filters,
    with_winograd,
)


def test_table1_has_nine_conv_shapes():
    assert table1_conv_shapes() == [
        (3, 64, 224),
        (64, 64, 224),
        (64, 128, 112),
        (128, 128, 112),
        (128, 256, 56),
        (256, 256, 56),
        (256, 512, 28),
        (512, 512, 14),
        (512, 512, 28),
    ]


@pytest.mark.parametrize(("c", "k", "side"), table1_conv_shapes())
def test_winograd_equals_direct_convolution_on_table1_shapes(c, k, side):
    torch.manual_seed(c + k + side)
    x = torch.randn(1, c, side, side)
    w = torch.randn(k, c, 3, 3) * (2 / (9 * c)) ** 0.5  # He init, as trained nets start
    b = torch.randn(k) * 0.1
    exact = F.conv2d(x.double(), w.double(), b.double(), padding=1)
    got = winograd_conv3x3(x, winograd_filters(w), b)
    assert got.shape == exact.shape and got.dtype == torch.float32
    relative = (got.double() - exact).abs().max() / exact.abs().max()
    assert relative < 1e-4


@pytest.mark.parametrize(("h", "w"), [(1, 1), (5, 7), (9, 4), (33, 18)])
def test_sides_that_are_not_multiples_of_four(h, w):
    x, weight = torch.randn(2, 3, h, w), torch.randn(5, 3, 3, 3)
    exact = F.conv2d(x.double(), weight.double(), padding=1)
    got = winograd_conv3x3(x, winograd_filters(weight))
    torch.testing.assert_close(got.double(), exact, rtol=0, atol=1e-4)


def test_only_plain_3x3_stride_1_pad_1_convolutions_are_replaced():
    for conv in (nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(3, 4, 3)):
        with pytest.raises(ValueError, match="3x3/1/pad-1"):
            WinogradConv2d(conv)


def test_a_net_with_winograd_layers_scores_as_the_direct_one(monkeypatch):
    """Crops and dense maps of a net with BN, every conv replaced, against the original."""
    eager_winograd(monkeypatch)
    model = tiny("C", batch_norm=True, crop_size=32, fc_width=16).eval()
    chosen = eligible_convs(model)
    assert len(chosen) == 10  # C's three 1x1 convolutions are not Winograd's
    with pytest.raises(ValueError, match="conv4_3 is not a 3x3/1/pad-1 convolution"):
        with_winograd(model, ["conv4_3"])
    fast = with_winograd(model, chosen)
    assert sum(isinstance(m, WinogradConv2d) for m in fast.children()) == 10  # C's 1x1s stay
    assert not any(isinstance(m, WinogradConv2d) for m in model.children())  # a copy
    x, wide = torch.randn(3, 3, 32, 32), torch.randn(2, 3, 70, 100)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(
            to_dense(fast)(wide), to_dense(model)(wide), rtol=1e-4, atol=1e-4
        )


def test_layer_speedups_time_every_eligible_convolution(monkeypatch):
    eager_winograd(monkeypatch)
    model = tiny("C", crop_size=32, fc_width=16)
    speedups = layer_speedups(model, 32, 32, batch=2, repeats=1)
    assert list(speedups) == eligible_convs(model) and all(v > 0 for v in speedups.values())


@pytest.mark.slow
def test_compiled_winograd_equals_direct_convolution():
    """The torch.compile'd kernels (what --winograd runs) on a net, crops and whole images."""
    from vggnet.model.winograd import compiled_conv3x3

    assert compiled_conv3x3() is not winograd_conv3x3  # this machine compiles
    model = tiny("D", batch_norm=True, crop_size=32, fc_width=16).eval()
    fast = with_winograd(model, eligible_convs(model))
    for x in (torch.randn(4, 3, 32, 32), torch.randn(2, 3, 64, 96), torch.randn(1, 3, 70, 45)):
        with torch.no_grad():
            torch.testing.assert_close(to_dense(fast)(x), to_dense(model)(x), rtol=1e-4, atol=1e-4)
