"""Export to ONNX (the dense net); safetensors files are written by ``vggnet.checkpoint``."""

from __future__ import annotations

import inspect
import os
from typing import Any

import torch

from vggnet.checkpoint import export_safetensors
from vggnet.model import VGG, to_dense

__all__ = ["export_onnx", "export_safetensors"]


def export_onnx(model: VGG, path: str | os.PathLike, opset: int = 18) -> None:
    """The dense net as ONNX: input ``image`` (N, C, H, W) preprocessed, output ``scores``
    (N, K, h, w), with N, H and W dynamic (H, W >= the crop size)."""
    dense = to_dense(model.cpu().eval()).eval()
    crop = model.spec.crop_size
    x = torch.zeros(1, model.spec.in_channels, crop, crop)
    kwargs: dict[str, Any] = {
        "input_names": ["image"],
        "output_names": ["scores"],
        "opset_version": opset,
    }
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        dims = {
            0: torch.export.Dim("N", min=1),
            2: torch.export.Dim("H", min=crop),
            3: torch.export.Dim("W", min=crop),
        }
        torch.onnx.export(dense, (x,), str(path), dynamic_shapes={"x": dims}, dynamo=True, **kwargs)
    else:  # torch < 2.5: the TorchScript exporter
        axes = {"image": {0: "N", 2: "H", 3: "W"}, "scores": {0: "N", 2: "h", 3: "w"}}
        torch.onnx.export(dense, (x,), str(path), dynamic_axes=axes, **kwargs)
