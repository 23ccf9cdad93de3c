"""The networks of Table 1: their configurations, layers, initialisation and dense view.

``configs`` (Table 1 as data) -> ``lrn`` (A-LRN's normalisation) -> ``init`` (the paper's
and later initialisations, net A -> deeper nets) -> ``vgg`` (``VGGSpec``, ``VGG`` with
Caffe layer names, ``build_model``) -> ``dense`` (the fully convolutional view).
"""

from vggnet.model import configs
from vggnet.model.dense import DenseVGG, dense_map_size, to_dense
from vggnet.model.vgg import FEATURE_STRIDE, VGG, VGGSpec, build_model, fold_batch_norm

__all__ = [
    "FEATURE_STRIDE",
    "VGG",
    "DenseVGG",
    "VGGSpec",
    "build_model",
    "configs",
    "dense_map_size",
    "fold_batch_norm",
    "to_dense",
]
