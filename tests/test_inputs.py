"""A net's card as a timm-style data config and a torchvision v2 transform."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from tests.helpers import tiny
from vggnet import VGGError, create_transform, resolve_data_config
from vggnet.data.transforms import BatchNormalizer, center_crop, rescale
from vggnet.interop.keras import KERAS_MEAN_BGR_255
from vggnet.interop.torchvision import export_torchvision, import_torchvision
from vggnet.preprocessing import Preprocessing


def photo(height=300, width=410, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_an_imported_torchvision_net_is_fed_as_torchvision_feeds_it():
    tv = pytest.importorskip("torchvision.models")
    model = import_torchvision(export_torchvision(tiny("A", crop_size=224)))
    ours = create_transform(model)(photo())
    theirs = tv.VGG11_Weights.IMAGENET1K_V1.transforms()(photo())
    assert ours.shape == theirs.shape == (3, 224, 224)
    one_level = 1 / 255 / min(Preprocessing.torchvision().std)
    assert float((ours - theirs).abs().max()) <= one_level + 1e-6  # rounding of the resize only
    assert resolve_data_config(model).to_dict()["crop_pct"] == 224 / 256


def test_keras_caffe_mode_by_hand():
    model = tiny("D", crop_size=64)
    model.preprocessing = Preprocessing(
        tuple(m / 255 for m in KERAS_MEAN_BGR_255), (1 / 255,) * 3, "BGR"
    )
    model.train_scale = (72, 72)
    image = photo()
    got = create_transform(model)(image)
    rgb = TF.center_crop(TF.resize(TF.pil_to_tensor(image), 72, antialias=True), 64).double()
    by_hand = rgb.flip(0) - torch.tensor(KERAS_MEAN_BGR_255, dtype=torch.double)[:, None, None]
    torch.testing.assert_close(got.double(), by_hand, rtol=0, atol=1.001)  # one level of resize


def test_the_transform_feeds_the_net_what_its_center_protocol_feeds():
    model = tiny("B", crop_size=32)
    model.preprocessing = Preprocessing((0.5, 0.4, 0.3), (0.2, 0.25, 0.3), "RGB")
    model.train_scale = (36, 44)  # jittered: Table 3's single Q is the middle, 40
    image = photo(90, 120)
    pixels = TF.pil_to_tensor(image)
    protocol = BatchNormalizer(model.preprocessing)(center_crop(rescale(pixels, 40), 32)[None])[0]
    torch.testing.assert_close(create_transform(model)(image), protocol, rtol=0, atol=1e-5)
    dense = create_transform(model, "dense")(image)
    assert dense.shape == (3, 40, 53)  # the whole image, short side Q
    torch.testing.assert_close(
        create_transform(model, "dense", test_scale=64)(image).shape, (3, 64, 85)
    )


def test_data_config_and_its_checks():
    model = tiny("A", crop_size=32)
    assert resolve_data_config(model).test_scale == 32  # no training scale: the crop itself
    model.train_scale = (48, 48)
    cfg = resolve_data_config(model)
    assert (cfg.test_scale, cfg.crop_size) == (48, 32)
    assert cfg.to_dict()["input_size"] == (3, 32, 32)
    with pytest.raises(VGGError, match="test_scale 20 is below the crop size 32"):
        resolve_data_config(model, 20)
    with pytest.raises(VGGError, match="method 'multi-crop': choose one of center, dense"):
        create_transform(model, "multi-crop")


def test_a_gray_net_takes_colour_photos():
    model = tiny("A", crop_size=32, in_channels=1)
    out = create_transform(model)(photo(40, 50))
    assert out.shape == (1, 32, 32)
