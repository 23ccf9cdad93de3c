"""Table 1 of the paper as data, plus the constants the paper fixes around it.

Each configuration is five blocks; each block lists its layers in Table 1's own
notation: ``conv<k>-<channels>`` (a k x k convolution, stride 1, "same"
padding, followed by ReLU) or ``LRN``. Every block ends with a 2x2 max-pool of
stride 2. Nothing else in the package restates the architecture.
"""

from __future__ import annotations

from vggnet.errors import VGGError

CONFIGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "A": (
        ("conv3-64",),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "A-LRN": (
        ("conv3-64", "LRN"),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "B": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "C": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv1-256"),
        ("conv3-512", "conv3-512", "conv1-512"),
        ("conv3-512", "conv3-512", "conv1-512"),
    ),
    "D": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512", "conv3-512"),
    ),
    "E": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512", "conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512", "conv3-512", "conv3-512"),
    ),
}

# The names other libraries use for the same networks (torchvision, timm, Keras).
ALIASES: dict[str, str] = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}

# Head, identical for all configurations: FC-4096, FC-4096, FC-1000.
FC_WIDTH = 4096
NUM_CLASSES = 1000
DROPOUT = 0.5

# Training crop; five stride-2 pools make fc6 see a (CROP_SIZE / 32)^2 map.
CROP_SIZE = 224
POOL_STRIDE = 2
NUM_POOLS = 5

# Krizhevsky et al.'s LRN (used by A-LRN only). As in Caffe and PyTorch, alpha is
# divided by the window size: b = a / (k + alpha / size * sum(a^2)) ** beta.
LRN_SIZE = 5
LRN_ALPHA = 1e-4
LRN_BETA = 0.75
LRN_K = 2.0

# "Zero-mean normal with 10^-2 variance": read, as most ports do, as std 0.01.
INIT_STD = 0.01

# Net A's layers that initialise the deeper nets (paper section 2): the first four
# conv layers and the three FC layers, named as in the deeper nets.
SHALLOW_INIT_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8")


# torchvision's and timm's suffix for the batch-norm variant: vgg16_bn is D with batch norm.
BATCH_NORM_SUFFIX = "_bn"


def resolve_name(name: str) -> tuple[str, bool]:
    """The Table 1 config and the batch-norm flag a model name states.

    ``name``: a config (A, A-LRN, B, C, D, E, any case), torchvision's vgg11..vgg19, or
    either with torchvision's ``_bn`` suffix (``vgg16_bn``, ``D_bn``: batch norm).
    Returns (canonical config, whether the name asks for batch norm).
    """
    text = name.strip()
    batch_norm = text.lower().endswith(BATCH_NORM_SUFFIX)
    if batch_norm:
        text = text[: -len(BATCH_NORM_SUFFIX)]
    key = text.upper().replace("_", "-")
    config = key if key in CONFIGS else ALIASES.get(text.lower())
    if config is None:
        names = [*CONFIGS, *ALIASES, *(f"{a}{BATCH_NORM_SUFFIX}" for a in ALIASES)]
        raise VGGError(f"unknown config {name!r}: choose one of {', '.join(names)}")
    return config, batch_norm


def resolve_config(name: str) -> str:
    """The canonical Table 1 name for ``name`` (see ``resolve_name``; a ``_bn`` suffix is dropped)."""
    return resolve_name(name)[0]


def parse_layer(token: str) -> tuple[str, int, int]:
    """Split a Table 1 token into (kind, kernel, channels): ``conv3-64`` -> ("conv", 3, 64)."""
    if token == "LRN":
        return ("lrn", 0, 0)
    kind_kernel, channels = token.split("-")
    return ("conv", int(kind_kernel.removeprefix("conv")), int(channels))
