"""The original release's ``.caffemodel`` (a binary protobuf NetParameter), read without Caffe.

The VGG team's nets take BGR input in 0..255 minus the mean pixel [103.939, 116.779,
123.68] (BGR). We flip conv1_1's input channels so the imported model takes RGB like
every other checkpoint, and record the paper's preprocessing (subtract the RGB mean
pixel from 0..255 values).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from vggnet.checkpoint import load_weights
from vggnet.errors import VGGError
from vggnet.interop.common import RELEASE_TRAIN_SCALE, finish_import, infer_config
from vggnet.model import VGG, VGGSpec
from vggnet.preprocessing import Preprocessing

CAFFE_MEAN_BGR_255 = (103.939, 116.779, 123.68)

# caffe.proto field numbers.
NET_V1_LAYERS, NET_LAYER = 2, 100
V1_NAME, V1_BLOBS = 4, 6
LAYER_NAME, LAYER_BLOBS = 1, 7
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH, BLOB_DATA, BLOB_SHAPE = 1, 2, 3, 4, 5, 7
SHAPE_DIM = 1


class Truncated(Exception):
    """The protobuf ends inside a field."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise Truncated
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def message(value: int | memoryview) -> memoryview:
    """A length-delimited field's bytes; a number where a message belongs is a damaged file."""
    if isinstance(value, int):
        raise Truncated
    return value


def fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each field of one protobuf message."""
    pos = 0
    value: int | memoryview
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise Truncated
        if pos > len(buf):
            raise Truncated
        yield number, wire, value


def _packed_varints(value: int | memoryview, wire: int) -> list[int]:
    if isinstance(value, int):
        return [value]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(v)
    return out


def parse_blob(buf: memoryview) -> np.ndarray:
    """A BlobProto as a float32 array of its shape (new ``shape`` or legacy 4-D dims)."""
    data: list[np.ndarray] = []
    dims: list[int] = []
    legacy = {BLOB_NUM: 0, BLOB_CHANNELS: 0, BLOB_HEIGHT: 0, BLOB_WIDTH: 0}
    for number, wire, value in fields(buf):
        if number == BLOB_DATA:
            data.append(np.frombuffer(bytes(value), dtype="<f4"))  # packed, or one float (wire 5)
        elif number == BLOB_SHAPE:
            for n, w, v in fields(message(value)):
                if n == SHAPE_DIM:
                    dims += _packed_varints(v, w)
        elif number in legacy and wire == 0:
            legacy[number] = int(value)
    array = np.concatenate(data) if data else np.zeros(0, dtype=np.float32)
    shape = dims or [legacy[k] for k in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH)]
    if int(np.prod(shape)) != array.size:
        raise Truncated
    return array.reshape(shape)


def read_caffemodel(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """Layer name -> its blobs, for every layer with blobs (V1 ``layers`` or new ``layer``)."""
    try:
        buf = memoryview(Path(path).read_bytes())
    except OSError as err:
        raise VGGError(f"cannot read {path}: {err.strerror}") from None
    layers: dict[str, list[np.ndarray]] = {}
    try:
        for number, _, value in fields(buf):
            if number not in (NET_V1_LAYERS, NET_LAYER):
                continue
            name_field, blob_field = (
                (V1_NAME, V1_BLOBS) if number == NET_V1_LAYERS else (LAYER_NAME, LAYER_BLOBS)
            )
            name, blobs = None, []
            for n, _, v in fields(message(value)):
                if n == name_field:
                    name = bytes(message(v)).decode("utf-8", "replace")
                elif n == blob_field:
                    blobs.append(parse_blob(message(v)))
            if name and blobs:
                layers[name] = blobs
    except Truncated:
        raise VGGError(
            f"{path} is a truncated or corrupt protobuf (not a whole .caffemodel)"
        ) from None
    if not layers:
        raise VGGError(f"{path} holds no layers with weights: not a .caffemodel")
    return layers


def import_caffe(path: str | os.PathLike, config: str | None = None) -> VGG:
    """Convert the VGG release's .caffemodel (conv1_1 ... fc8) into our RGB model."""
    layers = read_caffemodel(path)
    convs = [n for n in layers if n.startswith("conv")]
    if not all(f"fc{i}" in layers for i in (6, 7, 8)) or "conv1_1" not in layers:
        raise VGGError(f"{path} has no conv1_1 and fc6-fc8 layers: not a VGG .caffemodel")
    inferred = infer_config(len(convs), config, f"Caffe file {path}", "Caffe")
    first, fc6, fc8 = layers["conv1_1"][0], layers["fc6"][0], layers["fc8"][0]
    last = layers[convs[-1]][0].shape[0]
    fc6_in = fc6.shape[-1]
    side = round((fc6_in / last) ** 0.5)
    spec = VGGSpec(
        inferred,
        num_classes=fc8.reshape(-1, fc8.shape[-1]).shape[0],
        in_channels=first.shape[1],
        width=first.shape[0] / 64,
        fc_width=fc6.reshape(-1, fc6_in).shape[0],
        crop_size=side * 32,
    )
    with torch.device("meta"):
        model = VGG(spec)
    state = {}
    for name, module in model.named_children():
        if name not in layers or not hasattr(module, "weight"):
            continue
        weight, bias = layers[name][0], layers[name][1]
        target = module.weight
        assert isinstance(target, torch.Tensor)
        state[f"{name}.weight"] = torch.tensor(
            weight.reshape(target.shape) if weight.size == target.numel() else weight
        )
        state[f"{name}.bias"] = torch.tensor(bias.reshape(-1))
    if spec.in_channels == 3:
        state["conv1_1.weight"] = state["conv1_1.weight"].flip(1)  # BGR -> RGB input
    load_weights(model, state, f"Caffe file {path}")
    paper = Preprocessing.paper(tuple(reversed(CAFFE_MEAN_BGR_255)))
    return finish_import(model, paper, RELEASE_TRAIN_SCALE)
