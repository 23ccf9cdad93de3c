"""``vggnet reproduce``: how wide and how long the paper's grid of nets trains.

Every net shares the settings of ``base`` and runs the linear schedule (warm-up, then
down to 0 at its last epoch) without dropout: at a few epochs the nets underfit, and the
plateau rule has no spare epochs to notice a plateau in (the demo's tuning rounds in
docs/notebook/). Fine-tuned nets (S2 from S1, jittered from S2) start at the paper's 1e-3
without warm-up.
"""

from dataclasses import dataclass

from vggnet.recipes.base import SHARED

RECIPE = SHARED  # what every net of the grid is trained with, besides its budget


@dataclass(frozen=True)
class Budget:
    """How wide and how long: nets from scratch or from A, and fine-tuned nets."""

    width: float
    fc_width: int
    epochs: int
    finetune_epochs: int
    batch_size: int = 128
    lr: float = 0.1
    warmup: float = 0.5
    dropout: float = 0.0


BUDGETS = {
    # A quarter width and a few epochs: the grid's flow and its tables, quickly.
    "small": Budget(width=0.25, fc_width=256, epochs=4, finetune_epochs=2),
    # Half width, 16 epochs: enough to tell which of the paper's findings hold
    # (docs/grid/fashion-mnist-full.md; trained across sessions on two CPU cores in bf16).
    "full": Budget(width=0.5, fc_width=512, epochs=16, finetune_epochs=6),
}
