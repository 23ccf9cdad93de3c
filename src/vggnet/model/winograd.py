"""Winograd's minimal filtering F(4x4, 3x3): a 3x3, stride-1, pad-1 convolution with 4x fewer
multiplies (Lavin & Gray, 2016).

Each 6x6 input tile d and 3x3 filter g meet as ``A^T [(G g G^T) * (B^T d B)] A``: the
filter and tile transforms are small fixed sums, and the channel sums become 36
independent matrix products (K x C times C x tiles). Those products hold all the
multiplies: 36 per 16 outputs per channel pair, against 144 for the direct convolution.
Written in plain torch ops; ``torch.compile`` fuses the tile transforms into generated
loops (1.1x eager -> 1.7x direct on VGG-16's conv4 layers here, docs/BENCHMARKS.md). Whether
it wins depends on the layer's shape and the machine: ``layer_speedups`` measures it.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vggnet.model.configs import CONFIGS
from vggnet.model.vgg import VGG, build_model

__all__ = [
    "WinogradConv2d",
    "conv_input_shapes",
    "eligible_convs",
    "layer_speedups",
    "table1_conv_shapes",
    "winograd_conv3x3",
    "winograd_filters",
    "with_winograd",
]

TILE = 4  # outputs per tile side (m)
SPAN = TILE + 2  # input tile side (m + r - 1)

# The transforms of F(4x4, 3x3) with interpolation points 0, +-1, +-2 (Lavin & Gray, eq. 11).
B_T = torch.tensor(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=torch.float64,
)
G = torch.tensor(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    dtype=torch.float64,
)
A_T = torch.tensor(
    [
        [1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 0],
        [0, 1, 1, 4, 4, 0],
        [0, 1, -1, 8, -8, 1],
    ],
    dtype=torch.float64,
)


def winograd_filters(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) filters -> (36, K, C) transformed filters ``G g G^T``, computed in fp64."""
    if weight.shape[-2:] != (3, 3):
        raise ValueError(f"Winograd F(4x4, 3x3) takes 3x3 filters, got {tuple(weight.shape)}")
    u = torch.einsum("ij,kcjl,ml->imkc", G, weight.double(), G)
    return u.reshape(SPAN * SPAN, *weight.shape[:2]).to(weight.dtype).contiguous()


def winograd_conv3x3(
    x: torch.Tensor, filters: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """A 3x3 convolution, stride 1, padding 1, of (N, C, H, W) ``x`` with ``filters`` from
    ``winograd_filters``: the same (N, K, H, W) output as ``F.conv2d(x, w, bias, padding=1)``."""
    n, c, h, w = x.shape
    rows, cols = -(-h // TILE), -(-w // TILE)
    # Pad 1 on top/left (the convolution's own) and enough on bottom/right for whole tiles.
    padded = F.pad(x, (1, TILE * cols + 1 - w, 1, TILE * rows + 1 - h))
    tiles = padded.unfold(2, SPAN, TILE).unfold(3, SPAN, TILE)  # (N, C, rows, cols, 6, 6)
    b_t = B_T.to(x)
    v = torch.einsum("ij,ncrtjl,ml->imcnrt", b_t, tiles, b_t)
    v = v.reshape(SPAN * SPAN, c, n * rows * cols)
    m = torch.bmm(filters, v)  # (36, K, tiles): every multiply of the convolution is here
    a_t = A_T.to(x)
    m = m.view(SPAN, SPAN, -1, n, rows, cols)
    y = torch.einsum("ai,ijknrt,bj->nkratb", a_t, m, a_t)  # (N, K, rows, 4, cols, 4)
    y = y.reshape(n, -1, rows * TILE, cols * TILE)[:, :, :h, :w]
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y.contiguous()


# Compiled kernels are per input shape (shape-generic ones were slower than eager here);
# VGG-16 has nine conv shapes per test scale, more than dynamo's default of eight.
RECOMPILE_LIMIT = 64
CL = torch.channels_last


@functools.cache
def compiled_conv3x3() -> Callable[..., torch.Tensor]:
    """``winograd_conv3x3`` compiled by torch.compile (one kernel set per input shape), or
    the eager function where this torch cannot compile (no C++ compiler, an old torch)."""
    compiled = torch.compile(winograd_conv3x3, dynamic=False)
    config = torch._dynamo.config
    limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"

    def run(
        x: torch.Tensor, filters: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        with config.patch({limit: RECOMPILE_LIMIT}):
            return compiled(x, filters, bias)

    try:
        run(torch.zeros(1, 1, 4, 4), torch.zeros(SPAN * SPAN, 1, 1))
    except Exception:  # inductor raises many error types; eager is always correct
        return winograd_conv3x3
    return run


class WinogradConv2d(nn.Module):
    """A 3x3, stride-1, pad-1 ``nn.Conv2d`` computed by F(4x4, 3x3), for inference.

    ``conv``: the convolution it replaces; its filters are transformed once, here (a copy:
    later changes to ``conv`` do not reach this module). ``compiled``: run the
    torch.compile'd function (faster; the first call at each input shape compiles).
    """

    def __init__(self, conv: nn.Conv2d, compiled: bool = True) -> None:
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1):
            raise ValueError(f"Winograd F(4x4, 3x3) replaces 3x3/1/pad-1 convolutions, not {conv}")
        if conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError(f"Winograd F(4x4, 3x3) takes plain convolutions, not {conv}")
        self.filters: torch.Tensor
        self.bias: torch.Tensor | None
        self.register_buffer("filters", winograd_filters(conv.weight.detach()))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.compiled = compiled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same output and memory format as the convolution it replaces (channels_last in,
        channels_last out: the direct layers around it stay in their faster format)."""
        conv = compiled_conv3x3() if self.compiled else winograd_conv3x3
        y = conv(x.contiguous(), self.filters, self.bias)
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=CL):
            return y.contiguous(memory_format=CL)
        return y


def eligible(layer: nn.Module) -> bool:
    """Whether ``layer`` is a convolution F(4x4, 3x3) computes: plain 3x3, stride 1, pad 1."""
    return (
        isinstance(layer, nn.Conv2d)
        and layer.kernel_size == (3, 3)
        and layer.stride == (1, 1)
        and layer.padding == (1, 1)
        and layer.groups == 1
        and layer.dilation == (1, 1)
    )


def eligible_convs(model: VGG) -> list[str]:
    """The names of ``model``'s convolutions Winograd can replace (every 3x3 conv of Table 1)."""
    return [name for name, layer in model.named_children() if eligible(layer)]


def conv_input_shapes(model: VGG, height: int, width: int) -> dict[str, tuple[int, int, int]]:
    """(C, H, W) of each convolution's input for a ``height`` x ``width`` image (on a meta
    copy: no arithmetic)."""
    meta = copy.deepcopy(model).to("meta")
    shapes: dict[str, tuple[int, int, int]] = {}

    def record(name: str):
        def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            c, h, w = args[0].shape[1:]
            shapes[name] = (c, h, w)

        return hook

    hooks = [
        layer.register_forward_pre_hook(record(name))
        for name, layer in meta.named_children()
        if isinstance(layer, nn.Conv2d)
    ]
    with torch.no_grad():
        meta.forward_features(torch.empty(1, model.spec.in_channels, height, width, device="meta"))
    for hook in hooks:
        hook.remove()
    return shapes


def layer_speedups(
    model: VGG,
    height: int,
    width: int,
    batch: int = 8,
    repeats: int = 3,
    channels_last: bool = True,
) -> dict[str, float]:
    """Per eligible convolution: direct time / compiled-Winograd time on its input for a
    batch of ``height`` x ``width`` images (best of ``repeats``), measured here, now.

    ``channels_last``: the memory format the net runs in (evaluation's default); the
    Winograd side pays its conversions to and from it, as it would in the net.
    """
    shapes = conv_input_shapes(model, height, width)
    fmt = CL if channels_last else torch.contiguous_format
    speedups = {}
    with torch.no_grad():
        for name in eligible_convs(model):
            conv = copy.deepcopy(getattr(model, name)).to(memory_format=fmt)
            x = torch.randn(batch, *shapes[name], device=conv.weight.device)
            x = x.contiguous(memory_format=fmt)
            fast = WinogradConv2d(conv)
            speedups[name] = _best_time(conv, x, repeats) / _best_time(fast, x, repeats)
    return speedups


def _best_time(layer: nn.Module, x: torch.Tensor, repeats: int) -> float:
    layer(x)  # warm-up (and compilation)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        layer(x)
        best = min(best, time.perf_counter() - start)
    return best


def table1_conv_shapes(size: int = 224) -> list[tuple[int, int, int]]:
    """Every distinct (input channels, output channels, side) of a 3x3 convolution in
    Table 1's six nets at ``size`` x ``size``: the shapes Winograd must compute exactly."""
    shapes = set()
    for config in CONFIGS:
        with torch.device("meta"):  # shapes only: no weights to initialise
            model = build_model(config)
        for name, (c, h, _) in conv_input_shapes(model, size, size).items():
            if eligible(getattr(model, name)):
                shapes.add((c, getattr(model, name).out_channels, h))
    return sorted(shapes)


def with_winograd(model: VGG, layers: list[str]) -> VGG:
    """A copy of ``model`` whose convolutions named in ``layers`` run F(4x4, 3x3).

    ``layers``: names from ``eligible_convs`` (typically those a per-machine measurement
    found faster). Inference only: the replaced layers hold no trainable parameters.
    """
    fast = copy.deepcopy(model)
    for name in layers:
        layer = getattr(fast, name, None)
        if not eligible(layer):  # type: ignore[arg-type]
            raise ValueError(f"{name} is not a 3x3/1/pad-1 convolution of this net")
        setattr(fast, name, WinogradConv2d(layer))  # type: ignore[arg-type]
    return fast
