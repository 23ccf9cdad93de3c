"""Training with the paper's recipe (section 2), on CPU, one GPU, or many through torchrun.

The modules follow a run: ``config`` (its settings and the resume rules) -> ``folder``
(one writer per run folder) -> ``setup`` (data, network, optimiser, loaders) -> ``state``
(what a checkpoint keeps) -> ``step`` (one training step; validation) -> ``fit`` (the loop).
"""

from vggnet.train.config import FINETUNE_LR, TrainConfig, check_config, config_for_run
from vggnet.train.fit import train
from vggnet.train.setup import build_run_model

__all__ = [
    "FINETUNE_LR",
    "TrainConfig",
    "build_run_model",
    "check_config",
    "config_for_run",
    "train",
]
