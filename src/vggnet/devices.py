"""Devices and precisions: what ``--device`` and ``--precision`` mean, checked up front."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch

from vggnet.errors import VGGError

PRECISIONS = ("fp32", "bf16", "fp16")
# Inference also takes "auto" (bf16 where native, else fp32) and "int8" (onnxruntime's
# quantised kernels, on the CPU: vggnet.eval.engines).
INFERENCE_PRECISIONS = ("auto", *PRECISIONS, "int8")


def default_device() -> str:
    """cuda if a GPU is visible, else cpu."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """The torch device of ``--device`` (cuda:LOCAL_RANK for one of several processes)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VGGError(f"--device {name!r} is not a device: use cpu or cuda[:N]") from None
    if device.type not in ("cpu", "cuda"):
        raise VGGError(f"--device {name}: use cpu or cuda[:N]")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise VGGError(f"--device {name}: no CUDA GPU is visible here; use --device cpu")
        index = local_rank if local_rank is not None else (device.index or 0)
        if index >= torch.cuda.device_count():
            raise VGGError(f"--device {name}: only {torch.cuda.device_count()} GPUs are visible")
        device = torch.device("cuda", index)
    return device


def cpu_flags() -> set[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_name() -> str:
    """The CPU model, as /proc/cpuinfo names it (falls back to the platform's word)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def supports_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (on CPUs: AVX-512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run well, naming the flag."""
    if precision not in PRECISIONS:
        raise VGGError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and not supports_bf16(device):
        raise VGGError(
            f"--precision bf16: {device.type} here has no native bf16 (it would be emulated, "
            "many times slower); use --precision fp32"
        )
    if precision == "fp16" and device.type != "cuda":
        raise VGGError("--precision fp16 needs --device cuda; use bf16 or fp32 on a CPU")


def inference_precision(precision: str, device: torch.device) -> str:
    """``auto`` (inference's default): bf16 where ``device`` computes it natively, else fp32."""
    if precision == "auto":
        return "bf16" if supports_bf16(device) else "fp32"
    if precision == "int8":
        return precision  # its engine checks the device (vggnet.interop.int8.check_int8)
    check_precision(precision, device)
    return precision


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The autocast context of a precision (a no-op for fp32, and int8, which onnxruntime runs)."""
    if precision not in ("bf16", "fp16"):
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@contextmanager
def inference_context(precision: str, device: torch.device) -> Iterator[None]:
    """No autograd, and the precision's autocast: the context every evaluation runs in.

    torch.no_grad, not torch.inference_mode: under inference_mode autocast casts every
    weight again on every call (its cast cache is off), 138M weights per VGG-16 pass.
    """
    with torch.no_grad(), autocast(precision, device):
        yield
