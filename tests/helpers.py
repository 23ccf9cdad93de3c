"""Small nets and files the tests share."""

from __future__ import annotations

from vggnet import VGG, build_model


def tiny(config: str = "D", **kwargs) -> VGG:
    """A narrow net with the paper's geometry: cheap to run at ImageNet sizes."""
    args = {"num_classes": 10, "width": 1 / 16, "fc_width": 32, "init": "kaiming"}
    args.update(kwargs)
    return build_model(config, **args).eval()
