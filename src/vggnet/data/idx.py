"""Reader for the IDX files of MNIST and Fashion-MNIST (gzipped or not)."""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from vggnet.errors import VGGError

# The magic number's third byte is the element type (0x08: unsigned byte), the fourth the rank.
UBYTE = 0x08
MAX_BYTES = 4 * 2**30  # a bigger header is a corrupt file or a decompression bomb


def read_idx(path: str | os.PathLike, rank: int) -> np.ndarray:
    """Read an unsigned-byte IDX file of the given rank (1: labels, 3: images) into memory.

    A gzipped file is decompressed as a stream, never past the size its header states,
    so a decompression bomb costs no more memory than an honest file.
    """
    path = Path(path)
    try:
        with path.open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if compressed else path.open("rb") as f:
            return _read_idx_stream(f, path, rank)  # type: ignore[arg-type]  # both are binary
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise VGGError(f"cannot read IDX file {path}: {err}") from None


def _read_idx_stream(f: BinaryIO, path: Path, rank: int) -> np.ndarray:
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] != UBYTE or magic[3] != rank:
        raise VGGError(
            f"{path} is not an IDX file of rank {rank} (magic {magic.hex() or 'missing'}, "
            f"expected 0000{UBYTE:02x}{rank:02x})"
        )
    header = 4 + 4 * rank
    sizes = f.read(4 * rank)
    if len(sizes) < 4 * rank:
        raise VGGError(f"{path}: IDX header is truncated ({4 + len(sizes)} bytes)")
    dims = [int.from_bytes(sizes[4 * i : 4 * i + 4], "big") for i in range(rank)]
    expected = header + math.prod(dims)
    if expected > MAX_BYTES:
        raise VGGError(
            f"{path}: IDX header says {'x'.join(map(str, dims))} ({expected:,} bytes), over the "
            f"{MAX_BYTES:,}-byte limit: a corrupt file or a decompression bomb"
        )
    body = f.read(expected - header)
    extra = len(f.read(1 << 16))
    if len(body) != expected - header or extra:
        actual = f"{header + len(body)}" if not extra else f"more than {expected}"
        raise VGGError(
            f"{path}: IDX header says {'x'.join(map(str, dims))} ({expected} bytes) "
            f"but the file has {actual} bytes"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims).copy()


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool = False) -> None:
    """Write a uint8 array as an IDX file (tests and tools use it)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, UBYTE, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + array.tobytes()
    Path(path).write_bytes(gzip.compress(data) if compress else data)
