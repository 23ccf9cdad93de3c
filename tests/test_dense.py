"""Dense evaluation: FC layers as convolutions over whole images (paper section 3)."""

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import tiny
from vggnet import DenseVGG, VGGError, to_dense
from vggnet.model import dense_map_size


@pytest.mark.parametrize("batch_norm", [False, True])
def test_dense_equals_standard_at_crop_size(batch_norm):
    model = tiny(batch_norm=batch_norm)
    x = torch.randn(2, 3, 224, 224)
    scores = to_dense(model)(x)
    assert scores.shape == (2, 10, 1, 1)
    standard = torch.nn.Sequential.forward(model, x)  # the plain layer stack, no dense path
    torch.testing.assert_close(scores[:, :, 0, 0], standard, rtol=1e-5, atol=1e-5)


# (H, W) -> class score map size, by hand: floor(side / 32) - 7 + 1.
MAP_SIZES = {
    (224, 224): (1, 1),
    (256, 256): (2, 2),
    (288, 320): (3, 4),
    (300, 250): (3, 1),
    (384, 512): (6, 10),
}


@pytest.mark.parametrize(("size", "expected"), list(MAP_SIZES.items()))
def test_score_map_sizes(size, expected):
    model = tiny("A")
    scores = to_dense(model)(torch.randn(1, 3, *size))
    assert scores.shape == (1, 10, *expected)
    assert dense_map_size(model.spec, *size) == expected


def test_score_map_equals_fc_layers_slid_over_pool5():
    """Independent reference: apply fc6-fc8 as Linear layers to every 7x7 window of pool5."""
    model = tiny("B")
    x = torch.randn(1, 3, 288, 320)
    pool5 = model[: list(dict(model.named_children())).index("pool5") + 1](x)
    windows = F.unfold(pool5, kernel_size=7)  # (1, C*49, L): C-major, like torch.flatten
    h, w = pool5.shape[-2] - 6, pool5.shape[-1] - 6
    feats = windows.transpose(1, 2)[0]  # (L, C*49)
    scores = model.fc8(torch.relu(model.fc7(torch.relu(model.fc6(feats)))))
    expected = scores.T.reshape(1, 10, h, w)
    torch.testing.assert_close(to_dense(model)(x), expected, rtol=1e-5, atol=1e-5)


def test_forward_above_crop_size_averages_the_score_map():
    model = tiny()
    x = torch.randn(2, 3, 256, 320)
    torch.testing.assert_close(model(x), model.score_map(x).mean(dim=(2, 3)))


def test_dense_net_shares_parameters_and_gradients():
    model = tiny()
    dense = to_dense(model)
    assert isinstance(dense, DenseVGG)
    ours = dict(model.named_parameters())
    theirs = dict(dense.named_parameters())
    assert all(theirs[f"model.{k}"] is v for k, v in ours.items())
    x = torch.randn(1, 3, 256, 256)
    before = dense(x)
    with torch.no_grad():
        model.fc8.bias += 1.0
    torch.testing.assert_close(dense(x), before + 1.0)
    dense(x).sum().backward()
    assert model.fc6.weight.grad is not None and model.conv1_1.weight.grad is not None


def test_dense_crop_32_net_on_larger_images():
    model = tiny(crop_size=32)
    assert model.spec.fc6_kernel == 1
    assert to_dense(model)(torch.randn(1, 3, 64, 96)).shape == (1, 10, 2, 3)


def test_to_dense_refuses_other_models():
    with pytest.raises(VGGError, match="needs a vggnet VGG model"):
        to_dense(torch.nn.Linear(2, 2))
