"""safetensors and ONNX exports; timm import against timm itself."""

import json

import numpy as np
import pytest
import torch

import vggnet
from tests.helpers import tiny
from vggnet import VGGError, extract_features, load_checkpoint, save_checkpoint, to_dense
from vggnet.interop.export import export_descriptor_graph
from vggnet.interop.timm import import_timm
from vggnet.preprocessing import Preprocessing


def test_safetensors_export_loads_back_with_everything(tmp_path, run_cli):
    model = tiny("C", batch_norm=True)
    model.classes = [f"c{i}" for i in range(10)]
    model.preprocessing = Preprocessing.torchvision()
    model.train_scale = (256, 512)
    save_checkpoint(tmp_path / "m.ckpt", model)
    status, _, err = run_cli(
        "export",
        "--checkpoint",
        tmp_path / "m.ckpt",
        "--format",
        "safetensors",
        "--out",
        tmp_path / "m.safetensors",
    )
    assert status == 0, err
    from safetensors.torch import load_file

    raw = load_file(tmp_path / "m.safetensors")  # plain safetensors: any tool reads the weights
    assert torch.equal(raw["conv3_3.weight"], model.conv3_3.weight)
    back = load_checkpoint(tmp_path / "m.safetensors")
    assert back.spec == model.spec and back.classes == model.classes
    assert back.preprocessing == model.preprocessing and back.train_scale == (256, 512)
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(back(x), model(x), rtol=0, atol=0)


def test_safetensors_without_our_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(VGGError, match="without vggnet metadata"):
        load_checkpoint(tmp_path / "other.safetensors")


def export_onnx_cli(run_cli, model, folder, *extra):
    """``vggnet export --format onnx`` of ``model`` (saved as FOLDER/m.ckpt) to FOLDER/m.onnx."""
    save_checkpoint(folder / "m.ckpt", model)
    args = ["--checkpoint", folder / "m.ckpt", "--format", "onnx", "--out", folder / "m.onnx"]
    return run_cli("export", *args, *extra)


@pytest.mark.parametrize("config", ["B", "A-LRN"])
def test_onnx_dense_net_matches_pytorch_at_three_sizes(config, tmp_path, run_cli):
    ort = pytest.importorskip("onnxruntime")
    model = tiny(config, crop_size=32, fc_width=16)
    status, _, err = export_onnx_cli(run_cli, model, tmp_path)
    assert status == 0, err
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["scores"]
    for n, h, w in [(1, 32, 32), (2, 64, 96), (3, 100, 70)]:
        x = torch.randn(n, 3, h, w)
        got = session.run(None, {"image": x.numpy()})[0]
        with torch.no_grad():
            expected = to_dense(model)(x).numpy()
        assert got.shape == expected.shape == (n, 10, h // 32, w // 32)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    for h, w in [(31, 40), (40, 31)]:  # below the crop: the graph refuses, never a wrong map
        with pytest.raises(Exception, match="ConstantOfShape"):
            session.run(None, {"image": np.zeros((1, 3, h, w), np.float32)})


def test_onnx_export_of_a_net_trained_channels_last(tmp_path):
    """Training with channels_last stores 4-D weights in that layout; the exporter failed on
    them (a guard on the batch size) until the export took a contiguous copy."""
    ort = pytest.importorskip("onnxruntime")
    from vggnet.interop.export import export_onnx

    model = tiny("A", batch_norm=True, crop_size=64, fc_width=16).eval()
    model = model.to(memory_format=torch.channels_last)
    assert not model.conv2_1.weight.is_contiguous()
    export_onnx(model, tmp_path / "m.onnx")
    assert not model.conv2_1.weight.is_contiguous()  # the caller's net keeps its layout
    x = torch.randn(2, 3, 96, 64)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, to_dense(model)(x).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["vgg11", pytest.param("vgg13_bn", marks=pytest.mark.slow)])
def test_timm_import_matches_timm(name, tmp_path, run_cli):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    reference = timm.create_model(name, pretrained=False, num_classes=7).eval()
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
    ours = import_timm(reference.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-4)
    torch.save(reference.state_dict(), tmp_path / "timm.pth")
    status, _, err = run_cli(
        "import", "--format", "timm", tmp_path / "timm.pth", "--out", tmp_path / "t.ckpt"
    )
    assert status == 0, err
    status, _, err = run_cli(
        "import",
        "--format",
        "timm",
        tmp_path / "timm.pth",
        "--config",
        "E",
        "--out",
        tmp_path / "x.ckpt",
    )
    assert status == 2 and "conv layers but config E has 16" in err


def test_timm_import_refuses_torchvision_layout():
    import torchvision

    with pytest.raises(VGGError, match="is not a timm VGG state dict"):
        import_timm(torchvision.models.vgg11(weights=None).state_dict(), source="file x.pth")


def test_onnx_is_one_file_that_carries_the_card_and_says_nothing(tmp_path, run_cli):
    ort = pytest.importorskip("onnxruntime")
    model = tiny("A", crop_size=32, fc_width=16)
    model.classes = [f"k{i}" for i in range(10)]
    model.train_scale = (40, 48)
    status, out, err = export_onnx_cli(run_cli, model, tmp_path)
    assert status == 0, err
    assert (
        out == f"wrote {tmp_path / 'm.onnx'} (onnx layout)\n" and err == ""
    )  # no exporter chatter
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt", "m.onnx"]  # no m.onnx.data
    deployed = tmp_path / "elsewhere"
    deployed.mkdir()
    (tmp_path / "m.onnx").rename(deployed / "m.onnx")  # copied alone, as people do
    session = ort.InferenceSession(str(deployed / "m.onnx"))
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == model.classes
    assert json.loads(meta["train_scale"]) == [40, 48]
    assert Preprocessing.from_dict(json.loads(meta["preprocessing"])) == model.preprocessing
    assert json.loads(meta["spec"])["config"] == "A" and meta["min_input_size"] == "32"
    assert meta["vggnet_version"] == vggnet.__version__ and meta["output"] == "scores"


def test_onnx_posteriors_are_the_dense_protocols(tmp_path, run_cli):
    ort = pytest.importorskip("onnxruntime")
    model = tiny("B", crop_size=32, fc_width=16)
    assert export_onnx_cli(run_cli, model, tmp_path, "--output", "posteriors")[0] == 0
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert [o.name for o in session.get_outputs()] == ["posteriors"]
    x = torch.randn(2, 3, 96, 64)
    got = session.run(None, {"image": x.numpy()})[0]
    with torch.no_grad():  # by hand: average the class score map, then soft-max
        expected = torch.softmax(to_dense(model)(x).mean(dim=(2, 3)), 1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1, rtol=1e-5)
    args = ["--checkpoint", tmp_path / "m.ckpt", "--format", "safetensors", "--out", tmp_path / "s"]
    status, _, err = run_cli("export", *args, "--output", "posteriors")
    assert status == 2 and "--output is for --format onnx" in err


@pytest.mark.parametrize("layer", ["relu3_2", "pool5", "fc7", "fc8"])
def test_descriptor_graph_equals_the_torch_descriptor(layer, tmp_path):
    """The graph int8 describes images with, in fp32: extract_features averaged over
    positions, at the crop size and at larger sizes (the dense view)."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = tiny("A", num_classes=3, crop_size=32, width=0.25, fc_width=16).eval()
    export_descriptor_graph(model, layer, tmp_path / "d.onnx")
    session = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    for height, width in ((32, 32), (40, 57)):
        x = torch.randn(2, 3, height, width)
        (got,) = session.run(None, {"image": x.numpy()})
        with torch.no_grad():
            tap = extract_features(model, x, [layer])[layer]
        expected = tap.mean(dim=(2, 3)) if tap.dim() == 4 else tap
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-5)
