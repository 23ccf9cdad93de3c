"""Published weights by name: the registry against its publishers, the cache, downloads, hub."""

import dataclasses
import hashlib
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import vggnet
from tests.helpers import tiny
from vggnet import VGGError
from vggnet.interop import pretrained
from vggnet.interop.torchvision import export_torchvision

REPO = Path(__file__).resolve().parents[2]


def test_torchvision_entries_are_torchvisions_own_files():
    tv = pytest.importorskip("torchvision.models")
    for arch in (
        "vgg11",
        "vgg11_bn",
        "vgg13",
        "vgg13_bn",
        "vgg16",
        "vgg16_bn",
        "vgg19",
        "vgg19_bn",
    ):
        enum = getattr(tv, f"{arch.upper()}_Weights").IMAGENET1K_V1
        ours = pretrained.PRETRAINED[f"{arch}.tv_in1k"]
        assert ours.url == enum.url
        assert enum.url.endswith(f"-{ours.digest}.pth")  # torch.hub's SHA-256 prefix
        assert f"{enum.meta['_metrics']['ImageNet-1K']['acc@1']}%" in ours.reported
        assert ours.architecture == vggnet.model.configs.resolve_name(arch)


def test_keras_entries_are_keras_own_files():
    """Read from Keras' own source (importing Keras needs a backend)."""
    spec = importlib.util.find_spec("keras")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("keras is not installed")
    apps = Path(next(iter(spec.submodule_search_locations))) / "src" / "applications"
    for arch in ("vgg16", "vgg19"):
        source = (apps / f"{arch}.py").read_text()
        parts = re.search(r"WEIGHTS_PATH = \(\s*((?:\"[^\"]*\"\s*)+)\)", source)
        assert parts is not None
        url = "".join(re.findall(r'"([^"]*)"', parts.group(1)))
        ours = pretrained.PRETRAINED[f"{arch}.keras_in1k"]
        assert ours.url == url
        assert f'file_hash="{ours.digest}"' in source  # the MD5 Keras checks


def test_names_list_and_resolve():
    assert "vgg16.tv_in1k" in vggnet.list_pretrained()
    assert vggnet.list_pretrained("vgg19*") == [
        "vgg19.caffe_in1k",
        "vgg19.keras_in1k",
        "vgg19.tv_in1k",
        "vgg19_bn.tv_in1k",
    ]
    assert pretrained.weights_for("VGG16").name == "vgg16.tv_in1k"  # a bare name: torchvision's
    with pytest.raises(VGGError, match=r"no pretrained weights 'vgg17'.*vgg16\.tv_in1k"):
        pretrained.weights_for("vgg17")


@pytest.fixture
def tiny_release(tmp_path, monkeypatch):
    """``vgg11.tv_in1k`` replaced by a tiny torchvision-layout file served from a file:// URL,
    and an empty TORCH_HOME: the real loading code on a file small enough for a test."""
    model = tiny("A", num_classes=1000, width=0.25, fc_width=16, crop_size=32)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    served = tmp_path / "server" / "vgg11-tiny.pth"
    served.parent.mkdir()
    torch.save(export_torchvision(model), served)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()[:8]
    entry = dataclasses.replace(
        pretrained.PRETRAINED["vgg11.tv_in1k"], url=served.as_uri(), digest=digest
    )
    monkeypatch.setitem(pretrained.PRETRAINED, "vgg11.tv_in1k", entry)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return model, entry


def test_download_goes_to_torch_hubs_cache_verified(tiny_release, tmp_path):
    model, _ = tiny_release
    loaded = vggnet.load_pretrained("vgg11", progress=False)
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / "vgg11-tiny.pth"
    assert cached.is_file() and sorted(p.name for p in cached.parent.iterdir()) == [cached.name]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert loaded.classes is not None and len(loaded.classes) == 1000
    assert loaded.classes[0] == "tench"  # ImageNet's names, in torchvision's order
    assert loaded.preprocessing == vggnet.Preprocessing.torchvision()
    assert not loaded.training


def test_a_cached_file_loads_with_no_download(tiny_release, tmp_path):
    model, entry = tiny_release
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    Path(entry.url.removeprefix("file://")).rename(cache / "vgg11-tiny.pth")  # the server is gone
    loaded = vggnet.load_pretrained("vgg11.tv_in1k", download=False)
    torch.testing.assert_close(loaded.fc8.weight, model.fc8.weight)


def test_a_damaged_download_is_refused_and_not_cached(tiny_release, tmp_path, monkeypatch):
    _, entry = tiny_release
    monkeypatch.setitem(
        pretrained.PRETRAINED, "vgg11.tv_in1k", dataclasses.replace(entry, digest="00000000")
    )
    with pytest.raises(VGGError) as err:
        vggnet.load_pretrained("vgg11", progress=False)
    line = str(err.value)
    assert "\n" not in line and entry.url in line and "not the published 00000000" in line
    assert "place it at" in line and "vgg11-tiny.pth" in line
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    assert list(cache.iterdir()) == []  # no partial or wrong file is left behind


def test_a_failed_download_names_the_url_and_where_to_put_the_file(tiny_release, monkeypatch):
    _, entry = tiny_release
    gone = dataclasses.replace(entry, url=entry.url.replace("vgg11-tiny", "missing"))
    monkeypatch.setitem(pretrained.PRETRAINED, "vgg11.tv_in1k", gone)
    with pytest.raises(VGGError, match=r"cannot download file://.*missing\.pth .*place it at"):
        vggnet.load_pretrained("vgg11", progress=False)
    with pytest.raises(VGGError, match="not cached and downloads are off"):
        vggnet.load_pretrained("vgg11", download=False)


def test_a_caffe_download_without_checksum_is_parsed_before_it_is_kept(tmp_path, monkeypatch):
    junk = tmp_path / "VGG_ILSVRC_16_layers.caffemodel"
    junk.write_bytes(b"\x12\x05hello" * 10)
    entry = dataclasses.replace(pretrained.PRETRAINED["vgg16.caffe_in1k"], url=junk.as_uri())
    monkeypatch.setitem(pretrained.PRETRAINED, "vgg16.caffe_in1k", entry)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    with pytest.raises(VGGError, match=r"not a VGG \.caffemodel|truncated or corrupt"):
        vggnet.load_pretrained("vgg16.caffe_in1k", progress=False)
    assert list((tmp_path / "home" / "hub" / "checkpoints").iterdir()) == []


def test_a_file_of_another_net_in_the_cache_is_named(tiny_release, tmp_path):
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    other = tiny("A", num_classes=10, width=0.25, fc_width=16, crop_size=32)
    torch.save(export_torchvision(other), cache / "vgg11-tiny.pth")
    with pytest.raises(VGGError, match=r"with 10 classes, not vgg11\.tv_in1k: delete it"):
        vggnet.load_pretrained("vgg11", download=False)


def test_import_pretrained_writes_a_checkpoint(tiny_release, tmp_path, run_cli):
    status, out, err = run_cli(
        "import", "--pretrained", "vgg11.tv_in1k", "--out", tmp_path / "v.ckpt"
    )
    assert status == 0, err
    back = vggnet.load_checkpoint(tmp_path / "v.ckpt")
    assert back.classes[0] == "tench" and back.spec.config == "A"
    status, _, err = run_cli("import", "--out", tmp_path / "w.ckpt")
    assert status == 2 and "a FILE with --format, or --pretrained NAME" in err
    status, _, err = run_cli(
        "import", "--pretrained", "vgg11", "--config", "D", "--out", tmp_path / "x.ckpt"
    )
    assert status == 2 and "--config does not go with --pretrained" in err
    status, out, _ = run_cli("info", "--pretrained")
    assert status == 0 and "vgg11.tv_in1k" in out and "yes" in out  # now cached


def test_torch_hub_loads_the_entry_points(tiny_release):
    net = torch.hub.load(
        str(REPO), "vgg16_bn", source="local", num_classes=5, width=0.25, fc_width=8, crop_size=32
    )
    assert net.spec.config == "D" and net.spec.batch_norm and net.spec.num_classes == 5
    model, _ = tiny_release
    loaded = torch.hub.load(str(REPO), "vgg11", source="local", pretrained=True)
    torch.testing.assert_close(loaded.fc6.weight, model.fc6.weight)
    with pytest.raises(VGGError, match="pretrained weights fix the shape"):
        torch.hub.load(str(REPO), "vgg11", source="local", pretrained=True, width=0.5)


@pytest.mark.slow
def test_readme_example_on_torchvisions_real_size_vgg16_file(tmp_path, monkeypatch):
    """A user who has torchvision's vgg16 file gets it with no download; the README's lines
    give what torchvision gives with its own transform."""
    tv = pytest.importorskip("torchvision")
    from PIL import Image

    torch.manual_seed(0)
    reference = tv.models.vgg16().eval()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / "vgg16-397923af.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), np.uint8))

    model = vggnet.load_pretrained("vgg16.tv_in1k", download=False)
    x = vggnet.create_transform(model)(image).unsqueeze(0)
    with torch.no_grad():
        ours = model(x)
        theirs = reference(tv.models.VGG16_Weights.IMAGENET1K_V1.transforms()(image).unsqueeze(0))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-2)  # one uint8 level of rescaling
    assert (
        model.classes[int(ours.argmax())]
        == tv.models.VGG16_Weights.IMAGENET1K_V1.meta["categories"][int(theirs.argmax())]
    )


def test_a_file_in_keras_own_cache_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    held = tmp_path / "keras" / "models" / "vgg19_weights_tf_dim_ordering_tf_kernels.h5"
    held.parent.mkdir(parents=True)
    held.write_bytes(b"h5")
    assert pretrained.pretrained_file("vgg19.keras_in1k", download_missing=False) == held
