"""What a fast inference precision costs in accuracy: predictions against fp32, same images.

A precision may be an inference default only if, on a trained net and its test set, its
top-1 predictions agree with fp32's on >= 99.5% of the images and its top-1 error moves by
<= 0.1 points for bf16 (issue 7's rule), <= 0.2 for int8 (issue 37's). bf16 is measured even
where it is only emulated (slow, but the numbers are the same as on hardware with native
bf16); int8 runs on onnxruntime, calibrated on the data's train split; "winograd" puts
every eligible layer on Winograd F(4x4, 3x3), whichever ``--winograd`` would choose.
"""

from __future__ import annotations

import time

from vggnet.checkpoint import load_checkpoint
from vggnet.data import open_source
from vggnet.data.geometry import Scale, single_test_scale
from vggnet.devices import resolve_device
from vggnet.errors import VGGError
from vggnet.eval.analysis import top_errors
from vggnet.eval.classes import check_classes
from vggnet.eval.protocols import Engine, Protocol
from vggnet.eval.scoring import score_images

MIN_AGREEMENT = 99.5  # percent of images with the same top-1 class
MAX_ERROR_CHANGE = {"bf16": 0.1, "int8": 0.2, "winograd": 0.2}  # top-1 error points
FAST_PATHS = tuple(MAX_ERROR_CHANGE)  # "winograd": fp32 with Winograd 3x3 convolutions


def precision_agreement(
    checkpoint: str,
    data: str,
    precision: str = "bf16",
    *,
    method: str = "center",
    device: str = "cpu",
    batch_size: int = 256,
) -> dict:
    """Top-1 agreement (%) of ``precision`` with fp32 and both top-1 errors, on ``data``'s val split."""
    torch_device = resolve_device(device)
    model = load_checkpoint(checkpoint)
    source = open_source(data, "val")
    if model.train_scale is None:
        raise VGGError(f"{checkpoint} stores no training scale, so no test scale Q = S")
    q = single_test_scale(Scale(*model.train_scale))
    protocol = Protocol(method, [q], flip=method != "center")
    classes = check_classes([model], [checkpoint], source.classes, by_index=False)
    results = {}
    for name, channels_last in (("fp32", False), (precision, True)):
        if name == "winograd":  # every eligible layer, whichever are faster: the worst case
            engine = Engine(None, "fp32", winograd="every-layer")
        else:
            engine = Engine(None, name, data)
        sm = engine.prepare(checkpoint, model, protocol, torch_device, channels_last)
        start = time.perf_counter()
        scores = score_images(
            [sm], source, protocol, classes, precision=engine.precision, batch_size=batch_size
        )
        results[name] = (scores.combined(), time.perf_counter() - start, scores.labels)
    (base, base_s, labels), (fast, fast_s, _) = results["fp32"], results[precision]
    agreement = 100.0 * float((base.argmax(1) == fast.argmax(1)).float().mean())
    base_error, fast_error = (
        top_errors(base, labels)["top1_error"],
        top_errors(fast, labels)["top1_error"],
    )
    return {
        "checkpoint": checkpoint,
        "data": data,
        "method": method,
        "images": len(labels),
        "precision": precision,
        "agreement": agreement,
        "fp32_top1_error": base_error,
        "top1_error": fast_error,
        "error_change": fast_error - base_error,
        "passes": agreement >= MIN_AGREEMENT
        and abs(fast_error - base_error)
        <= MAX_ERROR_CHANGE[precision] + 1e-9,  # errors are in 1/N steps
        "seconds": {"fp32": base_s, precision: fast_s},
    }


def main() -> None:
    """``python -m vggnet.bench.agreement CKPT DATA``: the rule's figures, one line per row."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("data")
    parser.add_argument("--precisions", nargs="+", default=["int8"], choices=FAST_PATHS)
    parser.add_argument("--methods", nargs="+", default=["center", "dense"])
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rows = []
    for precision in args.precisions:
        for method in args.methods:
            row = precision_agreement(args.checkpoint, args.data, precision, method=method)
            rows.append(row)
            print(
                f"{precision} vs fp32, {method}, {row['images']} images: agreement "
                f"{row['agreement']:.2f}%, top-1 error {row['fp32_top1_error']:.2f}% -> "
                f"{row['top1_error']:.2f}% ({'passes' if row['passes'] else 'fails'}); "
                f"seconds fp32 {row['seconds']['fp32']:.1f}, {precision} "
                f"{row['seconds'][precision]:.1f}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
