"""Small nets, files and training runs the tests share."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np

from vggnet import VGG, build_model
from vggnet.checkpoint import read_checkpoint

# The data of the ``trained`` fixture (tests/conftest.py); its val split is the test set.
TRAINED_DATA = "synthetic:classes=4,train=64,val=48,size=40"


def tiny(config: str = "D", **kwargs) -> VGG:
    """A narrow net with the paper's geometry: cheap to run at ImageNet sizes."""
    args = {"num_classes": 10, "width": 1 / 16, "fc_width": 32, "init": "kaiming"}
    args.update(kwargs)
    return build_model(config, **args).eval()


def write_image_folder(
    root, classes=("cat", "dog"), train=4, val=2, size=(80, 60), fmt="JPEG"
) -> None:
    """An ImageNet-layout folder of generated images: ROOT/{train,val}/<class>/<i>.<ext>."""
    from pathlib import Path

    from vggnet.data.synthetic import synthetic_image

    ext = {"JPEG": "jpg", "PNG": "png"}[fmt]
    for split, count in (("train", train), ("val", val)):
        for c, name in enumerate(classes):
            folder = Path(root, split, name)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img = synthetic_image(i * len(classes) + c, len(classes), max(size), 0, split)
                img.resize(size).save(folder / f"{i}.{ext}", fmt)


def voc_xml(objects, size=(80, 60)) -> str:
    """A VOC / ImageNet annotation: ``objects`` as (name, xmin, ymin, xmax, ymax), 1-based."""
    body = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
        f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
        for n, a, b, c, d in objects
    )
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height></size>" if size else ""
    return f"<annotation><filename>x</filename>{size_xml}{body}</annotation>"


def write_box_folder(root, boxes_dir, skip=(), train=3, val=2) -> None:
    """A 2-class folder of 80x60 PNGs named SPLIT-CLASS-I, with a VOC file per image in
    ``boxes_dir`` (the class's box, top left or bottom right by turns, and a whole-image
    "other"), except the ``skip`` stems."""
    from pathlib import Path

    root, boxes_dir = Path(root), Path(boxes_dir)
    write_image_folder(root, train=train, val=val, fmt="PNG")
    boxes_dir.mkdir(exist_ok=True)
    for split, count in (("train", train), ("val", val)):
        for c, name in enumerate(("cat", "dog")):
            for i in range(count):
                stem = f"{split}-{name}-{i}"
                (root / split / name / f"{i}.png").rename(root / split / name / f"{stem}.png")
                if stem not in skip:
                    box = (11 + c, 6, 50, 40) if i % 2 == 0 else (41, 21, 80, 60)
                    objects = [(name, *box), ("other", 1, 1, 80, 60)]
                    (boxes_dir / f"{stem}.xml").write_text(voc_xml(objects))


DATA = "synthetic:classes=4,train=48,val=16,size=40"
SMALL = [
    "--data",
    DATA,
    "--scale",
    "40:48",
    "--crop",
    "32",
    "--batch-size",
    "8",
    "--width",
    "0.125",
    "--fc-width",
    "32",
    "--init",
    "kaiming",
    "--normalize",
    "standard",
    "--lr",
    "0.02",
    "--workers",
    "0",
    "--log-every",
    "1",
    "--device",
    "cpu",
]  # fmt: skip  (--device cpu: the bit-identity guarantees are the CPU's; CUDA kernels may vary)


def train_args(out, *extra, config="A", data=None) -> list[str]:
    """``vggnet train`` arguments for a tiny CPU run (net A, width 1/8, crop 32) into ``out``."""
    args = ["train", "--config", config, "--out", str(out), *SMALL, *extra]
    if data is not None:
        args[args.index("--data") + 1] = data
    return args


def state(path):
    """(state dict, training state) of a run's checkpoint."""
    payload = read_checkpoint(path)
    return payload["state_dict"], payload["train_state"]


def worker_env(**extra: str) -> dict[str, str]:
    """Environment of a child process: unbuffered, one thread (2-core machines run several)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}


def run_vggnet(args, **kwargs) -> subprocess.Popen:
    """``python -m vggnet ARGS`` in a child process."""
    kwargs.setdefault("env", worker_env())
    return subprocess.Popen([sys.executable, "-m", "vggnet", *map(str, args)], **kwargs)


def torchrun_command(args, processes: int = 2) -> list[str]:
    """``torchrun --standalone`` running ``vggnet ARGS`` in ``processes`` CPU processes."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", "-m", "vggnet", *map(str, args),
    ]  # fmt: skip


def free_port() -> int:
    """A TCP port nobody listens on now (for process groups started without torchrun)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def garment_like(rng, n):
    """28x28 images of random bright rectangles with ragged edges on black, like garments."""
    images = np.zeros((n, 28, 28), np.uint8)
    for image in images:
        top, left = rng.integers(0, 8, 2)
        bottom, right = rng.integers(18, 28, 2)
        image[top:bottom, left:right] = rng.integers(60, 256, (bottom - top, right - left))
    return images


def eager_winograd(monkeypatch) -> None:
    """Winograd layers run eagerly: torch.compile's first build takes ~20 s on two cores,
    which the slow tests pay (tests/model/test_winograd.py)."""
    import vggnet.model.winograd as winograd

    monkeypatch.setattr(winograd, "compiled_conv3x3", lambda: winograd.winograd_conv3x3)
