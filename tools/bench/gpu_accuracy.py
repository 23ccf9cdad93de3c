"""Issue 6's accuracy runs on a GPU, in one go (the device is scarce: run once, record).

    PYTHONPATH=src python tools/bench/gpu_accuracy.py --data fashion-mnist:FOLDER \
        --out /dev/shm/acc --report $OUT --deadline-s 540 [--nets D-b512,E-b512,D-b512-seed1]
        [--ensemble-with NETS]   # nets an earlier call scored into the same --out
    python tools/bench/gpu_accuracy.py --smoke --out DIR        # the same code path, tiny, on a CPU

Runs so far (H200, 2026-11-26) and their commands: docs/RESULTS.md; raw output in
docs/gpu-accuracy/.

Trains the nets of ``NETS`` on Fashion-MNIST one after the other, each sized to finish
by ``--deadline-s`` (seconds from the start): a net's share is the time left (less a
reserve for scoring) over the nets left; a two-epoch calibration run measures what its
second epoch cost (training, validation and checkpoints, from the epoch record) and
what a run costs besides its epochs (the calibration's time beyond two such epochs);
the net's number of epochs is what fits the share, so the linear schedule ends where
the time does.

Each net is scored from its ``last.ckpt`` (the end of its schedule: Fashion-MNIST's
validation split is its test set, so picking the best epoch would select on the test
set) right after training, with the paper's protocols at Table 4's Q set: centre, dense,
multi-crop (3x3 grid, flips) and dense + multi-crop, at Q = S and at all three Q. Then
the ensemble of all nets (with ``--ensemble-with``, also those an earlier call scored into
the same ``--out``: each net's scores are kept as DIR/NAME.scores.pt). DIR/accuracy.json
and accuracy.log (and the same two files in ``--report``) are rewritten after every net,
so a run cut short keeps what it finished. The scores files go to ``--report`` as well
(a few MB each, no weights): nets trained on different leases ensemble afterwards on any
machine with ``vggnet ensemble A.scores.pt B.scores.pt ...``.

The device machine cannot download: carry the four IDX files, e.g. copy
/usr/share/datasets/fashion-mnist to runs/fashion-mnist (ignored by git) and pass
``carry=["runs/fashion-mnist"]`` with ``--data fashion-mnist:runs/fashion-mnist``.
Checkpoints are large: put ``--out`` on /dev/shm there and ``--report`` in $OUT.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import torch

from vggnet.bench.common import machine
from vggnet.data import open_source
from vggnet.data.geometry import parse_scale, single_test_scale
from vggnet.eval.protocols import Protocol
from vggnet.eval.report import result_row
from vggnet.eval.scores import Scores, merge_scores, save_scores
from vggnet.eval.scoring import evaluate_checkpoints
from vggnet.metrics import read_metrics
from vggnet.recipes.gpu import COMMON, NETS, SMOKE
from vggnet.train import train

SCORE_RESERVE_S = 15.0  # per net, for scoring it (D at three scales: about 6 s on an H200)
ENSEMBLE_RESERVE_S = 5.0


def epoch_cost(run: Path) -> tuple[float, float]:
    """(training seconds, validation + checkpoint seconds) of a calibration run's last epoch.

    The first epoch pays for autotuning and starting the loader's workers; later ones do not.
    """
    last = [r for r in read_metrics(run) if r["kind"] == "epoch"][-1]
    return last["train_seconds"], last["val_seconds"] + last["checkpoint_seconds"]


def epochs_that_fit(share: float, calibration: float, epoch: float) -> tuple[int, float]:
    """(epochs, fixed seconds a run costs) for a net's share, after its two-epoch calibration.

    The fixed cost (reading data, colour statistics, the first epoch's warm-up, the plot)
    is the calibration's time beyond two steady epochs; the run pays it once more.
    """
    fixed = max(0.0, calibration - 2 * epoch)
    return max(1, math.floor((share - calibration - fixed) / epoch)), fixed


def single_q(name: str) -> int:
    """Table 3's test scale of a net: Q = S, or the middle of its jittered range."""
    net = {**COMMON, **NETS[name]}
    return single_test_scale(parse_scale(net["scale"], net["crop"]))


def score(checkpoint: str, name: str, data: str, device: str) -> tuple[list[dict], Scores]:
    """Centre at Q = S; dense, multi-crop and both at Q = S and at the net's Q set.

    One pass over Table 4's Q set gives both: the Q = S rows average that scale only.
    """
    q = single_q(name)
    evaluate = dict(data=data, device=device, batch_size=512, workers=0)
    centre = evaluate_checkpoints([checkpoint], protocol=Protocol("center", [q]), **evaluate)
    protocol = Protocol("dense+multi-crop", None, flip=True, grid=3)
    scores = evaluate_checkpoints([checkpoint], protocol=protocol, **evaluate)
    rows = [result_row(centre, "center"), *rows_of(scores, q)]
    return [{"net": name, **row} for row in rows], scores


def rows_of(scores: Scores, q: int | None) -> list[dict]:
    """Dense, multi-crop and dense + multi-crop at Q = ``q`` (if given), then at every scale."""
    return [
        result_row(scores, method, parts=parts, scales=scales)
        for scales in ([[q]] if q is not None else []) + [None]
        for parts, method in (
            (("dense",), "dense"),
            (("multi-crop",), "multi-crop"),
            (None, "dense+multi-crop"),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", default="runs/gpu-accuracy")
    parser.add_argument("--report", default=None, help="also write the json and log here")
    parser.add_argument("--deadline-s", type=float, default=540.0, help="all of it, from start")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument(
        "--nets", default="D-b512,E-b512,D-b512-seed1", help="names from NETS, comma-separated"
    )
    parser.add_argument(
        "--ensemble-with",
        default="",
        help="nets an earlier call scored into --out, comma-separated",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny nets, synthetic data, CPU")
    args = parser.parse_args()
    started = time.perf_counter()
    deadline = started + args.deadline_s
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reports = [out] + ([Path(args.report)] if args.report else [])
    names = args.nets.split(",")
    unknown = [n for n in names if n not in NETS]
    if unknown:
        raise SystemExit(f"gpu_accuracy.py: --nets {unknown[0]}: choose from {', '.join(NETS)}")
    earlier = [n for n in args.ensemble_with.split(",") if n]
    twice = [n for i, n in enumerate(names + earlier) if n in (names + earlier)[:i]]
    if twice:
        raise SystemExit(
            f"gpu_accuracy.py: {twice[0]} is named twice in --nets and --ensemble-with: "
            "each net trains and counts once"
        )
    missing = [n for n in earlier if not (out / f"{n}.scores.pt").is_file()]
    if missing:
        raise SystemExit(
            f"gpu_accuracy.py: --ensemble-with {missing[0]}: no {out / missing[0]}.scores.pt "
            "(name nets an earlier call of this script scored into the same --out)"
        )
    cuda = args.device.startswith("cuda")
    data = "synthetic:classes=4,train=320,val=16,size=28" if args.smoke else args.data
    n_train = len(open_source(data, "train"))
    log_lines: list[str] = []
    report: dict = {
        "machine": machine(torch.device(args.device)),
        "common": COMMON,
        "deadline_s": args.deadline_s,
        "nets": {},
        "results": [],
    }

    def log(line: str) -> None:
        print(line, flush=True)
        log_lines.append(line)

    def write_report() -> None:
        report["seconds"] = time.perf_counter() - started
        for folder in reports:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "accuracy.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
            (folder / "accuracy.log").write_text("\n".join(log_lines) + "\n")

    log(f"{report['machine']}; nets {', '.join(names)}; deadline {args.deadline_s:.0f} s")
    trained = list(earlier)
    checkpoints = [str(out / n / "last.ckpt") for n in earlier]
    per_net = [Scores.load(out / f"{n}.scores.pt") for n in earlier]
    for i, name in enumerate(names):
        left = len(names) - i
        share = (
            deadline - time.perf_counter() - SCORE_RESERVE_S * left - ENSEMBLE_RESERVE_S
        ) / left
        settings = {
            **COMMON,
            **NETS[name],
            **(SMOKE if args.smoke else {}),
            "data": data,
            "device": args.device,
            "precision": "bf16" if cuda else "fp32",
            "workers": args.workers if cuda else 0,
        }
        torch.backends.cudnn.benchmark = cuda  # training's shapes are fixed: autotune them
        tick = time.perf_counter()
        probe = out / f"{name}-calibration"
        shutil.rmtree(probe, ignore_errors=True)
        train({**settings, "out": str(probe), "epochs": 2})
        train_seconds, overhead = epoch_cost(probe)
        rate = n_train / train_seconds
        calibration = time.perf_counter() - tick
        epochs, fixed = epochs_that_fit(share, calibration, train_seconds + overhead)
        shutil.rmtree(probe, ignore_errors=True)
        run = out / name
        shutil.rmtree(run, ignore_errors=True)
        tick = time.perf_counter()
        summary = train({**settings, "out": str(run), "epochs": epochs})
        seconds = time.perf_counter() - tick
        records = [r for r in read_metrics(run) if r["kind"] == "epoch"]
        curve = [round(r["val_top1_error"], 2) for r in records]
        spent = {
            part: sum(r[f"{part}_seconds"] for r in records)
            for part in ("train", "val", "checkpoint")
        }
        log(
            f"{name}: calibration epoch {train_seconds:.2f} s training ({rate:.0f} img/s) + "
            f"{overhead:.2f} s validation and checkpoint, {fixed:.1f} s a run -> {epochs} epochs "
            f"in {seconds:.0f} s "
            f"(share {share:.0f} s; {', '.join(f'{k} {v:.0f} s' for k, v in spent.items())}); "
            f"centre val error by epoch {curve}"
        )
        report["nets"][name] = {
            "settings": settings,
            "calibration_images_per_s": rate,
            "calibration_overhead_s": overhead,
            "calibration_fixed_s": fixed,
            "seconds_by_part": spent,
            "epochs": epochs,
            "train_seconds": seconds,
            "val_top1_error_by_epoch": curve,
            "best_val_top1_error": summary["best_val_top1_error"],
        }
        checkpoints.append(str(run / "last.ckpt"))
        trained.append(name)
        write_report()
        # Scoring meets many shapes (scales, last batches): autotuning each costs more than it saves.
        torch.backends.cudnn.benchmark = False
        rows, scores = score(checkpoints[-1], name, data, args.device)
        for folder in reports:  # in --report too: later sessions ensemble them on a CPU
            save_scores(scores, folder / f"{name}.scores.pt")
        per_net.append(scores)
        report["results"] += rows
        for row in rows:
            log(format_row(row))
        write_report()

    if len(trained) > 1:
        net = "+".join(trained)
        shared = {single_q(n) for n in trained}  # nets of other scales: their Q sets only
        q = shared.pop() if len(shared) == 1 else None
        for row in rows_of(merge_scores(per_net, checkpoints), q):
            report["results"].append({"net": net, **row})
            log(format_row(report["results"][-1]))
    log(f"total {time.perf_counter() - started:.0f} s")
    write_report()


def format_row(row: dict) -> str:
    """One readable result line."""
    return (
        f"{row['net']:16s} {row['method']:17s} Q={row['scales']}: top-1 error "
        f"{row['top1_error']:.2f}% (accuracy {100 - row['top1_error']:.2f}%)"
    )


if __name__ == "__main__":
    main()
