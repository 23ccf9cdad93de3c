"""int8 and onnxruntime inference: agreement with torch fp32, the calibration cache, refusals."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

import vggnet.interop.int8
import vggnet.interop.runtime
from tests.helpers import TRAINED_DATA, eager_winograd, tiny
from vggnet import VGGError, int8_net, load_checkpoint, save_checkpoint, to_dense
from vggnet.apps.transfer import dataset_features, linear_probe
from vggnet.bench.agreement import precision_agreement
from vggnet.data import open_source
from vggnet.data.subset import stratified_indices
from vggnet.data.transforms import center_crop, rescale
from vggnet.eval import engines
from vggnet.eval.engines import (
    CALIBRATION_IMAGES,
    cached_int8_descriptors,
    cached_int8_net,
    calibration_crops,
)
from vggnet.eval.protocols import Protocol
from vggnet.eval.scoring import evaluate_checkpoints, predict_images
from vggnet.interop.int8 import (
    check_int8,
    int8_metadata,
    int8_products,
    quantize_columns,
    quantize_int8,
)
from vggnet.model import fold_batch_norm

pytest.importorskip("onnxruntime")
CPU = torch.device("cpu")


def normalised(model, images: torch.Tensor) -> torch.Tensor:
    """uint8 images as the net's input, computed here from the card's mean and std."""
    mean = torch.tensor(model.preprocessing.mean)[:, None, None]
    std = torch.tensor(model.preprocessing.std)[:, None, None]
    return (images.float() / 255 - mean) / std


def val_crops(model, count=48):
    source = open_source(TRAINED_DATA, "val")
    q = model.train_scale[0]
    return torch.stack(
        [center_crop(rescale(source.read(i)[0], q), model.spec.crop_size) for i in range(count)]
    )


@pytest.mark.parametrize("method", ["center", "dense"])
def test_int8_predicts_what_fp32_predicts_on_a_trained_net(trained, method, tmp_path):
    """Issue 37's rule at the size of a test set of 48: at most one image changes its class."""
    ckpt = tmp_path / "net.ckpt"
    shutil.copy(trained, ckpt)
    row = precision_agreement(str(ckpt), TRAINED_DATA, "int8", method=method)
    assert row["images"] == 48 and row["fp32_top1_error"] < 50  # trained: chance is 75%
    assert row["agreement"] >= 97.9
    assert abs(row["error_change"]) <= 100 / 48 + 1e-9


def test_int8_scores_are_within_a_few_percent_of_fp32(trained):
    """Centre crops and whole-image score maps, against the torch net (fp32, BN folded)."""
    model = load_checkpoint(trained).eval()
    crops = val_crops(model)
    net = int8_net(model, crops)
    x = normalised(model, crops)
    with torch.no_grad():
        expected = fold_batch_norm(model)(x)
        wide = normalised(model, torch.randint(0, 256, (2, 3, 72, 104), dtype=torch.uint8))
        expected_map = to_dense(model)(wide)
    spread = expected.abs().max()
    assert (net(x) - expected).abs().max() < 0.05 * spread
    assert (net(x).argmax(1) == expected.argmax(1)).float().mean() >= 0.95
    got_map = net.score_map(wide)
    assert got_map.shape == expected_map.shape == (2, 4, 2, 3)
    assert (got_map - expected_map).abs().max() < 0.1 * expected_map.abs().max()


def test_onnxruntime_fp32_backend_equals_torch(trained):
    """--backend onnxruntime --precision fp32: the same posteriors as torch, every protocol part."""
    protocol = Protocol("dense+multi-crop", [40, 48], grid=2)
    common = {"device": "cpu", "precision": "fp32", "limit": 12}
    torch_scores = evaluate_checkpoints([trained], TRAINED_DATA, protocol, **common)
    ort_scores = evaluate_checkpoints(
        [trained], TRAINED_DATA, protocol, backend="onnxruntime", **common
    )
    torch.testing.assert_close(ort_scores.posteriors, torch_scores.posteriors, rtol=0, atol=1e-5)
    from vggnet.eval.protocols import Engine
    from vggnet.interop.runtime import OnnxNet

    sm = Engine("onnxruntime", "fp32").prepare(trained, load_checkpoint(trained), protocol, CPU)
    assert isinstance(sm.engine, OnnxNet) and sm.engine.precision == "fp32"  # not torch again


def test_calibration_is_the_class_balanced_train_images_centre_cropped(trained):
    model = load_checkpoint(trained)
    crops, record = calibration_crops(model, TRAINED_DATA)
    again, _ = calibration_crops(model, TRAINED_DATA)
    assert torch.equal(crops, again)
    source = open_source(TRAINED_DATA, "train")
    indices = stratified_indices(np.asarray(source.labels), CALIBRATION_IMAGES).tolist()
    written = json.loads(record["calibration"])
    assert written == {"data": TRAINED_DATA, "split": "train", "q": 40, "indices": indices}
    assert len(crops) == len(indices) == 64  # the split is smaller than CALIBRATION_IMAGES
    first = center_crop(rescale(source.read(indices[5])[0], 40), 32)
    assert torch.equal(crops[5], first)


def test_int8_file_is_kept_beside_the_checkpoint_and_reused(trained, tmp_path, monkeypatch):
    ckpt = tmp_path / "net.ckpt"
    shutil.copy(trained, ckpt)
    model = load_checkpoint(ckpt)
    cached_int8_net(str(ckpt), model, TRAINED_DATA)
    kept = tmp_path / "net.int8.onnx"
    meta = int8_metadata(kept)
    assert int8_metadata(tmp_path / "net.int8.crops.onnx") == meta  # the crop-size graph
    assert meta["checkpoint_sha256"] == engines.file_digest(ckpt)
    assert meta["precision"] == "int8" and json.loads(meta["classes"]) == model.classes
    assert json.loads(meta["calibration"])["data"] == TRAINED_DATA

    calls = []
    real = engines.quantize_int8
    monkeypatch.setattr(engines, "quantize_int8", lambda *a, **k: calls.append(1) or real(*a, **k))
    cached_int8_net(str(ckpt), model, TRAINED_DATA)
    cached_int8_net(str(ckpt), model, None)  # predict without --calibration: the kept file
    os.utime(ckpt)  # touched, same bytes: the SHA-256 says it is the same net
    cached_int8_net(str(ckpt), model, None)
    assert calls == []
    cached_int8_net(str(ckpt), model, "synthetic:classes=4,train=40,val=8,size=40")
    assert len(calls) == 1  # another calibration set: quantised again


@pytest.mark.slow
def test_a_kept_file_without_its_dense_graph_or_of_another_format_is_quantised_again(
    trained, tmp_path, monkeypatch
):
    ckpt = tmp_path / "net.ckpt"
    shutil.copy(trained, ckpt)
    model = load_checkpoint(ckpt)
    cached_int8_net(str(ckpt), model, TRAINED_DATA)
    calls = []
    real = engines.quantize_int8
    monkeypatch.setattr(engines, "quantize_int8", lambda *a, **k: calls.append(1) or real(*a, **k))
    (tmp_path / "net.int8.onnx").unlink()  # the dense graph gone: the pair is made again
    cached_int8_net(str(ckpt), model, TRAINED_DATA)
    assert calls == [1] and (tmp_path / "net.int8.onnx").exists()
    monkeypatch.setattr(vggnet.interop.int8, "INT8_FORMAT_VERSION", "99")
    cached_int8_net(str(ckpt), model, TRAINED_DATA)
    assert calls == [1, 1]  # a file of an older format: quantised again
    saturating = vggnet.interop.int8.saturating_pairs()
    monkeypatch.setattr(vggnet.interop.int8, "saturating_pairs", lambda: not saturating)
    cached_int8_net(str(ckpt), model, TRAINED_DATA)
    assert calls == [1, 1, 1]  # quantised for the other kind of CPU: quantised again


def test_a_changed_checkpoint_is_quantised_again(trained, tmp_path):
    ckpt = tmp_path / "net.ckpt"
    shutil.copy(trained, ckpt)
    model = load_checkpoint(ckpt)
    cached_int8_net(str(ckpt), model, TRAINED_DATA)
    with torch.no_grad():
        model.fc8.bias += 1
    save_checkpoint(ckpt, model)
    with pytest.raises(VGGError, match="has no calibrated int8 file yet; pass --calibration SPEC"):
        cached_int8_net(str(ckpt), model, None)
    cached_int8_net(str(ckpt), model, TRAINED_DATA)
    assert int8_metadata(tmp_path / "net.int8.onnx")["checkpoint_sha256"] == engines.file_digest(
        ckpt
    )


def test_predict_int8_needs_calibration_once(trained, tmp_path):
    ckpt = tmp_path / "net.ckpt"
    shutil.copy(trained, ckpt)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(image)
    center = Protocol("center")
    with pytest.raises(VGGError, match="--calibration SPEC"):
        predict_images(str(ckpt), [str(image)], center, precision="int8", device="cpu")
    got, failures, _ = predict_images(
        str(ckpt), [str(image)], center, precision="int8", device="cpu", calibration=TRAINED_DATA
    )
    again, _, _ = predict_images(str(ckpt), [str(image)], center, precision="int8", device="cpu")
    assert failures == [] and got == again


def test_int8_refusals_name_the_flag(monkeypatch):
    with pytest.raises(VGGError, match="--precision int8 runs on the CPU"):
        check_int8(torch.device("cuda"))
    monkeypatch.setattr(vggnet.interop.int8, "cpu_flags", lambda: {"sse2", "avx"})
    monkeypatch.setattr(vggnet.interop.int8.platform, "machine", lambda: "x86_64")
    with pytest.raises(VGGError, match="this CPU has no AVX2"):
        check_int8(CPU)
    monkeypatch.undo()
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(VGGError, match=r"not installed: pip install 'vggnet\[onnx\]'"):
        check_int8(CPU)


@pytest.mark.parametrize(
    ("backend", "precision", "message"),
    [
        ("torch", "int8", "--precision int8 runs on onnxruntime: drop --backend torch"),
        ("onnxruntime", "bf16", "--backend onnxruntime runs fp32 or int8, not bf16"),
        ("tensorrt", "fp32", "--backend tensorrt: choose one of torch, onnxruntime"),
    ],
)
def test_backend_and_precision_that_do_not_go_together(backend, precision, message):
    with pytest.raises(VGGError, match=message):
        engines.resolve_backend(backend, precision)
    assert engines.resolve_backend(None, "int8") == "onnxruntime"
    assert engines.resolve_backend(None, "bf16") == "torch"


def test_int8_crops_run_on_the_plain_graph_and_whole_images_on_the_dense_one(trained):
    """Two graphs, one net: a crop's scores from either are the same up to rounding."""
    model = load_checkpoint(trained).eval()
    crops = val_crops(model)
    net = int8_net(model, crops)
    x = normalised(model, crops[:8])
    plain = net.score_map(x)
    assert plain.shape == (8, 4, 1, 1)
    (direct,) = net.crop_session.run(None, {"image": x.numpy()})
    assert torch.equal(plain[:, :, 0, 0], torch.from_numpy(direct))
    net.crop_session = None
    dense = net.score_map(x)
    assert (plain - dense).abs().max() < 0.05 * dense.abs().max()


@pytest.mark.parametrize("levels", [127, 64])
def test_quantize_columns_by_hand(levels):
    """Symmetric int8 per column: each column's largest magnitude becomes ``levels``."""
    w = np.array([[0.5, -2.0, 0.0], [-0.25, 1.0, 0.0], [0.5 * 3 / (2 * levels), 0, 0]], np.float32)
    q, scale = quantize_columns(w, levels)
    np.testing.assert_allclose(scale, [0.5 / levels, 2.0 / levels, 1.0])  # all-zero column: 1
    half = round(levels / 2)  # 63.5 -> 64: half to even, as 1.5 -> 2
    assert q.dtype == np.int8 and q.tolist() == [[levels, -levels, 0], [-half, half, 0], [2, 0, 0]]


def test_the_saturation_probe_matches_the_cpus_vnni():
    """onnxruntime adds u8 x s8 products exactly with VNNI, and in saturating int16 pairs
    (VPMADDUBSW) without it: the probe agrees with the CPU's flags (x86 only)."""
    import platform

    from vggnet.devices import cpu_flags
    from vggnet.interop.int8 import pair_product, saturating_pairs, weight_levels

    if platform.machine().lower() not in ("x86_64", "amd64") or not cpu_flags():
        pytest.skip("the flags are x86's, read from /proc/cpuinfo")
    vnni = bool({"avx512_vnni", "avx_vnni"} & cpu_flags())
    assert pair_product() == (2 * 255 * 127 if vnni else 32767)  # exact, or int16's limit
    assert saturating_pairs() is not vnni
    assert weight_levels() == (127 if vnni else 64)


@pytest.mark.parametrize("saturating", [pytest.param(False, marks=pytest.mark.slow), True])
def test_int8_weights_fit_the_machines_kernels(trained, tmp_path, monkeypatch, saturating):
    """Without VNNI (an AVX2-only Zen 3), onnxruntime adds pairs of uint8 x int8 products
    in int16, saturating above 32,767; full-range weights changed 1.9% of the demo net's
    top-1 classes on an emulated Zen 3. There every integer product's weights stay within
    +-64 (2 x 255 x 64 fits); with VNNI they use all of +-127. The file records which."""
    import onnx
    from onnx import numpy_helper

    monkeypatch.setattr(vggnet.interop.int8, "saturating_pairs", lambda: saturating)
    model = load_checkpoint(trained).eval()
    quantize_int8(model, val_crops(model), tmp_path / "n.int8.onnx")
    expected = 64 if saturating else 127
    weight_input = {"QLinearConv": 3, "QLinearMatMul": 3, "MatMulInteger": 1}
    for name in ("n.int8.onnx", "n.int8.crops.onnx"):
        proto = onnx.load(str(tmp_path / name))
        weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
        used = [
            weights[node.input[weight_input[node.op_type]]]
            for node in proto.graph.node
            if node.op_type in weight_input
        ]
        assert len(used) >= 4 and all(w.dtype == np.int8 for w in used), name
        largest = max(int(np.abs(w.astype(np.int32)).max()) for w in used)
        assert largest == expected, name
        assert int8_metadata(tmp_path / name)["int8_weight_levels"] == str(expected)


def test_int8_product_per_image_by_hand():
    """fc6's int8 product: each row of x quantised over [0, its max] to uint8, the weight
    int8 per column, computed here in numpy; a row's result ignores the other rows."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(40, 6)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    x = np.abs(rng.normal(size=(3, 40))).astype(np.float32)
    x[2] *= 100  # a row on another scale must not coarsen the others
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["p"]), helper.make_node("Add", ["p", "b"], ["y"])],
        "fc6",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 40])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    int8_products(proto, 127)
    onnx.checker.check_model(proto)
    assert "MatMul" not in [n.op_type for n in proto.graph.node]
    session = vggnet.interop.runtime.runtime_session(proto.SerializeToString())
    (got,) = session.run(None, {"x": x})
    step = x.max(1, keepdims=True) / 255
    xq = np.clip(np.rint(x / step), 0, 255)
    wq, scale = quantize_columns(w, 127)
    expected = (xq @ wq.astype(np.float32)) * step * scale + b
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    (alone,) = session.run(None, {"x": x[:1]})
    np.testing.assert_array_equal(alone, got[:1])


def test_int8_crop_graph_quantises_fc6_per_image_and_keeps_fc7_fc8_fp32(trained, tmp_path):
    """fc6 becomes an int8 MatMulInteger (its fp32 weight gone from the file), fc7 and fc8
    stay fp32 Gemms, the crop graph scores as the torch net, and an image's scores do not
    depend on its batch."""
    import onnx
    from onnx import numpy_helper

    model = load_checkpoint(trained).eval()
    quantize_int8(model, val_crops(model), tmp_path / "n.int8.onnx")
    proto = onnx.load(str(tmp_path / "n.int8.crops.onnx"))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("MatMulInteger") == 1 and "MatMul" not in ops
    assert ops[-3:] == ["Gemm", "Relu", "Gemm"]
    weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    fc6 = [v for k, v in weights.items() if k.endswith("weight_int8")]
    assert [(w.shape, w.dtype) for w in fc6] == [((128, 64), np.int8)]  # (K, N): 2x2x32 in
    fp32 = [v for v in weights.values() if v.dtype == np.float32 and v.ndim == 2]
    assert sorted(v.shape for v in fp32) == [(4, 64), (64, 64)]  # fc8's and fc7's matrices
    session = vggnet.interop.runtime.runtime_session(tmp_path / "n.int8.crops.onnx")
    x = normalised(model, val_crops(model, 16))
    (got,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = fold_batch_norm(model)(x)
    assert (torch.from_numpy(got) - expected).abs().max() < 0.05 * expected.abs().max()
    (alone,) = session.run(None, {"image": x[3:4].numpy()})
    np.testing.assert_array_equal(alone, got[3:4])


def test_int8_net_takes_uint8_crops_of_the_nets_shape():
    model = tiny("A", crop_size=32, fc_width=16)
    with pytest.raises(VGGError, match=r"uint8 crops of shape \(N, 3, 32, 32\)"):
        int8_net(model, torch.zeros(4, 3, 32, 32))
    net = int8_net(model, torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8))
    with pytest.raises(VGGError, match="takes 32x32 crops, got \\(64, 64\\): use score_map"):
        net(torch.zeros(1, 3, 64, 64))
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_eval_cli_int8_end_to_end(trained, tmp_path, run_cli):
    ckpt = tmp_path / "net.ckpt"
    shutil.copy(trained, ckpt)
    out = tmp_path / "r.json"
    status, _, err = run_cli(
        "eval", "--checkpoint", ckpt, "--data", TRAINED_DATA, "--method", "center",
        "--precision", "int8", "--device", "cpu", "--json", out,
    )  # fmt: skip
    assert status == 0, err
    assert "calibrating int8 on 64 train images" in err and (tmp_path / "net.int8.onnx").exists()
    assert json.loads(out.read_text())["images"] == 48
    status, _, err = run_cli(
        "eval", "--checkpoint", ckpt, "--data", TRAINED_DATA, "--precision", "int8",
        "--backend", "torch",
    )  # fmt: skip
    assert status == 2 and "--precision int8 runs on onnxruntime: drop --backend torch" in err


@pytest.mark.parametrize("method", ["center", "dense+multi-crop"])
def test_winograd_scores_as_fp32_does(trained, every_layer_faster, method):
    from vggnet.model.winograd import WinogradConv2d, eligible_convs

    protocol = Protocol(method, [40, 48], grid=2)
    common = {"device": "cpu", "precision": "fp32", "limit": 12}
    direct = evaluate_checkpoints([trained], TRAINED_DATA, protocol, **common)
    fast = evaluate_checkpoints([trained], TRAINED_DATA, protocol, winograd=True, **common)
    torch.testing.assert_close(fast.posteriors, direct.posteriors, rtol=0, atol=1e-5)
    model = load_checkpoint(trained)  # the layers it chose: every one at or above the margin
    chosen = engines.winograd_layers(fold_batch_norm(model))
    eligible = eligible_convs(model)
    assert chosen == eligible[1:] and every_layer_faster == [(32, 32)]  # measured once
    from vggnet.eval.protocols import Engine

    sm = Engine(None, "fp32", winograd="measured").prepare(trained, model, protocol, CPU)
    assert sum(isinstance(m, WinogradConv2d) for m in sm.model.children()) == len(eligible) - 1


def test_winograd_agreement_puts_every_layer_on_winograd(trained, monkeypatch):
    """The rule's figure for Winograd measures every eligible layer, not the speed choice
    (on a small net no layer may be faster, and the figure would compare fp32 with itself)."""
    import vggnet.model.winograd as winograd

    eager_winograd(monkeypatch)
    calls = []
    real = winograd.winograd_conv3x3
    monkeypatch.setattr(winograd, "winograd_conv3x3", lambda *a: calls.append(1) or real(*a))
    row = precision_agreement(trained, TRAINED_DATA, "winograd", method="dense")
    assert calls and row["agreement"] == 100.0 and row["error_change"] == 0 and row["passes"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--precision", "bf16"], "--winograd runs fp32 on torch: pass --precision fp32"),
        (["--precision", "int8"], "--winograd runs fp32 on torch: pass --precision fp32"),
        (["--precision", "fp32", "--backend", "onnxruntime"], "--winograd runs fp32 on torch"),
    ],
)
def test_winograd_refuses_other_precisions(trained, run_cli, flags, message, monkeypatch):
    import vggnet.devices

    monkeypatch.setattr(vggnet.devices, "supports_bf16", lambda device: True)
    status, _, err = run_cli(
        "eval", "--checkpoint", trained, "--data", TRAINED_DATA, "--winograd", *flags
    )
    assert status == 2 and message in err
    with pytest.raises(VGGError, match="--winograd is a CPU path"):
        engines.check_winograd(None, "fp32", torch.device("cuda"))


def test_int8_descriptors_agree_with_fp32_on_a_trained_net(trained, tmp_path):
    """Appendix B's fc7 descriptors, dense at two scales with flips: int8 against torch fp32
    (cosine similarity per image), and the linear SVM on them scores the same."""
    ckpt = tmp_path / "net.ckpt"
    shutil.copy(trained, ckpt)
    model = load_checkpoint(ckpt).eval()
    describe = cached_int8_descriptors(str(ckpt), model, "fc7", TRAINED_DATA)
    runs = {}
    for name, fn in (("fp32", None), ("int8", describe)):
        runs[name] = [
            dataset_features(model, open_source(TRAINED_DATA, split), [40, 48], "fc7", describe=fn)
            for split in ("train", "val")
        ]
    (fp32, labels), (int8, same) = runs["fp32"][1], runs["int8"][1]
    assert np.array_equal(labels, same)
    cosine = (fp32 * int8).sum(1)  # both L2-normalised
    assert cosine.min() > 0.99, cosine.min()
    assert abs(linear_probe(*runs["int8"]) - linear_probe(*runs["fp32"])) <= 100 / 48 + 1e-9


def test_int8_descriptor_file_is_kept_per_layer_and_reused(trained, tmp_path, monkeypatch):
    ckpt = tmp_path / "net.ckpt"
    shutil.copy(trained, ckpt)
    model = load_checkpoint(ckpt)
    calls = []
    real = engines.quantize_descriptors_int8
    monkeypatch.setattr(
        engines, "quantize_descriptors_int8", lambda *a, **k: calls.append(a[1]) or real(*a, **k)
    )
    with pytest.raises(VGGError, match="has no calibrated int8 file yet"):
        cached_int8_descriptors(str(ckpt), model, "fc7", None)
    x = normalised(model, val_crops(model, 4))
    first = cached_int8_descriptors(str(ckpt), model, "fc7", TRAINED_DATA)(x)
    again = cached_int8_descriptors(str(ckpt), model, "fc7", None)(x)
    cached_int8_descriptors(str(ckpt), model, "relu4_2", TRAINED_DATA)
    assert calls == ["fc7", "relu4_2"] and torch.equal(first, again)
    meta = int8_metadata(tmp_path / "net.int8.fc7.onnx")
    assert meta["layer"] == "fc7" and meta["checkpoint_sha256"] == engines.file_digest(ckpt)
    assert (tmp_path / "net.int8.relu4_2.onnx").exists()


def _quantise_in_a_process(ckpt: str, log: str, barrier) -> None:
    """One of several processes (torchrun's ranks) asking for the same int8 file at once."""
    torch.set_num_threads(1)
    real = engines.quantize_descriptors_int8

    def counted(*args, **kwargs):
        with open(log, "a") as f:
            f.write("quantised\n")
        return real(*args, **kwargs)

    engines.quantize_descriptors_int8 = counted
    model = load_checkpoint(ckpt)
    barrier.wait()
    cached_int8_descriptors(ckpt, model, "fc7", TRAINED_DATA)


@pytest.mark.slow
def test_processes_sharing_a_checkpoint_quantise_it_once(trained, tmp_path):
    import multiprocessing

    ckpt, log = tmp_path / "net.ckpt", tmp_path / "log.txt"
    shutil.copy(trained, ckpt)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_quantise_in_a_process, args=(str(ckpt), str(log), barrier))
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert log.read_text().splitlines() == ["quantised"]


def test_features_cli_int8(trained, tmp_path, run_cli):
    ckpt = tmp_path / "net.ckpt"
    shutil.copy(trained, ckpt)
    common = ("features", "--checkpoint", ckpt, "--data", TRAINED_DATA, "--split", "val")
    status, _, err = run_cli(*common, "--out", tmp_path / "fp32.npy", "--device", "cpu")
    assert status == 0, err
    status, _, err = run_cli(
        *common, "--out", tmp_path / "int8.npy", "--device", "cpu", "--precision", "int8"
    )
    assert status == 0, err
    assert "calibrating int8" in err and (tmp_path / "net.int8.fc7.onnx").exists()
    fp32, int8 = np.load(tmp_path / "fp32.npy"), np.load(tmp_path / "int8.npy")
    assert fp32.shape == int8.shape == (48, 64) and (fp32 * int8).sum(1).min() > 0.99
    status, _, err = run_cli(
        *common, "--out", tmp_path / "x.npy", "--precision", "int8", "--layer", "fc9"
    )
    assert status == 2 and "no layer 'fc9'" in err and not (tmp_path / "net.int8.fc9.onnx").exists()
