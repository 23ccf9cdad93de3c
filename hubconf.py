"""torch.hub entry points: ``torch.hub.load("<owner>/vggnet", "vgg16", pretrained=True)``.

Each entry point is a torchvision architecture name (vgg11 ... vgg19_bn). With
``pretrained=True`` it loads the published weights (``weights="vgg16.keras_in1k"`` picks
another release), with their class names and preprocessing; otherwise it builds the
net untrained, with any ``vggnet.build_model`` keyword arguments.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from vggnet import build_model as _build_model
from vggnet import load_pretrained as _load_pretrained
from vggnet.errors import VGGError as _VGGError

dependencies = ["torch", "torchvision"]


def _entry(arch):
    def entry(pretrained=False, weights=None, **kwargs):
        if pretrained or weights:
            if kwargs:
                raise _VGGError(f"{arch}: pretrained weights fix the shape; drop {sorted(kwargs)}")
            return _load_pretrained(weights or arch)
        return _build_model(arch, **kwargs)

    entry.__name__ = arch
    entry.__doc__ = f"VGG {arch} (vggnet): pretrained=True for the published ImageNet weights."
    return entry


vgg11 = _entry("vgg11")
vgg11_bn = _entry("vgg11_bn")
vgg13 = _entry("vgg13")
vgg13_bn = _entry("vgg13_bn")
vgg16 = _entry("vgg16")
vgg16_bn = _entry("vgg16_bn")
vgg19 = _entry("vgg19")
vgg19_bn = _entry("vgg19_bn")
