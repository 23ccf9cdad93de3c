"""Checkpoint format v1: round trip, atomic writes, and every kind of bad file."""

import os
import pickle

import numpy as np
import pytest
import torch

from tests.helpers import tiny
from vggnet import Preprocessing, VGGError, load_checkpoint, save_checkpoint
from vggnet.checkpoint import read_checkpoint


@pytest.mark.parametrize("batch_norm", [False, True])
def test_round_trip_keeps_weights_and_metadata(tmp_path, batch_norm):
    model = tiny("C", batch_norm=batch_norm, in_channels=1)
    model.classes = [f"class {i}" for i in range(10)]
    model.preprocessing = Preprocessing.paper((72.9,))
    model.train_scale = (256, 512)
    if batch_norm:  # make the BN buffers non-trivial
        model.train()
        model(torch.randn(4, 1, 224, 224))
        model.eval()
    path = tmp_path / "net.ckpt"
    save_checkpoint(path, model)
    loaded = load_checkpoint(path)
    assert loaded.spec == model.spec
    assert loaded.classes == model.classes
    assert loaded.preprocessing == model.preprocessing
    assert loaded.train_scale == (256, 512)
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert all(p.requires_grad for p in loaded.parameters())
    x = torch.randn(2, 1, 224, 224)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_extra_entries_are_kept(tmp_path):
    path = tmp_path / "net.ckpt"
    save_checkpoint(path, tiny(), extra={"train_state": {"step": 7}})
    assert read_checkpoint(path)["train_state"] == {"step": 7}


def test_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "net.ckpt"
    save_checkpoint(path, tiny())
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(VGGError, match=r"cannot write .*net.ckpt: No space left on device"):
        save_checkpoint(path, tiny())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.ckpt"]  # no temp files left


@pytest.fixture
def good_checkpoint(tmp_path):
    path = tmp_path / "good.ckpt"
    save_checkpoint(path, tiny())
    return path


def test_missing_file(tmp_path):
    with pytest.raises(VGGError, match=r"checkpoint .*nope.ckpt does not exist"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_empty_file(tmp_path):
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(VGGError, match=r"empty.ckpt is empty"):
        load_checkpoint(tmp_path / "empty.ckpt")


def test_truncated_file(tmp_path, good_checkpoint):
    data = good_checkpoint.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(VGGError, match=r"cut.ckpt is truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.ckpt")


@pytest.mark.parametrize("seed", range(40))
def test_random_bytes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    (tmp_path / "noise.ckpt").write_bytes(rng.bytes(int(rng.integers(1, 5000))))
    with pytest.raises(VGGError, match=r"noise.ckpt (is truncated or corrupt|is not a torch file)"):
        load_checkpoint(tmp_path / "noise.ckpt")


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    torch.save({"format": "vggnet-checkpoint", "payload": exploit}, tmp_path / "evil.ckpt")
    with pytest.raises(VGGError, match="pickled Python objects that could run code; refused"):
        load_checkpoint(tmp_path / "evil.ckpt")
    assert not marker.exists()
    # a plain pickle (not a torch zip file) is refused too
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(exploit))
    with pytest.raises(VGGError):
        load_checkpoint(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_bare_state_dict_points_to_import(tmp_path):
    torch.save(tiny().state_dict(), tmp_path / "sd.pth")
    with pytest.raises(VGGError, match=r"not a vggnet checkpoint; .*vggnet import"):
        load_checkpoint(tmp_path / "sd.pth")


def test_newer_format_version(tmp_path, good_checkpoint):
    payload = read_checkpoint(good_checkpoint)
    payload["version"] = 2
    torch.save(payload, tmp_path / "v2.ckpt")
    with pytest.raises(VGGError, match=r"format version 2, newer .*upgrade vggnet"):
        load_checkpoint(tmp_path / "v2.ckpt")


def test_weights_that_do_not_fit_name_the_layer(tmp_path, good_checkpoint):
    payload = read_checkpoint(good_checkpoint)
    payload["state_dict"]["fc8.weight"] = torch.zeros(7, 32)
    torch.save(payload, tmp_path / "bad.ckpt")
    with pytest.raises(VGGError, match=r"layer fc8.weight has shape \(7, 32\) .* \(10, 32\)"):
        load_checkpoint(tmp_path / "bad.ckpt")
    del payload["state_dict"]["fc8.weight"]
    torch.save(payload, tmp_path / "missing.ckpt")
    with pytest.raises(VGGError, match=r"missing fc8\.weight"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_cli_reports_bad_checkpoint_in_one_line(tmp_path, run_cli):
    (tmp_path / "noise.ckpt").write_bytes(bytes(range(7, 107)))
    status, _, err = run_cli(
        "export",
        "--checkpoint",
        tmp_path / "noise.ckpt",
        "--format",
        "torchvision",
        "--out",
        tmp_path / "x.pth",
    )
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("vggnet: error: checkpoint ")
    assert "noise.ckpt" in err and "Traceback" not in err
