"""torchvision interchange: imported nets give torchvision's logits; export loads back."""

import pytest
import torch
import torchvision

from tests.helpers import tiny
from vggnet import VGGError, load_checkpoint
from vggnet.interop.torchvision import export_torchvision, import_torchvision
from vggnet.preprocessing import Preprocessing

TORCHVISION = {
    "vgg11": "A",
    "vgg13": "B",
    "vgg16": "D",
    "vgg19": "E",
    "vgg11_bn": "A",
    "vgg13_bn": "B",
    "vgg16_bn": "D",
    "vgg19_bn": "E",
}


def randomised(name: str, **kwargs) -> torch.nn.Module:
    """A torchvision VGG with random weights and (for _bn) non-trivial running statistics."""
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    return model.eval()


# Each case builds a full-size net (133-144M parameters, about 6 s): make test checks one
# plain and one batch-norm net, make test-slow the other six.
FAST_CASES = ("vgg16", "vgg16_bn")


@pytest.mark.parametrize(
    "name",
    [n if n in FAST_CASES else pytest.param(n, marks=pytest.mark.slow) for n in TORCHVISION],
)
def test_imported_logits_equal_torchvision(name):
    reference = randomised(name)
    ours = import_torchvision(reference.state_dict())
    assert ours.spec.config == TORCHVISION[name]
    assert ours.spec.batch_norm == name.endswith("_bn")
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-5)
    exported = export_torchvision(ours)
    assert exported.keys() == reference.state_dict().keys()
    fresh = getattr(torchvision.models, name)(weights=None).eval()
    fresh.load_state_dict(exported, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), reference(x), rtol=0, atol=0)


def test_imported_net_carries_imagenet_metadata():
    ours = import_torchvision(randomised("vgg11").state_dict())
    assert len(ours.classes) == 1000 and ours.classes[0] == "tench"
    assert ours.preprocessing == Preprocessing.torchvision()
    assert ours.train_scale == (256, 256)


def test_custom_head_and_wrapped_state_dicts():
    reference = randomised("vgg13", num_classes=7)
    state = reference.state_dict()
    wrapped = {"model": {f"module._orig_mod.{k}": v for k, v in state.items()}, "epoch": 3}
    ours = import_torchvision(wrapped, config="vgg13")
    assert ours.spec.num_classes == 7 and ours.classes is None
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-5)


def test_wrong_config_is_named():
    state = tiny("A").state_dict()  # not torchvision layout at all
    with pytest.raises(VGGError, match="is not a torchvision VGG state dict"):
        import_torchvision(state, source="file x.pth")
    tv = torchvision.models.vgg11(weights=None).state_dict()
    with pytest.raises(VGGError, match="has 8 conv layers but config E has 16"):
        import_torchvision(tv, config="E", source="file x.pth")
    with pytest.raises(VGGError, match="torchvision has no VGG for config C"):
        import_torchvision(tv, config="C")


def test_shape_mismatch_names_layer_and_shapes():
    tv = torchvision.models.vgg11(weights=None).state_dict()
    tv["features.3.weight"] = torch.zeros(128, 64, 5, 5)
    with pytest.raises(
        VGGError, match=r"conv2_1.weight has shape \(128, 64, 5, 5\).*\(128, 64, 3, 3\)"
    ):
        import_torchvision(tv, source="file x.pth")


def test_export_refuses_configs_torchvision_lacks():
    with pytest.raises(VGGError, match="torchvision has no VGG for config A-LRN"):
        export_torchvision(tiny("A-LRN"))


def test_cli_import_and_export(tmp_path, run_cli):
    reference = randomised("vgg11_bn")
    torch.save(reference.state_dict(), tmp_path / "vgg11_bn.pth")
    status, out, err = run_cli(
        "import", "--format", "torchvision", tmp_path / "vgg11_bn.pth", "--out", tmp_path / "a.ckpt"
    )
    assert status == 0, err
    assert "config A" in out
    model = load_checkpoint(tmp_path / "a.ckpt")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)
    status, _, err = run_cli(
        "export",
        "--checkpoint",
        tmp_path / "a.ckpt",
        "--format",
        "torchvision",
        "--out",
        tmp_path / "back.pth",
    )
    assert status == 0, err
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    for key, value in reference.state_dict().items():
        assert torch.equal(back[key], value), key


def test_cli_import_bad_file_is_one_line(tmp_path, run_cli):
    torch.save({"weights": [1, 2, 3]}, tmp_path / "odd.pth")
    status, _, err = run_cli(
        "import", "--format", "torchvision", tmp_path / "odd.pth", "--out", tmp_path / "x.ckpt"
    )
    assert status == 2
    assert err.startswith("vggnet: error: torchvision file ") and "odd.pth" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "x.ckpt").exists()
