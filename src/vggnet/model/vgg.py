"""The VGG network with Caffe layer names, built from ``configs.CONFIGS``, and its dense view."""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from vggnet.card import Card
from vggnet.errors import VGGError
from vggnet.model import configs
from vggnet.model.init import check_init, initialize
from vggnet.model.lrn import LocalResponseNorm
from vggnet.preprocessing import Preprocessing

FEATURE_STRIDE = configs.POOL_STRIDE**configs.NUM_POOLS  # 32: input pixels per pool5 cell


@dataclass(frozen=True)
class FeatureTap:
    """One entry of ``VGG.feature_info``: a layer, its output channels, its stride (timm's
    ``num_chs`` and ``reduction``)."""

    module: str
    num_chs: int
    reduction: int


def valid_crop(size: int) -> bool:
    """Whether a training crop fits the net: a positive multiple of 32 (five 2x2 pools)."""
    return size >= FEATURE_STRIDE and size % FEATURE_STRIDE == 0


@dataclass(frozen=True)
class VGGSpec:
    """Everything that fixes a network's shape; stored in checkpoints to rebuild it.

    ``config``: a Table 1 name (A, A-LRN, B, C, D, E; vgg11..vgg19, a ``_bn`` suffix sets
    ``batch_norm``). ``num_classes``: outputs of fc8. ``batch_norm``: BN after every conv.
    ``in_channels``: input channels. ``width``: scale of every conv's channels.
    ``fc_width``: width of fc6 and fc7. ``crop_size``: the training crop, a multiple of
    32 (fc6 sees a crop_size/32 square map). ``dropout``: on fc6 and fc7.
    """

    config: str
    num_classes: int = configs.NUM_CLASSES
    batch_norm: bool = False
    in_channels: int = 3
    width: float = 1.0
    fc_width: int = configs.FC_WIDTH
    crop_size: int = configs.CROP_SIZE
    dropout: float = configs.DROPOUT

    def __post_init__(self) -> None:
        config, batch_norm = configs.resolve_name(self.config)
        object.__setattr__(self, "config", config)
        object.__setattr__(self, "batch_norm", self.batch_norm or batch_norm)
        checks = [
            (self.num_classes >= 1, f"num_classes must be >= 1, got {self.num_classes}"),
            (self.in_channels >= 1, f"in_channels must be >= 1, got {self.in_channels}"),
            (self.width > 0, f"width must be > 0, got {self.width}"),
            (self.fc_width >= 1, f"fc_width must be >= 1, got {self.fc_width}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (
                valid_crop(self.crop_size),
                f"crop_size must be a positive multiple of {FEATURE_STRIDE} "
                f"(five 2x2 pools), got {self.crop_size}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise VGGError(message)

    @property
    def fc6_kernel(self) -> int:
        """Side of the pool5 map that fc6 sees at the crop size (7 for 224, 1 for 32)."""
        return self.crop_size // FEATURE_STRIDE


def _layers(spec: VGGSpec) -> Iterator[tuple[str, nn.Module]]:
    """Yield (Caffe name, module) for every layer of ``spec``, input to fc8."""
    c_in = spec.in_channels
    for b, block in enumerate(configs.CONFIGS[spec.config], start=1):
        i = 0
        for token in block:
            kind, kernel, channels = configs.parse_layer(token)
            if kind == "lrn":
                yield (
                    f"norm{b}",
                    LocalResponseNorm(
                        configs.LRN_SIZE, configs.LRN_ALPHA, configs.LRN_BETA, configs.LRN_K
                    ),
                )
                continue
            i += 1
            c_out = max(1, round(channels * spec.width))
            yield f"conv{b}_{i}", nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
            if spec.batch_norm:
                yield f"bn{b}_{i}", nn.BatchNorm2d(c_out)
            yield f"relu{b}_{i}", nn.ReLU(inplace=True)
            c_in = c_out
        yield f"pool{b}", nn.MaxPool2d(configs.POOL_STRIDE, configs.POOL_STRIDE)
    yield "flatten", nn.Flatten(1)
    yield "fc6", nn.Linear(c_in * spec.fc6_kernel**2, spec.fc_width)
    yield "relu6", nn.ReLU(inplace=True)
    yield "drop6", nn.Dropout(spec.dropout)
    yield "fc7", nn.Linear(spec.fc_width, spec.fc_width)
    yield "relu7", nn.ReLU(inplace=True)
    yield "drop7", nn.Dropout(spec.dropout)
    yield "fc8", nn.Linear(spec.fc_width, spec.num_classes)


class VGG(nn.Sequential):
    """A Table 1 network; layers are attributes named as in Caffe (``model.conv3_1``, ``model.fc6``).

    At the crop size, ``forward`` is the plain network and returns (N, K) logits.
    At any larger size it is the paper's dense evaluation: the class score map
    of ``score_map`` averaged over space, so it never silently resamples.
    The module holds parameters and its ``spec``; what using it needs besides (class
    names, preprocessing, training scale) is its frozen ``card``, stored with the weights.
    ``classes``, ``preprocessing`` and ``train_scale`` read the card; setting one of them
    replaces the card with a new one.
    """

    def __init__(self, spec: VGGSpec, card: Card | None = None) -> None:
        super().__init__(OrderedDict(_layers(spec)))
        self.spec = spec
        self.card = card if card is not None else Card.default_for(spec.in_channels)

    @property
    def classes(self) -> list[str] | None:
        """One name per output (the card's), or None."""
        return list(self.card.classes) if self.card.classes is not None else None

    @classes.setter
    def classes(self, value: list[str] | None) -> None:
        self.card = self.card.with_(classes=value)

    @property
    def preprocessing(self) -> Preprocessing:
        """How 0..1 pixels become this net's input (the card's)."""
        return self.card.preprocessing

    @preprocessing.setter
    def preprocessing(self, value: Preprocessing) -> None:
        self.card = self.card.with_(preprocessing=value)

    @property
    def train_scale(self) -> tuple[int, int] | None:
        """The (Smin, Smax) it was trained at (the card's), or None."""
        return self.card.train_scale

    @train_scale.setter
    def train_scale(self, value: tuple[int, int] | None) -> None:
        self.card = self.card.with_(train_scale=value)

    def __getitem__(self, idx: int | slice | str) -> nn.Module:  # type: ignore[override]
        """Index or slice the layers; a slice is a plain ``nn.Sequential`` (e.g. ``model[:4]``)."""
        if isinstance(idx, str):
            return self._modules[idx]
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)

    @property
    def feature_info(self) -> list[FeatureTap]:
        """timm's ``feature_info``: the last ReLU of each block, with its channels and stride."""
        taps, channels = [], self.spec.in_channels
        for name, layer in self.named_children():
            if isinstance(layer, nn.Conv2d):
                channels = layer.out_channels
            if name.startswith("pool"):
                block = int(name.removeprefix("pool"))
                last_relu = [n for n, _ in self.named_children() if n.startswith(f"relu{block}_")]
                taps.append(FeatureTap(last_relu[-1], channels, configs.POOL_STRIDE ** (block - 1)))
        return taps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """timm's ``forward_features``: the pool5 map (N, C, H/32, W/32), any size >= 32."""
        for name, layer in self.named_children():
            if name == "flatten":
                break
            x = layer(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """timm's ``forward_head``: from a pool5 map to class scores (N, K).

        A map larger than fc6's window is scored densely and averaged, as ``forward``
        does. ``pre_logits=True`` stops after fc7 (its ReLU and dropout): (N, fc_width).
        """
        kernel = self.spec.fc6_kernel
        head = [(n, m) for n, m in self.named_children() if n.startswith(("fc", "relu", "drop"))]
        head = head[next(i for i, (n, _) in enumerate(head) if n == "fc6") :]
        if pre_logits:
            head = head[:-1]
        if x.shape[-2:] == (kernel, kernel):
            x = x.flatten(1)
            for _, layer in head:
                x = layer(x)
            return x
        return self._fc_as_convolutions(x, [m for _, m in head]).mean(dim=(2, 3))

    def reset_classifier(self, num_classes: int, init: str = "paper") -> None:
        """timm's ``reset_classifier``: a new, initialised fc8 with ``num_classes`` outputs.

        The spec follows, and the card forgets the old class names (the new outputs have
        none until trained). For features without a classifier, use
        ``forward_head(x, pre_logits=True)`` or ``vggnet.Backbone``.
        """
        spec = replace(self.spec, num_classes=num_classes)  # checks num_classes >= 1
        old = self._modules["fc8"]
        assert isinstance(old, nn.Linear)
        fc8 = nn.Linear(
            old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype
        )
        initialize(fc8, init)
        self._modules["fc8"], self.spec = fc8, spec
        self.card = self.card.with_(classes=None)

    def _check_size(self, x: torch.Tensor) -> None:
        crop = self.spec.crop_size
        if x.dim() != 4 or x.shape[1] != self.spec.in_channels:
            raise VGGError(
                f"expected input of shape (N, {self.spec.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if x.shape[-2] < crop or x.shape[-1] < crop:
            raise VGGError(
                f"input {x.shape[-2]}x{x.shape[-1]} is smaller than the crop size {crop}x{crop}: "
                "rescale it so its smallest side is at least the crop size"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (N, K): the plain net at the crop size, averaged dense scores above it."""
        self._check_size(x)
        if x.shape[-2] == x.shape[-1] == self.spec.crop_size:
            return super().forward(x)
        return self.score_map(x).mean(dim=(2, 3))

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        """Class score map (N, K, h, w) of the fully convolutional net (paper section 3).

        fc6 is a k x k convolution over pool5 and fc7, fc8 are 1x1 convolutions, all with
        the FC weights. Eager PyTorch computes them as matrix products over every k x k
        window (the same sums): a 7x7 convolution with fc6's 100M weights would first copy
        them into the convolution library's layout on every call, which costs more than
        the arithmetic. Exports trace the plain convolutions.
        """
        self._check_size(x)
        head = list(self.named_children())
        first_fc = next(i for i, (_, layer) in enumerate(head) if isinstance(layer, nn.Linear))
        for name, layer in head[:first_fc]:
            if name != "flatten":
                x = layer(x)
        fcs = [layer for name, layer in head[first_fc:] if name != "flatten"]
        if torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
            return self._fc_as_convolutions(x, fcs)
        h, w = x.shape[-2:]
        kernel = self.spec.fc6_kernel
        out_h, out_w = h - kernel + 1, w - kernel + 1
        unfolded_per_image = x.shape[1] * kernel * kernel * out_h * out_w
        maps = []
        for chunk in x.split(max(1, FC_WINDOW_BUDGET // unfolded_per_image)):
            # One contiguous row per window: under torch.inference_mode and bf16 autocast, a
            # CPU linear is 9x slower on the strided (transposed) windows (docs/BENCHMARKS.md,
            # "Dense evaluation in bf16"); users may well call the model that way.
            y = F.unfold(chunk, kernel).transpose(1, 2).reshape(-1, x.shape[1] * kernel * kernel)
            for layer in fcs:
                y = layer(y)
            y = y.view(len(chunk), out_h * out_w, -1).transpose(1, 2)
            maps.append(y.reshape(len(chunk), -1, out_h, out_w))
        return torch.cat(maps) if len(maps) > 1 else maps[0]

    def _fc_as_convolutions(self, x: torch.Tensor, fcs: list[nn.Module]) -> torch.Tensor:
        kernel = self.spec.fc6_kernel
        for layer in fcs:
            if isinstance(layer, nn.Linear):
                weight = layer.weight.view(layer.out_features, -1, kernel, kernel)
                x = F.conv2d(x, weight, layer.bias)
                kernel = 1  # fc7 and fc8 become 1x1 convolutions
            else:
                x = layer(x)
        return x


# Elements of unfolded pool5 windows per chunk: 256 MiB in fp32, twice that at the peak
# (F.unfold's output and its copy as one row per window).
FC_WINDOW_BUDGET = 2**26


def fold_batch_norm(model: VGG) -> VGG:
    """An inference copy of ``model`` with each batch norm merged into the conv before it.

    Same scores in eval mode (up to rounding), one pass over each feature map fewer:
    1.1x (centre crop) to 1.3x (dense + multi-crop) faster scoring for the demo net on
    two CPU cores (docs/BENCHMARKS.md).
    """
    if not any(isinstance(layer, nn.BatchNorm2d) for layer in model.children()):
        return model  # no batch norm, or folded already: nothing to copy
    folded = copy.deepcopy(model).eval()
    previous: tuple[str, nn.Module] | None = None
    for name, layer in list(folded.named_children()):
        if isinstance(layer, nn.BatchNorm2d):
            assert previous is not None
            conv_name, conv = previous
            assert isinstance(conv, nn.Conv2d)
            setattr(folded, conv_name, fuse_conv_bn_eval(conv, layer))
            setattr(folded, name, nn.Identity())
        previous = (name, layer)
    return folded


def build_model(
    config: str,
    num_classes: int = configs.NUM_CLASSES,
    *,
    batch_norm: bool = False,
    in_channels: int = 3,
    width: float = 1.0,
    fc_width: int = configs.FC_WIDTH,
    crop_size: int = configs.CROP_SIZE,
    dropout: float = configs.DROPOUT,
    init: str = "paper",
) -> VGG:
    """Build a Table 1 network, initialised (``init``: paper, kaiming or glorot).

    ``config``: A, A-LRN, B, C, D, E, or torchvision's names (vgg11..vgg19; ``vgg16_bn`` is
    D with batch norm). ``num_classes``, ``batch_norm``, ``in_channels``, ``width``,
    ``fc_width``, ``crop_size`` and ``dropout`` change the shape, as ``VGGSpec``'s fields
    of those names. Returns the untrained ``VGG``.
    """
    check_init(init)
    spec = VGGSpec(
        config,
        num_classes=num_classes,
        batch_norm=batch_norm,
        in_channels=in_channels,
        width=width,
        fc_width=fc_width,
        crop_size=crop_size,
        dropout=dropout,
    )
    model = VGG(spec)
    initialize(model, init)
    return model
