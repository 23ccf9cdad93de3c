"""int8 inference: static post-training quantisation with onnxruntime's quantiser and runtime.

Why onnxruntime: on these CPUs it was the fastest int8 engine reachable (docs/BENCHMARKS.md,
"int8, onnxruntime and Winograd"): its u8s8 kernels use AVX2 or AVX-512-VNNI, and
PyTorch's own PT2E quantisation has left torch for torchao, which needs a C++ toolchain
at run time to compile.

Static: every activation's range is measured once, on calibration images, and stored in
the graph. Weights are quantised per output channel (int8), activations per tensor
(uint8). On a CPU without VNNI (an AVX2-only Zen 3, say) onnxruntime's u8s8 kernels add
pairs of uint8 x int8 products in int16 (VPMADDUBSW), which saturates above 32,767:
full-range weights changed 1.9% of the demo net's top-1 classes on an emulated Zen 3
(docs/BENCHMARKS.md). There the weights get 7 bits ([-64, 64]: 2 x 255 x 64 fits);
where products add exactly (VNNI), all 8. A probe of the runtime decides
(``saturating_pairs``), and a kept file records its range, so a file quantised on one
kind of CPU is quantised again on the other.

fc8 stays fp32, so the class scores are not rounded to 256 levels. In the crop graph
fc7 stays fp32 too, and fc6 is quantised as it runs: each image's input over its
own range, the weights int8 per column (see ``_fp32_nodes``, ``int8_products``). That
keeps VGG-16's crop graph at 0.4x of its fp32-fc size, quick to open.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from vggnet.data.transforms import BatchNormalizer
from vggnet.devices import cpu_flags
from vggnet.errors import VGGError
from vggnet.interop.export import export_crop_graph, export_descriptor_graph, export_onnx
from vggnet.interop.runtime import OnnxNet, require_onnxruntime, runtime_session
from vggnet.model import VGG, fold_batch_norm

__all__ = [
    "check_int8",
    "int8_metadata",
    "int8_net",
    "quantize_descriptors_int8",
    "quantize_int8",
]

CALIBRATION_BATCH = 32
# The file format every int8 file records; a kept file of another (an older vggnet's
# graphs) is quantised again. 3: the crop graph's fc6 quantised per image as it runs;
# 4: the weights' range recorded (``weight_levels``).
INT8_FORMAT_VERSION = "4"
FULL_LEVELS = 127  # the largest int8 weight where products add exactly
PAIR_SAFE_LEVELS = 64  # where they add in int16 pairs: onnxruntime's reduce_range


def pair_product() -> int:
    """What this machine's onnxruntime makes of 255 x 127 + 255 x 127 (uint8 x int8):
    64,770 where it adds exactly, 32,767 where it adds pairs in saturating int16."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1])],
        [helper.make_tensor("w", TensorProto.INT8, [2, 1], [FULL_LEVELS] * 2)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    session = runtime_session(model.SerializeToString(), threads=1)
    (product,) = session.run(None, {"a": np.full((1, 2), 255, np.uint8)})
    return int(product[0, 0])


@functools.cache
def saturating_pairs() -> bool:
    """Whether this machine's onnxruntime adds pairs of uint8 x int8 products in int16,
    saturating (x86 without VNNI): ``pair_product`` probed once."""
    return pair_product() != 2 * 255 * FULL_LEVELS


def weight_levels() -> int:
    """The largest int8 weight magnitude for this machine's onnxruntime kernels."""
    return PAIR_SAFE_LEVELS if saturating_pairs() else FULL_LEVELS


def int8_format() -> dict[str, str]:
    """What an int8 file quantised here records, and a kept file must match to be used."""
    return {
        "precision": "int8",
        "int8_format": INT8_FORMAT_VERSION,
        "int8_weight_levels": str(weight_levels()),
    }


def int8_unusable(device: torch.device) -> str | None:
    """Why ``--precision int8`` cannot run well on ``device`` here, or None if it can."""
    if device.type != "cpu":
        return (
            f"--precision int8 runs on the CPU (onnxruntime), not {device.type}: pass "
            "--device cpu, or use bf16 there"
        )
    if platform.machine().lower() in ("x86_64", "amd64") and "avx2" not in cpu_flags():
        return (
            "--precision int8: this CPU has no AVX2, so onnxruntime's int8 kernels would run "
            "as slow fallbacks; use --precision fp32"
        )
    try:
        require_onnxruntime("--precision int8")
    except VGGError as err:
        return str(err)
    return None


def check_int8(device: torch.device) -> None:
    """Refuse int8 in one line where no usable int8 engine exists (no onnxruntime, no AVX2, a GPU)."""
    reason = int8_unusable(device)
    if reason:
        raise VGGError(reason)


class CalibrationReader:
    """onnxruntime's calibration data reader (duck-typed): one batch of input per call."""

    def __init__(self, batches: Iterator[dict[str, np.ndarray]]) -> None:
        self.batches = batches

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def _batches(crops: torch.Tensor, model: VGG) -> Iterator[dict[str, np.ndarray]]:
    """The calibration crops as network input, in batches, the way the protocols feed them."""
    normalize = BatchNormalizer(model.preprocessing)
    for chunk in crops.split(CALIBRATION_BATCH):
        yield {"image": normalize(chunk).numpy()}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The quantiser's advice and graph dumps (stdout, root-logger warnings) kept off the console."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def _fp32_nodes(path: Path) -> list[str]:
    """The nodes static quantisation leaves alone. Dense graph: fc8 (the last Conv) and
    the size guard's Adds; descriptor graph: the tapped layer's Conv (its output is the
    descriptor). Crop graph: fc6-fc8 (MatMul, Add, Gemm). On the crop-64 D net's 2,000
    val scenes top-1 agreed with fp32 on 99.55% with fc6-fc8 in fp32, and on 99.30-99.35%
    with them statically int8, or with fc6 and fc7 quantised per batch at run time: under
    the 99.5% rule. With fc6 alone quantised per image (``int8_products``), 99.50%, and a third
    of the file (docs/notebook/2026-12-06-int8-winograd.md)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    if any(n.op_type == "Gemm" for n in graph.node):
        return [n.name for n in graph.node if n.op_type in ("MatMul", "Add", "Gemm")]
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    return [convs[-1], *(n.name for n in graph.node if n.op_type == "Add")]


def quantize_columns(weight: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """A (K, N) fp32 weight as symmetric int8 per column: (int8 weight, (N,) scales), each
    column's largest magnitude mapped to ``levels`` (``weight_levels``)."""
    scale = np.abs(weight).max(axis=0) / levels
    scale[scale == 0] = 1.0
    quantised = np.clip(np.round(weight / scale), -levels, levels).astype(np.int8)
    return quantised, scale.astype(np.float32)


def _per_image_product(name: str, x: str, weight: np.ndarray, bias: str, out: str, levels: int):
    """(nodes, initialisers) computing ``out = x @ weight + bias`` in int8, each image
    (row of ``x``) quantised to uint8 over [0, its own maximum] as it runs, so an image's
    scores never depend on the rest of its batch; the weight int8 per column, to
    ``levels``. ``x`` must be nonnegative (fc6's input, pool5 after a ReLU); a negative
    would clip to 0."""
    from onnx import TensorProto, helper, numpy_helper

    quantised, scale = quantize_columns(weight, levels)
    constants = {
        "weight_int8": quantised,
        "weight_scale": scale,
        "weight_zero": np.zeros(quantised.shape[1], np.int8),
        "axis": np.array([1], np.int64),
        "per_level": np.array(1 / 255, np.float32),
        "eps": np.array(1e-12, np.float32),
    }
    c = {key: f"{name}_{key}" for key in constants}
    t = {key: f"{name}_{key}" for key in ("max", "raw", "step", "x_u8", "acc", "float", "rows")}
    nodes = [
        helper.make_node("ReduceMax", [x, c["axis"]], [t["max"]], keepdims=0),
        helper.make_node("Mul", [t["max"], c["per_level"]], [t["raw"]]),
        helper.make_node("Max", [t["raw"], c["eps"]], [t["step"]]),
        helper.make_node("QuantizeLinear", [x, t["step"]], [t["x_u8"]], axis=0),
        helper.make_node(
            "MatMulInteger", [t["x_u8"], c["weight_int8"], "", c["weight_zero"]], [t["acc"]]
        ),
        helper.make_node("Cast", [t["acc"]], [t["float"]], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", [t["step"], c["axis"]], [t["rows"]]),
        helper.make_node("Mul", [t["float"], t["rows"]], [f"{name}_by_row"]),
        helper.make_node("Mul", [f"{name}_by_row", c["weight_scale"]], [f"{name}_scaled"]),
        helper.make_node("Add", [f"{name}_scaled", bias], [out]),
    ]
    return nodes, [numpy_helper.from_array(v, c[k]) for k, v in constants.items()]


def int8_products(proto, levels: int) -> None:
    """Rewrite, in place, every MatMul by a constant followed by a bias Add (the crop
    graph's fc6) as ``_per_image_product``, its weights to ``levels``."""
    from onnx import numpy_helper

    graph = proto.graph
    weights = {init.name: init for init in graph.initializer}
    users = {name: node for node in graph.node for name in node.input}
    replaced: dict[str, list] = {}  # a node's first output -> the nodes in its place
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in weights:
            continue
        add = users[node.output[0]]
        bias = next(name for name in add.input if name != node.output[0])
        if add.op_type != "Add" or bias not in weights:
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])
        nodes, constants = _per_image_product(
            node.name, node.input[0], weight, bias, add.output[0], levels
        )
        graph.initializer.extend(constants)
        replaced[node.output[0]], replaced[add.output[0]] = nodes, []  # outputs are unique
    kept = [new for node in graph.node for new in replaced.get(node.output[0], [node])]
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in graph.node for name in node.input}
    initializers = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def crops_file(path: str | os.PathLike) -> Path:
    """The crop-size graph kept beside a dense int8 file: NAME.onnx -> NAME.crops.onnx."""
    return _beside(path, "crops")


def descriptor_file(path: str | os.PathLike, layer: str) -> Path:
    """The descriptor graph of ``layer`` kept beside a dense int8 file: NAME.onnx ->
    NAME.LAYER.onnx."""
    return _beside(path, layer)


def _beside(path: str | os.PathLike, part: str) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}.{part}{path.suffix}")


def _quantize_graph(fp32: Path, out: Path, model: VGG, crops: torch.Tensor, meta: dict) -> None:
    """``fp32`` quantised to ``out`` with onnxruntime's static quantiser, ``meta`` (which
    names the weights' range) added."""
    import onnx
    from onnxruntime import quantization as q

    levels = int(meta["int8_weight_levels"])
    staged = out.with_name(out.name + ".staged")
    with quiet():
        q.quantize_static(
            str(fp32),
            str(staged),
            CalibrationReader(_batches(crops, model)),
            quant_format=q.QuantFormat.QOperator,
            per_channel=True,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            reduce_range=levels == PAIR_SAFE_LEVELS,
            nodes_to_exclude=_fp32_nodes(fp32),
            calibrate_method=q.CalibrationMethod.MinMax,
        )
    proto = onnx.load(str(staged))
    int8_products(proto, levels)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(proto, str(staged))
    os.replace(staged, out)


def quantize_int8(
    model: VGG, crops: torch.Tensor, path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``model``'s dense graph quantised to int8, calibrated on ``crops``, and beside
    it (``crops_file``) its crop-size graph, the faster one for crops.

    ``crops``: (N, C, crop, crop) uint8 calibration images (a few hundred training
    crops); ``metadata``: extra ``metadata_props`` (what the calibration was). Both files
    have the fp32 export's card; each is written atomically, the crop graph last (so a
    current crop graph vouches for the dense one beside it). Returns ``path``.
    """
    path, folded = Path(path), _calibrated_net(model, crops)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        dense, plain = Path(tmp) / "dense.onnx", Path(tmp) / "plain.onnx"
        export_onnx(folded, dense)
        export_crop_graph(folded, plain)
        meta = {**int8_metadata(dense), **int8_format(), **(metadata or {})}
        _quantize_graph(dense, path, model, crops, meta)
        _quantize_graph(plain, crops_file(path), model, crops, meta)
    return path


def quantize_descriptors_int8(
    model: VGG,
    layer: str,
    crops: torch.Tensor,
    path: str | os.PathLike,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``model``'s descriptor graph of ``layer`` (``export_descriptor_graph``: the
    layer's map averaged over positions, any input size) quantised to int8, calibrated on
    ``crops`` as ``quantize_int8``; the tapped layer stays fp32. Written atomically;
    returns ``path``."""
    path, folded = Path(path), _calibrated_net(model, crops)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        graph = Path(tmp) / "descriptor.onnx"
        export_descriptor_graph(folded, layer, graph)
        meta = {**int8_format(), "layer": layer, **(metadata or {})}
        _quantize_graph(graph, path, model, crops, meta)
    return path


def _calibrated_net(model: VGG, crops: torch.Tensor) -> VGG:
    """``model`` with batch norm folded, once ``crops`` are checked to be its calibration
    images: uint8, (N, C, crop, crop)."""
    require_onnxruntime("--precision int8")
    crop = model.spec.crop_size
    if crops.dtype != torch.uint8 or crops.shape[1:] != (model.spec.in_channels, crop, crop):
        raise VGGError(
            f"int8 calibration takes uint8 crops of shape (N, {model.spec.in_channels}, "
            f"{crop}, {crop}), got {crops.dtype} {tuple(crops.shape)}"
        )
    return fold_batch_norm(model.eval())


def int8_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of a quantised file (empty if it cannot be read)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # a truncated or foreign file: treated as absent
        return {}
    return {p.key: p.value for p in proto.metadata_props}


def int8_net(model: VGG, crops: torch.Tensor, threads: int | None = None) -> OnnxNet:
    """An int8 copy of ``model``, calibrated on ``crops``, run by onnxruntime on ``threads``
    CPU cores (default: torch's thread count).

    ``crops``: (N, C, crop, crop) uint8 images in the net's domain (a few hundred training
    crops). Returns an ``OnnxNet``: call it on normalised crops for (N, K) class scores,
    or ``score_map`` on whole images for the dense map.
    """
    check_int8(torch.device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        path = quantize_int8(model, crops, Path(tmp) / "int8.onnx")
        session = runtime_session(path, threads)
        crop_session = runtime_session(crops_file(path), threads)
    return OnnxNet(session, model.spec, model.card, "int8", crop_session=crop_session)


def describe_calibration(data: str, split: str, indices: list[int], q: int) -> dict[str, str]:
    """The metadata that says which images calibrated a file (and so when it is stale)."""
    return {"calibration": json.dumps({"data": data, "split": split, "q": q, "indices": indices})}
