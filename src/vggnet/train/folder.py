"""A run folder has one writer: an exclusive lock held from before the first write to the exit.

The lock is ``flock`` on ``RUN/.lock``: the kernel drops it when its holder exits, however
it exits (``kill -9`` included), so a stale lock never blocks a later ``--resume``. The file
stays in place (deleting it would let two processes lock two different files); it names
its last holder, so a refused process can say who is writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import socket
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import torch

from vggnet.distributed import Dist, all_sum
from vggnet.errors import VGGError
from vggnet.serialization import remove_stale_temporaries

LOCK_NAME = ".lock"


def check_run_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse a run folder that cannot be one (a file stands there), before anything is written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise VGGError(f"{flag} {path} is a file, not a folder: choose another {flag}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise VGGError(f"{flag} {path}: {parent} is a file, not a folder")
    return path


def holder_of(lock: Path) -> str:
    """Who holds (or last held) a run's lock, from what the holder wrote into it."""
    try:
        info = json.loads(lock.read_text())
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
        return f"process {info['pid']} on {info['host']}, since {started}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return "another process"


class RunLock:
    """Exclusive use of a run folder for as long as the ``with`` block runs."""

    def __init__(self, run: str | os.PathLike) -> None:
        self.run = Path(run)
        self.path = self.run / LOCK_NAME
        self.fd: int | None = None

    def check_free(self) -> None:
        """Refuse at once if a live process holds the folder (``acquire`` still decides later)."""
        if self.path.is_file() and self.path.stat().st_nlink == 1:  # else another run's link
            self.acquire(create=False).release()

    def acquire(self, create: bool = True) -> RunLock:
        """Take the lock, or refuse in one line naming the folder and the process that holds it."""
        if create:
            self.run.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):  # a hard link to another run's lock: not ours
                if self.path.stat().st_nlink > 1:
                    self.path.unlink()
        fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise VGGError(
                f"{self.run} is in use by another training run ({holder_of(self.path)}): "
                "wait for it to end, or choose another --out"
            ) from None
        except OSError as err:
            os.close(fd)
            raise VGGError(
                f"cannot lock {self.path} ({err.strerror or err}): the file system of --out "
                "may not support locks; choose a folder on a local disk"
            ) from None
        self.fd = fd
        if not create:
            return self
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "command": shlex.join(sys.argv),
        }
        with contextlib.suppress(OSError):  # the lock holds without its label
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        return self

    def unshare(self, *names: str) -> None:
        """Give the run its own copy of files it appends to that are hard links to another's.

        A folder copied with ``cp -al`` shares its files with the original; appending
        to one would change the other. Files that are replaced whole (checkpoints,
        config.json) need nothing: a replace leaves the other link as it was.
        """
        for name in names:
            path = self.run / name
            if path.is_file() and path.stat().st_nlink > 1:
                copy = path.with_name(f".{name}.{os.getpid()}.unshare.tmp")
                shutil.copy2(path, copy)
                os.replace(copy, path)

    def release(self) -> None:
        """Give the folder back (also done by the kernel if the process dies)."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def file_identity(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of a file from another: inode, size, modification time."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class RunClaim:
    """How a process holds its run folder: the lock's exit stack, and the ``last.ckpt`` it read."""

    hold: ExitStack
    resumed_from: tuple[int, int, int] | None  # file_identity of RUN/last.ckpt when resuming


def claim_run_folder(run: Path, claim: RunClaim) -> None:
    """Become the run folder's one writer, then check it still holds what this run expects."""
    lock = claim.hold.enter_context(RunLock(run))
    lock.unshare("metrics.jsonl", "command.txt", "curves.png")
    last = run / "last.ckpt"
    if claim.resumed_from is None and last.exists():
        raise VGGError(
            f"{run} already holds a run ({last}): pass --resume to continue it, "
            "or choose another --out"
        )
    if claim.resumed_from is not None and file_identity(last) != claim.resumed_from:
        raise VGGError(
            f"{last} changed while this run started (another process wrote it): "
            "run the same command again to resume from the new checkpoint"
        )
    for name in ("last.ckpt", "best.ckpt"):
        remove_stale_temporaries(run / name)  # left by a process killed while saving


def start_run_folder(run: Path, claim: RunClaim, d: Dist, device: torch.device) -> None:
    """Rank 0 claims the folder; every process stops with it if it cannot."""
    failure: VGGError | None = None
    if d.is_main:
        try:
            claim_run_folder(run, claim)
        except VGGError as err:
            failure = err
    if all_sum([float(failure is not None)], d, device)[0]:
        raise failure or VGGError(f"process 0 could not claim {run}: see its message")
