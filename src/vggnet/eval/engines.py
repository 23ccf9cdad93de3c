"""Which engine runs a loaded net's forward pass, and the int8 file cached beside its checkpoint.

``--backend torch`` runs the net in PyTorch (fp32, or bf16/fp16 autocast);
``--backend onnxruntime`` runs its exported dense graph in ONNX Runtime (fp32 or int8).
``--precision int8`` means onnxruntime. An int8 net is calibrated once, on a few hundred
training images chosen deterministically, and kept as ``CKPT.int8.onnx`` (the dense graph)
and ``CKPT.int8.crops.onnx`` (the crop graph); the files record the checkpoint's size,
modification time and SHA-256 and the calibration, so a changed checkpoint or a different
calibration set is quantised again rather than silently reused. ``--winograd`` picks its
layers by a measurement kept per machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from vggnet.data import open_source
from vggnet.data.geometry import Scale, single_test_scale
from vggnet.data.loader import split_skipped, views_loader
from vggnet.data.subset import stratified_indices
from vggnet.data.transforms import center_crop
from vggnet.devices import cpu_name
from vggnet.errors import VGGError
from vggnet.interop.int8 import (
    check_int8,
    crops_file,
    describe_calibration,
    descriptor_file,
    int8_format,
    quantize_descriptors_int8,
    quantize_int8,
)
from vggnet.interop.runtime import BACKENDS, OnnxNet, onnx_net, run_session, runtime_session
from vggnet.model import VGG
from vggnet.model.winograd import eligible_convs, layer_speedups
from vggnet.serialization import atomic_write_text

# --winograd's layers: none, those measured faster here, or every eligible one (the worst
# case for accuracy, which the agreement rule measures).
WINOGRAD_MODES = ("off", "measured", "every-layer")
WINOGRAD_MARGIN = 1.1  # a layer runs Winograd only if measured at least this much faster
CALIBRATION_IMAGES = 256  # "a few hundred" training images; other counts were not compared
CALIBRATION_SPLIT = "train"
CPU = torch.device("cpu")


def winograd_mode(flag: bool) -> str:
    """The ``WINOGRAD_MODES`` entry of the ``--winograd`` flag: on, the measured layers."""
    return "measured" if flag else "off"


def resolve_backend(backend: str | None, precision: str) -> str:
    """The engine for ``--backend`` (None: torch, or onnxruntime for int8) and ``--precision``."""
    if backend is None:
        return "onnxruntime" if precision == "int8" else "torch"
    if backend not in BACKENDS:
        raise VGGError(f"--backend {backend}: choose one of {', '.join(BACKENDS)}")
    if backend == "torch" and precision == "int8":
        raise VGGError("--precision int8 runs on onnxruntime: drop --backend torch")
    if backend == "onnxruntime" and precision not in ("fp32", "int8"):
        raise VGGError(
            f"--backend onnxruntime runs fp32 or int8, not {precision}: pass --precision fp32 or int8"
        )
    return backend


def check_winograd(backend: str | None, precision: str, device: torch.device) -> None:
    """Refuse --winograd where it does not apply: it is a CPU fp32 path of the torch backend."""
    if resolve_backend(backend, precision) != "torch" or precision != "fp32":
        raise VGGError(f"--winograd runs fp32 on torch: pass --precision fp32 (now {precision})")
    if device.type != "cpu":
        raise VGGError(
            f"--winograd is a CPU path ({device.type} libraries choose their own): drop it"
        )


def user_cache() -> Path:
    """vggnet's folder in the user's cache (``$XDG_CACHE_HOME/vggnet``, else ~/.cache/vggnet)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vggnet"


def winograd_layers(model: VGG) -> list[str]:
    """The convolutions of ``model`` that run faster as Winograd F(4x4, 3x3) on this machine.

    Measured once per CPU (name and vector width), torch version, thread count and net
    shape, at the crop size (``layer_speedups``, about half a minute for VGG-16 on two cores), then read from
    ``winograd.json`` in the user's cache; a layer qualifies at ``WINOGRAD_MARGIN`` or more.
    """
    key = json.dumps(
        [
            cpu_name(),
            torch.backends.cpu.get_cpu_capability(),  # VMs of two CPU generations share a name
            torch.__version__,
            torch.get_num_threads(),
            asdict(model.spec),
            "cl",
        ],
        sort_keys=True,
    )
    path = user_cache() / "winograd.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        crop = model.spec.crop_size
        print(
            "vggnet: measuring Winograd against direct convolution per layer (once)",
            file=sys.stderr,
        )
        known[key] = layer_speedups(model, crop, crop)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(known, indent=1))
    return [name for name, speedup in known[key].items() if speedup >= WINOGRAD_MARGIN]


def winograd_choice(model: VGG, mode: str) -> list[str] | None:
    """The convolutions ``mode`` (one of ``WINOGRAD_MODES``) puts on Winograd, or None."""
    if mode not in WINOGRAD_MODES:
        raise VGGError(f"Winograd mode {mode!r}: choose one of {', '.join(WINOGRAD_MODES)}")
    if mode == "off":
        return None
    return eligible_convs(model) if mode == "every-layer" else winograd_layers(model)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def int8_file(checkpoint: str | os.PathLike) -> Path:
    """Where a checkpoint's int8 net is kept: beside it, or in the user's cache if that
    folder cannot be written."""
    beside = Path(checkpoint).with_suffix(".int8.onnx")
    if os.access(beside.parent, os.W_OK):
        return beside
    cache = user_cache() / "int8"
    cache.mkdir(parents=True, exist_ok=True)
    return cache / f"{file_digest(checkpoint)[:16]}-{beside.name}"


def calibration_crops(model: VGG, data: str) -> tuple[torch.Tensor, dict[str, str]]:
    """The calibration images of ``model``: centre crops at its single test scale of the
    class-balanced first ``CALIBRATION_IMAGES`` of ``data``'s train split, and their record."""
    source = open_source(data, CALIBRATION_SPLIT)
    if source.channels != model.spec.in_channels:
        raise VGGError(
            f"--calibration {data} has {source.channels}-channel images; the net takes "
            f"{model.spec.in_channels}"
        )
    indices = stratified_indices(np.asarray(source.labels), CALIBRATION_IMAGES).tolist()
    crop = model.spec.crop_size
    q = single_test_scale(Scale(*model.train_scale)) if model.train_scale else crop
    crops = []
    for items in views_loader(source, [q], indices, 64):
        good, _ = split_skipped(items)
        crops += [center_crop(views[0], crop) for views, _, _ in good]
    if not crops:
        raise VGGError(
            f"--calibration {data}: none of its {CALIBRATION_SPLIT} images could be read"
        )
    return torch.stack(crops), describe_calibration(data, CALIBRATION_SPLIT, indices, q)


def checkpoint_identity(checkpoint: str | os.PathLike) -> dict[str, str]:
    """Size and modification time of a checkpoint: a cheap test that it is unchanged."""
    stat = os.stat(checkpoint)
    return {"checkpoint_size": str(stat.st_size), "checkpoint_mtime_ns": str(stat.st_mtime_ns)}


def _current(meta: dict[str, str], checkpoint: str, calibration: str | None) -> bool:
    """Whether an int8 file's metadata says it is of this vggnet's format, of ``checkpoint``
    as it is now (same size and time, or else the same SHA-256), and of ``calibration``."""
    if any(meta.get(k) != v for k, v in int8_format().items()):
        return False
    recorded = json.loads(meta.get("calibration", "{}")).get("data")
    if calibration is not None and recorded != calibration:
        return False
    if all(meta.get(k) == v for k, v in checkpoint_identity(checkpoint).items()):
        return True
    return meta.get("checkpoint_sha256") == file_digest(checkpoint)


def _kept_session(
    path: Path,
    checkpoint: str,
    calibration: str | None,
    threads: int | None,
    companions: tuple[Path, ...] = (),
):
    """A session of the kept int8 file ``path`` if it is current and the files written
    before it (``companions``) are there, else None (absent, stale or broken)."""
    if not all(p.exists() for p in (path, *companions)):
        return None
    try:
        session = runtime_session(path, threads)
    except VGGError:  # a truncated or foreign file: quantised again
        return None
    meta = session.get_modelmeta().custom_metadata_map
    return session if _current(meta, checkpoint, calibration) else None


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``PATH.lock`` (POSIX; elsewhere no lock), so that processes
    sharing a checkpoint (torchrun's ranks) quantise it once, not once each."""
    try:
        import fcntl
    except ImportError:  # Windows: each process may quantise; the files stay whole
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _kept_or_quantized(
    vouch: Path,
    checkpoint: str,
    model: VGG,
    calibration: str | None,
    quantize: Callable[[torch.Tensor, dict[str, str]], object],
    threads: int | None,
    companions: tuple[Path, ...] = (),
):
    """A session of the int8 file ``vouch`` (written last of its ``companions``): kept and
    current, or quantised now by ``quantize(crops, metadata)`` on ``calibration``'s
    images (refused without it)."""
    with file_lock(vouch):
        session = _kept_session(vouch, checkpoint, calibration, threads, companions)
        if session is not None:
            return session
        if calibration is None:
            raise VGGError(
                f"--precision int8: {checkpoint} has no calibrated int8 file yet; pass "
                "--calibration SPEC (data in the net's domain: its train split calibrates it, once)"
            )
        crops, record = calibration_crops(model, calibration)
        print(
            f"vggnet: calibrating int8 on {len(crops)} {CALIBRATION_SPLIT} images of "
            f"{calibration} (once; kept in {vouch})",
            file=sys.stderr,
        )
        identity = {"checkpoint_sha256": file_digest(checkpoint), **checkpoint_identity(checkpoint)}
        quantize(crops, {**identity, **record})
        return runtime_session(vouch, threads)


def cached_int8_net(
    checkpoint: str,
    model: VGG,
    calibration: str | None,
    device: torch.device = CPU,
    threads: int | None = None,
) -> OnnxNet:
    """The int8 net of ``checkpoint``: its kept file, or quantised now and kept.

    ``calibration``: the data set (SPEC) whose train split calibrates it; None takes the
    kept file whatever it was calibrated on, and is refused when there is none.
    ``device``: where it was asked to run (int8 runs on the CPU); ``threads``: its cores.
    The crop graph is written after the dense one, so it vouches for both; the dense
    graph's session opens later, when a whole image needs it.
    """
    check_int8(device)
    path = int8_file(checkpoint)
    crop_session = _kept_or_quantized(
        crops_file(path),
        checkpoint,
        model,
        calibration,
        lambda crops, meta: quantize_int8(model, crops, path, meta),
        threads,
        companions=(path,),
    )
    return OnnxNet(None, model.spec, model.card, "int8", path, crop_session, threads)


def cached_int8_descriptors(
    checkpoint: str,
    model: VGG,
    layer: str,
    calibration: str | None,
    device: torch.device = CPU,
    threads: int | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``layer``'s int8 descriptor function of ``checkpoint`` (kept as CKPT.int8.LAYER.onnx,
    quantised once as ``cached_int8_net``): normalised images (N, C, H, W) -> the layer's
    map averaged over positions (N, C_layer), as ``dataset_features`` takes it."""
    check_int8(device)
    path = descriptor_file(int8_file(checkpoint), layer)
    session = _kept_or_quantized(
        path,
        checkpoint,
        model,
        calibration,
        lambda crops, meta: quantize_descriptors_int8(model, layer, crops, path, meta),
        threads,
    )
    return lambda x: run_session(session, x)


def inference_engine(
    checkpoint: str,
    model: VGG,
    backend: str | None,
    precision: str,
    device: torch.device = CPU,
    calibration: str | None = None,
) -> OnnxNet | None:
    """The onnxruntime net that scores for ``model``, or None when torch runs it itself."""
    if resolve_backend(backend, precision) == "torch":
        return None
    if precision == "int8":
        return cached_int8_net(checkpoint, model, calibration, device)
    if device.type != "cpu":
        raise VGGError("--backend onnxruntime runs on the CPU here: use --device cpu")
    return onnx_net(model)
