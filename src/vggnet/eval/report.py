"""Result rows and the tables printed for them (shaped like the paper's Tables 3-6)."""

from __future__ import annotations

from vggnet.eval.analysis import top_errors
from vggnet.eval.scores import Scores


def result_row(scores: Scores, method: str, parts=None, scales=None) -> dict:
    """One row of results: protocol, scales, flip, errors, images, images/s."""
    combined = scores.combined(parts, scales)
    used = [[q for q in s if scales is None or q in scales] for s in scores.scales]
    return {
        "method": method,
        "scales": used[0] if all(u == used[0] for u in used) else used,
        "flip": scores.flip,
        "checkpoints": scores.checkpoints,
        "images": len(scores.labels),
        "skipped": len(scores.skipped),
        **top_errors(combined, scores.labels),
        "images_per_s": len(scores.labels) / scores.seconds if scores.seconds else None,
    }


def format_results(rows: list[dict]) -> str:
    """A terminal table: protocol, scales, top-1 / top-5 error, images, images/s."""
    texts = [_scales_text(r["scales"]) for r in rows]
    method_w = max([18, *(len(r["method"]) for r in rows)])
    scales_w = max([22, *map(len, texts)])
    lines = [
        f"{'protocol':{method_w}s} {'scales':{scales_w}s} {'flip':5s} {'top-1 err %':>11s} {'top-5 err %':>11s} {'images':>7s} {'img/s':>8s}"
    ]
    for r, text in zip(rows, texts, strict=True):
        speed = f"{r['images_per_s']:8.1f}" if r.get("images_per_s") else f"{'-':>8s}"
        lines.append(
            f"{r['method']:{method_w}s} {text:{scales_w}s} {'yes' if r['flip'] else 'no':5s} {r['top1_error']:11.2f} "
            f"{r['top5_error']:11.2f} {r['images']:7d} {speed}"
        )
    return "\n".join(lines)


def _scales_text(scales: list[int] | list[list[int]]) -> str:
    """One model's scales as "Q,Q"; an ensemble's own scales per member as "Q | Q,Q"."""
    if scales and isinstance(scales[0], int):
        return ",".join(map(str, scales))
    return " | ".join(",".join(map(str, s)) for s in scales)  # type: ignore[arg-type]
