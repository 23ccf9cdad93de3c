"""Decoding: every Pillow mode to 8-bit RGB, EXIF orientation, reduced-size JPEG decoding, bad files."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from vggnet.data import images
from vggnet.data.images import BadImage, decode_image


def hwc(tensor):
    return tensor.permute(1, 2, 0).numpy().astype(int)


def noise(width, height, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1}[mode]
    array = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode)


def smooth(width, height):
    """A smooth image: JPEG keeps it close, so decoded pixels can be compared."""
    y, x = np.mgrid[0:height, 0:width]
    array = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], -1)
    return Image.fromarray(array.astype(np.uint8), "RGB")


def test_cmyk_palette_rgba_gray_become_rgb(tmp_path):
    base = smooth(40, 30)
    cases = {
        "cmyk.jpg": (base.convert("CMYK"), "JPEG"),
        "palette.png": (base.convert("P"), "PNG"),
        "rgba.png": (base.convert("RGBA"), "PNG"),
        "gray.png": (base.convert("L"), "PNG"),
    }
    for name, (img, fmt) in cases.items():
        img.save(tmp_path / name, fmt)
        out, size = decode_image(tmp_path / name)
        assert out.shape == (3, 30, 40) and out.dtype == torch.uint8 and size == (40, 30), name
        expected = np.asarray(img.convert("RGB"), dtype=int)
        assert np.abs(hwc(out) - expected).max() <= 2, name
    gray, _ = decode_image(tmp_path / "gray.png", mode="L")
    assert gray.shape == (1, 30, 40)
    gray_jpeg, _ = decode_image(tmp_path / "cmyk.jpg", mode="L")
    assert gray_jpeg.shape == (1, 30, 40)


def test_16_bit_gray_keeps_its_range(tmp_path):
    array = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(array).save(tmp_path / "deep.png")
    out, _ = decode_image(tmp_path / "deep.png", mode="L")
    assert out.tolist() == [[[0, 1, 128, 255]]]


def test_exif_orientation_is_honoured(tmp_path):
    img = smooth(60, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    out, size = decode_image(tmp_path / "rotated.jpg")
    assert out.shape == (3, 60, 40) and size == (40, 60)
    expected = np.asarray(img.transpose(Image.Transpose.ROTATE_270), dtype=int)
    assert np.abs(hwc(out) - expected).mean() < 3
    img.convert("RGBA").save(tmp_path / "rotated.png", exif=exif)  # the Pillow path too
    out, size = decode_image(tmp_path / "rotated.png")
    assert out.shape == (3, 60, 40) and size == (40, 60)


def test_large_jpeg_is_decoded_at_reduced_size(tmp_path):
    smooth(1024, 768).save(tmp_path / "big.jpg", quality=95)
    out, size = decode_image(tmp_path / "big.jpg", min_short_side=256)
    assert size == (1024, 768)  # full size, for crop geometry
    assert out.shape == (3, 384, 512)  # libjpeg's 1/2 scale: still >= 256 on the short side
    out, _ = decode_image(tmp_path / "big.jpg", min_short_side=500)
    assert out.shape == (3, 768, 1024)  # less than twice the target: full decode


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jpg", b"", "empty file"),
        ("text.jpg", b"this is not an image at all", "cannot decode"),
    ],
)
def test_bad_files_name_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(BadImage, match=f"{name}: {message}"):
        decode_image(tmp_path / name)


def test_truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    noise(64, 64).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:600])
    with pytest.raises(BadImage, match=r"cut.jpg: cannot decode"):
        decode_image(tmp_path / "cut.jpg")


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    noise(100, 100).save(tmp_path / "bomb.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 5000)
    with pytest.raises(BadImage, match=r"bomb.png: 100x100 pixels exceeds the 5,000 limit"):
        decode_image(tmp_path / "bomb.png")
