"""Checkpoint format v1: one file with the weights and everything needed to use them.

The one reader and writer of checkpoint files, torch (``torch.save``, loaded with
``weights_only=True``) and safetensors (weights, plus the rest as JSON metadata) alike.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from vggnet.card import Card
from vggnet.checkpoint_fields import (  # FORMAT, VERSION: also read from here
    FORMAT,
    VERSION,
    check_payload,
)
from vggnet.errors import VGGError
from vggnet.model import VGG, VGGSpec
from vggnet.serialization import atomic_save, safe_load

SAFETENSORS_KEY = "vggnet"


def checkpoint_payload(model: VGG, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plain-data dict a checkpoint file holds (tensors, numbers, strings, lists, dicts)."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": asdict(model.spec),
        **model.card.to_dict(),  # classes, preprocessing, train_scale
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if extra:
        payload.update(extra)
    return payload


def save_checkpoint(
    path: str | os.PathLike, model: VGG, extra: dict[str, Any] | None = None
) -> None:
    """Write ``model`` to ``path`` atomically: weights, spec and card in one file.

    ``extra``: further entries (a run's training state); the old file stays whole until
    the new one is complete.
    """
    atomic_save(checkpoint_payload(model, extra), path)


def export_safetensors(model: VGG, path: str | os.PathLike) -> None:
    """Weights in safetensors; everything else of a checkpoint in its metadata (no code, no pickle)."""
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


def read_safetensors(path: str | os.PathLike) -> Any:
    """What a safetensors export holds, as the dict a torch checkpoint would (not yet validated)."""
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
    try:
        payload = json.loads(metadata[SAFETENSORS_KEY])
    except ValueError as err:
        raise VGGError(
            f"checkpoint {path}: its metadata is not valid JSON ({err}): export it again"
        ) from None
    if not isinstance(payload, dict):
        raise VGGError(
            f"checkpoint {path}: its metadata is a JSON {type(payload).__name__}, not an object: "
            "export it again"
        )
    payload["state_dict"] = tensors
    return payload


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint file's dict without building the model.

    Reads vggnet's torch files and its safetensors exports alike; any damage is one
    ``VGGError`` naming the file and the field.
    """
    if is_safetensors(path):
        payload = check_payload(read_safetensors(path), str(path))
        payload["state_dict"] = {k: v.to(map_location) for k, v in payload["state_dict"].items()}
        return payload
    return check_payload(safe_load(path, "checkpoint", map_location), str(path))


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
    on_meta = any(t.is_meta for t in expected.values())
    if on_meta:  # assigned as they are: in the model's own dtype (a float64 file stays usable)
        state_dict = {k: v.to(expected[k].dtype) for k, v in state_dict.items()}
    model.load_state_dict(state_dict, strict=True, assign=on_meta)


def model_from_payload(payload: dict, source: str) -> VGG:
    """Build the model a validated checkpoint dict describes; load its weights and metadata."""
    with torch.device("meta"):
        model = VGG(VGGSpec(**payload["model"]), Card.from_dict(payload))
    load_weights(model, payload["state_dict"], source)
    return model.eval()


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> VGG:
    """Load a vggnet checkpoint (torch or safetensors file) at ``path``; never runs its code.

    ``map_location``: where the tensors go. Returns the model in eval mode with its card
    (``classes``, ``preprocessing``, ``train_scale``).
    """
    return model_from_payload(read_checkpoint(path, map_location), f"checkpoint {path}")
