"""The demo's code path on a tiny budget: train, every protocol, results.json, samples, rerun."""

import json

import pytest

from tests.data.test_sources import write_fashion
from vggnet import VGGError
from vggnet.apps.demo import DEMO_TRAIN, run_demo


def test_demo_trains_evaluates_and_reruns(tmp_path, capsys, monkeypatch):
    (tmp_path / "fm").mkdir()
    write_fashion(tmp_path / "fm", n_train=256, n_test=40)
    data = f"fashion-mnist:{tmp_path / 'fm'}"
    rows = run_demo(tmp_path / "demo", data, epochs=1, device="cpu")
    out = capsys.readouterr().out
    assert [r["method"] for r in rows] == [
        "center",
        "dense",
        "dense",
        "multi-crop",
        "dense+multi-crop",
    ]
    # S = 32 (the crop: the analogue of S = 224); Table 4's Q set {S - 5, S, S + 5} >= 32
    assert [r["scales"] for r in rows] == [[32], [32], [32, 37], [32, 37], [32, 37]]
    assert DEMO_TRAIN["scale"] == "32"
    saved = json.loads((tmp_path / "demo" / "results.json").read_text())["results"]
    assert saved == json.loads(json.dumps(rows))
    assert all(0 <= r["top1_error"] <= 100 and r["images"] == 40 for r in saved)
    assert (tmp_path / "demo" / "train" / "curves.png").is_file()
    assert (
        "vggnet predict --checkpoint" in out
        and len(list((tmp_path / "demo" / "samples").iterdir())) == 3
    )
    # Scored from the end of the schedule: best.ckpt is picked on the test split.
    last = tmp_path / "demo" / "train" / "last.ckpt"
    assert all(r["checkpoints"] == [str(last)] for r in rows) and f"--checkpoint {last}" in out
    (tmp_path / "demo" / "train" / "best.ckpt").unlink()
    again = run_demo(tmp_path / "demo", data, epochs=1, device="cpu")  # idempotent: no new training
    assert [r["top1_error"] for r in again] == [r["top1_error"] for r in rows]
    # A demo folder of an earlier recipe is not silently finished with its old settings.
    monkeypatch.setitem(DEMO_TRAIN, "lr", 0.5)
    with pytest.raises(VGGError, match=r"another recipe \(lr=0.1\): remove .*demo to train"):
        run_demo(tmp_path / "demo", data, epochs=1, device="cpu")
