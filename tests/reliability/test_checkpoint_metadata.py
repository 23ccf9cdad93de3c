"""Checkpoint metadata of any shape or type: a model, or one VGGError naming the file and field."""

import copy
import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import tiny
from vggnet import VGGError, load_checkpoint, save_checkpoint
from vggnet.checkpoint import SAFETENSORS_KEY, export_safetensors, read_checkpoint
from vggnet.train.config import config_for_run

FIXTURE = Path(__file__).parent.parent / "fixtures" / "v1-A-bn-tiny.ckpt"


@pytest.fixture(scope="module")
def payload() -> dict:
    """A good checkpoint's dict (net A, 3 classes, crop 32, batch norm) to damage."""
    return torch.load(FIXTURE, weights_only=True)


def write_torch(payload, path: Path) -> Path:
    torch.save(payload, path)
    return path


def write_safetensors(payload, path: Path) -> Path:
    """A safetensors file with ``payload``'s tensors and the rest as its vggnet metadata.

    ``payload`` may be any JSON value (then there are no tensors), or raw text to store.
    """
    from safetensors.torch import save_file

    tensors, meta = {"x": torch.zeros(1)}, payload
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        meta = {k: v for k, v in payload.items() if k != "state_dict"}
        tensors = {str(k): v for k, v in payload["state_dict"].items()}
        tensors = {k: v.contiguous() for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    text = meta if isinstance(meta, str) else json.dumps(meta)
    save_file(tensors, str(path), metadata={SAFETENSORS_KEY: text})
    return path


WRITERS = {"torch": write_torch, "safetensors": write_safetensors}


def damaged(payload: dict, field: str, value) -> dict:
    """A copy of ``payload`` with ``field`` (dotted: ``model.config``) set to ``value``."""
    out = copy.copy(payload)
    for key in ("model", "preprocessing", "state_dict"):
        if isinstance(payload.get(key), dict):
            out[key] = dict(payload[key])
    *parents, last = field.split(".")
    target = out
    for key in parents:
        target = target[key]
    target[last] = value
    return out


# (field, value, words the one line must hold besides the file's name)
CASES = [
    ("classes", 3, "classes"),
    ("classes", "abc", "classes"),
    ("classes", ["a", "b"], "classes"),
    ("classes", ["a", "b", 3], "classes"),
    ("train_scale", "256", "train_scale"),
    ("train_scale", [40], "train_scale"),
    ("train_scale", [48, 40], "train_scale"),
    ("train_scale", [16, 16], "train_scale"),  # below the crop
    ("train_scale", [40.5, 48], "train_scale"),
    ("version", "1", "format version"),
    ("version", 1.5, "format version"),
    ("version", True, "format version"),
    ("version", 0, "format version"),
    ("model", [1, 2], "model"),
    ("model.config", "Z", "unknown config 'Z'"),
    ("model.config", 7, "model.config"),
    ("model.num_classes", 0, "num_classes must be >= 1"),
    ("model.num_classes", "3", "model.num_classes"),
    ("model.num_classes", 3.0, "model.num_classes"),
    ("model.batch_norm", "yes", "model.batch_norm"),
    ("model.width", None, "model.width"),
    ("model.colour", 1, "model"),
    ("preprocessing", "rgb", "preprocessing"),
    ("preprocessing.mean", [0.5, 0.5], "preprocessing.mean"),
    ("preprocessing.mean", "0.5", "preprocessing.mean"),
    ("preprocessing.std", [1, -1, 1], "preprocessing.std"),
    ("preprocessing.std", None, "preprocessing.std"),
    ("preprocessing.channel_order", "CMYK", "preprocessing.channel_order"),
    ("state_dict", [1, 2], "state_dict"),
    ("train_state", "running", "train_state"),
]


@pytest.mark.parametrize("fmt", WRITERS)
@pytest.mark.parametrize(("field", "value", "words"), CASES)
def test_a_field_of_the_wrong_type_is_one_error_naming_file_and_field(
    tmp_path, payload, fmt, field, value, words
):
    if fmt == "safetensors" and field == "state_dict":
        words = "does not fit the model"  # a safetensors file always holds named tensors
    path = WRITERS[fmt](damaged(payload, field, value), tmp_path / f"bad.{fmt}")
    with pytest.raises(VGGError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message and words in message, message
    assert "\n" not in message


@pytest.mark.parametrize("fmt", WRITERS)
@pytest.mark.parametrize(
    ("key", "tensor", "words"),
    [
        ("conv1_1.weight", torch.zeros(4, 3, 3, 3, dtype=torch.int64), "a floating-point tensor"),
        ("bn1_1.running_mean", torch.zeros(4, dtype=torch.uint8), "a floating-point tensor"),
        ("bn1_1.num_batches_tracked", torch.tensor(1.5), "an integer tensor"),
        ("fc8.bias", torch.zeros(3, dtype=torch.complex64), "a floating-point tensor"),
    ],
)
def test_a_state_dict_tensor_of_the_wrong_dtype_is_named(
    tmp_path, payload, fmt, key, tensor, words
):
    bad = damaged(payload, "state_dict", {**payload["state_dict"], key: tensor})
    path = WRITERS[fmt](bad, tmp_path / f"bad.{fmt}")
    with pytest.raises(VGGError, match=rf"{path}: state_dict\['{key}'\] must be {words}"):
        load_checkpoint(path)


def test_torch_files_with_non_string_keys_or_non_tensors_are_named(tmp_path, payload):
    for state in ({**payload["state_dict"], 5: torch.zeros(1)}, {"conv1_1.weight": [1.0]}):
        path = write_torch(damaged(payload, "state_dict", state), tmp_path / "bad.ckpt")
        with pytest.raises(VGGError, match=rf"{path}: state_dict"):
            load_checkpoint(path)


def test_a_float64_checkpoint_loads_as_a_float32_net(tmp_path, payload):
    state = {
        k: v.double() if v.is_floating_point() else v for k, v in payload["state_dict"].items()
    }
    model = load_checkpoint(write_torch(damaged(payload, "state_dict", state), tmp_path / "f64"))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model(torch.zeros(1, 3, 32, 32)).dtype == torch.float32


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ('{"format": "vggnet-checkpoint", "version": 1,', "not valid JSON"),
        ("[1, 2, 3]", "a JSON list, not an object"),
        ('"text"', "a JSON str, not an object"),
        ("null", "a JSON NoneType, not an object"),
    ],
)
def test_safetensors_metadata_that_is_not_a_json_object_is_one_line(tmp_path, metadata, words):
    path = write_safetensors(metadata, tmp_path / "bad.safetensors")
    with pytest.raises(VGGError, match=rf"checkpoint {path}: its metadata is {words}"):
        load_checkpoint(path)


def test_a_v1_checkpoint_written_before_the_checks_still_loads_in_both_formats(tmp_path):
    model = load_checkpoint(FIXTURE)
    assert model.spec.config == "A" and model.spec.batch_norm
    assert model.classes == ["ant", "bee", "cat"] and model.train_scale == (40, 48)
    raw = torch.load(FIXTURE, weights_only=True)["state_dict"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, raw[key]), key
    export_safetensors(model, tmp_path / "m.safetensors")
    again = load_checkpoint(tmp_path / "m.safetensors")
    x = torch.randn(2, 3, 40, 40)
    torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("channels", [2, 4, 5])
def test_any_number_of_input_channels_builds_trains_and_round_trips(tmp_path, channels):
    model = tiny("A", in_channels=channels, crop_size=32)
    assert len(model.preprocessing.mean) == channels
    x = torch.rand(2, channels, 32, 32)
    model.train()
    model(model.preprocessing.normalize(x)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    save_checkpoint(tmp_path / "m.ckpt", model.eval())
    loaded = load_checkpoint(tmp_path / "m.ckpt")
    assert loaded.preprocessing == model.preprocessing
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


# The fuzz: arbitrary JSON-like values in every field (and in the fields of model,
# preprocessing and the training state), in both formats.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
    | st.sampled_from(["A", "E", "vgg16", "RGB", "BGR", "L", "raw"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = [
    "format",
    "version",
    "model",
    "classes",
    "preprocessing",
    "train_scale",
    "state_dict",
    "train_state",
    *(f"model.{k}" for k in ("config", "num_classes", "batch_norm", "in_channels", "width")),
    *(f"model.{k}" for k in ("fc_width", "crop_size", "dropout")),
    *(f"preprocessing.{k}" for k in ("mean", "std", "channel_order")),
]


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    fmt=st.sampled_from(sorted(WRITERS)),
    changes=st.lists(st.tuples(st.sampled_from(FIELDS), JSON_VALUES), min_size=1, max_size=3),
)
def test_any_metadata_gives_a_model_or_one_vggnet_error(tmp_path, fmt, changes):
    bad = torch.load(FIXTURE, weights_only=True)
    for field, value in changes:
        if "." in field and not isinstance(bad.get(field.split(".")[0]), dict):
            continue
        bad = damaged(bad, field, value) if "." in field else {**bad, field: value}
    path = WRITERS[fmt](bad, tmp_path / f"fuzz.{fmt}")
    try:
        model = load_checkpoint(path)
    except VGGError as err:
        assert "\n" not in str(err)
        return
    model(torch.zeros(1, model.spec.in_channels, model.spec.crop_size, model.spec.crop_size))


TRAIN_FIELDS = ["step", "epoch", "step_in_epoch", "best_val_top1_error", "optimizer", "schedule"]
TRAIN_FIELDS += ["scaler", "rng", "config", "config.lr", "config.scale", "config.batch_size"]
TRAIN_FIELDS += ["config.epochs", "config.batch_norm", "config.max_steps", "config.bogus"]


@pytest.fixture(scope="module")
def run_payload(tmp_path_factory) -> dict:
    """A training run's last.ckpt, read: the state a resume restores."""
    from tests.helpers import train_args
    from vggnet.cli import main

    out = tmp_path_factory.mktemp("run") / "run"
    assert main([str(a) for a in train_args(out, "--max-steps", "1")]) == 0
    return read_checkpoint(out / "last.ckpt")


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(field=st.sampled_from(TRAIN_FIELDS), value=JSON_VALUES)
def test_any_training_state_resumes_or_is_one_vggnet_error(tmp_path, run_payload, field, value):
    state = dict(run_payload["train_state"])
    state["config"] = dict(state["config"])
    if "." in field:
        state["config"][field.split(".")[1]] = value
    else:
        state[field] = value
    (tmp_path / "run").mkdir(exist_ok=True)
    torch.save({**run_payload, "train_state": state}, tmp_path / "run" / "last.ckpt")
    try:
        config_for_run({"out": str(tmp_path / "run")}, resume=True)
    except VGGError as err:
        assert "\n" not in str(err)


def test_a_bad_metadata_file_is_one_line_in_every_command_that_reads_it(tmp_path, run_cli, payload):
    path = write_torch(damaged(payload, "classes", "abc"), tmp_path / "bad.ckpt")
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (40, 40)).save(image)
    data = "synthetic:classes=3,train=6,val=3,size=40"
    for args in (
        ["eval", "--checkpoint", path, "--data", data],
        ["predict", "--checkpoint", path, image],
        ["export", "--checkpoint", path, "--format", "onnx", "--out", tmp_path / "m.onnx"],
        ["features", "--checkpoint", path, "--data", data, "--out", tmp_path / "f.npy"],
        ["train", "--config", "A", "--data", data, "--out", tmp_path / "r", "--init-from", path],
    ):
        status, _, err = run_cli(*args)
        assert status == 2, args
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert f"checkpoint {path}: classes must be a list of 3 class names" in err


def test_a_struct_header_only_file_is_not_mistaken_for_safetensors(tmp_path):
    path = tmp_path / "odd.ckpt"
    path.write_bytes(struct.pack("<Q", 5) + b"{}")
    with pytest.raises(VGGError, match=str(path)):
        load_checkpoint(path)
