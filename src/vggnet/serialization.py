"""Safe reading (never runs code from a file) and atomic writing of torch files."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import secrets
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from vggnet.errors import VGGError


class WholeWrites(io.RawIOBase):
    """A write-only file whose ``write`` writes every byte or raises: a full disk is ENOSPC.

    (A plain file can accept part of a write when the disk fills; torch.save then fails
    with an internal position check that hides the reason.)
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.error: OSError | None = None  # torch.save may replace it by its own RuntimeError

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # any buffer, as io.RawIOBase takes
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += os.write(self.fd, view[done:])
        except OSError as err:
            self.error = self.error or err
            raise
        return done


def safe_load(path: str | os.PathLike, what: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``, turning every failure into a one-line VGGError."""
    path = Path(path)
    if not path.exists():
        raise VGGError(f"{what} {path} does not exist: check the path")
    if not path.is_file():
        raise VGGError(f"{what} {path} is not a file")
    if path.stat().st_size == 0:
        raise VGGError(f"{what} {path} is empty (0 bytes): the file was not written completely")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):
            raise VGGError(
                f"{what} {path} holds pickled Python objects that could run code; refused "
                "(only tensors and plain data are loaded)"
            ) from None
        raise VGGError(f"{what} {path} is not a torch file, or is corrupt") from None
    except Exception as err:  # a damaged file can fail anywhere inside the unpickler
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VGGError(f"{what} {path} is truncated or corrupt ({first})") from None


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (nested in dicts, lists, tuples) made ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def strict_json(value: Any, indent: int | None = None) -> str:
    """JSON that every parser reads: NaN and infinities, which JSON lacks, are written as null."""
    return json.dumps(finite(value), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Write ``value`` as strict, indented JSON, atomically; one line naming the file on failure."""
    atomic_write_text(path, strict_json(value, indent=1) + "\n")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a small text file so that ``path`` is either the old or the whole new text."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise VGGError(f"cannot write {path}: {err.strerror or err}") from None


def atomic_link(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Make ``path`` hold what ``source`` holds now, atomically (a hard link; a copy if links fail).

    Replacing ``source`` later (``atomic_save`` writes a new file) leaves ``path`` as it was.
    """
    source, path = Path(source), Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.link.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise VGGError(f"cannot write {path}: {err.strerror or err}") from None


def append_text(path: str | os.PathLike, text: str, hint: str = "") -> None:
    """Append ``text`` to ``path``; a failure (a full disk) is one line naming the file."""
    try:
        with Path(path).open("a") as f:
            f.write(text)
    except OSError as err:
        raise VGGError(f"cannot append to {path}: {err.strerror or err}{hint}") from None


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete what an ``atomic_save`` of ``path`` killed mid-write left behind; returns them."""
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp"))
    for tmp in stale:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return stale


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` with ``torch.save`` so that ``path`` is either the old or the whole new file."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # Not mkstemp, whose 0600 would hide checkpoints from a group: 0666 less the umask.
        tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        raise VGGError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb", buffering=0) as raw:
            writer = WholeWrites(raw.fileno())
            try:
                torch.save(obj, writer)  # type: ignore[arg-type]  # a binary file
            except RuntimeError:
                if writer.error is None:
                    raise
                raise writer.error from None
            os.fsync(raw.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except (OSError, RuntimeError) as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        raise VGGError(f"cannot write {path}: {reason}; the previous file is untouched") from None
