"""Exports: safetensors (weights + the checkpoint's metadata as JSON) and ONNX (the dense net)."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import torch

from vggnet.errors import VGGError
from vggnet.model import VGG, to_dense

SAFETENSORS_KEY = "vggnet"


def export_safetensors(model: VGG, path: str | os.PathLike) -> None:
    """Weights in safetensors; everything else of a checkpoint in its metadata (no code, no pickle)."""
    from safetensors.torch import save_file

    from vggnet.checkpoint import checkpoint_payload

    payload = checkpoint_payload(model)
    tensors = {k: v.contiguous() for k, v in payload.pop("state_dict").items()}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={SAFETENSORS_KEY: json.dumps(payload)})
        os.replace(tmp, path)
    except OSError as err:
        raise VGGError(f"cannot write {path}: {err.strerror}") from None


def is_safetensors(path: str | os.PathLike) -> bool:
    """Whether a file starts like safetensors: an 8-byte header length, then a JSON object."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return (
        len(head) == 9
        and head[8:9] == b"{"
        and 0 < int.from_bytes(head[:8], "little") < 100_000_000
    )


def read_safetensors(path: str | os.PathLike) -> dict:
    """A checkpoint payload (as ``read_checkpoint`` returns) from a safetensors export."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k).clone() for k in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as err:  # a damaged header or body
        raise VGGError(
            f"{path} is not a readable safetensors file ({str(err).splitlines()[0]})"
        ) from None
    if SAFETENSORS_KEY not in metadata:
        raise VGGError(f"{path} is a safetensors file without vggnet metadata: not a vggnet export")
    payload = json.loads(metadata[SAFETENSORS_KEY])
    payload["state_dict"] = tensors
    return payload


def export_onnx(model: VGG, path: str | os.PathLike, opset: int = 18) -> None:
    """The dense net as ONNX: input ``image`` (N, C, H, W) preprocessed, output ``scores``
    (N, K, h, w), with N, H and W dynamic (H, W >= the crop size)."""
    dense = to_dense(model.cpu().eval()).eval()
    crop = model.spec.crop_size
    x = torch.zeros(1, model.spec.in_channels, crop, crop)
    kwargs = {"input_names": ["image"], "output_names": ["scores"], "opset_version": opset}
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
