"""torchvision's vgg11/13/16/19(_bn) state-dict layout, both ways."""

from __future__ import annotations

import torch

from vggnet.checkpoint import load_weights
from vggnet.errors import VGGError
from vggnet.interop.common import PUBLISHED, finish_import, infer_config
from vggnet.model import VGG, VGGSpec
from vggnet.preprocessing import Preprocessing

# Prefixes that wrappers add to state-dict keys: DataParallel/DDP and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# torchvision's evaluation transform rescales to 256 before a 224 centre crop.
TORCHVISION_EVAL_SCALE = 256


def torchvision_names(model: VGG) -> dict[str, str]:
    """Map each of our layer names to torchvision's (``conv1_1`` -> ``features.0``)."""
    names: dict[str, str] = {}
    section, index = "features", 0
    for name, _ in model.named_children():
        if name == "flatten":
            section, index = "classifier", 0
            continue
        names[name] = f"{section}.{index}"
        index += 1
    return names


def unwrap_state_dict(obj: object, source: str) -> dict[str, torch.Tensor]:
    """Find the state dict in a saved object and strip DataParallel/DDP/compile prefixes."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise VGGError(f"{source} does not hold a state dict (a dict of layer names to tensors)")
    cleaned = {}
    for key, value in obj.items():
        for prefix in WRAPPER_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        cleaned[key] = value
    return cleaned


def _conv_weights(state_dict: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The 4-D conv kernels of a torchvision VGG state dict, in layer order."""
    keys = [k for k in state_dict if k.startswith("features.") and k.endswith(".weight")]
    keys.sort(key=lambda k: int(k.split(".")[1]))
    return [state_dict[k] for k in keys if state_dict[k].dim() == 4]


def spec_from_torchvision(
    state_dict: dict[str, torch.Tensor], config: str | None, source: str
) -> VGGSpec:
    """Infer the network shape (config, batch norm, classes, width) from a torchvision state dict."""
    convs = _conv_weights(state_dict)
    if not convs or not {"classifier.0.weight", "classifier.6.weight"} <= state_dict.keys():
        raise VGGError(
            f"{source} is not a torchvision VGG state dict (expected features.N.* and "
            "classifier.0/3/6.* keys)"
        )
    config = infer_config(len(convs), config, source, "torchvision")
    first, last = convs[0], convs[-1]
    fc6_in = state_dict["classifier.0.weight"].shape[1]
    side = round((fc6_in / last.shape[0]) ** 0.5)
    return VGGSpec(
        config,
        num_classes=state_dict["classifier.6.weight"].shape[0],
        batch_norm=any(k.endswith("running_mean") for k in state_dict),
        in_channels=first.shape[1],
        width=first.shape[0] / 64,
        fc_width=state_dict["classifier.0.weight"].shape[0],
        crop_size=max(side, 1) * 32,
    )


def import_torchvision(obj: object, config: str | None = None, source: str = "state dict") -> VGG:
    """Convert a torchvision VGG state dict (or a checkpoint holding one) into our model."""
    state_dict = unwrap_state_dict(obj, source)
    spec = spec_from_torchvision(state_dict, config, source)
    with torch.device("meta"):
        model = VGG(spec)
    names = torchvision_names(model)
    theirs = {}
    for key in model.state_dict():
        layer, _, leaf = key.partition(".")
        theirs[key] = f"{names[layer]}.{leaf}"
    missing = [t for t in theirs.values() if t not in state_dict]
    if missing:
        raise VGGError(
            f"{source} lacks {', '.join(missing[:4])} of a torchvision {spec.config} net"
        )
    extra = sorted(set(state_dict) - set(theirs.values()))
    if extra:
        raise VGGError(f"{source} has entries a {spec.config} net lacks: {', '.join(extra[:4])}")
    load_weights(model, {k: state_dict[t] for k, t in theirs.items()}, source)
    scale = (TORCHVISION_EVAL_SCALE, TORCHVISION_EVAL_SCALE)
    return finish_import(model, Preprocessing.torchvision(), scale)


def export_torchvision(model: VGG) -> dict[str, torch.Tensor]:
    """Our weights in torchvision's layout, loadable by ``torchvision.models.vgg16(...)``."""
    if model.spec.config not in PUBLISHED:
        raise VGGError(f"torchvision has no VGG for config {model.spec.config}: use A, B, D or E")
    names = torchvision_names(model)
    out = {}
    for key, value in model.state_dict().items():
        layer, _, leaf = key.partition(".")
        out[f"{names[layer]}.{leaf}"] = value.detach().cpu().clone()
    return out
