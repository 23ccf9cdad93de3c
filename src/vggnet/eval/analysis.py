"""What the errors are: top-k errors, the errors ensemble members share, per-class confusions."""

from __future__ import annotations

import torch

from vggnet.eval.scores import Scores
from vggnet.metrics import confusion_matrix, error_percent, label_rank, top_k_correct


def top_errors(posteriors: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Top-1 and top-5 error in percent."""
    c1, c5 = top_k_correct(posteriors, labels, (1, 5))
    return {
        "top1_error": error_percent(c1, len(labels)),
        "top5_error": error_percent(c5, len(labels)),
    }


def shared_errors(scores: Scores, parts: tuple[str, ...] | None = None) -> dict:
    """How alike an ensemble's members err: top-1 errors of each, of each pair, of all, of any.

    Averaging seldom rights an image that every member gets wrong, so members that
    share most of their errors gain little from being averaged.
    """
    wrong = [label_rank(p, scores.labels) > 0 for p in scores.per_model(parts)]
    stacked = torch.stack(wrong)
    return {
        "members": scores.checkpoints,
        "images": len(scores.labels),
        "wrong": [int(w.sum()) for w in wrong],
        "shared": [[int((a & b).sum()) for b in wrong] for a in wrong],
        "wrong_for_all": int(stacked.all(0).sum()),
        "wrong_for_any": int(stacked.any(0).sum()),
    }


def format_shared_errors(overlap: dict) -> str:
    """A terminal table of ``shared_errors``: members' errors and the ones each pair shares."""
    n = len(overlap["members"])
    width = max(len(m) for m in overlap["members"])
    head = f"{'member':<{width + 4}} {'wrong':>6}  " + " ".join(f"{j + 1:>6}" for j in range(n))
    lines = [
        f"top-1 errors of each member and shared by each pair, of {overlap['images']} images",
        head,
    ]
    for i, (name, row) in enumerate(zip(overlap["members"], overlap["shared"], strict=True)):
        cells = " ".join(f"{'-' if i == j else c:>6}" for j, c in enumerate(row))
        lines.append(f"{i + 1:>2}  {name:<{width}} {overlap['wrong'][i]:>6}  {cells}")
    lines.append(
        f"wrong for every member: {overlap['wrong_for_all']}; "
        f"for at least one: {overlap['wrong_for_any']}"
    )
    return "\n".join(lines)


def class_errors(scores: Scores, parts: tuple[str, ...] | None = None) -> dict:
    """Top-1 error of each class and the confusion matrix: which classes a net mistakes for which."""
    matrix = confusion_matrix(scores.combined(parts), scores.labels)
    images = matrix.sum(1)
    wrong = images - matrix.diagonal()
    return {
        "classes": list(scores.classes),
        "images": images.tolist(),
        "top1_error": [
            error_percent(int(n - w), int(n)) if n else None
            for n, w in zip(images, wrong, strict=True)
        ],
        "confusion": matrix.tolist(),
    }


def format_class_errors(per_class: dict, top: int = 5) -> str:
    """A terminal table of ``class_errors``: each class's error, what it is most often taken for."""
    classes, matrix = per_class["classes"], per_class["confusion"]
    # (-count, true, predicted), most frequent first; ties go to the lower class index
    pairs = sorted(
        (-count, i, j)
        for i, row in enumerate(matrix)
        for j, count in enumerate(row)
        if i != j and count
    )
    taken: dict[int, str] = {}
    for count, i, j in pairs:
        taken.setdefault(i, f"{classes[j]} ({-count})")
    width = max(len("class"), *(len(c) for c in classes))
    lines = [f"{'class':<{width}} {'images':>7} {'top-1 error %':>14}  most often taken for"]
    for i, name in enumerate(classes):
        error = per_class["top1_error"][i]
        shown = "-" if error is None else f"{error:.2f}"
        lines.append(
            f"{name:<{width}} {per_class['images'][i]:>7} {shown:>14}  {taken.get(i, '-')}"
        )
    common = ", ".join(f"{classes[i]} as {classes[j]} {-c}" for c, i, j in pairs[:top])
    lines.append(f"most common errors (true as predicted, images): {common or 'none'}")
    return "\n".join(lines)
