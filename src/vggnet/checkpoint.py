"""Checkpoint format v1: one file with the weights and everything needed to use them."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from vggnet.errors import VGGError
from vggnet.model import VGG, VGGSpec
from vggnet.preprocessing import Preprocessing
from vggnet.serialization import atomic_save, safe_load

FORMAT = "vggnet-checkpoint"
VERSION = 1


def checkpoint_payload(model: VGG, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plain-data dict a checkpoint file holds (tensors, numbers, strings, lists, dicts)."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": asdict(model.spec),
        "classes": list(model.classes) if model.classes is not None else None,
        "preprocessing": model.preprocessing.to_dict(),
        "train_scale": list(model.train_scale) if model.train_scale is not None else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if extra:
        payload.update(extra)
    return payload


def save_checkpoint(
    path: str | os.PathLike, model: VGG, extra: dict[str, Any] | None = None
) -> None:
    """Write ``model`` (plus optional ``extra`` entries, e.g. training state) atomically."""
    atomic_save(checkpoint_payload(model, extra), path)


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint file's dict without building the model.

    Reads vggnet's torch files and its safetensors exports alike.
    """
    from vggnet.interop.export import is_safetensors, read_safetensors

    if is_safetensors(path):
        payload = read_safetensors(path)
        payload["state_dict"] = {k: v.to(map_location) for k, v in payload["state_dict"].items()}
    else:
        payload = safe_load(path, "checkpoint", map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and any(isinstance(v, torch.Tensor) for v in payload.values()):
            hint = "; it looks like a bare state dict: convert it with `vggnet import`"
        raise VGGError(f"{path} is not a vggnet checkpoint{hint}")
    version = payload.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise VGGError(
            f"checkpoint {path} has format version {version!r}, newer than this vggnet "
            f"reads ({VERSION}): upgrade vggnet"
        )
    missing = [k for k in ("model", "state_dict", "preprocessing") if k not in payload]
    if missing:
        raise VGGError(f"checkpoint {path} is incomplete: missing {', '.join(missing)}")
    return payload


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` strictly, naming the layer and both shapes on any mismatch."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            extra = ", ".join(unexpected[:4]) + (" ..." if len(unexpected) > 4 else "")
            parts.append(f"unexpected {extra}")
        raise VGGError(f"{source} does not fit the model: {'; '.join(parts)}")
    for key, value in expected.items():
        if tuple(state_dict[key].shape) != tuple(value.shape):
            raise VGGError(
                f"{source}: layer {key} has shape {tuple(state_dict[key].shape)} in the file "
                f"but {tuple(value.shape)} in the model"
            )
    # A model built on the meta device takes the tensors as they are; a real one copies them
    # into its own (aligned) storage, so kernels see the same memory as in an unbroken run.
    on_meta = any(t.is_meta for t in model.state_dict().values())
    model.load_state_dict(state_dict, strict=True, assign=on_meta)


def model_from_payload(payload: dict, source: str) -> VGG:
    """Build the model a checkpoint dict describes and load its weights and metadata."""
    try:
        spec = VGGSpec(**payload["model"])
    except TypeError as err:
        raise VGGError(f"{source} has an invalid model description: {err}") from None
    with torch.device("meta"):
        model = VGG(spec)
    load_weights(model, payload["state_dict"], source)
    model.classes = list(payload["classes"]) if payload.get("classes") is not None else None
    model.preprocessing = Preprocessing.from_dict(payload["preprocessing"])
    scale = payload.get("train_scale")
    model.train_scale = (int(scale[0]), int(scale[1])) if scale is not None else None
    if model.classes is not None and len(model.classes) != spec.num_classes:
        raise VGGError(
            f"{source} lists {len(model.classes)} class names for {spec.num_classes} outputs"
        )
    return model.eval()


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> VGG:
    """Load a vggnet checkpoint into a ready-to-use model (eval mode) with its metadata."""
    return model_from_payload(read_checkpoint(path, map_location), f"checkpoint {path}")
