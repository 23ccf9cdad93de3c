"""What a trained net needs besides its weights: class names, preprocessing, training scale.

A frozen record stored with the weights in every checkpoint (the file's ``classes``,
``preprocessing`` and ``train_scale`` fields), in the spirit of timm's pretrained cfgs and
torchvision's ``Weights(transforms=..., meta=...)``. A net's card is replaced whole, never
edited in place: training, checkpoint loading and weight imports each make a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from vggnet.preprocessing import Preprocessing

# Appendix A's two localisation nets: a box per class (PCR) or one box for all (SCR).
BOX_REGRESSIONS = ("per-class", "single-class")
BOX_PARAMS = 4  # centre x, centre y, width, height


def net_outputs(num_classes: int, box_regression: str | None) -> int:
    """fc8's outputs: one score per class, or 4 box numbers per class (PCR) or in all (SCR)."""
    if box_regression is None:
        return num_classes
    return BOX_PARAMS * (num_classes if box_regression == "per-class" else 1)


@dataclass(frozen=True)
class Card:
    """A net's metadata: how to feed it, what its outputs mean, what scale it was trained at.

    ``classes``: one name per output, or None (an untrained or headless net).
    ``preprocessing``: how 0..1 pixels become its input (mean, std, channel order).
    ``train_scale``: the (Smin, Smax) it was trained at (Smin = Smax: a fixed S), or None;
    the test protocols derive their default scales from it (Tables 3 and 4).
    ``box_regression``: None for a classifier; for a localisation net (Appendix A) whether
    it predicts a box per class (``per-class``) or one box (``single-class``).
    """

    preprocessing: Preprocessing = field(default_factory=Preprocessing.paper)
    classes: tuple[str, ...] | None = None
    train_scale: tuple[int, int] | None = None
    box_regression: str | None = None

    @classmethod
    def default_for(cls, channels: int) -> Card:
        """A new, untrained net's card: the default preprocessing for its channels."""
        return cls(Preprocessing.default_for(channels))

    def with_(self, **changes: Any) -> Card:
        """A copy with some fields replaced (lists of classes become tuples)."""
        if changes.get("classes") is not None:
            changes["classes"] = tuple(changes["classes"])
        if changes.get("train_scale") is not None:
            changes["train_scale"] = tuple(int(s) for s in changes["train_scale"])
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint fields this card fills (format v1)."""
        return {
            "classes": list(self.classes) if self.classes is not None else None,
            "preprocessing": self.preprocessing.to_dict(),
            "train_scale": list(self.train_scale) if self.train_scale is not None else None,
            **({"box_regression": self.box_regression} if self.box_regression else {}),
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Card:
        """The card of a validated checkpoint payload (``checkpoint_fields.check_payload``)."""
        return cls().with_(
            preprocessing=Preprocessing.from_dict(payload["preprocessing"]),
            classes=payload.get("classes"),
            train_scale=payload.get("train_scale"),
            box_regression=payload.get("box_regression"),
        )
