"""The .caffemodel import, on files written by Google's protobuf from a caffe.proto subset."""

import copy

import pytest
import torch
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from tests.helpers import tiny
from vggnet import VGGError, load_checkpoint
from vggnet.interop.caffe import import_caffe

F = descriptor_pb2.FieldDescriptorProto


def caffe_messages():
    """NetParameter etc. built at run time from the fields of caffe.proto we need."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="caffe_subset.proto", package="caffe", syntax="proto2"
    )

    def message(name, *specs):
        m = proto.message_type.add(name=name)
        for field, number, kind, repeated, type_name, packed in specs:
            f = m.field.add(
                name=field,
                number=number,
                type=kind,
                label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL,
            )
            if type_name:
                f.type_name = type_name
            if packed:
                f.options.packed = True

    message("BlobShape", ("dim", 1, F.TYPE_INT64, True, None, True))
    message(
        "BlobProto",
        ("num", 1, F.TYPE_INT32, False, None, False),
        ("channels", 2, F.TYPE_INT32, False, None, False),
        ("height", 3, F.TYPE_INT32, False, None, False),
        ("width", 4, F.TYPE_INT32, False, None, False),
        ("data", 5, F.TYPE_FLOAT, True, None, True),
        ("shape", 7, F.TYPE_MESSAGE, False, ".caffe.BlobShape", False),
    )
    message(
        "V1LayerParameter",
        ("name", 4, F.TYPE_STRING, False, None, False),
        ("blobs", 6, F.TYPE_MESSAGE, True, ".caffe.BlobProto", False),
    )
    message(
        "LayerParameter",
        ("name", 1, F.TYPE_STRING, False, None, False),
        ("type", 2, F.TYPE_STRING, False, None, False),
        ("blobs", 7, F.TYPE_MESSAGE, True, ".caffe.BlobProto", False),
    )
    message(
        "NetParameter",
        ("name", 1, F.TYPE_STRING, False, None, False),
        ("layers", 2, F.TYPE_MESSAGE, True, ".caffe.V1LayerParameter", False),
        ("layer", 100, F.TYPE_MESSAGE, True, ".caffe.LayerParameter", False),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe.NetParameter"))


def write_caffemodel(path, bgr_model, legacy: bool):
    """The model's layers as Caffe stores them (V1 ``layers`` with 4-D dims, or ``layer`` + shape)."""
    net = caffe_messages()(name="VGG_ILSVRC_16_layers")
    for name, module in bgr_model.named_children():
        if not hasattr(module, "weight"):
            continue
        layer = (
            net.layers.add(name=name) if legacy else net.layer.add(name=name, type="Convolution")
        )
        for tensor in (module.weight.detach(), module.bias.detach()):
            blob = layer.blobs.add()
            if (
                legacy
            ):  # (num, channels, height, width); FC weights as (1, 1, out, in), biases (1, 1, 1, n)
                dims = (
                    list(tensor.shape)
                    if tensor.dim() == 4
                    else [1] * (4 - tensor.dim()) + list(tensor.shape)
                )
                blob.num, blob.channels, blob.height, blob.width = dims
            else:
                blob.shape.dim.extend(tensor.shape)
            blob.data.extend(tensor.flatten().tolist())
    path.write_bytes(net.SerializeToString())


@pytest.mark.parametrize("legacy", [True, False])
def test_caffemodel_import_takes_rgb_and_matches_the_bgr_net(tmp_path, legacy, run_cli):
    torch.manual_seed(0)
    rgb = tiny("D", num_classes=10, crop_size=32, fc_width=16)
    bgr = copy.deepcopy(rgb)
    with torch.no_grad():
        bgr.conv1_1.weight.copy_(rgb.conv1_1.weight.flip(1))  # what the release stores
    write_caffemodel(tmp_path / "vgg.caffemodel", bgr, legacy)
    status, out, err = run_cli(
        "import", "--format", "caffe", tmp_path / "vgg.caffemodel", "--out", tmp_path / "v.ckpt"
    )
    assert status == 0 and "config D" in out, err
    ours = load_checkpoint(tmp_path / "v.ckpt")
    for key, value in rgb.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)
    image = torch.rand(2, 3, 32, 32)  # RGB in 0..1
    caffe_input = image.flip(1) * 255 - torch.tensor([103.939, 116.779, 123.68])[:, None, None]
    with torch.no_grad():
        torch.testing.assert_close(
            ours(ours.preprocessing.normalize(image)), bgr(caffe_input), rtol=1e-4, atol=1e-4
        )


def test_bad_caffemodels(tmp_path):
    torch.manual_seed(0)
    write_caffemodel(
        tmp_path / "vgg.caffemodel", tiny("B", num_classes=10, crop_size=32, fc_width=16), True
    )
    data = (tmp_path / "vgg.caffemodel").read_bytes()
    (tmp_path / "cut.caffemodel").write_bytes(data[: len(data) // 2])
    with pytest.raises(VGGError, match=r"cut.caffemodel is a truncated or corrupt protobuf"):
        import_caffe(tmp_path / "cut.caffemodel")
    with pytest.raises(VGGError, match="has 10 conv layers but config D has 13"):
        import_caffe(tmp_path / "vgg.caffemodel", "D")
    (tmp_path / "text.caffemodel").write_bytes(b"name: 'not binary'")
    with pytest.raises(VGGError, match=r"text\.caffemodel"):
        import_caffe(tmp_path / "text.caffemodel")
