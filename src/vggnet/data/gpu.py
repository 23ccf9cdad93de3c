"""Training batches decoded and augmented on the GPU: loader workers only read JPEG bytes.

Each image gets the same random choices as on the CPU path (``TrainTransform``'s
stream); the device decodes the whole batch at once (nvJPEG through torchvision.io),
then rescales, crops and mirrors each image there. Files nvJPEG cannot take (PNG and
other formats, or a JPEG the batch decoder refuses) are decoded on the CPU instead.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader

from vggnet.data.images import EXIF_ORIENTATION, MAX_PIXELS, TRANSPOSED, BadImage, decode_image
from vggnet.data.loader import Batch, Skipped, TrainSet, batch_loader, split_skipped
from vggnet.data.sampler import GlobalBatchSampler
from vggnet.data.transforms import CropParams, TrainTransform, apply_crop

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from torchvision.io import ImageReadMode, decode_jpeg


@dataclass
class Encoded:
    """One image on its way to the device: JPEG bytes (or a CPU-decoded crop) and its draws."""

    data: torch.Tensor | None
    crop: torch.Tensor | None
    orientation: int
    full_size: tuple[int, int]
    params: CropParams
    label: int
    index: int
    name: str


@dataclass
class EncodedBatch:
    """Collated ``Encoded`` items plus the files that could not be read."""

    items: list[Encoded]
    skipped: list[Skipped] = field(default_factory=list)


def jpeg_header(path: Path) -> tuple[str | None, tuple[int, int], int]:
    """(format, upright full size, EXIF orientation) from the file header alone."""
    if path.stat().st_size == 0:
        raise BadImage(f"{path}: empty file")
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(EXIF_ORIENTATION, 1)
            fmt = img.format
    except (OSError, ValueError, SyntaxError) as err:
        raise BadImage(f"{path}: cannot decode ({str(err).splitlines()[0]})") from None
    if width * height > MAX_PIXELS:
        raise BadImage(f"{path}: {width}x{height} pixels exceeds the {MAX_PIXELS:,} limit")
    full = (height, width) if orientation in TRANSPOSED else (width, height)
    return fmt, full, orientation


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Apply an EXIF orientation (1..8) to a (C, H, W) image, as Pillow's exif_transpose does."""
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-1, -2)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-1, -2)
    if orientation == 6:
        return torch.rot90(image, -1, (-2, -1))
    if orientation == 7:
        return image.transpose(-1, -2).flip(-1, -2)
    if orientation == 8:
        return torch.rot90(image, 1, (-2, -1))
    return image


class EncodedTrainSet(TrainSet):
    """Training items of an image folder as JPEG bytes plus their random draws (no decoding)."""

    def __getitem__(self, key: tuple[int, int]) -> Encoded | Skipped:
        epoch, index = key
        path = Path(self.source.name(index))
        [draw] = self.transform.draws(epoch, [index])
        crop = self.transform.crop
        try:
            fmt, full, orientation = jpeg_header(path)
            data = None
            cpu_crop = None
            if fmt == "JPEG":
                data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
                params = draw.crop_params(full, crop, 3)
            else:
                image, full = decode_image(path, "RGB", draw.scale)
                params = draw.crop_params(full, crop, 3)
                cpu_crop = apply_crop(image, full, params, crop).contiguous()
        except BadImage as err:
            return Skipped(str(path), str(err))
        label = int(self.source.labels[index])
        return Encoded(data, cpu_crop, orientation, full, params, label, index, str(path))

    def __getitems__(self, keys: list[tuple[int, int]]) -> list:
        """Item by item: the decoding, which a batch could share, happens on the device."""
        return [self[key] for key in keys]


def collate_encoded(items: list) -> EncodedBatch:
    """Keep the items as a list (JPEG sizes differ); set the skipped ones aside."""
    return EncodedBatch(*split_skipped(items))


class DeviceDecoder:
    """Decode and augment an ``EncodedBatch`` on ``device``: uint8 crops, labels, colour draws."""

    def __init__(self, crop: int, device: torch.device | str) -> None:
        self.crop = crop
        self.device = torch.device(device)

    def _decode(self, items: list[Encoded]) -> list[torch.Tensor | BadImage]:
        """Batch-decode the JPEGs; on failure, decode one by one and report the bad ones."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                return decode_jpeg(
                    [i.data for i in items], mode=ImageReadMode.RGB, device=self.device
                )
            except RuntimeError:
                decoded: list[torch.Tensor | BadImage] = []
                for item in items:
                    try:
                        image = decode_jpeg(item.data, mode=ImageReadMode.RGB, device=self.device)
                    except RuntimeError:
                        try:  # nvJPEG refuses some valid files (e.g. CMYK): the CPU takes them
                            image, _ = decode_image(item.name, "RGB")
                            image = image.to(self.device)
                            item.orientation = 1
                        except BadImage as err:
                            image = err
                    decoded.append(image)
                return decoded

    def __call__(self, batch: EncodedBatch) -> Batch:
        """The batch as device tensors, in order; files that fail to decode join ``skipped``."""
        jpegs = [i for i in batch.items if i.data is not None]
        decoded = iter(self._decode(jpegs) if jpegs else [])
        crops, kept, skipped = [], [], list(batch.skipped)
        for item in batch.items:
            if item.data is None:
                assert item.crop is not None  # decoded in the worker
                crops.append(item.crop.to(self.device, non_blocking=True))
                kept.append(item)
                continue
            image = next(decoded)
            if isinstance(image, BadImage):
                skipped.append(Skipped(item.name, str(image)))
                continue
            image = orient(image, item.orientation)
            crops.append(apply_crop(image, item.full_size, item.params, self.crop))
            kept.append(item)
        if not kept:
            return Batch.empty(skipped)
        return Batch(
            torch.stack(crops),
            torch.tensor([i.label for i in kept]).to(self.device, non_blocking=True),
            torch.tensor([i.params.alpha for i in kept], dtype=torch.float32).to(self.device),
            torch.tensor([i.index for i in kept]),
            skipped,
        )


def encoded_train_loader(
    source, transform: TrainTransform, sampler: GlobalBatchSampler, workers: int = 0
) -> DataLoader:
    """A DataLoader of JPEG bytes and draws for this rank; pair it with ``DeviceDecoder``."""
    return batch_loader(EncodedTrainSet(source, transform), sampler, collate_encoded, workers)
