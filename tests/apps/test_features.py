"""Named feature taps against torchvision slices, under autograd; the perceptual loss."""

import pytest
import torch
import torchvision

from tests.helpers import tiny
from vggnet import PerceptualLoss, VGGError, extract_features
from vggnet.interop.torchvision import import_torchvision

# torchvision vgg16 `features[:k]` slices that users take for these taps.
TORCHVISION_SLICES = {
    "relu1_2": 4,
    "relu2_2": 9,
    "relu3_3": 16,
    "relu4_3": 23,
    "pool5": 31,
    "conv3_2": 13,
}


@pytest.fixture(scope="module")
def vgg16_pair():
    torch.manual_seed(0)
    reference = torchvision.models.vgg16(weights=None).eval()
    return reference, import_torchvision(reference.state_dict())


def test_taps_equal_torchvision_slices(vgg16_pair):
    reference, ours = vgg16_pair
    x = torch.randn(2, 3, 64, 80)  # conv taps work at any size
    with torch.no_grad():
        feats = extract_features(ours, x, list(TORCHVISION_SLICES))
        for name, k in TORCHVISION_SLICES.items():
            torch.testing.assert_close(feats[name], reference.features[:k](x), rtol=1e-5, atol=1e-5)


def test_fc_taps_at_the_crop_size_and_densely(vgg16_pair):
    reference, ours = vgg16_pair
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        fc7 = extract_features(ours, x, ["fc7", "fc8"])
        expected = reference.classifier[:4](torch.flatten(reference.features(x), 1))
        torch.testing.assert_close(fc7["fc7"], expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fc7["fc8"], reference(x), rtol=1e-4, atol=1e-4)
        dense = extract_features(ours, torch.randn(1, 3, 256, 288), ["fc7"])["fc7"]
    assert dense.shape == (1, 4096, 2, 3)


def test_taps_work_under_autograd_and_are_not_overwritten():
    model = tiny()
    x = torch.randn(2, 3, 224, 224, requires_grad=True)
    feats = extract_features(model, x, ["conv1_1", "relu1_1", "conv3_2"])
    assert (feats["conv1_1"] < 0).any()  # the pre-ReLU tap keeps its negatives
    torch.testing.assert_close(feats["relu1_1"], feats["conv1_1"].clamp(min=0))
    (feats["conv3_2"].square().mean() + feats["conv1_1"].mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert (
        model.conv1_1.weight.grad is not None and model.conv4_1.weight.grad is None
    )  # stopped at the tap


def test_unknown_layer_lists_the_valid_ones():
    with pytest.raises(
        VGGError, match=r"no layer 'relu5_4' in config D: choose from conv1_1, relu1_1"
    ):
        extract_features(tiny(), torch.randn(1, 3, 224, 224), ["relu5_4"])


def test_perceptual_loss_value_and_gradient():
    torch.manual_seed(0)
    model = tiny("A", width=1 / 32, fc_width=8, crop_size=32).double()
    with torch.no_grad():  # as after training: an all-zero-bias net draws a warning
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.01)
    loss = PerceptualLoss(model, layers=["relu1_1", "relu3_2"], weights=[1.0, 0.5])
    a = torch.rand(2, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    b = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    fa = extract_features(model, model.preprocessing.normalize(a), ["relu1_1", "relu3_2"])
    fb = extract_features(model, model.preprocessing.normalize(b), ["relu1_1", "relu3_2"])
    by_hand = (fa["relu1_1"] - fb["relu1_1"]).square().mean() + 0.5 * (
        fa["relu3_2"] - fb["relu3_2"]
    ).square().mean()
    torch.testing.assert_close(loss(a, b), by_hand)
    assert torch.autograd.gradcheck(lambda t: loss(t, b), (a,), eps=1e-6, atol=1e-4, fast_mode=True)
    assert all(not p.requires_grad for p in loss.parameters())
    signed = PerceptualLoss(model, layers=["relu1_1"], input_range=(-1, 1))
    torch.testing.assert_close(
        signed(a * 2 - 1, b * 2 - 1), PerceptualLoss(model, layers=["relu1_1"])(a, b)
    )
    loss.train()  # a training loop's .train() must not switch on dropout or BN updates
    assert not loss.net.training
    with pytest.raises(VGGError, match="2 weights for 1 layers"):
        PerceptualLoss(model, layers=["relu1_1"], weights=[1, 2])
