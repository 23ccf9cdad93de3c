"""The paper's test protocols (section 3): centre crop, dense, multi-crop; scales and flips.

Every protocol ends in soft-max posteriors, and combinations average posteriors: over
an image and its mirror, over the crops of a grid, over test scales Q, and over dense and
multi-crop. Each function here scores already-decoded images with one model.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import accumulate

import torch

from vggnet.checkpoint import load_checkpoint
from vggnet.data.geometry import Scale, default_test_scales
from vggnet.data.transforms import BatchNormalizer, center_crop, distinct_grid_crops
from vggnet.errors import VGGError
from vggnet.eval.engines import check_winograd, inference_engine, winograd_choice
from vggnet.interop.runtime import OnnxNet
from vggnet.model import VGG, fold_batch_norm, to_dense
from vggnet.model.winograd import with_winograd

METHODS = ("center", "dense", "multi-crop", "dense+multi-crop")
# Other spellings users write (the paper's British "centre", timm's "crop"): one meaning each.
METHOD_ALIASES = {
    "centre": "center",
    "central": "center",
    "multicrop": "multi-crop",
    "multi_crop": "multi-crop",
    "dense+multicrop": "dense+multi-crop",
    "dense-multi-crop": "dense+multi-crop",
}


def resolve_method(name: str) -> str:
    """The protocol ``name`` means (``centre`` is ``center``); unknown names pass through."""
    key = name.strip().lower()
    return METHOD_ALIASES.get(key, key)


PARTS = {
    "center": ("center",),
    "dense": ("dense",),
    "multi-crop": ("multi-crop",),
    "dense+multi-crop": ("dense", "multi-crop"),
}


@dataclass
class Protocol:
    """How to score an image: method, test scales per model (None: each model's default), flip, grid."""

    method: str = "dense"
    scales: list[int] | None = None
    flip: bool = True
    grid: int = 5

    def __post_init__(self) -> None:
        self.method = resolve_method(self.method)
        if self.method not in METHODS:
            raise VGGError(f"--method {self.method}: choose one of {', '.join(METHODS)}")
        if self.grid < 1:
            raise VGGError(f"--grid must be >= 1, got {self.grid}")


@dataclass
class Engine:
    """What runs the forward pass: ``--backend`` (None: torch, or onnxruntime for int8),
    ``--precision`` (resolved, not "auto"), ``--calibration`` (int8's data) and the
    Winograd layers (``WINOGRAD_MODES``: "measured" is ``--winograd``; fp32 on a CPU)."""

    backend: str | None
    precision: str
    calibration: str | None = None
    winograd: str = "off"

    def net(self, checkpoint: str, model: VGG, device: torch.device) -> OnnxNet | None:
        """The onnxruntime net for ``model``, or None where torch runs it."""
        return inference_engine(
            checkpoint, model, self.backend, self.precision, device, self.calibration
        )

    def prepare(
        self,
        checkpoint: str,
        model: VGG,
        protocol: Protocol,
        device: torch.device,
        channels_last: bool = False,
    ) -> ScoredModel:
        """``prepare`` on this engine: onnxruntime's net, or torch's (with Winograd layers)."""
        if self.winograd != "off":
            check_winograd(self.backend, self.precision, device)
        net = self.net(checkpoint, model, device)
        if net is None:
            model = fold_batch_norm(model.eval())
        layers = winograd_choice(model, self.winograd)
        return prepare(model, protocol, device, checkpoint, channels_last, net, layers)


@dataclass
class ScoredModel:
    """A network ready to score images: eval mode, on its device, with its preprocessing.

    ``engine``: the onnxruntime net that runs the forward pass instead of ``model``
    (``--backend onnxruntime``, ``--precision int8``), or None.
    """

    model: VGG
    normalizer: BatchNormalizer
    scales: list[int]
    name: str
    channels_last: bool = False
    engine: OnnxNet | None = None


def model_scales(model: VGG, protocol: Protocol) -> list[int]:
    """The test scales for a model: the protocol's, or Table 4's rule for its training scale."""
    if protocol.scales:
        scales = list(protocol.scales)
    elif model.train_scale is not None:
        scales = default_test_scales(Scale(*model.train_scale), model.spec.crop_size)
    else:
        raise VGGError("the checkpoint stores no training scale: pass --scales Q[,Q...]")
    crop = model.spec.crop_size
    small = [q for q in scales if q < crop]
    if small:
        raise VGGError(
            f"test scale Q={small[0]} is smaller than the crop {crop}: every Q must be >= {crop}"
        )
    return scales


def prepare(
    model: VGG,
    protocol: Protocol,
    device: torch.device,
    name: str,
    channels_last: bool = False,
    engine: OnnxNet | None = None,
    winograd: list[str] | None = None,
) -> ScoredModel:
    """Put a model in eval mode on ``device`` with a normaliser for its own preprocessing
    (and ``engine``, the onnxruntime net that runs it instead, if any; ``winograd``: the
    convolutions to compute as F(4x4, 3x3))."""
    channels_last = channels_last and engine is None
    fmt = torch.channels_last if channels_last else torch.preserve_format
    if engine is None:  # the torch net runs: fold; an onnxruntime net uses its spec and card
        model = fold_batch_norm(model.eval())
    if winograd:
        model = with_winograd(model, winograd)
    model = model.to(device, memory_format=fmt).eval()  # type: ignore[call-overload]
    normalizer = BatchNormalizer(model.preprocessing).to(device)
    return ScoredModel(
        model, normalizer, model_scales(model, protocol), name, channels_last, engine
    )


def _forward(sm: ScoredModel, images: torch.Tensor, dense: bool, batch_size: int) -> torch.Tensor:
    """Class scores (N, K) of uint8 images: plain net (crops) or averaged score maps (dense)."""
    device = next(sm.model.parameters()).device
    out = []
    for chunk in images.split(batch_size):
        x = sm.normalizer(chunk.to(device, non_blocking=True))
        if sm.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if sm.engine is not None:
            scores = sm.engine.score_map(x).mean(dim=(2, 3))
        else:
            scores = to_dense(sm.model)(x).mean(dim=(2, 3)) if dense else sm.model(x)
        out.append(scores.float())
    return torch.cat(out)


def center_posteriors(sm: ScoredModel, images: list[torch.Tensor], batch_size: int) -> torch.Tensor:
    """Soft-max posteriors of the centre crop of each (already rescaled) image."""
    crop = sm.model.spec.crop_size
    batch = torch.stack([center_crop(image, crop) for image in images])
    return _forward(sm, batch, False, batch_size).softmax(1)


def multicrop_posteriors(
    sm: ScoredModel, images: list[torch.Tensor], grid: int, flip: bool, batch_size: int
) -> torch.Tensor:
    """Posteriors averaged over a grid x grid of crops of each image (and their mirrors)."""
    crop = sm.model.spec.crop_size
    distinct = [distinct_grid_crops(image, crop, grid) for image in images]
    crops = torch.cat([c for c, _ in distinct])  # (windows, C, s, s): repeats scored once
    starts = accumulate((len(c) for c, _ in distinct[:-1]), initial=0)
    cells = torch.stack(
        [cell + start for (_, cell), start in zip(distinct, starts, strict=True)]
    )  # (N, G*G)
    posteriors = _forward(sm, crops, False, batch_size).softmax(1)
    if flip:  # the mirrors: another pass, not a second copy of every crop
        posteriors = (posteriors + _forward(sm, crops.flip(-1), False, batch_size).softmax(1)) / 2
    return posteriors[cells.to(posteriors.device)].mean(1)


def group_by_size(images: list[torch.Tensor]) -> list[list[int]]:
    """Indices of the images, grouped so that each group has one shape and batches as one tensor."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, image in enumerate(images):
        groups[tuple(image.shape)].append(i)
    return list(groups.values())


def dense_posteriors(
    sm: ScoredModel, images: list[torch.Tensor], flip: bool, batch_size: int
) -> torch.Tensor:
    """Posteriors of the spatially averaged class score map of each whole image (and mirror).

    Images are batched by size; the result keeps the input order.
    """
    result: list[torch.Tensor | None] = [None] * len(images)
    for indices in group_by_size(images):
        batch = torch.stack([images[i] for i in indices])
        posteriors = _forward(sm, batch, True, batch_size).softmax(1)
        if flip:
            posteriors = (
                posteriors + _forward(sm, batch.flip(-1), True, batch_size).softmax(1)
            ) / 2
        for i, p in zip(indices, posteriors, strict=True):
            result[i] = p
    return torch.stack([p for p in result if p is not None])  # every index is in one group


def part_posteriors(
    sm: ScoredModel, part: str, images: list[torch.Tensor], protocol: Protocol, batch_size: int
) -> torch.Tensor:
    """Posteriors (N, K) of one protocol part at one scale."""
    if part == "center":
        return center_posteriors(sm, images, batch_size)
    if part == "dense":
        return dense_posteriors(sm, images, protocol.flip, batch_size)
    return multicrop_posteriors(sm, images, protocol.grid, protocol.flip, batch_size)


def classifier_checkpoint(path: str) -> VGG:
    """Load a classification net (never running code from the file); a localisation net is
    refused in one line that says how to score it."""
    model = load_checkpoint(path, map_location="cpu")
    if model.card.box_regression is not None:
        raise VGGError(
            f"{path} is a localisation net (its outputs are boxes): score it with --task "
            "localization and a --classifier CKPT"
        )
    return model


def load_models(
    paths: list[str],
    protocol: Protocol,
    device: torch.device,
    channels_last: bool = False,
    engine: Engine | None = None,
) -> list[ScoredModel]:
    """Load classification checkpoints and prepare them for scoring (on ``engine``'s
    backend and precision, if given)."""
    engine = engine or Engine(None, "fp32")
    return [
        engine.prepare(str(path), classifier_checkpoint(path), protocol, device, channels_last)
        for path in paths
    ]
