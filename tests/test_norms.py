"""minigpt.layers.RMSNorm: the hand-written CPU path must be torch's RMSNorm, value for value and gradient for
gradient, or the speed-up would change what the models compute."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from minigpt.fast_cpu import RMSNormFunction
from minigpt.layers import RMSNorm, make_norm


@pytest.mark.parametrize("shape", [(4, 16, 64), (2, 3, 5, 32), (7, 128)])
def test_rmsnorm_matches_torch_forward_and_backward(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    ours, ref = RMSNorm(shape[-1], eps=1e-5), nn.RMSNorm(shape[-1], eps=1e-5)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(shape[-1]))
        ref.weight.copy_(ours.weight)
    x, g = 3.0 * torch.randn(shape), torch.randn(shape)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref(xb)
    ya.backward(g)
    yb.backward(g)
    assert ya.grad_fn is not None and "RMSNormFunction" in type(ya.grad_fn).__name__  # the fast path ran
    torch.testing.assert_close(ya, yb, rtol=0, atol=1e-6)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-5)


def test_rmsnorm_backward_is_the_exact_derivative() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: RMSNormFunction.apply(a, b, 1e-5), (x, w))


def test_rmsnorm_is_a_drop_in_for_nn_rmsnorm() -> None:
    """Same class hierarchy and state_dict keys: checkpoints and isinstance checks do not see the difference."""
    norm = make_norm("rmsnorm", 32, 1e-5)
    assert isinstance(norm, nn.RMSNorm)
    assert list(norm.state_dict()) == list(nn.RMSNorm(32).state_dict()) == ["weight"]
    # Other dtypes take torch's own path (and give its numbers).
    x = torch.randn(4, 32, dtype=torch.float64)
    ref = nn.RMSNorm(32, eps=1e-5).double()
    torch.testing.assert_close(norm.double()(x), ref(x))
