"""The float32 CPU fast paths of minigpt/fast_cpu.py: `l2_normalize` and nGPT's `slerp` as autograd Functions
with their backward written out. Each must give autograd's values and gradients (up to float32 rounding), or
the speed-up would change what the models compute; gradcheck in float64 checks each backward is the exact
derivative of its own forward. Every comparison also checks that the two sides took different paths."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import pytest
import torch

import minigpt.fast_cpu as fast_cpu
from minigpt import ModelConfig, build_model
from minigpt.fast_cpu import L2NormalizeFunction, SlerpFunction
from minigpt.layers import l2_normalize
from minigpt.ngpt import slerp

FAST_NODES = ("L2NormalizeFunctionBackward", "SlerpFunctionBackward", "RMSNormFunctionBackward")


@contextlib.contextmanager
def autograd_paths() -> Iterator[None]:
    """Every fast path off: the reference each fast path is compared with."""
    before = fast_cpu.FAST_CPU_PATHS
    fast_cpu.FAST_CPU_PATHS = False
    try:
        yield
    finally:
        fast_cpu.FAST_CPU_PATHS = before


def graph_nodes(t: torch.Tensor) -> set[str]:
    """Names of every autograd node behind `t`."""
    seen, stack, names = set(), [t.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack += [n for n, _ in node.next_functions]
    return names


def _value_and_grads(fn, inputs: list[torch.Tensor], grad: torch.Tensor) -> tuple[list[torch.Tensor], set[str]]:
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    out.backward(grad)
    return [out.detach(), *(t.grad for t in leaves)], graph_nodes(out)


# ------------------------------------------------------------------------------------------ l2_normalize


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_l2_normalize_matches_autograd(dim: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(6, 5, 8, generator=g)
    along = [0, 0, 0]
    along[dim] = slice(None)
    x[tuple(along)] = 0.0  # an all-zero vector along `dim`: the clamp is active
    along = [1, 1, 1]
    along[dim] = slice(None)
    x[tuple(along)] = 1e-8  # clamped too, and y ≠ 0 there, so the masked term matters
    grad = torch.randn(6, 5, 8, generator=g)
    fast, fast_nodes = _value_and_grads(lambda t: l2_normalize(t, dim), [x], grad)
    with autograd_paths():
        ref, ref_nodes = _value_and_grads(lambda t: l2_normalize(t, dim), [x], grad)
    assert "L2NormalizeFunctionBackward" in fast_nodes and "L2NormalizeFunctionBackward" not in ref_nodes
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert torch.isfinite(fast[1]).all()


def test_l2_normalize_takes_the_fast_path_only_for_float32_cpu() -> None:
    x = torch.randn(3, 8, requires_grad=True)
    assert type(l2_normalize(x).grad_fn).__name__ == "L2NormalizeFunctionBackward"
    assert type(l2_normalize(x.double()).grad_fn).__name__ != "L2NormalizeFunctionBackward"
    with torch.autocast("cpu", dtype=torch.bfloat16):  # some of its ops would run in bf16 under autocast
        assert type(l2_normalize(x).grad_fn).__name__ != "L2NormalizeFunctionBackward"


@pytest.mark.parametrize("dim", [-1, 0])
def test_l2_normalize_backward_is_the_exact_derivative(dim: int) -> None:
    x = torch.randn(4, 3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: L2NormalizeFunction.apply(t, dim, 1e-6), (x,))


def test_fast_paths_refuse_double_backward() -> None:
    """Their backward is not itself differentiable: asking for it must fail loudly, not give wrong numbers."""
    x = torch.randn(3, 8, requires_grad=True)
    (g,) = torch.autograd.grad(l2_normalize(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|double backward|does not require grad"):
        g.sum().backward()


# ------------------------------------------------------------------------------------------------ slerp


def _pair(case: str, shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = l2_normalize(torch.randn(shape, generator=g))
    angles = {"small_angle": 7e-4, "near_pi": math.pi - 1e-3, "nearer_pi": math.pi - 1e-5}
    if case in angles:  # b at exactly this angle from a
        p = torch.randn(shape, generator=g)
        p = l2_normalize(p - (p * a).sum(-1, keepdim=True) * a)
        return a, math.cos(angles[case]) * a + math.sin(angles[case]) * p
    b = {"generic": torch.randn(shape, generator=g), "equal": a.clone(), "opposite": -a,
         "nearly_equal": a + 1e-6 * torch.randn(shape, generator=g)}[case]
    return a, l2_normalize(b)


@pytest.mark.parametrize("case", ["generic", "equal", "opposite", "nearly_equal", "small_angle", "near_pi",
                                  "nearer_pi"])
def test_slerp_matches_autograd(case: str) -> None:
    shape = (3, 7, 16)
    a, b = _pair(case, shape)
    g = torch.Generator().manual_seed(1)
    alpha = torch.rand(16, generator=g)  # per-dimension α, as the blocks use
    grad = torch.randn(shape, generator=g)
    fast, fast_nodes = _value_and_grads(slerp, [a, b, alpha], grad)
    with autograd_paths():
        ref, ref_nodes = _value_and_grads(slerp, [a, b, alpha], grad)
    assert "SlerpFunctionBackward" in fast_nodes and "SlerpFunctionBackward" not in ref_nodes
    for name, x, y in zip(["value", "grad a", "grad b", "grad alpha"], fast, ref, strict=True):
        assert torch.isfinite(x).all(), name
        torch.testing.assert_close(x, y, rtol=1e-4, atol=2e-5, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("alpha_value", [0.25, 0.5])
def test_slerp_at_exactly_pi(alpha_value: float) -> None:
    """b = −a to the last bit: the geodesic is undefined and h stays at a (ngpt.slerp's choice), on both
    paths, with finite gradients, also for the α (1/4, 1/2) at which a rounding direction along ±a would
    have cancelled u = cos(αθ) a + sin(αθ)/sin θ p to nearly 0."""
    a, _ = _pair("generic", (2, 3, 16))
    b = -a
    alpha = torch.full((16,), alpha_value)
    alpha[::2] += 1e-7
    grad = torch.randn(2, 3, 16, generator=torch.Generator().manual_seed(2))
    fast, _ = _value_and_grads(slerp, [a, b, alpha], grad)
    with autograd_paths():
        ref, _ = _value_and_grads(slerp, [a, b, alpha], grad)
    for x, y in zip(fast, ref, strict=True):
        assert torch.isfinite(x).all()
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast[0], a, rtol=0, atol=1e-6)


def test_slerp_takes_the_fast_path_for_the_blocks_case_only() -> None:
    a, b = _pair("generic", (2, 3, 8))
    a.requires_grad_()
    assert type(slerp(a, b, torch.rand(8)).grad_fn).__name__ == "SlerpFunctionBackward"
    assert type(slerp(a, b, 0.3).grad_fn).__name__ != "SlerpFunctionBackward"  # scalar α: autograd's


def test_slerp_backward_is_the_exact_derivative() -> None:
    g = torch.Generator().manual_seed(0)
    a = l2_normalize(torch.randn(3, 4, 8, generator=g, dtype=torch.float64)).requires_grad_()
    b = l2_normalize(torch.randn(3, 4, 8, generator=g, dtype=torch.float64)).requires_grad_()
    alpha = torch.rand(8, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(SlerpFunction.apply, (a, b, alpha))


# ------------------------------------------------------------------------------------------- whole models


@pytest.mark.parametrize("variant,update,nodes", [
    ("ngpt", "lerp", {"L2NormalizeFunctionBackward"}),
    ("ngpt", "slerp", {"L2NormalizeFunctionBackward", "SlerpFunctionBackward"}),
    ("pre_ln", "lerp", {"RMSNormFunctionBackward"}),
])
def test_model_loss_and_gradients_match_autograd(variant: str, update: str, nodes: set[str]) -> None:
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

    def loss_and_grads() -> tuple[torch.Tensor, dict[str, torch.Tensor], set[str]]:
        model.zero_grad(set_to_none=True)
        _, loss = model(idx, tgt)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}, graph_nodes(loss)

    loss_fast, grads_fast, nodes_fast = loss_and_grads()
    with autograd_paths():
        loss_ref, grads_ref, nodes_ref = loss_and_grads()
    assert nodes_fast & set(FAST_NODES) == nodes and not nodes_ref & set(FAST_NODES)
    torch.testing.assert_close(loss_fast, loss_ref, rtol=1e-6, atol=1e-6)
    for name in grads_ref:
        torch.testing.assert_close(grads_fast[name], grads_ref[name], rtol=1e-4, atol=1e-6, msg=name)
