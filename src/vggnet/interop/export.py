"""Export to ONNX (the dense net, one self-contained file with its card); safetensors files
are written by ``vggnet.checkpoint``."""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import json
import os
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

import vggnet
from vggnet.checkpoint import export_safetensors
from vggnet.errors import VGGError
from vggnet.model import VGG, to_dense

__all__ = ["ONNX_OUTPUTS", "export_onnx", "export_safetensors", "onnx_metadata"]

# What the graph returns: the class score map (N, K, h, w), or the dense protocol's
# posteriors (N, K): the map averaged over positions, then soft-max.
ONNX_OUTPUTS = ("scores", "posteriors")
PROTOBUF_LIMIT = 2**31 - 1  # a single ONNX file holds at most 2 GB


class DensePosteriors(nn.Module):
    """The dense net, its score map averaged over positions and soft-maxed (N, K)."""

    def __init__(self, model: VGG) -> None:
        super().__init__()
        self.dense = to_dense(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x).mean(dim=(2, 3)).softmax(1)


class DenseTap(nn.Module):
    """The dense net up to one named layer, its map averaged over positions: (N, C), an
    Appendix B descriptor before flips, scales and L2 normalisation."""

    def __init__(self, model: VGG, layer: str) -> None:
        super().__init__()
        names = [name for name, _ in model.named_children()]
        if layer not in names or layer == "flatten":
            raise VGGError(f"no layer {layer!r} in config {model.spec.config}")
        children = [module for _, module in model.named_children()][: names.index(layer) + 1]
        flatten = names.index("flatten")
        self.model = model  # registers the parameters; the lists below only order them
        self.convs, self.fcs = children[:flatten], children[flatten + 1 :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.convs:
            x = layer(x)
        if self.fcs:
            x = self.model._fc_as_convolutions(x, self.fcs)
        return x.mean(dim=(2, 3))


class MatMulHead(nn.Module):
    """The plain net (crop-size input) with fc6 as a matrix product plus bias (ONNX MatMul
    and Add) and fc7, fc8 as Gemms: the crop graph's shape, in which int8 quantises fc6
    per image as it runs (``vggnet.interop.int8.int8_products``)."""

    def __init__(self, model: VGG) -> None:
        super().__init__()
        self.model = model
        self.first = next(n for n, m in model.named_children() if isinstance(m, nn.Linear))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name, layer in self.model.named_children():
            if name == self.first:
                assert isinstance(layer, nn.Linear)
                x = torch.matmul(x, layer.weight.t()) + layer.bias
                continue
            x = layer(x)
        return x


class SizeGuard(nn.Module):
    """Refuse, inside the graph, an input smaller than the crop size.

    ONNX has no assertion; a zero-filled tensor of H - crop (and W - crop) elements,
    summed into the output, makes the runtime fail on a negative size instead of
    returning a map computed from too few pixels.
    """

    def __init__(self, net: nn.Module, crop: int) -> None:
        super().__init__()
        self.net, self.crop = net, crop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        guard = x.new_zeros(height - self.crop).sum() + x.new_zeros(width - self.crop).sum()
        return self.net(x) + guard


def onnx_metadata(model: VGG, output: str) -> dict[str, str]:
    """The card and spec as ONNX ``metadata_props`` (string values; JSON where structured)."""
    card = model.card.to_dict()
    return {
        "vggnet_version": vggnet.__version__,
        "spec": json.dumps(asdict(model.spec)),
        "classes": json.dumps(card.get("classes")),
        "preprocessing": json.dumps(card["preprocessing"]),
        "train_scale": json.dumps(card.get("train_scale")),
        "output": output,
        "input": f"image: (N, {model.spec.in_channels}, H, W) float32, pixels in 0..1 "
        "normalised by 'preprocessing' (mean, std, channel order); H and W at least "
        f"{model.spec.crop_size} (a smaller input fails: a ConstantOfShape node gets a "
        "negative size)",
        "min_input_size": str(model.spec.crop_size),
    }


def _export_graph(
    net: nn.Module, model: VGG, path: Path, output: str, opset: int, any_size: bool = True
) -> None:
    """torch.onnx's export of ``net`` with dynamic N, H, W (files may use external data);
    without ``any_size``, H and W are the crop size."""
    crop = model.spec.crop_size
    x = torch.zeros(1, model.spec.in_channels, crop, crop)
    kwargs: dict[str, Any] = {
        "input_names": ["image"],
        "output_names": [output],
        "opset_version": opset,
    }
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        dims = {0: torch.export.Dim("N", min=1)}
        if any_size:
            dims |= {2: torch.export.Dim("H", min=crop), 3: torch.export.Dim("W", min=crop)}
        torch.onnx.export(net, (x,), str(path), dynamic_shapes={"x": dims}, dynamo=True, **kwargs)
    else:  # torch < 2.5: the TorchScript exporter
        axes = {"image": {0: "N"}, output: {0: "N"}}
        if any_size:
            axes["image"].update({2: "H", 3: "W"})
        if output == "scores" and any_size:
            axes[output].update({2: "h", 3: "w"})
        torch.onnx.export(net, (x,), str(path), dynamic_axes=axes, **kwargs)


def _quiet_export(
    net: nn.Module, model: VGG, path: Path, output: str, opset: int, any_size: bool = True
) -> None:
    """``_export_graph`` with the exporter's chatter captured, its failure one line."""
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _export_graph(net, model, path, output, opset, any_size)
    except Exception as err:
        raise VGGError(
            f"ONNX export failed: {err}; the exporter said: {chatter.getvalue()[-500:]}"
        ) from None


def _export_copy(model: VGG) -> VGG:
    """A CPU copy in eval mode and the default memory format: the exporter fails on
    channels_last weights (a net trained that way stores them so), and the caller's net
    keeps its format."""
    return copy.deepcopy(model).cpu().eval().to(memory_format=torch.contiguous_format)


def export_crop_graph(model: VGG, path: str | os.PathLike, opset: int = 18) -> None:
    """Write the plain net (crop-size input, fc layers as matrix products: ``MatMulHead``)
    as ONNX: the graph int8 scores crops with, since onnxruntime runs a quantised fc6 as a
    matrix product faster than as the dense graph's 7x7 convolution (docs/BENCHMARKS.md)."""
    model = _export_copy(model)
    _quiet_export(MatMulHead(model).eval(), model, Path(path), "scores", opset, any_size=False)


def export_descriptor_graph(
    model: VGG, layer: str, path: str | os.PathLike, opset: int = 18
) -> None:
    """Write ``DenseTap(model, layer)`` as ONNX: input ``image`` (N, C, H, W) of any size
    the layer takes, output ``descriptor`` (N, C_layer), the layer's map averaged over
    positions (the graph int8 describes images with)."""
    model = _export_copy(model)
    _quiet_export(DenseTap(model, layer).eval(), model, Path(path), "descriptor", opset)


def export_onnx(
    model: VGG, path: str | os.PathLike, output: str = "scores", opset: int = 18
) -> None:
    """Write ``model`` as one ONNX file that deploys alone.

    ``output``: "scores", the dense class score map (N, K, h, w) (for a localisation net,
    its box map (N, 4K or 4, h, w)); or "posteriors", the dense protocol's class posteriors
    (N, K). The input ``image`` is (N, C, H, W),
    preprocessed, with N, H and W dynamic; H or W below the crop size makes the runtime
    fail rather than score too few pixels. The card (classes,
    preprocessing, training scale, vggnet version) is in the file's ``metadata_props``.
    A net over 2 GB (protobuf's limit) keeps its weights beside it in ``PATH.data``.
    """
    try:
        import onnx
    except ImportError:
        raise VGGError("ONNX export needs the onnx package: pip install 'vggnet[onnx]'") from None
    if output not in ONNX_OUTPUTS:
        raise VGGError(f"--output {output}: choose one of {', '.join(ONNX_OUTPUTS)}")
    if output == "posteriors" and model.card.box_regression is not None:
        raise VGGError(
            "--output posteriors: a localisation net predicts boxes, not classes; "
            "export its box map with --output scores"
        )
    model = _export_copy(model)
    dense = to_dense(model) if output == "scores" else DensePosteriors(model)
    net = SizeGuard(dense, model.spec.crop_size).eval()
    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "graph.onnx"
        _quiet_export(net, model, raw, output, opset)
        proto = onnx.load(str(raw))  # with any external data, now in memory
        for key, value in onnx_metadata(model, output).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        big = proto.ByteSize() > PROTOBUF_LIMIT
        staged = Path(tmp) / path.name
        onnx.save_model(proto, str(staged), save_as_external_data=big, location=f"{path.name}.data")
        if big:
            os.replace(Path(tmp) / f"{path.name}.data", path.with_name(f"{path.name}.data"))
        os.replace(staged, path)
