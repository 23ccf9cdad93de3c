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


@dataclass(frozen=True)
class Card:
    """A net's metadata: how to feed it, what its outputs mean, what scale it was trained at.

    ``classes``: one name per output, or None (an untrained or headless net).
    ``preprocessing``: how 0..1 pixels become its input (mean, std, channel order).
    ``train_scale``: the (Smin, Smax) it was trained at (Smin = Smax: a fixed S), or None;
    the test protocols derive their default scales from it (Tables 3 and 4).
    """

    preprocessing: Preprocessing = field(default_factory=Preprocessing.paper)
    classes: tuple[str, ...] | None = None
    train_scale: tuple[int, int] | None = None

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
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Card:
        """The card of a validated checkpoint payload (``checkpoint_fields.check_payload``)."""
        return cls().with_(
            preprocessing=Preprocessing.from_dict(payload["preprocessing"]),
            classes=payload.get("classes"),
            train_scale=payload.get("train_scale"),
        )
