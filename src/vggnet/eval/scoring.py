"""Scoring a data set or image files with one net or an ensemble, in one process or many.

Each image is decoded once and rescaled once per scale, whatever the number of models,
crops and flips; ensembles average the models' posteriors, each with its own
preprocessing.
"""

from __future__ import annotations

import time

import torch

from vggnet.data import open_source
from vggnet.data.geometry import Scale, single_test_scale
from vggnet.data.images import BadImage, decode_image
from vggnet.data.loader import split_skipped, views_loader
from vggnet.data.sampler import shard_indices
from vggnet.data.subset import limit_source
from vggnet.data.transforms import rescale
from vggnet.devices import (
    default_device,
    inference_context,
    inference_precision,
    resolve_device,
)
from vggnet.distributed import Dist, process_group
from vggnet.errors import VGGError
from vggnet.eval.classes import check_classes, label_map
from vggnet.eval.engines import winograd_mode
from vggnet.eval.protocols import (
    PARTS,
    Engine,
    Protocol,
    ScoredModel,
    classifier_checkpoint,
    load_models,
    part_posteriors,
)
from vggnet.eval.scores import Scores, gather_scores
from vggnet.progress import progress as progress_display


def stacked(store: list[list[list[list[torch.Tensor]]]], k: int) -> list[torch.Tensor]:
    """Per model, its batches' posteriors as one (scales, parts, N, K) tensor."""
    return [
        torch.stack(
            [
                torch.stack(
                    [torch.cat(chunks) if chunks else torch.empty(0, k) for chunks in by_part]
                )
                for by_part in by_scale
            ]
        )
        for by_scale in store
    ]


def score_images(
    models: list[ScoredModel],
    source,
    protocol: Protocol,
    classes: list[str],
    d: Dist | None = None,
    batch_size: int = 32,
    workers: int = 0,
    precision: str = "fp32",
    progress: bool = False,
) -> Scores:
    """Posteriors of every model, scale and part for this process's share of ``source``."""
    d = d or Dist()
    parts = PARTS[protocol.method]
    all_scales = sorted({q for sm in models for q in sm.scales})
    indices = shard_indices(len(source), d.world_size, d.rank)
    loader = views_loader(source, all_scales, indices, batch_size, workers)
    to_model = label_map(classes, source.classes)
    device = next(models[0].model.parameters()).device
    store: list[list[list[list[torch.Tensor]]]] = [
        [[[] for _ in parts] for _ in sm.scales] for sm in models
    ]
    labels, kept, skipped = [], [], []
    start = time.perf_counter()
    bar = progress_display(len(indices), "evaluating", "img", enabled=progress)
    with inference_context(precision, device):
        for items in loader:
            good, bad = split_skipped(items)
            skipped += bad
            bar.update(len(items))
            if not good:
                continue
            for m, sm in enumerate(models):
                for s, q in enumerate(sm.scales):
                    images = [views[all_scales.index(q)] for views, _, _ in good]
                    for p, part in enumerate(parts):
                        store[m][s][p].append(
                            part_posteriors(sm, part, images, protocol, batch_size).cpu()
                        )
            labels += [int(to_model[label]) for _, label, _ in good]
            kept += [index for _, _, index in good]
    bar.close()
    posteriors = stacked(store, len(classes))
    return Scores(
        classes,
        torch.tensor(labels, dtype=torch.long),
        torch.tensor(kept, dtype=torch.long),
        [sm.name for sm in models],
        parts,
        protocol.flip and protocol.method != "center",
        [list(sm.scales) for sm in models],
        posteriors,
        skipped,
        time.perf_counter() - start,
    )


def evaluate_checkpoints(
    checkpoints: list[str],
    data: str,
    protocol: Protocol,
    *,
    split: str = "val",
    val_labels: str | None = None,
    device: str | None = None,
    precision: str = "auto",
    channels_last: bool = True,
    batch_size: int = 32,
    workers: int = 0,
    by_index: bool = False,
    dist_timeout: float = 600.0,
    limit: int | None = None,
    backend: str | None = None,
    calibration: str | None = None,
    winograd: bool = False,
) -> Scores | None:
    """Score ``data`` with one checkpoint or an ensemble, in one process or under torchrun.

    ``limit``: score only that many images, spread evenly over the classes (see
    ``stratified_indices``), for a quick check. ``backend``, ``precision``: what runs the
    forward pass (see ``vggnet.eval.engines``); ``calibration``: int8's data (default
    ``data``); ``winograd``: fp32 3x3 convolutions as F(4x4, 3x3) where measured faster.
    Returns every image's scores on rank 0 (None on the other ranks).
    """
    name = device or default_device()
    device_type = "cuda" if name.startswith("cuda") else "cpu"
    with process_group(
        device_type, dist_timeout, lambda: "no scores were written: run it again"
    ) as d:
        torch_device = resolve_device(name, d.local_rank if d.enabled else None)
        precision = inference_precision(precision, torch_device)
        source = limit_source(open_source(data, split, val_labels), limit)
        if len(source) == 0:
            raise VGGError(f"--data {data}: the {split} split has no images")
        engine = Engine(backend, precision, calibration or data, winograd_mode(winograd))
        models = load_models(checkpoints, protocol, torch_device, channels_last, engine)
        for sm in models:
            if sm.model.spec.in_channels != source.channels:
                raise VGGError(
                    f"{sm.name} takes {sm.model.spec.in_channels}-channel images, "
                    f"--data {data} has {source.channels}"
                )
        classes = check_classes([sm.model for sm in models], checkpoints, source.classes, by_index)
        scores = score_images(
            models, source, protocol, classes, d, batch_size, workers, precision, d.is_main
        )
        scores = gather_scores(scores, d)
        if not len(scores.labels):  # every rank has them all: every rank stops alike
            first = f" (the first: {scores.skipped[0].reason})" if scores.skipped else ""
            raise VGGError(
                f"--data {data}: none of the {len(source)} {split} images could be read{first}; "
                f"list them all with `vggnet data check {data}`"
            )
        return scores if d.is_main else None


def predict_images(
    checkpoint: str,
    images: list[str],
    protocol: Protocol,
    top: int = 5,
    device: str | None = None,
    precision: str = "auto",
    channels_last: bool = True,
    backend: str | None = None,
    calibration: str | None = None,
    winograd: bool = False,
) -> tuple[list[dict], list[str], list[int]]:
    """Top classes of each image file: (results, reasons for files that failed, scales used).

    Without scales in ``protocol``, Table 3's single test scale: Q = S, or (Smin + Smax) / 2.
    ``backend``, ``precision``, ``calibration``, ``winograd``: as ``evaluate_checkpoints``
    (int8 needs ``calibration`` only until the checkpoint's int8 file exists).
    """
    model = classifier_checkpoint(checkpoint)
    if not protocol.scales:
        if model.train_scale is None:
            raise VGGError(f"{checkpoint} stores no training scale: pass --scales Q")
        protocol = Protocol(
            protocol.method,
            [single_test_scale(Scale(*model.train_scale))],
            protocol.flip,
            protocol.grid,
        )
    torch_device = resolve_device(device or default_device())
    precision = inference_precision(precision, torch_device)
    engine = Engine(backend, precision, calibration, winograd_mode(winograd))
    sm = engine.prepare(checkpoint, model, protocol, torch_device, channels_last)
    classes = model.classes or [str(i) for i in range(model.spec.num_classes)]
    mode = "L" if model.spec.in_channels == 1 else "RGB"
    results, failures = [], []
    # One context for all images: autocast casts the weights to bf16 once, not per image.
    with inference_context(precision, torch_device):
        for path in images:
            try:
                image, _ = decode_image(path, mode, min(sm.scales))
            except BadImage as err:
                failures.append(str(err))
                continue
            views = [
                part_posteriors(sm, part, [rescale(image, q)], protocol, 64)[0]
                for q in sm.scales
                for part in PARTS[protocol.method]
            ]
            best = torch.stack(views).mean(0).topk(min(top, len(classes)))
            results.append(
                {
                    "image": str(path),
                    "top": [
                        {"class": classes[i], "index": int(i), "probability": float(p)}
                        for p, i in zip(best.values, best.indices, strict=True)
                    ],
                }
            )
    return results, failures, sm.scales
