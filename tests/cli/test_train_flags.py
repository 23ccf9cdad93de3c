"""``vggnet train``'s flags come from TrainConfig: one flag per field, its default from the field."""

import dataclasses

from vggnet.cli import build_parser
from vggnet.cli.train import FLAG_HELP
from vggnet.train.config import TrainConfig


def train_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["train"]


def test_every_field_has_a_flag_whose_help_shows_the_fields_default():
    actions = {a.dest: a for a in train_parser()._actions}
    for field in dataclasses.fields(TrainConfig):
        if field.name == "out":
            assert actions["out"].required
            continue
        action = actions[field.name]
        assert action.default is None  # a resumed run tells given flags from defaults
        default = field.default
        if default not in (None, dataclasses.MISSING) and not isinstance(default, bool):
            assert f"(default {default})" in action.help or "default" in FLAG_HELP[field.name]


def test_parsed_flags_are_the_fields_types_and_only_those_given():
    args = train_parser().parse_args(
        ["--out", "r", "--config", "D", "--lr", "0.05", "--epochs", "3", "--batch-norm",
         "--no-lighting", "--scale", "256:512", "--init", "glorot"]
    )  # fmt: skip
    given = {k: v for k, v in vars(args).items() if v is not None and k != "resume"}
    assert given == {
        "out": "r", "config": "D", "lr": 0.05, "epochs": 3, "batch_norm": True,
        "lighting": False, "scale": "256:512", "init": "glorot",
    }  # fmt: skip
    cfg = TrainConfig(**{**given, "data": "synthetic"}).resolved()
    assert cfg.normalize == "standard" and cfg.lighting is False
