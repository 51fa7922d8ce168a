"""Float32 CPU fast paths: autograd Functions with their backward written out, for the norms nGPT and RMSNorm
models call many times per step. Eager PyTorch runs RMSNorm and v/||v|| as chains of generic ops on the CPU
(LayerNorm alone has a fused kernel each way), and autograd's backward of those chains is twice as long
again. Each Function here gives autograd's values and gradients up to float32 rounding in fewer passes over
the tensors; `tests/test_fast_paths.py` and `tests/test_norms.py` check that, and gradcheck each backward.

The readable versions stay where the equations are (`layers.RMSNorm`, `layers.l2_normalize`, `ngpt.slerp`);
they call in here through `fast_cpu_path`. On CUDA, and for other dtypes, they run as written.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

# False runs autograd's version of every path below everywhere (tests compare the two; the `-autograd` rows
# of benchmarks/throughput.py time both). The backwards are first-order only (`once_differentiable`): a
# double backward raises rather than silently dropping terms.
FAST_CPU_PATHS = True


def fast_cpu_path(*tensors: Tensor) -> bool:
    """Whether the written-out CPU backward applies: FAST_CPU_PATHS on, no CPU autocast (which would run some
    of their ops in bf16), every tensor float32 on the CPU."""
    return (FAST_CPU_PATHS and not torch.is_autocast_enabled("cpu")
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors))



class RMSNormFunction(torch.autograd.Function):
    """y = x / rms(x) * w, rms(x) = sqrt(mean(x^2) + eps), with its backward written out.

    With x_hat = x / rms(x) and g = dL/dy: dL/dx = (g*w - x_hat * mean(g*w * x_hat)) / rms(x) and
    dL/dw = sum over rows of g * x_hat. LayerNorm's backward has one more term, -mean(g*w), for the centering;
    RMSNorm drops it, which is where its saving comes from.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        inv_rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(eps).rsqrt_()
        x_hat = x * inv_rms
        ctx.save_for_backward(x_hat, inv_rms, weight)
        return x_hat * weight

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        x_hat, inv_rms, weight = ctx.saved_tensors
        gw = grad * weight
        minus_mean = (gw * x_hat).sum(-1, keepdim=True).div_(-x_hat.shape[-1])
        grad_x = torch.addcmul(gw, x_hat, minus_mean).mul_(inv_rms)
        grad_w = (grad * x_hat).reshape(-1, x_hat.shape[-1]).sum(0)
        return grad_x, grad_w, None


class L2NormalizeFunction(torch.autograd.Function):
    """y = x / max(||x||, eps) along `dim`, with its backward written out.

    With g = dL/dy: dL/dx = (g − y <g, y>) / ||x||, the part of g orthogonal to y, scaled; where ||x|| ≤ eps
    (only the all-zero vector, in practice) y = x / eps and dL/dx = g / eps, as the clamp gives autograd.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, dim: int, eps: float) -> Tensor:
        norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True)
        clamped = norm <= eps
        inv_norm = norm.clamp_min_(eps).reciprocal_()
        y = x * inv_norm
        ctx.save_for_backward(y, inv_norm, clamped)
        ctx.dim = dim
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        y, inv_norm, clamped = ctx.saved_tensors
        dot = (grad * y).sum(ctx.dim, keepdim=True).masked_fill_(clamped, 0.0)
        return torch.addcmul(grad, y, dot, value=-1.0).mul_(inv_norm), None, None


class SlerpFunction(torch.autograd.Function):
    """`ngpt.slerp` for float32 CPU tensors and α of shape (d,), with the backward written out.

    Forward, as `slerp` (per token; c, q, s are per-token scalars, φ = αθ per dimension):
        c = <a, b>,  p₀ = b − c a,  q = <p₀, a>,  p = p₀ − q a,  s = ‖p‖,  θ = atan2(s, c)
        ρ = sin φ / s  (ρ = α and θ = 0 where s ≤ SIN_MIN),  u = cos φ ⊙ a + ρ ⊙ p,  y = u / ‖u‖
    Backward, with g = dL/dy (sums over d; 1/s read as 0 where s ≤ SIN_MIN):
        g_u = (g − y <g, y>) / ‖u‖        (g / eps where ‖u‖ ≤ eps, as in l2_normalize)
        dL/dφ = (g_u ⊙ p) ⊙ cos φ / s − (g_u ⊙ a) ⊙ sin φ,   dL/dθ = Σ α ⊙ dL/dφ
        dL/ds = −Σ (g_u ⊙ p) ⊙ ρ / s + dL/dθ · c / (s² + c²),   dL/dc|_θ = −dL/dθ · s / (s² + c²)
        g_p = g_u ⊙ ρ + (dL/ds / s) p;  g_q = −<g_p, a>;  g_p₀ = g_p + g_q a
        g_c = dL/dc|_θ − <g_p₀, a>
        dL/da = g_u ⊙ cos φ − q g_p + g_q p₀ − c g_p₀ + g_c b,   dL/db = g_p₀ + g_c a
        dL/dα = Σ over tokens of θ dL/dφ  (+ g_u ⊙ p where ρ = α)
    `tests/test_fast_paths.py` checks values and gradients against autograd's and with gradcheck.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, alpha: Tensor) -> Tensor:
        cos_t = torch.linalg.vecdot(a, b).unsqueeze(-1)
        p0 = b - cos_t * a
        q = torch.linalg.vecdot(p0, a).unsqueeze(-1)
        p = p0 - q * a
        sin_t = torch.linalg.vector_norm(p, dim=-1, keepdim=True)
        some = sin_t > SLERP_SIN_MIN
        theta = torch.where(some, torch.atan2(sin_t, cos_t), 0.0)
        inv_s = torch.where(some, sin_t, 1.0).reciprocal_().masked_fill_(~some, 0.0)
        alpha_theta = alpha * theta
        sin_at, cos_at = torch.sin(alpha_theta), torch.cos(alpha_theta)
        ratio = sin_at * inv_s  # sin(αθ)/sin θ, α where p vanishes
        all_some = bool(some.all())  # the usual case: no token needs the limit (a per-token check)
        if not all_some:
            ratio = torch.where(some, ratio, alpha)
        u = torch.addcmul(cos_at * a, ratio, p)
        norm = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
        u_clamped = norm <= 1e-6  # as l2_normalize: there y = u / eps and g_u = g / eps
        inv_norm = norm.clamp_min_(1e-6).reciprocal_()
        y = u.mul_(inv_norm)
        ctx.save_for_backward(a, b, alpha, p0, q, p, cos_t, sin_t, some, theta, inv_s, sin_at, cos_at, ratio, y,
                              inv_norm, u_clamped)
        ctx.all_some = all_some
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        (a, b, alpha, p0, q, p, cos_t, sin_t, some, theta, inv_s, sin_at, cos_at, ratio, y, inv_norm,
         u_clamped) = ctx.saved_tensors
        d = a.shape[-1]
        dot = torch.linalg.vecdot(grad, y).unsqueeze(-1).masked_fill_(u_clamped, 0.0)
        g_u = torch.addcmul(grad, y, dot, value=-1.0).mul_(inv_norm)
        gup = g_u * p
        dphi = (gup * cos_at).mul_(inv_s).addcmul_(g_u * a, sin_at, value=-1.0)  # dL/dφ; 0 where θ = 0 was set
        grad_theta = (dphi.reshape(-1, d) @ alpha).view_as(theta)
        r2 = sin_t.square() + cos_t.square()
        grad_s = grad_theta * cos_t / r2 - torch.linalg.vecdot(gup, ratio).unsqueeze(-1) * inv_s
        grad_c = -grad_theta * sin_t / r2
        grad_p = torch.addcmul(g_u * ratio, p, grad_s * inv_s)
        grad_q = -torch.linalg.vecdot(grad_p, a).unsqueeze(-1)
        grad_p0 = torch.addcmul(grad_p, a, grad_q)
        grad_c = grad_c - torch.linalg.vecdot(grad_p0, a).unsqueeze(-1)
        grad_a = (g_u * cos_at).addcmul_(grad_p0, cos_t, value=-1.0).addcmul_(b, grad_c).addcmul_(p0, grad_q)
        grad_a.addcmul_(grad_p, q, value=-1.0)
        grad_b = torch.addcmul(grad_p0, a, grad_c)
        grad_alpha = theta.reshape(-1) @ dphi.reshape(-1, d)
        if not ctx.all_some:  # where ρ = α: dρ/dα = 1
            grad_alpha += (gup * ~some).reshape(-1, d).sum(0)
        return grad_a, grad_b, grad_alpha


# `slerp`'s threshold below which p = b − <a, b> a is float32 rounding, not a direction: computing p rounds
# each component by ~eps·|b_i|, ‖rounding‖ ≈ 3e-8 (measured where b = −a exactly); at ‖p‖ = 1e-6 it still
# sets p's direction to a few percent. Below it θ is set to 0 (LERP's step).
SLERP_SIN_MIN = 1e-6
