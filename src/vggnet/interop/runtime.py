"""ONNX Runtime as an inference engine: a net's exported dense graph, run where it is fastest.

vggnet's protocols (centre crop, dense, multi-crop) stay ours; only the forward pass
moves. One graph serves them all: the dense net's class score map, which for a
crop-sized input is 1 x 1 and equals the plain net's scores.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from vggnet.card import Card
from vggnet.errors import VGGError
from vggnet.interop.export import export_onnx
from vggnet.model import VGG, VGGSpec, fold_batch_norm
from vggnet.preprocessing import Preprocessing

__all__ = [
    "BACKENDS",
    "OnnxNet",
    "onnx_net",
    "require_onnxruntime",
    "run_session",
    "runtime_session",
]

BACKENDS = ("torch", "onnxruntime")


def require_onnxruntime(what: str) -> ModuleType:
    """The onnxruntime module, or a one-line error naming what needed it."""
    try:
        import onnxruntime
    except ImportError:
        raise VGGError(
            f"{what} runs on onnxruntime, which is not installed: pip install 'vggnet[onnx]'"
        ) from None
    return onnxruntime


def runtime_session(path: str | os.PathLike | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session of ``path`` (a file, or a serialised graph) using
    ``threads`` cores (default: torch's count)."""
    name = "an in-memory graph" if isinstance(path, bytes) else str(path)
    ort = require_onnxruntime(name)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = path if isinstance(path, bytes) else str(path)
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own error types
        raise VGGError(f"{name}: onnxruntime cannot load it ({err})") from None


def run_session(session, x: torch.Tensor) -> torch.Tensor:
    """``x`` (any device, any float type) as the session's ``image`` input; its one output."""
    array = np.ascontiguousarray(x.detach().cpu().float().numpy())
    (out,) = session.run(None, {"image": array})
    return torch.from_numpy(out)


@dataclass
class OnnxNet:
    """A trained net's dense graph in an ONNX Runtime session, called like the torch net.

    ``session``: the dense graph's runtime session, or None to open ``path`` when a whole
    image first needs it (an int8 dense graph takes seconds to open: its 7x7 fc6 is
    re-laid out); ``spec`` and ``card``: the net's shape and metadata (what the protocols
    read: crop size, classes, preprocessing); ``precision``: "fp32" or "int8"; ``path``:
    the dense graph's file (None when it lived in a temporary folder); ``crop_session``:
    a session of the plain net for crop-size input, used for crops when given (int8 runs
    its fc layers faster as matrix products); ``threads``: the sessions' cores.
    """

    session: object | None
    spec: VGGSpec
    card: Card
    precision: str
    path: Path | None = None
    crop_session: object | None = None
    threads: int | None = None

    @property
    def preprocessing(self) -> Preprocessing:
        return self.card.preprocessing

    def dense_session(self) -> object:
        """The dense graph's session, opened on first use."""
        if self.session is None:
            assert self.path is not None, "an OnnxNet without a session needs its path"
            self.session = runtime_session(self.path, self.threads)
        return self.session

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) network input -> (N, K, h, w) class score map, as ``to_dense(net)``."""
        crop = self.spec.crop_size
        if self.crop_session is not None and x.shape[-2:] == (crop, crop):
            return run_session(self.crop_session, x)[:, :, None, None]
        return run_session(self.dense_session(), x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, crop, crop) network input -> (N, K) class scores, as the torch net."""
        crop = self.spec.crop_size
        if x.shape[-2:] != (crop, crop):
            raise VGGError(
                f"the net takes {crop}x{crop} crops, got {tuple(x.shape[-2:])}: "
                "use score_map for whole images"
            )
        return self.score_map(x).flatten(1)


def onnx_net(model: VGG, threads: int | None = None) -> OnnxNet:
    """An fp32 ONNX Runtime copy of ``model`` (batch norm folded), from a temporary export."""
    require_onnxruntime("--backend onnxruntime")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.onnx"
        export_onnx(fold_batch_norm(model.eval()), path)
        session = runtime_session(path, threads)  # the session holds the weights: the file can go
    return OnnxNet(session, model.spec, model.card, "fp32")
