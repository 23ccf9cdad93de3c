"""timm's vgg11..vgg19(_bn) state dicts: fc6/fc7 stored as convolutions (``pre_logits``)."""

from __future__ import annotations

import torch

from vggnet.errors import VGGError
from vggnet.interop.torchvision import import_torchvision, unwrap_state_dict
from vggnet.model import VGG

# timm key prefix -> torchvision key prefix (the convolutional features are named alike).
TIMM_HEAD = {
    "pre_logits.fc1.": "classifier.0.",
    "pre_logits.fc2.": "classifier.3.",
    "head.fc.": "classifier.6.",
}


def timm_to_torchvision(
    state_dict: dict[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """Rename timm's head to torchvision's and flatten its conv kernels into Linear weights."""
    if not any(k.startswith("pre_logits.fc1.") for k in state_dict):
        raise VGGError(
            f"{source} is not a timm VGG state dict (expected pre_logits.fc1, pre_logits.fc2, head.fc)"
        )
    out = {}
    for key, value in state_dict.items():
        for theirs, ours in TIMM_HEAD.items():
            if key.startswith(theirs):
                key = ours + key[len(theirs) :]
                if key.endswith("weight") and value.dim() == 4:
                    value = value.flatten(1)
                break
        out[key] = value
    return out


def import_timm(obj: object, config: str | None = None, source: str = "state dict") -> VGG:
    """Convert a timm VGG state dict (or a checkpoint holding one) into our model."""
    return import_torchvision(
        timm_to_torchvision(unwrap_state_dict(obj, source), source), config, source
    )
