"""Training a localisation net (Appendix A): its loss, its training error, its validation.

The net is a classification net whose fc8 predicts boxes (``vggnet.model.localization``);
everything else of the classification trainer (schedule, checkpoints, resume, DDP,
signals, logs) is the same. The loss is Caffe's Euclidean loss between the predicted and
the true box parameters, on the box of the image's class; validation is protocol (a):
the ground-truth class's box from the centre crop at Q, right when IoU > 0.5.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.ops import box_iou

from vggnet.data.box_views import BoxView, box_views_loader
from vggnet.data.boxes import IOU_CORRECT, BoxedSource, box_correct, from_crop_params
from vggnet.data.sampler import shard_indices
from vggnet.distributed import Dist, all_sum
from vggnet.eval.localization import center_crop_boxes, class_column
from vggnet.metrics import error_percent
from vggnet.model.localization import select_boxes


def box_targets(labels: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """A batch's targets as one (N, 5) tensor: the class, then its box's (cx, cy, w, h) / crop."""
    return torch.cat([labels.to(boxes.dtype)[:, None], boxes], dim=1)


class BoxLoss(nn.Module):
    """Caffe's Euclidean loss on the image's class's box: sum of squared differences / (2 N).

    ``regression``: ``per-class`` (the class's 4 outputs) or ``single-class`` (the only 4).
    """

    def __init__(self, regression: str) -> None:
        super().__init__()
        self.regression = regression

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss of fc8 ``outputs`` (N, 4K or 4) against ``box_targets`` (N, 5)."""
        predicted = select_boxes(outputs, targets[:, 0], self.regression)
        return (predicted - targets[:, 1:]).pow(2).sum(1).mean() / 2


def box_errors(outputs: torch.Tensor, targets: torch.Tensor, regression: str) -> torch.Tensor:
    """How many predicted boxes miss their crop's true box (IoU <= 0.5): a device count."""
    predicted = from_crop_params(select_boxes(outputs, targets[:, 0], regression), 1)
    truth = from_crop_params(targets[:, 1:], 1)
    iou = box_iou(predicted.float(), truth.float()).diagonal()
    return (iou <= IOU_CORRECT).sum()


def box_validation_loader(
    source: BoxedSource, q: int, batch_size: int, workers: int, d: Dist
) -> Any:
    """This process's share of the validation images at Q, with their boxes (made once per run)."""
    indices = list(shard_indices(len(source), d.world_size, d.rank))
    return box_views_loader(source, [q], indices, batch_size, workers)


def validate_boxes(parts: Any, loader: Any, crop: int, q: int, d: Dist) -> dict[str, float | int]:
    """Protocol (a) localisation error at Q over this process's shard, summed over all."""
    wrong = total = skipped = 0
    net = parts.net
    net.eval()
    with torch.no_grad(), parts.autocast:
        for items in loader:
            views = [v for v in items if isinstance(v, BoxView)]
            skipped += len(items) - len(views)
            if not views:
                continue
            images, fulls = [v.views[0] for v in views], [v.full for v in views]
            boxes = center_crop_boxes(net, parts.normalizer, images, fulls, q, crop)
            for view, found in zip(views, boxes, strict=True):
                box = class_column(found[None], view.label)[0]
                wrong += int(not box_correct(box, view.boxes))
            total += len(views)
    net.train()
    wrong, total, skipped = (int(v) for v in all_sum([wrong, total, skipped], d, parts.device))
    return {
        "val_loc_error": error_percent(total - wrong, total),
        "val_images": total,
        "val_skipped": skipped,
    }
