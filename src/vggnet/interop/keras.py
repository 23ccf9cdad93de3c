"""Keras VGG16/VGG19 weight files (.h5): Keras 3 ``save_weights`` and the Keras 2 release layout.

Keras kernels are HWIO (convolutions) and (in, out) (dense); fc1 reads the pool5 map
flattened in height, width, channel order. Keras' VGG preprocessing ("caffe" mode) feeds
BGR pixels in 0..255 minus the mean pixel; the imported checkpoint records exactly that,
so evaluation and prediction apply it from RGB images.
"""

from __future__ import annotations

import os
import re

import numpy as np
import torch

from vggnet.checkpoint import load_weights
from vggnet.errors import VGGError
from vggnet.interop.common import RELEASE_TRAIN_SCALE, finish_import, infer_config
from vggnet.model import VGG, VGGSpec
from vggnet.preprocessing import Preprocessing

KERAS_MEAN_BGR_255 = (103.939, 116.779, 123.68)


def _order(name: str) -> tuple[str, int]:
    """Keras 3 names layers ``conv2d``, ``conv2d_1``, ...: sort by that number, not as text."""
    match = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    assert match is not None  # the pattern matches every name
    return match.group(1), int(match.group(2) or 0)


def read_keras_h5(path: str | os.PathLike) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel, bias) of every weighted layer, in model order, from either .h5 layout."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "layers" in f:  # Keras 3: layers/<name>/vars/0 (kernel), vars/1 (bias)
                groups = [g for g in f["layers"].values() if "vars" in g and len(g["vars"])]
                names = [g.name.split("/")[-1] for g in groups]
                kinds = {_order(n)[0] for n in names}
                if not kinds <= {"conv2d", "dense"}:
                    raise VGGError(
                        f"{path}: unexpected Keras layers {sorted(kinds)}: not a Keras VGG"
                    )
                names.sort(key=lambda n: (_order(n)[0] == "dense", _order(n)[1]))
                return [
                    (f["layers"][n]["vars"]["0"][()], f["layers"][n]["vars"]["1"][()])
                    for n in names
                ]
            if "layer_names" in f.attrs:  # Keras 2: <layer>/<weight name>, listed in attributes
                pairs = []
                for raw in f.attrs["layer_names"]:
                    group = f[raw.decode() if isinstance(raw, bytes) else raw]
                    weights = [
                        w.decode() if isinstance(w, bytes) else w
                        for w in group.attrs["weight_names"]
                    ]
                    if weights:
                        pairs.append((group[weights[0]][()], group[weights[1]][()]))
                return pairs
    except (OSError, KeyError) as err:
        raise VGGError(
            f"{path} is not a readable Keras .h5 weight file ({str(err).splitlines()[0]})"
        ) from None
    raise VGGError(
        f"{path} has neither Keras 3 'layers' nor Keras 2 'layer_names': not a Keras weight file"
    )


def import_keras(path: str | os.PathLike, config: str | None = None) -> VGG:
    """Convert a Keras VGG16/VGG19 .h5 into our model (outputs equal to Keras')."""
    pairs = read_keras_h5(path)
    convs = [(k, b) for k, b in pairs if k.ndim == 4]
    dense = [(k, b) for k, b in pairs if k.ndim == 2]
    if len(dense) != 3:
        raise VGGError(f"{path} has {len(dense)} dense layers, not 3: not a Keras VGG with its top")
    inferred = infer_config(len(convs), config, f"Keras file {path}", "Keras")
    fc6, fc8 = dense[0][0], dense[2][0]
    last = convs[-1][0].shape[3]
    side = round((fc6.shape[0] / last) ** 0.5)
    spec = VGGSpec(
        inferred,
        num_classes=fc8.shape[1],
        in_channels=convs[0][0].shape[2],
        crop_size=side * 32,
        fc_width=fc6.shape[1],
        width=convs[0][0].shape[3] / 64,
    )
    with torch.device("meta"):
        model = VGG(spec)
    state = {}
    conv_names = [n for n, m in model.named_children() if isinstance(m, torch.nn.Conv2d)]
    for name, (kernel, bias) in zip(conv_names, convs, strict=True):
        state[f"{name}.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        )
        state[f"{name}.bias"] = torch.tensor(bias)
    # fc1 rows are (h, w, c); ours flatten (c, h, w).
    w6 = (
        fc6.T.reshape(fc6.shape[1], side, side, last)
        .transpose(0, 3, 1, 2)
        .reshape(fc6.shape[1], -1)
    )
    for name, kernel, (_, bias) in zip(
        ("fc6", "fc7", "fc8"), (w6, dense[1][0].T, fc8.T), dense, strict=True
    ):
        state[f"{name}.weight"] = torch.tensor(kernel)
        state[f"{name}.bias"] = torch.tensor(bias)
    load_weights(model, state, f"Keras file {path}")
    keras_mode = Preprocessing(tuple(m / 255 for m in KERAS_MEAN_BGR_255), (1 / 255,) * 3, "BGR")
    return finish_import(model, keras_mode, RELEASE_TRAIN_SCALE)
