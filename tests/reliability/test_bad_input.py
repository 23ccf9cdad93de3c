"""Bad input end to end: each refused with one line naming the thing at fault, or handled."""

import gzip
import io
import struct
import subprocess
import tracemalloc
import zlib

import pytest
from PIL import Image

import vggnet.devices
from tests.helpers import DATA, torchrun_command, train_args, worker_env, write_image_folder
from tests.reliability.common import one_error_line
from vggnet import VGGError
from vggnet.data.idx import read_idx
from vggnet.data.images import BadImage, decode_image


# Flags: each refused before any work, in one line that names the flag.
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--scale", "30"), "--scale 30: S = 30 is smaller than the crop 32"),
        (("--scale", "48:40"), "--scale 48:40: Smin 48 is larger than Smax 40"),
        (("--scale", "big"), "--scale big is not S or Smin:Smax"),
        (("--batch-size", "0"), "--batch-size must be >= 1, got 0"),
        (("--batch-size", "-8"), "--batch-size must be >= 1, got -8"),
        (("--batch-size", "eight"), "argument --batch-size: invalid int value: 'eight'"),
        (("--device", "tpu"), "--device 'tpu' is not a device: use cpu or cuda"),
        (("--device", "cuda:7"), "--device cuda:7"),
        (("--precision", "bf16"), "--precision bf16: cpu here has no native bf16"),
        (("--precision", "fp64"), "argument --precision: invalid choice: 'fp64'"),
        (("--crop", "48"), "--crop-size 48: use a positive multiple of 32"),
        (("--width", "0"), "--width must be > 0, got 0.0"),
        (("--lr", "0"), "--lr must be > 0, got 0.0"),
        (("--momentum", "1.5"), "--momentum must be in [0, 1), got 1.5"),
        (("--dropout", "1"), "--dropout must be in [0, 1), got 1.0"),
        (("--accumulate", "3"), "--accumulate 3 does not divide the per-process batch 8"),
        (("--config", "Z"), "Z"),
    ],
)
def test_bad_training_flags_are_one_line(tmp_path, run_cli, monkeypatch, extra, message):
    monkeypatch.setattr(vggnet.devices, "supports_bf16", lambda device: False)
    status, _, err = run_cli(*train_args(tmp_path / "run", *extra))
    assert status == 2
    assert message in one_error_line(err)
    assert not (tmp_path / "run" / "last.ckpt").exists()


def test_a_batch_that_does_not_split_over_the_processes_is_refused_by_each(tmp_path):
    result = subprocess.run(
        torchrun_command(train_args(tmp_path / "run", "--batch-size", "7")),
        env=worker_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    expected = "--batch-size 7 is not divisible by the 2 processes: use a multiple of 2"
    assert result.stderr.count(expected) == 2


# Checkpoints of another architecture or for other classes than the data.
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Last checkpoints of tiny runs: net A and net B on 4 classes; net A on 3 classes."""
    from vggnet.cli import main

    root = tmp_path_factory.mktemp("ckpts")
    runs = {"A4": ("A", DATA), "B4": ("B", DATA)}
    runs["A3"] = ("A", DATA.replace("classes=4", "classes=3"))
    for name, (config, data) in runs.items():
        assert main(train_args(root / name, "--max-steps", "1", config=config, data=data)) == 0
    return {name: root / name / "last.ckpt" for name in runs}


def test_checkpoints_of_another_architecture_or_class_count_are_one_line(
    tmp_path, run_cli, checkpoints
):
    status, _, err = run_cli(*train_args(tmp_path / "f", "--finetune-from", checkpoints["B4"]))
    assert status == 2
    assert "--finetune-from" in one_error_line(err) and "conv" in err  # the layer named

    status, _, err = run_cli(*train_args(tmp_path / "g", "--finetune-from", checkpoints["A3"]))
    assert status == 2 and "was trained on other classes" in one_error_line(err)

    status, _, err = run_cli(
        *train_args(tmp_path / "h", "--init-from", checkpoints["A3"], config="D")
    )
    assert status == 2 and "fc8" in one_error_line(err)

    data = ("--data", DATA, "--device", "cpu")
    status, _, err = run_cli("eval", "--checkpoint", checkpoints["A3"], *data)
    line = one_error_line(err)
    assert status == 2 and "has 3 classes, the data 4" in line


# Data.
def huge_header(fmt: str) -> bytes:
    """A real, small file whose header declares 60000 x 60000 pixels (3.6 gigapixels)."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, fmt)
    data = bytearray(buffer.getvalue())
    if fmt == "JPEG":
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    else:
        ihdr = data.index(b"IHDR")
        data[ihdr + 4 : ihdr + 12] = struct.pack(">II", 60000, 60000)
        data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_decompression_bomb_images_are_refused_before_decoding(tmp_path, fmt):
    path = tmp_path / f"bomb.{fmt.lower()}"
    path.write_bytes(huge_header(fmt))
    tracemalloc.start()
    with pytest.raises(BadImage, match=r"bomb\.\w+: .*(60000x60000|too many pixels)"):
        decode_image(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20


def test_a_gzip_bomb_idx_file_costs_no_more_memory_than_its_header_says(tmp_path):
    """Header: 100 images of 28x28 (78 KB); the stream inflates to 256 MB of zeros."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(bytes([0, 0, 8, 3]) + b"".join(struct.pack(">I", d) for d in (100, 28, 28)))
        zeros = bytes(2**20)
        for _ in range(256):
            f.write(zeros)
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    with pytest.raises(
        VGGError, match=r"header says 100x28x28 \(78416 bytes\) but the file has more"
    ):
        read_idx(path, 3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 2**20


def test_an_idx_header_claiming_terabytes_is_refused_without_reading(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", 2**31, 2**15, 2**15) + b"\0" * 64)
    with pytest.raises(VGGError, match=r"over the 4,294,967,296-byte limit"):
        read_idx(path, 3)


def test_training_on_names_with_spaces_non_ascii_and_a_symlink_loop(tmp_path, run_cli):
    root = tmp_path / "données d'été"
    write_image_folder(root, classes=("chat noir", "chien"), train=4, val=2, size=(44, 40))
    (root / "train" / "chien" / "0.jpg").rename(root / "train" / "chien" / "ça va.jpg")
    (root / "train" / "chien" / "loop").symlink_to(root / "train", target_is_directory=True)
    status, out, err = run_cli("data", "check", str(root))
    assert status == 0, err
    status, out, err = run_cli(*train_args(tmp_path / "run", "--epochs", "1", data=str(root)))
    assert status == 0, err
    assert "8 images, 2 classes" in out


def test_an_unwritable_output_is_one_line(tmp_path, run_cli):
    (tmp_path / "file").write_text("not a folder")
    status, _, err = run_cli(*train_args(tmp_path / "file" / "run", "--max-steps", "1"))
    assert status == 2 and "file" in one_error_line(err)
