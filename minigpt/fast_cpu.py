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

    Autograd's version of `slerp` takes 39 operations on (B, T, d) tensors forward and backward, 4 of them
    sin or cos; this one 29, 2 of them sin or cos: cos(αθ) is kept from the forward, and
        A = sin((1−α)θ) = sin θ cos(αθ) − cos θ sin(αθ),   S = sin(αθ),   u = A ⊙ a + S ⊙ b,   y = u / ||u||.
    Backward, with g = dL/dy and per token θ (the sums run over d):
        g_u = (g − y <g, y>) / ||u||        (g / eps where ||u|| ≤ eps, as in l2_normalize)
        g_a = g_u ⊙ A + κ b,   g_b = g_u ⊙ S + κ a,   κ = dθ/d<a, b> · dL/dθ
              (κ = 0 where θ was replaced or the cosine clamped)
        dL/dθ = Σ (1−α) ⊙ g_u ⊙ a ⊙ cos((1−α)θ) + α ⊙ g_u ⊙ b ⊙ cos(αθ),   dθ/dc = −1/√(1 − c²)
        dL/dα = Σ over tokens of θ (g_u ⊙ b ⊙ cos(αθ) − g_u ⊙ a ⊙ cos((1−α)θ))
    `tests/test_fast_paths.py` checks values and gradients against autograd's and with gradcheck.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, alpha: Tensor, tiny: float, theta0: float) -> Tensor:
        cos_ab = torch.linalg.vecdot(a, b).unsqueeze(-1)
        cos_clamped = cos_ab.clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.arccos(cos_clamped)
        replaced = torch.sin(theta) < tiny
        theta = torch.where(replaced, torch.full_like(theta, theta0), theta)
        sin_t, cos_t = torch.sin(theta), torch.cos(theta)
        alpha_theta = alpha * theta
        sin_at, cos_at = torch.sin(alpha_theta), torch.cos(alpha_theta)
        coef_a = torch.addcmul(sin_t * cos_at, sin_at, cos_t, value=-1.0)  # sin((1−α)θ)
        u = torch.addcmul(coef_a * a, sin_at, b)
        norm = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
        u_clamped = norm <= 1e-6  # as l2_normalize: there y = u / eps and g_u = g / eps
        inv_norm = norm.clamp_min_(1e-6).reciprocal_()
        y = u.mul_(inv_norm)
        # dθ/d<a, b>, 0 where the angle was replaced or the clamp was active (as autograd's clamp and where)
        dtheta = torch.rsqrt(1 - cos_clamped.square()).neg_()
        dtheta.masked_fill_(replaced | (cos_ab != cos_clamped), 0.0)
        ctx.save_for_backward(a, b, alpha, theta, sin_t, cos_t, sin_at, cos_at, coef_a, y, inv_norm, u_clamped,
                              dtheta)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, None, None]:
        a, b, alpha, theta, sin_t, cos_t, sin_at, cos_at, coef_a, y, inv_norm, u_clamped, dtheta = ctx.saved_tensors
        d = a.shape[-1]
        dot = torch.linalg.vecdot(grad, y).unsqueeze(-1).masked_fill_(u_clamped, 0.0)
        g_u = torch.addcmul(grad, y, dot, value=-1.0).mul_(inv_norm)
        cos_1mat = torch.addcmul(cos_t * cos_at, sin_t, sin_at)  # cos((1−α)θ)
        r = g_u * a * cos_1mat  # dL/dA ⊙ cos((1−α)θ)
        m = g_u * b * cos_at  # dL/dS ⊙ cos(αθ)
        diff = m - r
        flat = diff.reshape(-1, d)
        grad_theta = r.sum(-1, keepdim=True) + (flat @ alpha).view_as(theta)  # Σ (1−α) r + α m
        grad_alpha = theta.reshape(-1) @ flat
        kappa = grad_theta.mul_(dtheta)
        grad_a = torch.addcmul(g_u * coef_a, b, kappa)
        grad_b = torch.addcmul(g_u * sin_at, a, kappa)
        return grad_a, grad_b, grad_alpha, None, None
