"""Reader for the IDX files of MNIST and Fashion-MNIST (gzipped or not)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from vggnet.errors import VGGError

# The magic number's third byte is the element type (0x08: unsigned byte), the fourth the rank.
UBYTE = 0x08


def read_idx(path: str | os.PathLike, rank: int) -> np.ndarray:
    """Read an unsigned-byte IDX file of the given rank (1: labels, 3: images) into memory."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise VGGError(f"cannot read IDX file {path}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != UBYTE or raw[3] != rank:
        raise VGGError(
            f"{path} is not an IDX file of rank {rank} (magic {raw[:4].hex() or 'missing'}, "
            f"expected 0000{UBYTE:02x}{rank:02x})"
        )
    header = 4 + 4 * rank
    if len(raw) < header:
        raise VGGError(f"{path}: IDX header is truncated ({len(raw)} bytes)")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise VGGError(
            f"{path}: IDX header says {'x'.join(map(str, dims))} ({expected} bytes) "
            f"but the file has {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool = False) -> None:
    """Write a uint8 array as an IDX file (tests and tools use it)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, UBYTE, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + array.tobytes()
    Path(path).write_bytes(gzip.compress(data) if compress else data)
