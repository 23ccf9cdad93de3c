"""vggnet: the VGG ConvNets of Simonyan & Zisserman (ICLR 2015), done completely and well."""

from vggnet.apps.features import Backbone, PerceptualLoss, extract_features
from vggnet.apps.localization import evaluate_localization, predict_boxes
from vggnet.checkpoint import load_checkpoint, save_checkpoint
from vggnet.errors import VGGError
from vggnet.inputs import create_transform, resolve_data_config
from vggnet.interop.int8 import int8_net
from vggnet.interop.pretrained import list_pretrained, load_pretrained
from vggnet.model import VGG, DenseVGG, VGGSpec, build_model, to_dense
from vggnet.model.configs import CONFIGS
from vggnet.model.init import init_from_shallower, initialize
from vggnet.model.localization import localization_net
from vggnet.preprocessing import Preprocessing

__version__ = "0.1.0"

__all__ = [
    "CONFIGS",
    "VGG",
    "Backbone",
    "DenseVGG",
    "PerceptualLoss",
    "Preprocessing",
    "VGGError",
    "VGGSpec",
    "build_model",
    "create_transform",
    "evaluate_localization",
    "extract_features",
    "init_from_shallower",
    "initialize",
    "int8_net",
    "list_pretrained",
    "load_checkpoint",
    "load_pretrained",
    "localization_net",
    "predict_boxes",
    "resolve_data_config",
    "save_checkpoint",
    "to_dense",
]
