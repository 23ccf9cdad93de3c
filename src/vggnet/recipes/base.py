"""What every recipe of this project shares (the demo, the grid, the GPU runs)."""

from typing import Any

SHARED: dict[str, Any] = {
    # Batch norm after every conv: the deep nets train from scratch in a few epochs, where
    # the paper needed net A's weights to start D and E (section 2; DESIGN.md's traps).
    "batch_norm": True,
    # He initialisation suits ReLU nets with batch norm; the paper's N(0, 0.01^2) is for
    # its plain nets.
    "init": "kaiming",
    # He-initialised nets expect unit-variance inputs: subtract the mean, divide by the std.
    "normalize": "standard",
    # NHWC: faster convolutions on CPUs (oneDNN) and on tensor cores (docs/BENCHMARKS.md).
    "channels_last": True,
}
