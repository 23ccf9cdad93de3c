"""Where images come from: ImageNet-style folders, Fashion-MNIST IDX files, generated images.

Every source has ``classes``, ``channels`` (3 or 1), ``labels`` (one int per image),
``__len__``, ``name(i)`` (for messages) and ``read(i, min_short_side)``, which
decodes image i upright as a (C, H, W) uint8 tensor and returns it with its full size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from vggnet.data.canvas import CanvasOptions, Scene, parse_canvas_options, render_scene
from vggnet.data.idx import read_idx
from vggnet.data.images import decode_image, pil_to_tensor
from vggnet.data.synthetic import synthetic_image, synthetic_label
from vggnet.errors import VGGError

SPLITS = ("train", "val")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
# Fashion-MNIST's "val" is its 10,000-image test set (t10k), the benchmark's figure.
FASHION_MNIST_FILES = {"train": "train", "val": "t10k"}


def image_extensions() -> set[str]:
    """File extensions Pillow can open, lower case, with the dot."""
    return {ext.lower() for ext in Image.registered_extensions()}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise VGGError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")


def _list_images(folder: Path, seen: set[str] | None = None) -> list[Path]:
    """Image files under ``folder`` (following links, each real folder once), sorted.

    ``seen`` holds real folders not to enter (other classes, the split itself), so that a
    link can neither loop nor give another class's images a second label.
    """
    extensions = image_extensions()
    found: list[Path] = []
    seen = set() if seen is None else seen

    def onerror(err: OSError) -> None:
        raise VGGError(f"cannot read folder {err.filename}: {err.strerror}")

    for dirpath, dirnames, filenames in os.walk(folder, onerror=onerror, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen and dirpath != str(folder):  # a loop, or a link to a folder seen
            dirnames.clear()
            continue
        seen.add(real)
        dirnames.sort()
        found.extend(
            Path(dirpath, f) for f in sorted(filenames) if Path(f).suffix.lower() in extensions
        )
    return found


@dataclass
class FolderSource:
    """``ROOT/<split>/<class>/*`` (or a flat ``ROOT/val`` plus a labels file), ImageNet style."""

    root: Path
    split: str = "train"
    val_labels: Path | None = None
    classes: list[str] = field(init=False)
    paths: list[Path] = field(init=False)
    labels: np.ndarray = field(init=False)
    channels: int = 3

    def __post_init__(self) -> None:
        _check_split(self.split)
        self.root = Path(self.root)
        self.classes = self._class_folders("train")
        if self.split == "val" and self.val_labels is not None:
            self.paths, labels = self._flat_split()
        else:
            if self.split == "val":
                val_classes = self._class_folders("val")
                if val_classes != self.classes:
                    only_train = sorted(set(self.classes) - set(val_classes))
                    only_val = sorted(set(val_classes) - set(self.classes))
                    raise VGGError(
                        f"{self.root}: train and val class folders differ (only in train: "
                        f"{', '.join(only_train) or '-'}; only in val: {', '.join(only_val) or '-'})"
                    )
            self.paths, labels = [], []
            split_dir = self.root / self.split
            seen = {os.path.realpath(split_dir)}
            seen.update(os.path.realpath(split_dir / name) for name in self.classes)
            for label, name in enumerate(self.classes):
                files = _list_images(split_dir / name, seen)
                if not files:
                    raise VGGError(f"class folder {self.root / self.split / name} has no images")
                self.paths.extend(files)
                labels.extend([label] * len(files))
        self.labels = np.asarray(labels, dtype=np.int64)

    def _class_folders(self, split: str) -> list[str]:
        folder = self.root / split
        if not folder.is_dir():
            raise VGGError(
                f"{folder} is not a folder: an image folder dataset needs "
                f"{self.root}/train/<class>/ and {self.root}/val/<class>/"
            )
        try:
            classes = sorted(e.name for e in os.scandir(folder) if e.is_dir())
        except OSError as err:
            raise VGGError(f"cannot read folder {folder}: {err.strerror}") from None
        if not classes:
            raise VGGError(f"{folder} has no class folders (expected {folder}/<class>/<image>)")
        return classes

    def _flat_split(self) -> tuple[list[Path], list[int]]:
        """A flat val folder whose labels come from lines ``filename class`` (name or index)."""
        index = {name: i for i, name in enumerate(self.classes)}
        paths, labels = [], []
        try:
            assert self.val_labels is not None
            lines = Path(self.val_labels).read_text().splitlines()
        except OSError as err:
            raise VGGError(f"cannot read --val-labels {self.val_labels}: {err.strerror}") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise VGGError(
                    f"{self.val_labels}:{number}: expected 'filename class', got {line.strip()!r}"
                )
            filename, cls = parts
            if cls in index:
                label = index[cls]
            elif cls.isdigit() and int(cls) < len(self.classes):
                label = int(cls)
            else:
                raise VGGError(
                    f"{self.val_labels}:{number}: class {cls!r} is not a train class folder "
                    f"nor an index below {len(self.classes)}"
                )
            path = self.root / "val" / filename
            if not path.is_file():
                raise VGGError(f"{self.val_labels}:{number}: {path} does not exist")
            paths.append(path)
            labels.append(label)
        if not paths:
            raise VGGError(f"--val-labels {self.val_labels} lists no images")
        return paths, labels

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, i: int) -> str:
        """The file of image ``i``."""
        return str(self.paths[i])

    def read(self, i: int, min_short_side: int | None = None) -> tuple[Tensor, tuple[int, int]]:
        """Decode image ``i`` as RGB (reduced-size JPEG decoding down to ``min_short_side``)."""
        return decode_image(self.paths[i], "RGB", min_short_side)


@dataclass
class FashionMNISTSource:
    """Fashion-MNIST's four IDX files, read into memory: 28x28 gray, 10 named classes."""

    root: Path = Path(FASHION_MNIST_DIR)
    split: str = "train"
    classes: list[str] = field(default_factory=lambda: list(FASHION_MNIST_CLASSES))
    channels: int = 1
    images: np.ndarray = field(init=False)
    labels: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        _check_split(self.split)
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise VGGError(
                f"Fashion-MNIST folder {self.root} does not exist: install it with "
                "'apt-get install dataset-fashion-mnist' or pass fashion-mnist:FOLDER"
            )
        prefix = FASHION_MNIST_FILES[self.split]
        images = read_idx(self._file(f"{prefix}-images-idx3-ubyte"), rank=3)
        labels = read_idx(self._file(f"{prefix}-labels-idx1-ubyte"), rank=1)
        if len(images) != len(labels):
            raise VGGError(f"{self.root}: {len(images)} {prefix} images but {len(labels)} labels")
        if labels.max(initial=0) >= len(self.classes):
            raise VGGError(f"{self.root}: {prefix} labels go up to {labels.max()}, expected 0..9")
        self.images = images
        self.labels = labels.astype(np.int64)

    def _file(self, stem: str) -> Path:
        for candidate in (self.root / stem, self.root / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        raise VGGError(f"{self.root} has no {stem} (or {stem}.gz)")

    def __len__(self) -> int:
        return len(self.labels)

    def name(self, i: int) -> str:
        """Where image ``i`` comes from."""
        return f"{self.root}/{FASHION_MNIST_FILES[self.split]}[{i}]"

    def read(self, i: int, min_short_side: int | None = None) -> tuple[Tensor, tuple[int, int]]:
        """Image ``i`` as a (1, 28, 28) uint8 tensor (a view: do not modify it in place)."""
        return torch.from_numpy(self.images[i])[None], (self.images.shape[2], self.images.shape[1])


@dataclass
class SyntheticSource:
    """Generated images (see ``synthetic_image``): ``synthetic:classes=K,train=N,val=M,size=P,seed=S``."""

    split: str = "train"
    num_classes: int = 10
    train: int = 512
    val: int = 128
    size: int = 64
    seed: int = 0
    channels: int = 3
    classes: list[str] = field(init=False)
    labels: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        _check_split(self.split)
        if self.num_classes < 1 or self.train < 1 or self.val < 1 or self.size < 8:
            raise VGGError("synthetic data needs classes >= 1, train >= 1, val >= 1 and size >= 8")
        self.classes = [
            f"class{i:0{len(str(self.num_classes - 1))}d}" for i in range(self.num_classes)
        ]
        count = self.train if self.split == "train" else self.val
        self.labels = np.asarray(
            [synthetic_label(i, self.num_classes) for i in range(count)], dtype=np.int64
        )

    def __len__(self) -> int:
        return len(self.labels)

    def name(self, i: int) -> str:
        """Where image ``i`` comes from."""
        return f"synthetic/{self.split}[{i}]"

    def read(self, i: int, min_short_side: int | None = None) -> tuple[Tensor, tuple[int, int]]:
        """Generate image ``i``."""
        img = synthetic_image(i, self.num_classes, self.size, self.seed, self.split)
        return pil_to_tensor(img), img.size


@dataclass
class DigitsSource:
    """scikit-learn's bundled 8x8 digits (1,797 images, 16 grey levels): a small transfer target.

    Every fourth image (index % 4 == 0) is ``val``, the rest ``train``.
    """

    split: str = "train"
    classes: list[str] = field(default_factory=lambda: [str(d) for d in range(10)])
    channels: int = 1
    images: np.ndarray = field(init=False)
    labels: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        _check_split(self.split)
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise VGGError(
                "--data sklearn-digits needs scikit-learn: pip install scikit-learn"
            ) from None
        digits = load_digits()
        keep = (np.arange(len(digits.target)) % 4 == 0) == (self.split == "val")
        self.images = np.round(digits.images[keep] * 255 / 16).astype(np.uint8)
        self.labels = digits.target[keep].astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def name(self, i: int) -> str:
        """Where image ``i`` comes from."""
        return f"sklearn-digits/{self.split}[{i}]"

    def read(self, i: int, min_short_side: int | None = None) -> tuple[Tensor, tuple[int, int]]:
        """Image ``i`` as a (1, 8, 8) uint8 tensor."""
        return torch.from_numpy(self.images[i])[None], (8, 8)


RECENT_SCENES = 512  # a batch's worth and more (about 10 MB of gray scenes)


@dataclass
class CanvasSource:
    """Fashion-MNIST garments in generated scenes (``vggnet.data.canvas``), with their boxes.

    Labels, classes and the train/val split are Fashion-MNIST's; a scene is rendered on
    every read (about 1 ms), the same in every process.
    """

    root: Path = Path(FASHION_MNIST_DIR)
    split: str = "train"
    options: CanvasOptions = field(default_factory=CanvasOptions)
    classes: list[str] = field(init=False)
    channels: int = field(init=False)
    labels: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.garments = FashionMNISTSource(Path(self.root), self.split)
        limit = self.options.train if self.split == "train" else self.options.val
        self.classes, self.labels = self.garments.classes, self.garments.labels[: limit or None]
        self.channels = 3 if self.options.colour else 1
        self._recent: dict[int, Scene] = {}

    def __len__(self) -> int:
        return len(self.labels)

    def name(self, i: int) -> str:
        """Where scene ``i`` comes from: its garment's place in Fashion-MNIST."""
        return f"fashion-mnist-canvas:{self.garments.name(i)}"

    def scene(self, i: int) -> Scene:
        """Scene ``i``: image, object box, object opacity. The last few hundred are kept: a
        localisation batch reads its images, then the boxes of the same scenes."""
        scene = self._recent.pop(i, None)
        if scene is None:
            scene = render_scene(self.garments.images, i, self.split, self.options)
        self._recent[i] = scene  # most recent last
        if len(self._recent) > RECENT_SCENES:
            del self._recent[next(iter(self._recent))]
        return scene

    @property
    def min_short_side(self) -> int:
        """The smallest short side any scene can have (the ``size`` option's low end)."""
        return self.options.size[0]

    def box(self, i: int) -> tuple[int, int, int, int]:
        """Scene ``i``'s object box (x0, y0, x1, y1), pixels, x1 and y1 exclusive."""
        return self.scene(i).box

    def read(self, i: int, min_short_side: int | None = None) -> tuple[Tensor, tuple[int, int]]:
        """Scene ``i`` as a (C, H, W) uint8 tensor, and its (width, height)."""
        image = self.scene(i).image
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), (
            image.shape[1],
            image.shape[0],
        )


Source = FolderSource | FashionMNISTSource | SyntheticSource | DigitsSource | CanvasSource

SYNTHETIC_KEYS = {
    "classes": "num_classes",
    "train": "train",
    "val": "val",
    "size": "size",
    "seed": "seed",
}


def open_source(
    spec: str, split: str = "train", val_labels: str | os.PathLike | None = None
) -> Source:
    """Open the ``--data SPEC`` of every command: a folder, ``fashion-mnist[:PATH]``,
    ``fashion-mnist-canvas[:k=v,...]``, ``synthetic[:k=v,...]`` or ``sklearn-digits``."""
    kind, _, arg = spec.partition(":")
    if kind == "fashion-mnist-canvas":
        scenes, folder = parse_canvas_options(arg)
        return CanvasSource(Path(folder or FASHION_MNIST_DIR), split, scenes)
    if kind == "fashion-mnist":
        return FashionMNISTSource(Path(arg or FASHION_MNIST_DIR), split)
    if kind == "sklearn-digits":
        return DigitsSource(split)
    if kind == "synthetic":
        options = {}
        for item in filter(None, arg.split(",")):
            key, _, value = item.partition("=")
            if key not in SYNTHETIC_KEYS or not value.isdigit():
                raise VGGError(
                    f"--data {spec}: bad option {item!r}; use synthetic:"
                    + ",".join(f"{k}=N" for k in SYNTHETIC_KEYS)
                )
            options[SYNTHETIC_KEYS[key]] = int(value)
        return SyntheticSource(split, **options)
    root = Path(spec)
    if not root.is_dir():
        raise VGGError(
            f"--data {spec!r} is neither a folder nor 'fashion-mnist[:PATH]', "
            "'fashion-mnist-canvas[:...]', 'synthetic[:...]' or 'sklearn-digits'"
        )
    return FolderSource(root, split, Path(val_labels) if val_labels else None)
