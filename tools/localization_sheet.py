"""A contact sheet of localisation results on val scenes: true box green, predicted box red.

The predicted box is the one ``vggnet eval --task localization`` scores for the top-1
class (multi-crop or dense with greedy merging, or the centre crop), titled with that class.

    PYTHONPATH=src python3 tools/localization_sheet.py --checkpoint LOC.ckpt \
        --classifier CLS.ckpt --data fashion-mnist-canvas:val=2000 --out docs/localization.png
"""

from __future__ import annotations

import argparse

import torch
from PIL import Image
from torchvision.utils import draw_bounding_boxes, make_grid

from vggnet.apps.localization import LOCALIZATION_METHODS, load_localizers, localize
from vggnet.data.box_views import BoxView
from vggnet.data.boxes import box_correct, box_source
from vggnet.data.sources import open_source
from vggnet.data.transforms import rescale
from vggnet.eval.localization import class_box, image_posteriors

TILE = 160  # pixels: each scene's short side on the sheet


def tile(found, source, index: int, method: str) -> torch.Tensor:
    """Scene ``index`` enlarged, with its true box (green) and top-1 class's box (red)."""
    image, full = source.read(index)
    view = BoxView([rescale(image, q) for q in found.scales], int(source.labels[index]), index,
                   full, source.boxes(index))  # fmt: skip
    boxes = localize(found, view, method)
    top = int(image_posteriors(boxes).argmax())
    predicted = class_box(boxes, top)
    right = top == view.label and box_correct(predicted, view.boxes)
    big = rescale(image, TILE).expand(3, -1, -1)
    zoom = torch.tensor([big.shape[-1] / full[0], big.shape[-2] / full[1]] * 2)
    both = torch.cat([view.boxes * zoom, predicted[None] * zoom])
    label = f"{found.classes[top]} {'ok' if right else 'x'}"
    drawn = draw_bounding_boxes(big, both, ["", label], colors=["lime", "red"], width=2)
    return drawn[:, :TILE, :TILE]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--classifier", action="append", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--method", default="multi-crop", choices=LOCALIZATION_METHODS)
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    found = load_localizers(args.checkpoint, args.classifier, None, torch.device("cpu"))
    source = box_source(open_source(args.data, "val"), None)
    with torch.no_grad():
        tiles = [tile(found, source, i, args.method) for i in range(args.count)]
    sheet = make_grid(tiles, nrow=8, padding=4, pad_value=255)
    Image.fromarray(sheet.permute(1, 2, 0).numpy()).save(args.out)
    print(f"wrote {args.out}: {args.count} val scenes, {args.method}")


if __name__ == "__main__":
    main()
