"""What every weight import shares: telling the config from the number of conv layers."""

from __future__ import annotations

from vggnet import configs
from vggnet.errors import VGGError

# The configs other libraries publish weights for (vgg11, vgg13, vgg16, vgg19).
PUBLISHED = tuple(configs.ALIASES.values())


def conv_count(config: str) -> int:
    """Number of conv layers of a Table 1 config."""
    return sum(1 for block in configs.CONFIGS[config] for t in block if t.startswith("conv"))


def infer_config(num_convs: int, requested: str | None, source: str, library: str) -> str:
    """The config of a weight file with ``num_convs`` conv layers, checked against ``--config``."""
    by_count = {conv_count(c): c for c in PUBLISHED}
    if requested is None:
        if num_convs not in by_count:
            raise VGGError(f"{source} has {num_convs} conv layers, which matches no {library} VGG")
        return by_count[num_convs]
    config = configs.resolve_config(requested)
    if config not in PUBLISHED:
        raise VGGError(f"{library} has no VGG for config {config}: use A, B, D or E")
    if conv_count(config) != num_convs:
        raise VGGError(
            f"{source} has {num_convs} conv layers but config {config} has {conv_count(config)}: "
            f"drop --config or pass {by_count.get(num_convs, 'the matching config')}"
        )
    return config
