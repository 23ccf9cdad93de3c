"""End-to-end evaluation images/s per protocol and test scale on generated JPEGs, and the
centre-crop protocol against a plain torchvision script (ImageFolder + Resize + CenterCrop +
ToTensor + Normalize + vgg16, fp32, same batch size and workers), with inference's
default precision and, on a CPU, with ``--precision int8`` (calibrated before timing).

    python -m vggnet.bench.protocols --device cuda --images 512 --precision bf16
    python -m vggnet.bench.protocols --smoke            # tiny, on the CPU

Each rate is wall-clock over the whole call (decode, rescale, crops/flips, network,
soft-max), worker start-up included; ours also includes reading the checkpoint. It shows
how cost grows with Q and with the number of crops (multi-crop: 5x5 crops and flips, 50
forward passes per image).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision.transforms as T
from torchvision.datasets import ImageFolder

from vggnet import save_checkpoint
from vggnet.bench.common import interleaved, machine, ratios
from vggnet.bench.forward import model_pair
from vggnet.bench.pipeline import write_jpegs
from vggnet.eval.protocols import Protocol
from vggnet.eval.scoring import evaluate_checkpoints
from vggnet.interop.int8 import int8_unusable
from vggnet.model import VGG

CLASSES = 10
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def write_eval_set(root: Path, images: int, classes: int = CLASSES) -> None:
    """Generated ~500x375 JPEGs as the val split of an image folder (train: empty classes)."""
    write_jpegs(root, images, classes)
    val = root / "val"
    for folder in (root / "train").iterdir():
        (val / folder.name).rmdir()
        folder.rename(val / folder.name)
    for c in sorted(p.name for p in val.iterdir()):
        (root / "train" / c).mkdir()


def torchvision_center_rate(
    model: torch.nn.Module, root: Path, q: int, crop: int, batch: int, workers: int, device
) -> float:
    """Images/s of the plain torchvision evaluation script (fp32, contiguous)."""
    transform = T.Compose(
        [T.Resize(q), T.CenterCrop(crop), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    loader = torch.utils.data.DataLoader(
        ImageFolder(root / "val", transform), batch, num_workers=workers
    )
    start, n, correct = time.perf_counter(), 0, 0
    with torch.inference_mode():
        for x, y in loader:
            scores = model(x.to(device)).softmax(1)
            correct += int((scores.argmax(1).cpu() == y).sum())
            n += len(y)
    return n / (time.perf_counter() - start)


def vggnet_rate(
    ckpt: Path, root: Path, protocol: Protocol, args, int8_calibration: Path | None = None
) -> float:
    """Images/s of vggnet's evaluation (inference defaults unless ``args`` overrides; int8,
    calibrated on ``int8_calibration``'s train split, if given)."""
    start = time.perf_counter()
    scores = evaluate_checkpoints(
        [str(ckpt)],
        str(root),
        protocol,
        device=args.device,
        precision="int8" if int8_calibration else args.precision,
        calibration=str(int8_calibration) if int8_calibration else None,
        channels_last=args.channels_last,
        batch_size=args.batch,
        workers=args.workers,
    )
    assert scores is not None  # one process
    return len(scores.labels) / (time.perf_counter() - start)


def run(args) -> dict:
    """The centre-crop comparison, then every protocol at every Q (ours only)."""
    device = torch.device(args.device)
    report: dict = {"machine": machine(device), "center_vs_torchvision": {}, "protocols": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_eval_set(root, args.images)
        torch.manual_seed(0)
        reference, ours = model_pair(args.width, args.crop, CLASSES)
        assert isinstance(ours, VGG)
        reference = reference.to(device)
        ours.classes = sorted(p.name for p in (root / "val").iterdir())
        ours.train_scale = (args.scales[0], args.scales[0])
        ckpt = root / "d.ckpt"
        save_checkpoint(ckpt, ours)

        q = args.scales[0]
        center = Protocol("center", [q], flip=False)
        runs = {
            "torchvision": lambda: torchvision_center_rate(
                reference, root, q, args.crop, args.batch, args.workers, device
            ),
            "vggnet": lambda: vggnet_rate(ckpt, root, center, args),
        }
        if int8_unusable(device) is None:
            calibration = root / "calibration"
            write_jpegs(calibration, 32)
            runs["vggnet int8"] = lambda: vggnet_rate(ckpt, root, center, args, calibration)
        for run_once in runs.values():  # warm-up: page cache, first-call set-up, calibration
            run_once()
        rates = interleaved(runs, args.repeats)
        report["center_vs_torchvision"] = {
            "q": q,
            "images_per_s": rates,
            **{
                f"ratio {name}" if name != "vggnet" else "ratio": ratios(v, rates["torchvision"])
                for name, v in rates.items()
                if name != "torchvision"
            },
        }
        few = root / "few"  # multi-crop is 50 forward passes an image: fewer images
        write_eval_set(few, max(args.crop_images, CLASSES))
        for method in args.methods:
            for q in args.scales:
                protocol = Protocol(method, [q], flip=method != "center", grid=args.grid)
                data = few if method == "multi-crop" else root
                value = vggnet_rate(ckpt, data, protocol, args)
                report["protocols"].append({"method": method, "q": q, "images_per_s": value})
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--crop-images", type=int, default=10, help="images for multi-crop")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--scales", type=int, nargs="+", default=[256, 384, 512])
    parser.add_argument("--methods", nargs="+", default=["center", "dense", "multi-crop"])
    parser.add_argument("--grid", type=int, default=5)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)


def print_report(report: dict) -> None:
    """The comparison and the per-protocol table."""
    c = report["center_vs_torchvision"]
    median = {k: statistics.median(v) for k, v in c["images_per_s"].items()}
    print(f"center Q={c['q']}: torchvision {median['torchvision']:.2f} images/s")
    for name in (n for n in median if n != "torchvision"):
        ratio = c["ratio" if name == "vggnet" else f"ratio {name}"]
        print(
            f"  {name:12s} {median[name]:.2f} images/s; ratio to torchvision min "
            f"{min(ratio):.2f} median {statistics.median(ratio):.2f} max {max(ratio):.2f}"
        )
    for row in report["protocols"]:
        print(f"  {row['method']:10s} Q={row['q']:4d}  {row['images_per_s']:9.2f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.crop_images, args.width, args.workers = 12, 10, 1 / 16, 0
        args.crop, args.scales, args.repeats = 32, [32, 48], 1
    report = run(args)
    print(f"evaluation end to end on {report['machine']}")
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
