"""vggnet: the VGG ConvNets of Simonyan & Zisserman (ICLR 2015), done completely and well."""

from vggnet.apps.features import PerceptualLoss, extract_features
from vggnet.checkpoint import load_checkpoint, save_checkpoint
from vggnet.errors import VGGError
from vggnet.model import VGG, DenseVGG, VGGSpec, build_model, to_dense
from vggnet.model.configs import CONFIGS
from vggnet.model.init import init_from_shallower, initialize
from vggnet.preprocessing import Preprocessing

__version__ = "0.1.0"

__all__ = [
    "CONFIGS",
    "VGG",
    "DenseVGG",
    "PerceptualLoss",
    "Preprocessing",
    "VGGError",
    "VGGSpec",
    "build_model",
    "extract_features",
    "init_from_shallower",
    "initialize",
    "load_checkpoint",
    "save_checkpoint",
    "to_dense",
]
