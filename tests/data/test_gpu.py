"""The GPU decode path, run on the CPU: same draws, same pixels as the CPU path."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from tests.helpers import write_image_folder
from vggnet.data import GlobalBatchSampler, TrainTransform, open_source, parse_scale, train_loader
from vggnet.data.gpu import DeviceDecoder, encoded_train_loader, orient


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillow_exif_transpose(orientation):
    array = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    img = Image.fromarray(array)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(img))
    ours = orient(torch.from_numpy(array).permute(2, 0, 1), orientation).permute(1, 2, 0)
    assert np.array_equal(ours.numpy(), expected)


def test_device_path_equals_cpu_path(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b"), train=6, size=(70, 50))
    folder = tmp_path / "train" / "a"
    Image.open(folder / "1.jpg").save(folder / "1.png")  # a non-JPEG: decoded on the CPU
    (folder / "1.jpg").unlink()
    rotated = Image.open(folder / "2.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(folder / "2.jpg", exif=exif)
    (tmp_path / "train" / "b" / "3.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    source = open_source(str(tmp_path), "train")
    transform = TrainTransform(parse_scale("40:60", 32), 32, seed=9)
    sampler = GlobalBatchSampler(len(source), 6, seed=2)
    cpu = list(train_loader(source, transform, sampler))
    decoder = DeviceDecoder(32, "cpu")
    device = [decoder(b) for b in encoded_train_loader(source, transform, sampler, workers=2)]
    assert len(cpu) == len(device) == 2
    for a, b in zip(cpu, device, strict=True):
        assert torch.equal(a.indices, b.indices)
        assert torch.equal(a.images, b.images)
        assert torch.equal(a.labels, b.labels) and torch.equal(a.alpha, b.alpha)
        assert [s.name for s in a.skipped] == [s.name for s in b.skipped]
    assert sum(len(b.skipped) for b in device) == 1
