"""Small nets, files and training runs the tests share."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from vggnet import VGG, build_model
from vggnet.checkpoint import read_checkpoint


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
