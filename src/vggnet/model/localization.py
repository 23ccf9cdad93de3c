"""Appendix A's localisation net: net D whose last layer predicts a box instead of class scores.

The box is 4 numbers, (centre x, centre y, width, height) in units of the crop side from
the window's top-left corner (``vggnet.data.boxes.to_crop_params``). Per-class regression
(PCR) predicts one box per class (4 x K outputs, class c's at 4c..4c+3); single-class
regression (SCR) one box for all (4 outputs). Applied densely, every window of the score
map predicts its own boxes.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from vggnet.card import BOX_PARAMS, BOX_REGRESSIONS, net_outputs
from vggnet.errors import VGGError
from vggnet.model.vgg import VGG

FINETUNE_LAYERS = ("all", "fc")  # the paper's two options; all layers was better (Table 8)


def localization_net(classifier: VGG, regression: str = "per-class", init: str = "paper") -> VGG:
    """A localisation net initialised from ``classifier``: every layer but fc8, which is new.

    ``classifier``: a trained classification VGG (its classes name the boxes).
    ``regression``: ``per-class`` (PCR, the paper's best) or ``single-class`` (SCR).
    ``init``: how the new fc8 starts (Appendix A: at random). Returns a new VGG.
    """
    if regression not in BOX_REGRESSIONS:
        raise VGGError(f"--regression {regression}: choose {' or '.join(BOX_REGRESSIONS)}")
    if classifier.card.box_regression is not None:
        raise VGGError("a localisation net starts from a classification net, not another one")
    classes = classifier.card.classes
    if classes is None:
        raise VGGError("the classification net has no class names: train or import it first")
    net = copy.deepcopy(classifier)
    net.reset_classifier(net_outputs(len(classes), regression), init)
    net.card = classifier.card.with_(classes=classes, box_regression=regression)
    return net


def is_localization_net(model: VGG) -> bool:
    """Whether ``model`` predicts boxes (a card with ``box_regression``)."""
    return model.card.box_regression is not None


def select_boxes(outputs: torch.Tensor, labels: torch.Tensor, regression: str) -> torch.Tensor:
    """The box each image's class gets: (N, 4) of fc8 outputs (N, 4K) or (N, 4).

    Works the same on a dense map's outputs (N, 4K, h, w) -> (N, 4, h, w).
    """
    if regression == "single-class":
        return outputs
    shape = outputs.shape
    boxes = outputs.reshape(shape[0], -1, BOX_PARAMS, *shape[2:])
    index = labels.long().reshape(-1, 1, 1, *([1] * (len(shape) - 2)))
    index = index.expand(-1, 1, BOX_PARAMS, *shape[2:])
    return boxes.gather(1, index).squeeze(1)


def freeze_convolutions(model: nn.Module, finetune_layers: str) -> None:
    """Fine-tune all layers, or (``fc``, as OverFeat) only the fully connected ones.

    Frozen batch norms keep their running statistics too (momentum 0): the convolutional
    part stays the classifier's, and training normalises with each batch as always.
    """
    if finetune_layers not in FINETUNE_LAYERS:
        raise VGGError(
            f"--finetune-layers {finetune_layers}: choose {' or '.join(FINETUNE_LAYERS)}"
        )
    if finetune_layers == "all":
        return
    for name, layer in model.named_children():
        if not name.startswith("fc"):
            layer.requires_grad_(False)
        if isinstance(layer, nn.BatchNorm2d):
            layer.momentum = 0.0
