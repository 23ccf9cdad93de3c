"""timm's model contract: forward_features, forward_head, reset_classifier, feature_info,
and a features_only backbone, checked against torchvision's and timm's own nets."""

import pytest
import torch
from torch import nn

import vggnet
from tests.helpers import tiny
from vggnet import Backbone, VGGError, build_model
from vggnet.apps.features import extract_features
from vggnet.interop.torchvision import torchvision_names


def narrow_torchvision_features(model: vggnet.VGG) -> nn.Sequential:
    """torchvision's own ``make_layers`` for our narrow net's channels, with our weights."""
    tv = pytest.importorskip("torchvision.models.vgg")
    cfg: list = []
    for name, layer in model.named_children():
        if isinstance(layer, nn.Conv2d):
            cfg.append(layer.out_channels)
        elif name.startswith("pool"):
            cfg.append("M")
    features = tv.make_layers(cfg, batch_norm=model.spec.batch_norm).eval()
    names = torchvision_names(model)
    state = {
        f"{names[k.split('.')[0]].removeprefix('features.')}.{k.split('.', 1)[1]}": v
        for k, v in model.state_dict().items()
        if names[k.split(".")[0]].startswith("features.")
    }
    features.load_state_dict(state)
    return features


@pytest.mark.parametrize("batch_norm", [False, True])
def test_forward_features_is_torchvisions_features(batch_norm):
    model = tiny("B", batch_norm=batch_norm, crop_size=32)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
        x = torch.randn(2, 3, 64, 96)
        torch.testing.assert_close(model.forward_features(x), narrow_torchvision_features(model)(x))


def test_forward_head_after_forward_features_is_forward():
    model = tiny("D", crop_size=32)
    with torch.no_grad():
        for size in [(32, 32), (64, 96)]:  # the plain net, and dense evaluation
            x = torch.randn(2, 3, *size)
            torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))
        x = torch.randn(2, 3, 32, 32)
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(pre, extract_features(model, x, "relu7")["relu7"])
        assert pre.shape == (2, model.spec.fc_width)


def test_reset_classifier_replaces_fc8_only():
    model = tiny("A", crop_size=32)
    model.classes = [f"c{i}" for i in range(10)]
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc8")}
    model.reset_classifier(3)
    assert model.spec.num_classes == 3 and model.classes is None
    assert model.fc8.weight.shape == (3, model.spec.fc_width)
    fc8 = model.fc8.weight.detach(), model.fc8.bias.detach()
    assert float(fc8[1].abs().max()) == 0 and 0.005 < float(fc8[0].std()) < 0.02
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert list(dict(model.named_children()))[-1] == "fc8"  # still the last layer
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    with pytest.raises(VGGError, match="num_classes must be >= 1"):
        model.reset_classifier(0)


def test_feature_info_matches_timms():
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        theirs = timm.create_model("vgg16", features_only=True, pretrained=False).feature_info
        ours = build_model("vgg16", init="kaiming").feature_info
    assert [t.num_chs for t in ours] == theirs.channels()[:5]
    assert [t.reduction for t in ours] == theirs.reduction()[:5]
    assert [t.module for t in ours] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]


def test_backbone_returns_the_tapped_maps():
    model = tiny("E", crop_size=32)
    backbone = Backbone(model, (0, 2, 4))
    x = torch.randn(1, 3, 64, 80)
    maps = backbone(x)
    expected = extract_features(model, x, [t.module for t in backbone.feature_info])
    for got, tap in zip(maps, backbone.feature_info, strict=True):
        torch.testing.assert_close(got, expected[tap.module])
        assert got.shape[1] == tap.num_chs and got.shape[-2:] == (
            64 // tap.reduction,
            80 // tap.reduction,
        )
    names = {n.split(".")[0] for n, _ in backbone.body.named_parameters()}
    assert not names & {"fc6", "fc7", "fc8"}  # only the convs it uses
    with pytest.raises(VGGError, match=r"out_indices \(5,\): choose from 0\.\.4"):
        Backbone(model, (5,))
