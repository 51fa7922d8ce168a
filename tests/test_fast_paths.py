"""The float32 CPU fast paths (layers.FAST_CPU_PATHS): `l2_normalize` and nGPT's `slerp` as autograd Functions
with their backward written out. Each must give autograd's numbers, value for value and gradient for gradient,
or the speed-up would change what the models compute; gradcheck in float64 checks each backward is the exact
derivative of its own forward."""

from __future__ import annotations

import pytest
import torch

import minigpt.layers as layers
from minigpt import ModelConfig, build_model
from minigpt.layers import _L2NormalizeFunction, l2_normalize
from minigpt.ngpt import _SlerpFunction, slerp


@pytest.fixture
def autograd_paths(monkeypatch: pytest.MonkeyPatch):
    """A context in which every fast path is off: the reference each fast path is compared with."""

    class Off:
        def __enter__(self) -> None:
            monkeypatch.setattr(layers, "FAST_CPU_PATHS", False)

        def __exit__(self, *exc: object) -> None:
            monkeypatch.setattr(layers, "FAST_CPU_PATHS", True)

    return Off()


def _value_and_grads(fn, inputs: list[torch.Tensor], grad: torch.Tensor) -> list[torch.Tensor]:
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    out.backward(grad)
    return [out.detach(), *(t.grad for t in leaves)]


# ------------------------------------------------------------------------------------------ l2_normalize


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_l2_normalize_matches_autograd(dim: int, autograd_paths) -> None:
    g = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(6, 5, 8, generator=g)
    x[0, 0] = 0.0  # the all-zero vector (along dim -1), where the clamp is active
    x[1, 1] = 1e-8
    grad = torch.randn(6, 5, 8, generator=g)
    fast = _value_and_grads(lambda t: l2_normalize(t, dim), [x], grad)
    with autograd_paths:
        ref = _value_and_grads(lambda t: l2_normalize(t, dim), [x], grad)
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert torch.isfinite(fast[1]).all()


def test_l2_normalize_takes_the_fast_path_only_for_float32_cpu() -> None:
    x = torch.randn(3, 8, requires_grad=True)
    assert type(l2_normalize(x).grad_fn).__name__ == "_L2NormalizeFunctionBackward"
    assert type(l2_normalize(x.double()).grad_fn).__name__ != "_L2NormalizeFunctionBackward"


@pytest.mark.parametrize("dim", [-1, 0])
def test_l2_normalize_backward_is_the_exact_derivative(dim: int) -> None:
    x = torch.randn(4, 3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _L2NormalizeFunction.apply(t, dim, 1e-6), (x,))


# ------------------------------------------------------------------------------------------------ slerp


def _pair(case: str, shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = l2_normalize(torch.randn(shape, generator=g))
    b = {"generic": torch.randn(shape, generator=g), "equal": a.clone(), "opposite": -a,
         "nearly_equal": a + 1e-6 * torch.randn(shape, generator=g)}[case]
    return a, l2_normalize(b)


@pytest.mark.parametrize("case", ["generic", "equal", "opposite", "nearly_equal"])
def test_slerp_matches_autograd(case: str, autograd_paths) -> None:
    shape = (3, 7, 16)
    a, b = _pair(case, shape)
    g = torch.Generator().manual_seed(1)
    alpha = torch.rand(16, generator=g)  # per-dimension α, as the blocks use
    grad = torch.randn(shape, generator=g)
    fast = _value_and_grads(lambda x, y, al: slerp(x, y, al), [a, b, alpha], grad)
    with autograd_paths:
        ref = _value_and_grads(lambda x, y, al: slerp(x, y, al), [a, b, alpha], grad)
    for name, x, y in zip(["value", "grad a", "grad b", "grad alpha"], fast, ref, strict=True):
        assert torch.isfinite(x).all(), name
        torch.testing.assert_close(x, y, rtol=1e-4, atol=2e-5, msg=lambda m, name=name: f"{name}: {m}")


def test_slerp_takes_the_fast_path_for_the_blocks_case_only() -> None:
    a, b = _pair("generic", (2, 3, 8))
    a.requires_grad_()
    assert type(slerp(a, b, torch.rand(8)).grad_fn).__name__ == "_SlerpFunctionBackward"
    assert type(slerp(a, b, 0.3).grad_fn).__name__ != "_SlerpFunctionBackward"  # scalar α: autograd's


def test_slerp_backward_is_the_exact_derivative() -> None:
    g = torch.Generator().manual_seed(0)
    a = l2_normalize(torch.randn(3, 4, 8, generator=g, dtype=torch.float64)).requires_grad_()
    b = l2_normalize(torch.randn(3, 4, 8, generator=g, dtype=torch.float64)).requires_grad_()
    alpha = torch.rand(8, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y, al: _SlerpFunction.apply(x, y, al, 1e-3), (a, b, alpha))


# ------------------------------------------------------------------------------------------- whole models


@pytest.mark.parametrize("variant,update", [("ngpt", "lerp"), ("ngpt", "slerp"), ("pre_ln", "lerp")])
def test_model_loss_and_gradients_match_autograd(variant: str, update: str, autograd_paths) -> None:
    """A training step's loss and every parameter's gradient, fast paths on vs off (pre-LN with RMSNorm)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(variant=variant, vocab_size=48, block_size=16, n_layer=2, n_head=4,
                                    n_embd=32, ngpt_update=update, norm="rmsnorm"))
    with torch.no_grad():  # move the scales off their init so every term of the backward is exercised
        for p in model.parameters():
            if p.dim() == 1:
                p.mul_(1 + 0.5 * torch.rand_like(p))
    g = torch.Generator().manual_seed(1)
    idx, tgt = torch.randint(0, 48, (4, 16), generator=g), torch.randint(0, 48, (4, 16), generator=g)

    def loss_and_grads() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        _, loss = model(idx, tgt)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss_fast, grads_fast = loss_and_grads()
    with autograd_paths:
        loss_ref, grads_ref = loss_and_grads()
    torch.testing.assert_close(loss_fast, loss_ref, rtol=1e-6, atol=1e-6)
    for name in grads_ref:
        torch.testing.assert_close(grads_fast[name], grads_ref[name], rtol=1e-4, atol=1e-6, msg=name)
