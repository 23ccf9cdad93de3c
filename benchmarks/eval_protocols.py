"""End-to-end `vggnet eval` images/s per protocol and test scale on generated JPEGs.

    python benchmarks/eval_protocols.py --device cuda --images 512 --precision bf16
    python benchmarks/eval_protocols.py --smoke            # tiny, on the CPU

Each row is one `vggnet eval` call (decode, rescale, crops/flips, network, soft-max,
top-k) with a randomly initialised D (10 classes) on ~500x375 JPEGs; the rate is what
the command itself reports. Shows how cost grows with Q and with the number of crops.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

import torch
from common import machine
from pipeline import write_jpegs

from vggnet import build_model, save_checkpoint
from vggnet.cli import main as vggnet


def run(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpegs(root, args.images)
        val = root / "val"
        for folder in (root / "train").iterdir():  # evaluate on the generated images
            folder.rename(val / folder.name)
        (root / "train").mkdir(exist_ok=True)
        for c in sorted(p.name for p in val.iterdir()):
            (root / "train" / c).mkdir()
        torch.manual_seed(0)
        model = build_model(
            "D", 10, width=args.width, fc_width=round(4096 * args.width), init="kaiming"
        )
        model.classes = sorted(p.name for p in val.iterdir())
        model.train_scale = (256, 512)
        ckpt = root / "d.ckpt"
        save_checkpoint(ckpt, model)
        print(
            f"vggnet eval on {args.images} JPEGs (~500x375), D width {args.width}, {args.precision}, on {machine(torch.device(args.device))}"
        )
        for method, grid in (("center", 5), ("dense", 5), ("multi-crop", 5)):
            for q in args.scales:
                result = root / "r.json"
                argv = [
                    "eval", "--checkpoint", str(ckpt), "--data", str(root), "--method", method,
                    "--scales", str(q), "--grid", str(grid), "--device", args.device,
                    "--precision", args.precision, "--batch-size", str(args.batch),
                    "--workers", str(args.workers), "--json", str(result),
                ]  # fmt: skip
                if args.device.startswith("cuda"):
                    argv.append("--channels-last")
                with contextlib.redirect_stdout(io.StringIO()):
                    status = vggnet(argv)
                if status:
                    raise SystemExit(f"vggnet eval failed for {method} Q={q}")
                row = json.loads(result.read_text())
                rows.append({"method": method, "q": q, "images_per_s": row["images_per_s"]})
    for row in rows:  # after the runs, so progress bars do not swallow the lines
        print(f"  {row['method']:10s} Q={row['q']:4d}  {row['images_per_s']:9.1f} images/s")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--scales", type=int, nargs="+", default=[256, 384, 512])
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.width, args.scales, args.workers = 12, 1 / 16, [224], 0
    rows = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
