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
    x = torch.randn(3, 3, 288, 320)
    pool5 = model[: list(dict(model.named_children())).index("pool5") + 1](x)
    windows = F.unfold(pool5, kernel_size=7)  # (N, C*49, L): C-major, like torch.flatten
    h, w = pool5.shape[-2] - 6, pool5.shape[-1] - 6
    expected = []
    for image in windows:  # one image at a time: (C*49, L) -> (L, C*49)
        scores = model.fc8(torch.relu(model.fc7(torch.relu(model.fc6(image.T)))))
        expected.append(scores.T.reshape(10, h, w))
    torch.testing.assert_close(to_dense(model)(x), torch.stack(expected), rtol=1e-5, atol=1e-5)


def test_score_map_in_chunks_equals_one_pass(monkeypatch):
    import vggnet.model.vgg

    model = tiny("A")
    x = torch.randn(5, 3, 288, 320)
    whole = model.score_map(x)
    calls = []
    model.fc6.register_forward_pre_hook(lambda _, args: calls.append(len(args[0])))
    per_image = 32 * 49 * 3 * 4  # pool5's 32 channels x 7x7 x the 3 x 4 windows of a 9x10 map
    monkeypatch.setattr(vggnet.model.vgg, "FC_WINDOW_BUDGET", 2 * per_image)
    torch.testing.assert_close(model.score_map(x), whole, rtol=1e-5, atol=1e-5)
    assert calls == [2 * 12, 2 * 12, 12]  # chunks of 2, 2 and 1 images, 12 windows each


def test_fc6_sees_one_contiguous_row_per_window():
    """Under inference_mode and bf16 autocast, a CPU linear is 9x slower on strided windows."""
    model = tiny("A")
    seen = []
    model.fc6.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    model.score_map(torch.randn(2, 3, 288, 320))
    assert seen and all(t.is_contiguous() and t.dim() == 2 for t in seen)


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
