"""Weight initialisation: the paper's normal init, Glorot, He, and net A -> deeper nets."""

from __future__ import annotations

import torch
from torch import nn

from vggnet.errors import VGGError
from vggnet.model import configs

INITS = ("paper", "glorot", "kaiming")


def check_init(scheme: str) -> None:
    """Refuse an unknown initialisation scheme, listing the valid ones."""
    if scheme not in INITS:
        raise VGGError(f"unknown init {scheme!r}: choose one of {', '.join(INITS)}")


def initialize(model: nn.Module, scheme: str = "paper") -> None:
    """Initialise every conv and FC layer of ``model`` in place; biases zero, BN to identity.

    ``scheme``: "paper", N(0, 0.01^2) weights (section 2); "glorot", Glorot & Bengio
    uniform, which the authors later found trains the deep nets without pre-training;
    "kaiming", He et al. normal (fan-in, ReLU gain).
    """
    check_init(scheme)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if scheme == "paper":
                nn.init.normal_(module.weight, 0.0, configs.INIT_STD)
            elif scheme == "glorot":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def _tensors(model: nn.Module, layer: str) -> dict[str, torch.Tensor]:
    """Parameters and buffers of ``layer`` and its batch norm, keyed as in the state dict."""
    names = [layer]
    if layer.startswith("conv"):
        names.append("bn" + layer.removeprefix("conv"))
    state = model.state_dict(keep_vars=True)
    return {k: v for k, v in state.items() if k.split(".")[0] in names}


def init_from_shallower(target: nn.Module, source: nn.Module) -> list[str]:
    """Copy net A's first four conv layers and three FC layers into a deeper net (section 2).

    ``target``: the deeper net; ``source``: the trained net A. Layers are matched by
    Caffe name (conv1_1, conv2_1, conv3_1, conv3_2, fc6, fc7, fc8); everything else in
    ``target`` keeps its initialisation. Returns the copied layer names; refuses with a
    clear error when a layer is missing or shapes differ.
    """
    for name in configs.SHALLOW_INIT_LAYERS:
        dst, src = _tensors(target, name), _tensors(source, name)
        if not dst or not src:
            where = "target" if not dst else "source"
            raise VGGError(f"cannot initialise from the shallower net: the {where} has no {name}")
        if dst.keys() != src.keys():
            raise VGGError(
                f"cannot initialise {name}: the nets differ in batch norm "
                f"(target has {sorted(dst)}, source has {sorted(src)})"
            )
        for key, value in dst.items():
            if value.shape != src[key].shape:
                raise VGGError(
                    f"cannot initialise {key} from the shallower net: source shape "
                    f"{tuple(src[key].shape)} != target shape {tuple(value.shape)}"
                )
    with torch.no_grad():
        for name in configs.SHALLOW_INIT_LAYERS:
            src = _tensors(source, name)
            for key, value in _tensors(target, name).items():
                value.copy_(src[key])
    return list(configs.SHALLOW_INIT_LAYERS)
