"""Small nets and files the tests share."""

from __future__ import annotations

from vggnet import VGG, build_model


def tiny(config: str = "D", **kwargs) -> VGG:
    """A narrow net with the paper's geometry: cheap to run at ImageNet sizes."""
    args = {"num_classes": 10, "width": 1 / 16, "fc_width": 32, "init": "kaiming"}
    args.update(kwargs)
    return build_model(config, **args).eval()


def write_image_folder(
    root, classes=("cat", "dog"), train=4, val=2, size=(80, 60), fmt="JPEG"
) -> None:
    """An ImageNet-layout folder of generated images: ROOT/{train,val}/<class>/<i>.<ext>."""
    from pathlib import Path

    from vggnet.data.synthetic import synthetic_image

    ext = {"JPEG": "jpg", "PNG": "png"}[fmt]
    for split, count in (("train", train), ("val", val)):
        for c, name in enumerate(classes):
            folder = Path(root, split, name)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                img = synthetic_image(i * len(classes) + c, len(classes), max(size), 0, split)
                img.resize(size).save(folder / f"{i}.{ext}", fmt)
