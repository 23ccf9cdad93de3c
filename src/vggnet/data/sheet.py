"""A contact sheet: the first images of a source on a grid, with their class and (for
sources that have them) their object boxes, so a reader sees what the data is."""

from __future__ import annotations

import math
import os

from PIL import Image, ImageDraw

from vggnet.data.sources import Source
from vggnet.errors import VGGError

CELL = 128  # pixels per image on the sheet
LABEL = 14  # pixels under each image for its class


def contact_sheet(source: Source, count: int = 64, columns: int = 8) -> Image.Image:
    """The first ``count`` images of ``source`` on a grid ``columns`` wide, each fitted to a
    CELL-pixel square (aspect kept), its box (if the source has ``box``) drawn in red and
    its class name below."""
    count = min(count, len(source))
    if count < 1:
        raise VGGError("the split has no images to show")
    rows = math.ceil(count / columns)
    sheet = Image.new("RGB", (columns * CELL, rows * (CELL + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    for i in range(count):
        pixels, (width, height) = source.read(i)
        image = Image.fromarray(pixels.permute(1, 2, 0).squeeze(-1).numpy()).convert("RGB")
        factor = CELL / max(width, height)
        shown = image.resize((max(1, round(width * factor)), max(1, round(height * factor))))
        x, y = (i % columns) * CELL, (i // columns) * (CELL + LABEL)
        sheet.paste(shown, (x, y))
        box = getattr(source, "box", None)
        if box is not None:
            x0, y0, x1, y1 = box(i)
            corners = [x + x0 * factor, y + y0 * factor, x + x1 * factor - 1, y + y1 * factor - 1]
            draw.rectangle(corners, outline=(230, 0, 0), width=2)
        draw.text((x + 2, y + CELL), source.classes[int(source.labels[i])], fill="black")
    return sheet


def save_sheet(source: Source, path: str | os.PathLike, count: int = 64) -> None:
    """Write ``contact_sheet(source, count)`` as a PNG."""
    contact_sheet(source, count).save(path, format="PNG")
