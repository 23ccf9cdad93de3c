"""A-LRN's norm1: the 1x1-convolution LRN against torch's own nn.LocalResponseNorm."""

import pytest
import torch
from torch import nn

from tests.helpers import tiny
from vggnet.model import configs
from vggnet.model.lrn import LocalResponseNorm
from vggnet.summary import layer_rows


def _both(size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
    return LocalResponseNorm(size, alpha, beta, k), nn.LocalResponseNorm(size, alpha, beta, k)


@pytest.mark.parametrize("channels", [1, 3, 7, 64])
@pytest.mark.parametrize("size", [5, 4, 1])
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_torch_forward_and_backward(channels, size, channels_last):
    ours, reference = _both(size, alpha=0.3, beta=0.75, k=1.5)
    a = torch.randn(3, channels, 5, 6, dtype=torch.float64) * 4
    if channels_last:
        a = a.contiguous(memory_format=torch.channels_last)
    x, y = a.clone().requires_grad_(), a.clone().requires_grad_()
    got, want = ours(x), reference(y)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(got)
    (got * upstream).sum().backward()
    (want * upstream).sum().backward()
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-10, atol=1e-12)


def test_bf16_under_autocast_is_as_close_to_fp32_as_torchs():
    ours, reference = _both(configs.LRN_SIZE, 0.5, configs.LRN_BETA, configs.LRN_K)
    a = torch.randn(4, 32, 8, 8).contiguous(memory_format=torch.channels_last) * 3
    exact = reference(a.double())
    low = a.to(torch.bfloat16)
    with torch.autocast("cpu", torch.bfloat16):
        got, theirs = ours(low), reference(low)
    assert got.dtype == torch.bfloat16
    ours_error = (got.double() - exact).abs().max().item()
    torch_error = (theirs.double() - exact).abs().max().item()
    assert ours_error <= 2 * torch_error + 1e-3


def test_other_ranks_fall_back_to_torch():
    ours, reference = _both(3, alpha=0.2)
    for shape in [(2, 6, 5), (2, 6, 3, 4, 5), (0, 6, 3, 3)]:
        a = torch.randn(shape)
        torch.testing.assert_close(ours(a), reference(a))


def test_a_lrn_uses_it_and_trains_as_with_torchs():
    model = tiny("A-LRN", crop_size=32)
    assert type(model.norm1) is LocalResponseNorm
    assert [r.kind for r in layer_rows(model.spec) if r.name == "norm1"] == ["LRN"]
    twin = tiny("A-LRN", crop_size=32)
    twin.load_state_dict(model.state_dict())
    n = model.norm1
    twin.norm1 = nn.LocalResponseNorm(n.size, n.alpha, n.beta, n.k)
    x = torch.randn(2, 3, 32, 32) * 50
    model(x).sum().backward()
    twin(x).sum().backward()
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-3, msg=name)
