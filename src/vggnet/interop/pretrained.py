"""The published VGG weights under timm-style names: where they live, how to check and load them.

``vgg16.tv_in1k`` is torchvision's file, ``vgg16.keras_in1k`` the Keras Applications
release, ``vgg16.caffe_in1k`` the VGG team's own Caffe release (D and E only). Files are
kept in torch.hub's cache (``$TORCH_HOME/hub/checkpoints``) under the names torchvision
uses, so a file torchvision already downloaded is found with no download, and a machine
without internet works once the file is there.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch

from vggnet.errors import VGGError
from vggnet.interop.caffe import import_caffe
from vggnet.interop.keras import import_keras
from vggnet.interop.torchvision import import_torchvision
from vggnet.model import VGG, configs
from vggnet.serialization import safe_load

TV_URL = "https://download.pytorch.org/models/"
KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
CAFFE_URL = "http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/"


@dataclass(frozen=True)
class PretrainedWeights:
    """One published weight file.

    ``digest``: the hex digest (or its prefix) its publisher gives, of ``algorithm``; None
    where the publisher gives none (the Caffe release), whose files are checked by parsing
    them as the named net instead. ``reported``: the publisher's own accuracy figure.
    """

    name: str
    url: str
    format: str
    digest: str | None
    algorithm: str
    reported: str

    @property
    def file_name(self) -> str:
        """The cache file name: the URL's last part, as torch.hub and Keras name it."""
        return self.url.rsplit("/", 1)[-1]

    @property
    def architecture(self) -> tuple[str, bool]:
        """(Table 1 config, batch norm) of the net the file holds."""
        return configs.resolve_name(self.name.split(".")[0])


def _torchvision(arch: str, digest: str, top1: float, top5: float) -> PretrainedWeights:
    reported = f"top-1 {top1}%, top-5 {top5}% (torchvision; 224 centre crop of Q = 256)"
    return PretrainedWeights(
        f"{arch}.tv_in1k", f"{TV_URL}{arch}-{digest}.pth", "torchvision", digest, "sha256", reported
    )


def _keras(arch: str, md5: str, top1: float, top5: float) -> PretrainedWeights:
    url = f"{KERAS_URL}{arch}/{arch}_weights_tf_dim_ordering_tf_kernels.h5"
    reported = f"top-1 {top1}%, top-5 {top5}% (Keras Applications)"
    return PretrainedWeights(f"{arch}.keras_in1k", url, "keras", md5, "md5", reported)


def _caffe(arch: str, layers: int) -> PretrainedWeights:
    url = f"{CAFFE_URL}VGG_ILSVRC_{layers}_layers.caffemodel"
    reported = "top-5 error 7.5% (paper, Table 4: dense, Q = {256, 384, 512})"
    return PretrainedWeights(f"{arch}.caffe_in1k", url, "caffe", None, "sha256", reported)


# torchvision's digests are the SHA-256 prefixes in its file names; Keras gives MD5s.
PRETRAINED: dict[str, PretrainedWeights] = {
    w.name: w
    for w in (
        _torchvision("vgg11", "8a719046", 69.02, 88.628),
        _torchvision("vgg11_bn", "6002323d", 70.37, 89.81),
        _torchvision("vgg13", "19584684", 69.928, 89.246),
        _torchvision("vgg13_bn", "abd245e5", 71.586, 90.374),
        _torchvision("vgg16", "397923af", 71.592, 90.382),
        _torchvision("vgg16_bn", "6c64b313", 73.36, 91.516),
        _torchvision("vgg19", "dcbb9e9d", 72.376, 90.876),
        _torchvision("vgg19_bn", "c79401a0", 74.218, 91.842),
        _keras("vgg16", "64373286793e3c8b2b4e3219cbf3544b", 71.3, 90.1),
        _keras("vgg19", "cbe5617147190e668d6c5d5026f83318", 71.3, 90.0),
        _caffe("vgg16", 16),
        _caffe("vgg19", 19),
    )
}
DEFAULT_TAG = "tv_in1k"  # what a bare architecture name ("vgg16") means


def list_pretrained(pattern: str = "*") -> list[str]:
    """Names of the published weights matching ``pattern`` (fnmatch, e.g. ``"vgg16*"``)."""
    return sorted(n for n in PRETRAINED if fnmatch.fnmatch(n, pattern))


def weights_for(name: str) -> PretrainedWeights:
    """The entry for ``name``; a bare architecture (``vgg16``) means its ``tv_in1k`` weights."""
    key = name.strip().lower()
    if "." not in key:
        key = f"{key}.{DEFAULT_TAG}"
    if key not in PRETRAINED:
        raise VGGError(
            f"no pretrained weights {name!r}: choose one of {', '.join(list_pretrained())}"
        )
    return PRETRAINED[key]


def cache_dir() -> Path:
    """torch.hub's checkpoint cache: ``$TORCH_HOME/hub/checkpoints`` (~/.cache/torch/...)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_candidates(weights: PretrainedWeights) -> list[Path]:
    """Where the file may already be: torch.hub's cache, and for Keras files Keras' own."""
    places = [cache_dir() / weights.file_name]
    if weights.format == "keras":
        keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
        places.append(keras_home / "models" / weights.file_name)
    return places


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(weights: PretrainedWeights, path: Path) -> None:
    """Check a downloaded file against its published digest; without one, parse it as the net."""
    if weights.digest is None:
        import_caffe(path, weights.architecture[0])  # a damaged file fails to parse
        return
    got = file_digest(path, weights.algorithm)
    if not got.startswith(weights.digest):
        raise VGGError(
            f"the download's {weights.algorithm} is {got[: len(weights.digest)]}, not the "
            f"published {weights.digest} (damaged or changed)"
        )


def download(weights: PretrainedWeights, progress: bool = True) -> Path:
    """Download ``weights`` into the cache, verified, and return its path.

    The file is written beside its final name and moved there only once its digest
    matches, so the cache never holds a partial or wrong file.
    """
    target = cache_dir() / weights.file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    by_hand = f"download it by other means and place it at {target}"
    try:
        torch.hub.download_url_to_file(weights.url, str(partial), None, progress=progress)
    except (urllib.error.URLError, OSError, ValueError) as err:
        partial.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or err
        raise VGGError(f"cannot download {weights.url} ({reason}): {by_hand}") from None
    try:
        verify(weights, partial)
    except VGGError as err:
        partial.unlink(missing_ok=True)
        raise VGGError(f"{weights.url}: {err}: try again, or {by_hand}") from None
    os.replace(partial, target)
    return target


def pretrained_file(name: str, download_missing: bool = True, progress: bool = True) -> Path:
    """The local file of ``name``'s weights: from a cache, else downloaded (if allowed)."""
    weights = weights_for(name)
    for place in cached_candidates(weights):
        if place.is_file():
            return place
    if not download_missing:
        raise VGGError(
            f"{weights.name} is not cached and downloads are off: place {weights.url} "
            f"at {cached_candidates(weights)[0]}"
        )
    return download(weights, progress)


def load_pretrained(name: str, download: bool = True, progress: bool = True) -> VGG:
    """A published VGG, ready to use: weights, its 1000 class names, its preprocessing.

    ``name``: one of ``list_pretrained()`` (``vgg16`` alone means ``vgg16.tv_in1k``).
    ``download``: fetch the file when no cache holds it (verified against the published
    checksum), with a progress bar on stderr if ``progress``. Returns the net in eval
    mode; its card carries the preprocessing the weights expect, so
    ``vggnet.create_transform(model)`` feeds it correctly.
    """
    weights = weights_for(name)
    path = pretrained_file(name, download, progress)
    source = f"{weights.name} file {path}"
    config = weights.architecture[0]
    if weights.format == "torchvision":
        model = import_torchvision(safe_load(path, source), config, source)
    elif weights.format == "keras":
        model = import_keras(path, config)
    else:
        model = import_caffe(path, config)
    got = (model.spec.config, model.spec.batch_norm)
    if got != weights.architecture or model.spec.num_classes != configs.NUM_CLASSES:
        raise VGGError(
            f"{path} holds a {got[0]}{' with batch norm' if got[1] else ''} net with "
            f"{model.spec.num_classes} classes, not {weights.name}: delete it and load again"
        )
    return model
