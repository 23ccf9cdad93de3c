"""What every weight import shares: the config from the conv count, and the metadata it records."""

from __future__ import annotations

from vggnet.card import Card
from vggnet.errors import VGGError
from vggnet.model import VGG, configs
from vggnet.preprocessing import Preprocessing

# The configs other libraries publish weights for (vgg11, vgg13, vgg16, vgg19).
PUBLISHED = tuple(configs.ALIASES.values())
# The VGG team's released weights (Caffe, and Keras' port of them) were trained with S in [256, 512].
RELEASE_TRAIN_SCALE = (256, 512)


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


def imagenet_classes() -> list[str] | None:
    """The 1000 ImageNet class names torchvision ships, if this torchvision has them."""
    try:
        from torchvision.models._meta import _IMAGENET_CATEGORIES
    except ImportError:
        return None
    return list(_IMAGENET_CATEGORIES)


def finish_import(model: VGG, preprocessing: Preprocessing, train_scale: tuple[int, int]) -> VGG:
    """Record how the imported weights expect their input, and ImageNet's class names if 1000-way."""
    classes = imagenet_classes()
    if classes is None or model.spec.num_classes != len(classes):
        classes = None
    model.card = Card().with_(preprocessing=preprocessing, classes=classes, train_scale=train_scale)
    return model.eval()
