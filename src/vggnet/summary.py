"""Layer tables, parameter counts and multiply-adds (Tables 1 and 2), computed without weights."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vggnet.model import VGG, VGGSpec


@dataclass(frozen=True)
class LayerRow:
    """One layer of a network: Caffe name, what it is, output shape (C, H, W), params, MACs."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


def _kind(layer: nn.Module) -> str:
    """Table 1 style description of a layer (``conv3-64``, ``maxpool``, ``FC-4096``)."""
    if isinstance(layer, nn.Conv2d):
        return f"conv{layer.kernel_size[0]}-{layer.out_channels}"
    if isinstance(layer, nn.Linear):
        return f"FC-{layer.out_features}"
    if isinstance(layer, nn.MaxPool2d):
        return "maxpool"
    if isinstance(layer, nn.LocalResponseNorm):
        return "LRN"
    if isinstance(layer, nn.BatchNorm2d):
        return "batchnorm"
    return type(layer).__name__.lower()


def _macs(layer: nn.Module, output: torch.Tensor) -> int:
    """Multiply-adds of one conv or FC layer for one image (other layers count zero)."""
    if isinstance(layer, nn.Conv2d):
        k = layer.kernel_size[0] * layer.kernel_size[1]
        return output[0].numel() * (layer.in_channels // layer.groups) * k
    if isinstance(layer, nn.Linear):
        return layer.in_features * layer.out_features
    return 0


def layer_rows(spec: VGGSpec, size: int | None = None) -> list[LayerRow]:
    """Per-layer rows for ``spec`` at input ``size`` (default: the crop size), on the meta device."""
    size = size or spec.crop_size
    with torch.device("meta"):
        model = VGG(spec)
        x = torch.empty(1, spec.in_channels, size, size)
        rows = []
        for name, layer in model.named_children():
            if name == "flatten":
                x = layer(x)
                continue
            x = layer(x)
            params = sum(p.numel() for p in layer.parameters())
            rows.append(LayerRow(name, _kind(layer), tuple(x.shape[1:]), params, _macs(layer, x)))
    return rows


def count_parameters(model: nn.Module) -> int:
    """Number of learnable parameters."""
    return sum(p.numel() for p in model.parameters())


def format_layer_table(spec: VGGSpec) -> str:
    """A per-layer table of one network: name, layer, output shape, params, multiply-adds."""
    rows = layer_rows(spec)
    lines = [f"{'layer':<8} {'type':<11} {'output':>15} {'params':>13} {'MACs':>15}"]
    for r in rows:
        shape = "x".join(str(d) for d in r.output_shape)
        lines.append(f"{r.name:<8} {r.kind:<11} {shape:>15} {r.params:>13,} {r.macs:>15,}")
    params, macs = sum(r.params for r in rows), sum(r.macs for r in rows)
    lines.append(f"{'total':<8} {'':<11} {'':>15} {params:>13,} {macs:>15,}")
    title = f"ConvNet {spec.config}{' (batch norm)' if spec.batch_norm else ''}"
    header = f"{title}: {params / 1e6:.1f}M parameters, {macs / 1e9:.2f} G multiply-adds at {spec.crop_size}"
    return header + "\n" + "\n".join(lines)


def _blocks(rows: list[LayerRow]) -> list[list[str]]:
    """The conv/LRN layers of each pooled block, as Table 1 lists them."""
    blocks: list[list[str]] = [[]]
    for r in rows:
        if r.kind == "maxpool":
            blocks.append([])
        elif r.kind.startswith("conv") or r.kind == "LRN":
            blocks[-1].append(r.kind)
    return blocks[:-1]


def format_overview(specs: list[VGGSpec]) -> str:
    """Table 1 side by side, with Table 2's parameter counts and multiply-adds per config."""
    tables = [layer_rows(spec) for spec in specs]
    width = 17
    full = (width + 2) * len(specs) - 2

    def line(cells: list[str]) -> str:
        return "  ".join(f"{c:<{width}}" for c in cells).rstrip()

    lines = [
        line([spec.config for spec in specs]),
        line([f"{sum(r.kind[:2] in ('co', 'FC') for r in rows)} weight layers" for rows in tables]),
        f"input ({specs[0].crop_size}x{specs[0].crop_size}, {specs[0].in_channels} channels)".center(
            full
        ).rstrip(),
    ]
    blocks = [_blocks(rows) for rows in tables]
    for b in range(len(blocks[0])):
        for i in range(max(len(col[b]) for col in blocks)):
            lines.append(line([col[b][i] if i < len(col[b]) else "" for col in blocks]))
        lines.append("maxpool".center(full).rstrip())
    lines.extend(r.kind.center(full).rstrip() for r in tables[0] if r.kind.startswith("FC"))
    lines.append("soft-max".center(full).rstrip())
    lines.append("")
    lines.append(line([f"{sum(r.params for r in rows):,}" for rows in tables]) + "  parameters")
    macs = [f"{sum(r.macs for r in rows) / 1e9:.2f} G" for rows in tables]
    lines.append(line(macs) + f"  multiply-adds at {specs[0].crop_size}")
    return "\n".join(lines)
