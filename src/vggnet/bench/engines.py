"""Every inference path on one VGG-16, same weights and inputs, interleaved repeats:
torchvision fp32, vggnet on torch (fp32 and inference's default precision), onnxruntime
fp32 and int8 on a plain export of torchvision's net, PyTorch's own int8 engine, vggnet
int8, and vggnet fp32 with Winograd 3x3 convolutions in the layers measured faster on
this machine. Each also as effective GFLOP/s (the direct convolution's FLOPs over the
time taken) against this machine's measured GEMM rate, the stand-in for its peak: fp32
(torch) for the float paths, int8 (onnxruntime) for the int8 ones. Then dense
evaluation (a whole image and its mirror) at Q = 256, 384, 512 on each of vggnet's paths.

    python -m vggnet.bench.engines [--batch 8] [--repeats 3] [--json FILE]

"onnxruntime int8" is what a user gets from onnxruntime's own quantiser with the settings
that are fastest on x86 (QOperator, u8 activations, s8 per-channel weights), every layer
quantised; "torch int8" is PyTorch's own eager int8 engine on torchvision's net
(convolutions int8, fc layers fp32); "vggnet int8" is ``--precision int8`` (onnxruntime
on vggnet's crop graph, fc6-fc8 left in fp32; dense evaluation runs its dense graph).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import cast

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vggnet.bench.common import interleaved, machine, ratios, summary
from vggnet.bench.forward import model_pair
from vggnet.data.transforms import BatchNormalizer
from vggnet.devices import inference_context, inference_precision
from vggnet.eval.engines import winograd_layers
from vggnet.interop.int8 import CalibrationReader, int8_net, quiet
from vggnet.interop.runtime import onnx_net, runtime_session
from vggnet.model import VGG, to_dense
from vggnet.model.winograd import with_winograd
from vggnet.preprocessing import Preprocessing

DENSE_SCALES = (256, 384, 512)


def fp32_peak(size: int = 2048, iters: int = 5) -> float:
    """GFLOP/s of the best of ``iters`` fp32 ``size``-square matrix products: what this
    machine's FMA units deliver to torch's GEMM, the measured stand-in for their peak (a
    lower bound of it: onnxruntime's fp32 convolutions ran faster here)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(iters):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def int8_peak(size: int = 2048, iters: int = 5) -> float:
    """Operations per second (GOP/s, 2 per multiply-add) of the best of ``iters`` u8 x s8
    ``size``-square matrix products in onnxruntime (MatMulInteger): the int8 paths' peak,
    measured as ``fp32_peak`` is, on the kernels their convolutions use."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.integers(-128, 128, (size, size), dtype=np.int8), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["C"])],
        "int8_gemm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("C", TensorProto.INT32, [size, size])],
        [weights],
    )
    # IR 7 / opset 13: read by every onnxruntime this project supports
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    onnx.checker.check_model(proto)
    session = runtime_session(proto.SerializeToString())
    a = rng.integers(0, 256, (size, size), dtype=np.uint8)
    session.run(None, {"A": a})
    best = float("inf")
    for _ in range(iters):
        start = time.perf_counter()
        session.run(None, {"A": a})
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def flops_per_image(model: nn.Module, height: int, width: int, dense: bool = False) -> float:
    """Floating-point operations (2 per multiply-add) of one ``height`` x ``width`` image,
    counted by torch's FLOP counter on a meta copy of ``model``."""
    meta = copy.deepcopy(model).to("meta")
    net = to_dense(meta) if dense and isinstance(meta, VGG) else meta
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.empty(1, 3, height, width, device="meta"))
    return float(counter.get_total_flops())


def onnx_baselines(reference: nn.Module, crops: torch.Tensor, folder: Path) -> dict[str, object]:
    """onnxruntime fp32 and int8 sessions of a plain export of torchvision's net."""
    from onnxruntime import quantization as q

    fp32, int8 = folder / "tv.onnx", folder / "tv.int8.onnx"
    x = torch.zeros(1, *crops.shape[1:])
    with quiet():
        torch.onnx.export(
            reference,
            (x,),
            str(fp32),
            input_names=["image"],
            dynamic_shapes={"x": {0: torch.export.Dim("N", min=1)}},
        )
        batches = iter([{"image": _as_input(chunk)} for chunk in crops.split(32)])
        q.quantize_static(
            str(fp32),
            str(int8),
            CalibrationReader(batches),
            quant_format=q.QuantFormat.QOperator,
            per_channel=True,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
        )
    return {"onnxruntime fp32": runtime_session(fp32), "onnxruntime int8": runtime_session(int8)}


class _QuantizedFeatures(nn.Module):
    """torchvision's VGG with its conv stack in PyTorch's eager int8 (QuantStub ->
    quantised ConvReLU2d / pools -> DeQuantStub) and its classifier in fp32."""

    def __init__(self, reference: nn.Module) -> None:
        super().__init__()
        from torch.ao import quantization as tq

        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.features: nn.Module = copy.deepcopy(cast(nn.Module, reference.features))
        self.avgpool: nn.Module = cast(nn.Module, reference.avgpool)
        self.classifier: nn.Module = cast(nn.Module, reference.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dequant(self.features(self.quant(x)))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def torch_int8(reference: nn.Module, crops: torch.Tensor) -> nn.Module | None:
    """PyTorch's own int8 (eager static quantisation, its default x86 engine: fbgemm and
    oneDNN kernels) of torchvision's net, convolutions int8 and fc layers fp32 as in
    vggnet int8's crop graph; calibrated on ``crops``. None where torch lacks it."""
    try:
        from torch.ao import quantization as tq
    except ImportError:
        return None
    if "x86" not in torch.backends.quantized.supported_engines:
        return None
    torch.backends.quantized.engine = "x86"
    net = _QuantizedFeatures(reference).eval()
    layers = list(net.features.children())
    pairs = [[str(i), str(i + 1)] for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    with quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated since torch 2.10, still shipped
        tq.fuse_modules(net.features, pairs, inplace=True)
        net.qconfig = tq.get_default_qconfig("x86")
        net.classifier.qconfig = None  # type: ignore[assignment]  # torch.ao reads it
        tq.prepare(net, inplace=True)
        with torch.no_grad():
            for chunk in crops.split(32):
                net(torch.from_numpy(_as_input(chunk)))
        tq.convert(net, inplace=True)
    return net


def _as_input(images: torch.Tensor):
    """uint8 images as torchvision's normalised input (a numpy array for onnxruntime)."""
    return BatchNormalizer(Preprocessing.torchvision())(images).numpy()


def rate(run: Callable[[], object], images: int, iters: int) -> Callable[[], float]:
    """A rate function: images/s over ``iters`` calls of ``run`` after one untimed call."""

    def measure() -> float:
        run()
        start = time.perf_counter()
        for _ in range(iters):
            run()
        return iters * images / (time.perf_counter() - start)

    return measure


def forward_paths(
    reference: nn.Module,
    ours: VGG,
    sessions: dict,
    int8,
    x: torch.Tensor,
    precision: str,
    quantized: nn.Module | None = None,
) -> dict[str, Callable[[], object]]:
    """Each path's forward pass on the batch ``x`` (one untimed pass warms each);
    ``quantized``: ``torch_int8``'s net, if torch has one."""
    tuned = copy.deepcopy(ours).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    winograd = with_winograd(ours, winograd_layers(ours)).to(memory_format=torch.channels_last)
    array = x.numpy()

    def torch_pass(model: nn.Module, inputs: torch.Tensor, p: str) -> Callable[[], object]:
        def run() -> object:
            with inference_context(p, inputs.device):
                return model(inputs)

        return run

    return {
        "torchvision fp32": torch_pass(reference, x, "fp32"),
        "vggnet fp32": torch_pass(tuned, x_cl, "fp32"),
        "vggnet fp32 winograd": torch_pass(winograd, x_cl, "fp32"),
        **(
            {f"vggnet {precision}": torch_pass(tuned, x_cl, precision)}
            if precision != "fp32"
            else {}
        ),
        **{
            name: (lambda s=s: s.run(None, {"image": array}))  # type: ignore[misc]
            for name, s in sessions.items()
        },
        **({"torch int8": torch_pass(quantized, x_cl, "fp32")} if quantized is not None else {}),
        "vggnet int8": lambda: int8(x),
    }


def dense_paths(ours: VGG, int8, precision: str, q: int) -> dict[str, Callable[[], object]]:
    """Dense evaluation of one Q x 4Q/3 image and its mirror on each of vggnet's paths."""
    image = torch.randn(1, 3, q, round(q * 4 / 3))
    pair = torch.cat([image, image.flip(-1)])
    dense = to_dense(copy.deepcopy(ours).to(memory_format=torch.channels_last))
    pair_cl = pair.contiguous(memory_format=torch.channels_last)
    winograd = to_dense(
        with_winograd(ours, winograd_layers(ours)).to(memory_format=torch.channels_last)
    )
    fp32_ort = onnx_net(ours)

    def on_torch(p: str, net: nn.Module = dense, x: torch.Tensor = pair_cl) -> Callable[[], object]:
        def run() -> object:
            with inference_context(p, x.device):
                return net(x)

        return run

    paths = {
        "vggnet fp32": on_torch("fp32"),
        "vggnet fp32 winograd": on_torch("fp32", winograd),
    }
    if precision != "fp32":
        paths[f"vggnet {precision}"] = on_torch(precision)
    paths["onnxruntime fp32"] = lambda: fp32_ort.score_map(pair)
    paths["vggnet int8"] = lambda: int8.score_map(pair)
    return paths


def compare_engines(
    batch: int = 8,
    *,
    size: int = 224,
    width: float = 1.0,
    classes: int = 1000,
    precision: str = "auto",
    repeats: int = 3,
    iters: int = 2,
    scales: tuple[int, ...] = DENSE_SCALES,
    gemm_size: int = 2048,
) -> dict:
    """Images/s, ratios to torchvision fp32 and to vggnet fp32 dense, and GFLOP/s of every
    path (against fp32 and int8 GEMM rates measured on ``gemm_size``-square matrices)."""
    cpu = torch.device("cpu")
    precision = inference_precision(precision, cpu)
    torch.manual_seed(0)
    reference, ours = model_pair(width, size, classes)
    assert isinstance(ours, VGG)
    crops = torch.randint(0, 256, (64, 3, size, size), dtype=torch.uint8)
    int8 = int8_net(ours, crops)
    x = torch.from_numpy(_as_input(crops[:batch]))
    with tempfile.TemporaryDirectory() as tmp:
        sessions = onnx_baselines(reference, crops, Path(tmp))
    quantized = torch_int8(reference, crops)
    paths = forward_paths(reference, ours, sessions, int8, x, precision, quantized)
    forward = interleaved({k: rate(v, batch, iters) for k, v in paths.items()}, repeats)
    peaks = {"fp32": fp32_peak(gemm_size), "int8": int8_peak(gemm_size)}
    flops = flops_per_image(reference, size, size)
    report: dict = {
        "batch": batch,
        "size": size,
        "fp32_peak_gflops": peaks["fp32"],
        "int8_peak_gops": peaks["int8"],
        "flops_per_image": flops,
        "forward": _rows(forward, "torchvision fp32", flops, peaks),
        "dense": [],
    }
    for q in scales:
        dense = interleaved(
            {k: rate(v, 1, iters) for k, v in dense_paths(ours, int8, precision, q).items()},
            repeats,
        )
        q_flops = 2 * flops_per_image(ours, q, round(q * 4 / 3), dense=True)  # image + mirror
        report["dense"].append({"q": q, **_rows(dense, "vggnet fp32", q_flops, peaks)})
    return report


def _rows(
    rates: dict[str, list[float]], baseline: str, flops: float, peaks: dict[str, float]
) -> dict:
    """Per path: images/s per repeat, the ratio to ``baseline`` per repeat, effective
    GFLOP/s (median), and its share of the peak of the path's arithmetic (``peaks``: the
    measured fp32 and int8 GEMM rates)."""
    out = {}
    for name, values in rates.items():
        median = sorted(values)[len(values) // 2]
        gflops = median * flops / 1e9
        arithmetic = "int8" if "int8" in name else "fp32"
        out[name] = {
            "images_per_s": values,
            "ratio": ratios(values, rates[baseline]),
            "gflops": gflops,
            "peak": arithmetic,
            "fraction_of_peak": gflops / peaks[arithmetic],
        }
    return {"paths": out}


def print_engines(report: dict) -> None:
    """The forward table and the dense table, one line per path."""
    print(
        f"forward {report['size']}x{report['size']} batch {report['batch']} "
        f"({report['flops_per_image'] / 1e9:.1f} GFLOP an image; GEMM measured at "
        f"{report['fp32_peak_gflops']:.0f} GFLOP/s fp32, {report['int8_peak_gops']:.0f} GOP/s int8)"
    )
    _print_paths(report["forward"]["paths"], "torchvision fp32")
    for row in report["dense"]:
        print(f"dense Q={row['q']} (image + mirror), ratio to vggnet fp32")
        _print_paths(row["paths"], "vggnet fp32")


def _print_paths(paths: dict, baseline: str) -> None:
    for name, p in paths.items():
        print(
            f"  {name:18s} images/s {summary(p['images_per_s'])}   /{baseline}: "
            f"{summary(p['ratio'])}   {p['gflops']:7.1f} GFLOP/s ({100 * p['fraction_of_peak']:.0f}% "
            f"of the {p['peak']} GEMM rate)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--json")
    args = parser.parse_args()
    report = compare_engines(
        args.batch, precision=args.precision, repeats=args.repeats, iters=args.iters
    )
    report["machine"] = machine(torch.device("cpu"))
    print(f"inference paths on {report['machine']}")
    print_engines(report)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), **report}, indent=1))


if __name__ == "__main__":
    main()
