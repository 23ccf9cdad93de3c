"""What every field of a checkpoint must be, checked in one place.

A checkpoint can be damaged, hand-edited or written by another tool; whatever it holds,
reading it ends in a valid payload or one ``VGGError`` naming the file and the field.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import torch

from vggnet.card import BOX_REGRESSIONS, net_outputs
from vggnet.errors import VGGError
from vggnet.model import VGGSpec
from vggnet.preprocessing import CHANNEL_ORDERS

FORMAT = "vggnet-checkpoint"
VERSION = 1

# VGGSpec's fields and the Python types a checkpoint may give them.
SPEC_TYPES: dict[str, tuple[type, ...]] = {
    "config": (str,),
    "num_classes": (int,),
    "batch_norm": (bool,),
    "in_channels": (int,),
    "width": (int, float),
    "fc_width": (int,),
    "crop_size": (int,),
    "dropout": (int, float),
}
assert set(SPEC_TYPES) == {f.name for f in fields(VGGSpec)}, "SPEC_TYPES must follow VGGSpec"


def describe(value: Any) -> str:
    """A short account of a value for an error line: its type and the start of its repr."""
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool, which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_instance(value: Any, types: tuple[type, ...]) -> bool:
    """``isinstance`` that keeps bools out of the number types."""
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types) and (not isinstance(value, float) or math.isfinite(value))


class FieldChecker:
    """Raises one line naming the file and the field when a value breaks its rule."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, rule: str, value: Any) -> None:
        raise VGGError(
            f"{self.source}: {field} must be {rule}, got {describe(value)} "
            "(the file is damaged or was edited: write it again from its run or source)"
        )

    def require(self, ok: bool, field: str, rule: str, value: Any) -> None:
        if not ok:
            self.fail(field, rule, value)


def check_header(payload: Any, path: str) -> dict[str, Any]:
    """The format and version of what a file holds: a vggnet checkpoint this code reads."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and any(isinstance(v, torch.Tensor) for v in payload.values()):
            hint = "; it looks like a bare state dict: convert it with `vggnet import`"
        raise VGGError(f"{path} is not a vggnet checkpoint{hint}")
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise VGGError(
            f"checkpoint {path}: format version {describe(version)} is not a version number "
            "(the file is damaged): write it again from its run or source"
        )
    if version > VERSION:
        raise VGGError(
            f"checkpoint {path} has format version {version}, newer than this vggnet "
            f"reads ({VERSION}): upgrade vggnet"
        )
    missing = [k for k in ("model", "state_dict", "preprocessing") if k not in payload]
    if missing:
        raise VGGError(f"checkpoint {path} is incomplete: missing {', '.join(missing)}")
    return payload


def check_spec(model: Any, check: FieldChecker) -> VGGSpec:
    """The network description: known fields of the right types, then VGGSpec's own rules."""
    check.require(isinstance(model, dict), "model", "a dict of the net's shape", model)
    unknown = sorted(map(str, set(model) - set(SPEC_TYPES)))
    check.require(not unknown, "model", f"keys among {', '.join(SPEC_TYPES)}", unknown)
    check.require("config" in model, "model.config", "a Table 1 config name", None)
    for key, value in model.items():
        names = " or ".join(t.__name__ for t in SPEC_TYPES[key])
        check.require(is_instance(value, SPEC_TYPES[key]), f"model.{key}", f"a {names}", value)
    try:
        return VGGSpec(**model)
    except VGGError as err:
        raise VGGError(f"{check.source}: model: {err}") from None


def check_metadata(payload: dict[str, Any], spec: VGGSpec, check: FieldChecker) -> None:
    """Class names, preprocessing and training scale: what using the net needs besides weights."""
    regression = payload.get("box_regression")
    rule = f"None or one of {BOX_REGRESSIONS}"
    check.require(
        regression is None or regression in BOX_REGRESSIONS, "box_regression", rule, regression
    )
    classes = payload.get("classes")
    if classes is not None:
        rule = f"a list of {spec.num_classes} class names (one per output)"
        if regression is not None:
            rule = (
                f"a list of class names ({regression} box regression, {spec.num_classes} outputs)"
            )
        check.require(isinstance(classes, list | tuple), "classes", rule, classes)
        outputs = net_outputs(len(classes), regression)
        check.require(outputs == spec.num_classes, "classes", rule, classes)
        check.require(all(isinstance(c, str) for c in classes), "classes", rule, classes)
    pre = payload["preprocessing"]
    check.require(isinstance(pre, dict), "preprocessing", "a dict (mean, std, channel_order)", pre)
    channels = spec.in_channels
    for key, positive in (("mean", False), ("std", True)):
        values = pre.get(key)
        rule = f"a list of {channels} {'positive ' if positive else ''}numbers (one per channel)"
        ok = isinstance(values, list | tuple) and len(values) == channels
        ok = ok and all(is_number(v) and (v > 0 or not positive) for v in values)
        check.require(ok, f"preprocessing.{key}", rule, values)
    order = pre.get("channel_order")
    check.require(
        order in CHANNEL_ORDERS, "preprocessing.channel_order", f"one of {CHANNEL_ORDERS}", order
    )
    scale = payload.get("train_scale")
    if scale is not None:
        rule = f"[Smin, Smax]: two integers with {spec.crop_size} (the crop) <= Smin <= Smax"
        ok = isinstance(scale, list | tuple) and len(scale) == 2
        ok = ok and all(is_instance(s, (int,)) for s in scale)
        check.require(ok and spec.crop_size <= scale[0] <= scale[1], "train_scale", rule, scale)


def check_state_dict(state: Any, check: FieldChecker) -> None:
    """Names to tensors: floating point weights, integer batch-norm step counts."""
    check.require(isinstance(state, dict), "state_dict", "a dict of layer names to tensors", state)
    for key, value in state.items():
        check.require(isinstance(key, str), "state_dict", "keyed by layer names (strings)", key)
        check.require(isinstance(value, torch.Tensor), f"state_dict[{key!r}]", "a tensor", value)
        counter = key.endswith("num_batches_tracked")
        kind = "an integer" if counter else "a floating-point"
        ok = value.dtype.is_floating_point != counter and not value.is_complex()
        check.require(ok, f"state_dict[{key!r}]", f"{kind} tensor", value.dtype)


def check_payload(payload: Any, path: str) -> dict[str, Any]:
    """Validate a checkpoint's whole dict; returns it, or raises one line naming file and field."""
    payload = check_header(payload, path)
    check = FieldChecker(f"checkpoint {path}")
    spec = check_spec(payload["model"], check)
    check_metadata(payload, spec, check)
    check_state_dict(payload["state_dict"], check)
    state = payload.get("train_state")
    check.require(state is None or isinstance(state, dict), "train_state", "a dict", state)
    return payload
