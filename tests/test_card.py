"""A net's card: frozen metadata stored with the weights, replaced whole, never edited in place."""

import dataclasses
from pathlib import Path

import pytest
import torch

from tests.helpers import tiny
from vggnet import Preprocessing, load_checkpoint, save_checkpoint
from vggnet.card import Card
from vggnet.checkpoint import checkpoint_payload

FIXTURE = Path(__file__).parent / "fixtures" / "v1-A-bn-tiny.ckpt"


def test_a_card_is_frozen_and_a_net_replaces_it_whole():
    model = tiny("A", crop_size=32)
    card = model.card
    assert card == Card.default_for(3) and card.classes is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.classes = ("a",)  # type: ignore[misc]
    model.classes = [f"c{i}" for i in range(10)]
    assert model.card is not card and card.classes is None  # the old card is untouched
    assert model.card.classes == tuple(f"c{i}" for i in range(10))
    assert model.classes == [f"c{i}" for i in range(10)]


def test_the_cards_fields_are_the_checkpoint_format_v1_fields(tmp_path):
    raw = torch.load(FIXTURE, weights_only=True)
    model = load_checkpoint(FIXTURE)
    assert model.card == Card(
        Preprocessing.from_dict(raw["preprocessing"]), ("ant", "bee", "cat"), (40, 48)
    )
    payload = checkpoint_payload(model)
    for key in ("classes", "preprocessing", "train_scale"):
        assert payload[key] == raw[key], key
    save_checkpoint(tmp_path / "again.ckpt", model)
    assert load_checkpoint(tmp_path / "again.ckpt").card == model.card


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_a_new_nets_card_fits_its_channels(channels):
    model = tiny("A", crop_size=32, in_channels=channels)
    assert len(model.card.preprocessing.mean) == channels
    assert model.card.preprocessing.channel_order == {1: "L", 3: "RGB", 4: "raw"}[channels]
