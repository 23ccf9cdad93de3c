"""Which model output is which data class: by name, or by sorted position."""

from __future__ import annotations

import torch

from vggnet.errors import VGGError
from vggnet.model import VGG


def check_classes(
    models: list[VGG], names: list[str], data_classes: list[str], by_index: bool
) -> list[str]:
    """The shared class list of an ensemble, checked against the data's; returns the model classes."""
    lists = []
    for model, name in zip(models, names, strict=True):
        classes = model.classes
        if classes is None:
            if model.spec.num_classes != len(data_classes):
                raise VGGError(
                    f"{name} has {model.spec.num_classes} outputs and no class names, "
                    f"the data {len(data_classes)} classes"
                )
            classes = list(data_classes)
        lists.append(list(classes))
    for classes, name in zip(lists[1:], names[1:], strict=True):
        if classes != lists[0]:
            raise VGGError(
                f"{name} and {names[0]} have different class lists: an ensemble needs the same classes"
            )
    classes = lists[0]
    if sorted(classes) != sorted(data_classes):
        if by_index and len(classes) == len(data_classes):
            return classes
        missing = sorted(set(data_classes) - set(classes))[:3]
        raise VGGError(
            f"{names[0]}'s classes differ from the data's (e.g. data class "
            f"{missing[0] if missing else '?'!r} is not among the model's {len(classes)}); "
            "pass --class-order index to match them by sorted position"
            if len(classes) == len(data_classes)
            else f"{names[0]} has {len(classes)} classes, the data {len(data_classes)}"
        )
    return classes


def label_map(model_classes: list[str], data_classes: list[str]) -> torch.Tensor:
    """Data label -> model output index (by name; by position when the names differ)."""
    position = {c: i for i, c in enumerate(model_classes)}
    if all(c in position for c in data_classes):
        return torch.tensor([position[c] for c in data_classes])
    return torch.arange(len(data_classes))
