"""Top-k errors (the paper's metrics) and the training run's metric log."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vggnet.serialization import append_text, strict_json

RESUME_HINT = "; the last checkpoint is untouched: free space and continue with --resume"


def top_k_correct(
    scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> list[int]:
    """How many rows have their label among the k highest scores, for each k (k capped at K).

    Ties count against the label: its rank is the number of other classes scoring at
    least as high, so a net that outputs constant scores is always wrong.
    """
    rank = label_rank(scores, labels)
    return [int((rank < min(k, scores.shape[1])).sum()) for k in ks]


def label_rank(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each row's rank of its label (0: top), ties counted against the label."""
    target = scores.gather(1, labels[:, None])
    return (scores >= target).sum(1) - 1


def top1_predictions(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each row's top-1 class, consistent with ``top_k_correct``: a tie with the label is an error.

    A row whose label ranks first predicts its label; any other row predicts the
    highest-scoring class other than the label.
    """
    others = scores.scatter(1, labels[:, None], float("-inf"))
    return torch.where(label_rank(scores, labels) == 0, labels, others.argmax(1))


def confusion_matrix(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Counts of (true class, top-1 class) pairs, K x K: where a net's errors go."""
    k = scores.shape[1]
    pairs = labels * k + top1_predictions(scores, labels)
    return torch.bincount(pairs, minlength=k * k).reshape(k, k)


def error_percent(correct: int, total: int) -> float:
    """Error in percent (100 * (1 - correct / total)); NaN for an empty set."""
    return 100.0 * (1 - correct / total) if total else float("nan")


def quiet_tensorboard_thread_errors() -> None:
    """Keep TensorBoard's writer thread from printing a traceback when the disk fills.

    The same error reaches MetricsLog at its next write, which reports it in one line.
    Other threads' errors go to whatever hook was there before.
    """
    previous = threading.excepthook
    if getattr(previous, "vggnet_filter", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if type(args.thread).__name__ == "_AsyncWriterThread" and isinstance(
            args.exc_value, OSError
        ):
            return
        previous(args)

    hook.vggnet_filter = True  # type: ignore[attr-defined]  # marks the hook as installed
    threading.excepthook = hook


class MetricsLog:
    """Appends JSON lines to ``metrics.jsonl`` and mirrors scalars to TensorBoard.

    The JSON lines are the record: failing to write them stops the run with one line.
    TensorBoard is a mirror: if it fails, one warning, and the run goes on without it.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        tensorboard: bool = True,
        warn: Callable[[str], None] | None = None,
        start_step: int | None = None,
        resume_step: int | None = None,
    ) -> None:
        """``start_step``: the step the run (re)starts from; what the folder logged past it is void.

        ``resume_step`` is the older name of ``start_step``.
        """
        self.path = Path(run_dir) / "metrics.jsonl"
        self.tensorboard_dir = Path(run_dir) / "tensorboard"
        self.warn = warn or (lambda line: print(f"vggnet: warning: {line}", file=sys.stderr))
        self.writer: Any = None  # a SummaryWriter while TensorBoard works
        start = start_step if start_step is not None else resume_step
        earlier = start is not None and self.tensorboard_dir.exists()
        if tensorboard:
            self._open_tensorboard(start + 1 if earlier and start is not None else None)
        if start is not None and self.path.exists() and self.path.stat().st_size:
            self._mark_resume(start)

    def _open_tensorboard(self, purge_step: int | None) -> None:
        """Open the mirror; a purge step drops what a killed run logged from that step on."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.warn(
                f"TensorBoard is not installed, so {self.tensorboard_dir} is not written "
                f"(pip install 'vggnet[train]'); {self.path} has every number"
            )
            return
        quiet_tensorboard_thread_errors()
        try:
            self.writer = SummaryWriter(str(self.tensorboard_dir), purge_step=purge_step)
        except Exception as err:
            self._drop_tensorboard(err)

    def write(self, record: dict) -> None:
        """Log one record ({"kind": "step"|"epoch", "step": ..., ...})."""
        append_text(self.path, strict_json(record) + "\n", RESUME_HINT)
        if self.writer is None:
            return
        try:
            for key, value in record.items():
                if key not in ("kind", "step") and isinstance(value, int | float):
                    self.writer.add_scalar(f"{record['kind']}/{key}", value, record["step"])
        except Exception as err:
            self._drop_tensorboard(err)

    def _mark_resume(self, step: int) -> None:
        """Mark a resume from a checkpoint at ``step``: what a killed run logged past it is void.

        A line the killed run tore in half is ended first, so the next record stands alone.
        """
        torn = False
        with contextlib.suppress(OSError), self.path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell():
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
        append_text(
            self.path,
            ("\n" if torn else "") + json.dumps({"kind": "resume", "step": step}) + "\n",
            RESUME_HINT,
        )

    def _drop_tensorboard(self, err: BaseException) -> None:
        self.writer = None
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        self.warn(
            f"TensorBoard logging to {self.tensorboard_dir} stopped ({reason}); {self.path} goes on"
        )

    def close(self) -> None:
        """Flush TensorBoard."""
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception as err:
                self._drop_tensorboard(err)


def resident_mb() -> float | None:
    """This process's resident memory in MiB (Linux /proc), to watch for leaks across epochs."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# The typed fields of each kind of record: counts (int) and values (a number, or null for a
# NaN written as strict JSON). The fields the readers index by are required.
RECORD_FIELDS: dict[str, dict[str, type]] = {
    "step": {"step": int, "epoch": int, "loss": float, "lr": float, "images_per_s": float},
    "epoch": {
        "step": int,
        "epoch": int,
        "train_loss": float,
        "train_top1_error": float,
        "lr": float,
        "val_top1_error": float,
        "val_top5_error": float,
        "val_loc_error": float,
    },
    "resume": {"step": int},
}
REQUIRED_FIELDS = {"step": ("step",), "epoch": ("step", "epoch"), "resume": ("step",)}


def valid_record(record: object) -> bool:
    """Whether a parsed line is a record the readers can use: a known kind, its fields typed."""
    if not isinstance(record, dict) or record.get("kind") not in RECORD_FIELDS:
        return False
    kind = record["kind"]
    if any(key not in record for key in REQUIRED_FIELDS[kind]):
        return False
    for key, expected in RECORD_FIELDS[kind].items():
        value = record.get(key)
        if key not in record or (expected is float and value is None):
            continue
        if isinstance(value, bool) or not isinstance(
            value, int if expected is int else int | float
        ):
            return False
    return True


def read_metrics(
    run_dir: str | os.PathLike, warn: Callable[[str], None] | None = None
) -> list[dict]:
    """The records of a run's ``metrics.jsonl`` as the run's history.

    A torn line is ignored, and so is what a killed run logged past the checkpoint its
    resume started from (the resumed run logs those steps again). Lines that are not
    records (damaged bytes, other text, wrong types) are skipped and counted in one
    warning through ``warn``.
    """
    records: list[dict] = []
    path = Path(run_dir) / "metrics.jsonl"
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return records
    bad = 0
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError too
            bad += number < len(lines)  # a torn last line is expected after a kill
            continue
        if not valid_record(record):
            bad += 1
        elif record["kind"] == "resume":
            records = [r for r in records if r["step"] <= record["step"]]
        else:
            records.append(record)
    if bad and warn is not None:
        warn(f"{path}: {bad} unreadable line{'s' if bad > 1 else ''} skipped")
    return records


def primary_error(record: dict) -> float:
    """The validation error a run is steered and judged by: a localisation net's protocol (a)
    error (``val_loc_error``), else top-1."""
    return record["val_loc_error"] if "val_loc_error" in record else record["val_top1_error"]
