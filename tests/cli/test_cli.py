"""The command line: info, entry points, error reporting."""

import subprocess
import sys
from pathlib import Path

from vggnet.model import VGGSpec
from vggnet.summary import layer_rows

# torchvision's published GFLOPS (multiply-adds) at 224 (REFERENCES.md).
TORCHVISION_GMACS = {"A": 7.61, "B": 11.31, "D": 15.47, "E": 19.63}


def test_multiply_adds_match_torchvision_metadata():
    for config, gmacs in TORCHVISION_GMACS.items():
        total = sum(r.macs for r in layer_rows(VGGSpec(config)))
        assert round(total / 1e9, 2) == gmacs
    conv1_1 = layer_rows(VGGSpec("D"))[0]
    assert conv1_1.macs == 224 * 224 * 64 * 3 * 3 * 3  # hand count
    assert conv1_1.output_shape == (64, 224, 224)


def test_info_overview_shows_table_1_and_2(run_cli):
    status, out, _ = run_cli("info")
    assert status == 0
    for count in ("132,863,336", "133,047,848", "133,638,952", "138,357,544", "143,667,240"):
        assert count in out
    assert "conv1-256" in out and "LRN" in out and "soft-max" in out
    assert "15.47 G" in out


def test_info_layer_table(run_cli):
    status, out, _ = run_cli("info", "vgg16", "--batch-norm")
    assert status == 0
    assert "ConvNet D (batch norm)" in out
    assert "conv5_3" in out and "bn5_3" in out and "512x7x7" in out
    assert "138,365,992" in out
    status, out, _ = run_cli(
        "info", "A", "--crop-size", "32", "--width", "0.25", "--num-classes", "10"
    )
    assert status == 0 and "128x1x1" in out


def test_info_unknown_config_is_one_line(run_cli):
    status, out, err = run_cli("info", "F")
    assert status == 2 and out == ""
    assert (
        err
        == "vggnet: error: unknown config 'F': choose one of A, A-LRN, B, C, D, E, vgg11, vgg13, "
        "vgg16, vgg19, vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn\n"
    )


def test_python_dash_m_and_console_script():
    result = subprocess.run(
        [sys.executable, "-m", "vggnet", "info", "E"], capture_output=True, text=True, check=True
    )
    assert "143,667,240" in result.stdout
    script = Path(sys.executable).parent / "vggnet"
    result = subprocess.run([script, "info", "--crop-size", "100"], capture_output=True, text=True)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "vggnet: error: crop_size must be a positive multiple of 32 (five 2x2 pools), got 100"
    )
