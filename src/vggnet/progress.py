"""Progress that reads well where it is shown: a live bar on a terminal, plain lines in a log.

tqdm redraws one line with carriage returns; in a pipe or a CI log that leaves a "0%"
line and control characters. Off a terminal, ``progress`` returns ``LogProgress``, which
prints a whole line now and then (every ``LOG_INTERVAL`` seconds) and a last one at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between lines in a log


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (or ``M:SS`` under an hour) of a duration in seconds."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class LogProgress:
    """tqdm's ``update``/``set_postfix``/``close`` as occasional whole lines on ``file``."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str,
        initial: int = 0,
        file: TextIO | None = None,
        interval: float = LOG_INTERVAL,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.first = initial  # a resumed epoch starts part-way
        self.file = file or sys.stderr
        self.interval = interval
        self.postfix: dict[str, Any] = {}
        self.start = self.last = time.monotonic()
        self.closed = False

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, postfix: dict[str, Any], refresh: bool = False) -> None:
        self.postfix = dict(postfix)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.write_line(now)

    def write_line(self, now: float) -> None:
        """One line: done/total, rate, time left, and the postfix."""
        elapsed = now - self.start
        rate = (self.n - self.first) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.n) / rate if rate > 0 else 0.0
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        share = 100 * self.n / self.total if self.total else 100.0
        print(
            f"{self.desc}: {self.n}/{self.total} {self.unit}s ({share:.0f}%), "
            f"{rate:.1f} {self.unit}/s, {format_duration(left)} left{extra}",
            file=self.file,
            flush=True,
        )

    def close(self) -> None:
        """A last line, unless nothing happened (a run that stopped before its first step)."""
        done = self.n > self.first
        if not self.closed and done and time.monotonic() - self.start >= self.interval:
            self.write_line(time.monotonic())
        self.closed = True


def progress(
    total: int, desc: str, unit: str, initial: int = 0, enabled: bool = True
) -> tqdm | LogProgress:
    """A tqdm bar on a terminal (stderr), ``LogProgress`` lines otherwise; nothing if disabled."""
    if enabled and sys.stderr.isatty():
        return tqdm(
            total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, leave=False
        )
    if enabled:
        return LogProgress(total, desc, unit, initial, interval=LOG_INTERVAL)
    return tqdm(total=total, disable=True)
