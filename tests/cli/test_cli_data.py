"""``vggnet data stats`` and ``vggnet data check``."""

import json

import numpy as np

from tests.helpers import write_image_folder


def test_data_stats_writes_beside_a_folder(tmp_path, run_cli):
    write_image_folder(tmp_path, classes=("a", "b"), train=3, size=(40, 30), fmt="PNG")
    status, out, err = run_cli("data", "stats", tmp_path)
    assert status == 0, err
    assert "from all 6 images" in out and "mean (0..255)" in out
    cached = json.loads((tmp_path / "vggnet-stats.json").read_text())
    assert cached["split_images"] == 6
    from vggnet.data import open_source

    source = open_source(str(tmp_path), "train")
    pixels = np.concatenate([source.read(i)[0].reshape(3, -1).T.numpy() for i in range(6)])
    np.testing.assert_allclose(cached["stats"]["mean"], pixels.mean(0) / 255, rtol=1e-9)


def test_data_stats_sample_is_stated(tmp_path, run_cli):
    status, out, _ = run_cli(
        "data",
        "stats",
        "synthetic:train=30,size=16",
        "--max-images",
        "10",
        "--out",
        tmp_path / "s.json",
    )
    assert status == 0
    assert "a random sample of 10 of 30 images" in out and (tmp_path / "s.json").is_file()


def test_data_check_lists_each_bad_file(tmp_path, run_cli):
    write_image_folder(tmp_path, classes=("a", "b"), train=3, val=2, size=(40, 30))
    (tmp_path / "train" / "a" / "1.jpg").write_bytes(b"")
    data = (tmp_path / "val" / "b" / "0.jpg").read_bytes()
    (tmp_path / "val" / "b" / "0.jpg").write_bytes(data[: len(data) // 3])
    status, out, _ = run_cli("data", "check", tmp_path)
    assert status == 1
    lines = out.splitlines()
    assert any(line.endswith("train/a/1.jpg: empty file") for line in lines)
    assert any("val/b/0.jpg: cannot decode" in line for line in lines)
    assert "train: 6 images, 1 unusable" in lines and "val: 4 images, 1 unusable" in lines
    status, out, _ = run_cli("data", "check", tmp_path, "--split", "train", "--workers", "2")
    assert status == 1 and "train: 6 images, 1 unusable" in out


def test_data_check_clean_and_bad_spec(run_cli):
    status, out, _ = run_cli("data", "check", "synthetic:train=5,val=3")
    assert status == 0 and "train: 5 images, 0 unusable" in out
    status, _, err = run_cli("data", "check", "no/such/folder")
    assert status == 2 and err.startswith("vggnet: error: --data 'no/such/folder'")
