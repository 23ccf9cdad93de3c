"""Scan a dataset for files that cannot be used, before a long run meets them."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

from vggnet.data.images import BadImage

# Decoding at 1/8 scale still reads the whole file, so truncation is found, at a fraction of the cost.
CHECK_SHORT_SIDE = 1

_source = None  # the source being scanned, set once per worker process


def _use(source) -> None:
    global _source
    _source = source


def _check_one(index: int) -> tuple[int, str] | None:
    assert _source is not None, "set by the pool's initializer"
    try:
        _source.read(index, min_short_side=CHECK_SHORT_SIDE)
    except BadImage as err:
        return index, str(err)
    return None


def find_bad_images(source, workers: int = 0) -> list[tuple[int, str]]:
    """(index, reason) for every image of ``source`` that cannot be decoded, in index order."""
    if workers > 0:
        with ProcessPoolExecutor(workers, initializer=_use, initargs=(source,)) as pool:
            results = list(pool.map(_check_one, range(len(source)), chunksize=256))
    else:
        _use(source)
        results = [_check_one(i) for i in range(len(source))]
    return [r for r in results if r is not None]
