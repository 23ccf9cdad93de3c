"""The contract every network meets, over every Table 1 config, with and without batch norm.

Like timm's test_models: one parametrised test per promise, each bounded in size and time
(nets at 1/16 width, crop 32).
"""

import pytest
import torch

from vggnet import CONFIGS, build_model, load_checkpoint, save_checkpoint, to_dense
from vggnet.apps.features import extract_features, layer_names

NETS = [(config, bn) for config in CONFIGS for bn in (False, True)]
IDS = [f"{config}{'-bn' if bn else ''}" for config, bn in NETS]


def small(config: str, batch_norm: bool):
    torch.manual_seed(0)
    return build_model(
        config, 10, batch_norm=batch_norm, width=1 / 16, fc_width=16, crop_size=32, init="kaiming"
    )


@pytest.mark.parametrize(("config", "batch_norm"), NETS, ids=IDS)
def test_forward_shape_and_a_gradient_on_every_parameter(config, batch_norm):
    model = small(config, batch_norm).train()
    logits = model(torch.randn(4, 3, 32, 32))
    assert logits.shape == (4, 10)
    logits.logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} gets no gradient"


@pytest.mark.parametrize(("config", "batch_norm"), NETS, ids=IDS)
def test_dense_equals_plain_at_the_crop_size_and_averages_its_map_above(config, batch_norm):
    model = small(config, batch_norm).eval()
    x = torch.randn(2, 3, 32, 32)
    dense = to_dense(model)
    with torch.no_grad():
        torch.testing.assert_close(dense(x)[:, :, 0, 0], model(x), rtol=1e-5, atol=1e-5)
        big = torch.randn(2, 3, 96, 64)
        score_map = dense(big)
        assert score_map.shape == (2, 10, 3, 2)
        torch.testing.assert_close(model(big), score_map.mean((2, 3)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("config", "batch_norm"), NETS, ids=IDS)
def test_checkpoint_round_trip_gives_the_same_scores(tmp_path, config, batch_norm):
    model = small(config, batch_norm)
    if batch_norm:  # running statistics that are not the initial ones
        model.train()(torch.randn(8, 3, 32, 32))
    model.eval()
    save_checkpoint(tmp_path / "m.ckpt", model)
    loaded = load_checkpoint(tmp_path / "m.ckpt")
    assert loaded.spec == model.spec
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize(("config", "batch_norm"), NETS, ids=IDS)
def test_every_named_tap_is_reachable_and_carries_a_gradient(config, batch_norm):
    model = small(config, batch_norm).eval()
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    taps = extract_features(model, x, layer_names(model))
    assert list(taps) == layer_names(model)
    assert taps["fc8"].shape == (1, 10)
    sum(t.sum() for t in taps.values()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
