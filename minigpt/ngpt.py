"""nGPT: the normalized Transformer, every vector on the unit hypersphere (Loshchilov, Hsieh, Sun & Ginsburg
2024, "nGPT: Normalized Transformer with Representation Learning on the Hypersphere", arXiv 2410.01131).

    h_0     = E_in[token]                                     rows of E_in have unit norm
    q, k    = Norm(RoPE(W_q h)) ⊙ s_qk, Norm(RoPE(W_k h)) ⊙ s_qk     softmax scale √d_head   (Sec. 2.3.2)
    h_M     = W_o (u ⊙ SiLU(ν)),  u = s_u ⊙ W_u h,  ν = s_ν ⊙ W_ν h · √d_model             (Sec. 2.4.2)
    h      ← Norm(h + |α_A| ⊙ (Norm(h_A) − h));  h ← Norm(h + |α_M| ⊙ (Norm(h_M) − h))  (LERP, Sec. 2.2.2)
    z       = s_z ⊙ (E_out h)                                                                (Sec. 2.1)

No norm layers, no weight tying, no final norm, no weight decay, no warmup. Every weight vector along d_model
has unit norm; `after_optimizer_step()` puts them back on the sphere after each step (Sec. 2.6). Each scale
(α_A, α_M, s_qk, s_u, s_ν, s_z) is a raw parameter initialised to `scale` and used as raw · (init / scale)
(Sec. 2.5), so Adam's step on it is set by `scale`; the defaults (ModelConfig.ngpt_*) are the paper's and the
reference code's: α 0.05 / 1/√d, s_qk 1 / 1/√d, s_u, s_ν 1 / 1, s_z 1 / 1/√d.

Paper vs the public reference code (NVIDIA/ngpt, model.py and train.py), choice by choice:
- RoPE: the standard rotate-half RoPE of layers.Rotary, applied before the q/k normalization (a rotation, so
  norm-preserving). The reference's rotary pairs interleaved dimensions with a sin/cos table split in halves,
  a non-standard variant.
- MLP: the paper's form, √d_model on ν only; the reference scales both halves of its fused [u; ν] by √d_model.
  Hidden size is config.mlp_hidden (8/3·d rounded up to 64) where the reference uses 4·d.
- The update uses |α| for LERP and SLERP, as the reference does (the paper writes α). Like the paper and
  unlike the reference we do not re-normalize h before the update: it is already unit norm.
- SLERP (`ngpt_update="slerp"`, Sec. 2.2.2) is in neither code base; see `slerp`.
- Init as train.py: N(0, 1/d_model) then normalized. W_q, W_k, W_v are one fused matrix; its rows (and W_v's)
  are normalized as the reference normalizes each of the three. The logits cover every position (our API).
- s_qk: both factors go on q (q̂ ⊙ s_qk², k̂), the same logits √d_head · Σ s_qk² q̂ k̂ with one multiply
  fewer. GQA (not in the paper) needs it: there one key head serves query heads with different s_qk.
- Speed on the CPU: for float32 CPU tensors `l2_normalize` and `slerp` run as autograd Functions with their
  backward written out (`_SlerpFunction`, end of file): autograd's numbers up to rounding, 2-3% off a
  cpu-tiny step (`benchmarks/throughput.py`, rows `ngpt-*-autograd`); `minigpt.layers.FAST_CPU_PATHS`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .config import ModelConfig
from .layers import MLP, CausalSelfAttention, GPTBase, fast_cpu_path, l2_normalize


class ScaledParam(nn.Module):
    """A learnable vector stored as `raw` (initialised to `scale`) and used as raw · (init / scale), Sec. 2.5.
    Calling it returns the effective value (for diagnostics: `block.alpha_attn()`, `model.s_z()`).

    `scale` is given explicitly: the default of the config's `ngpt_*_scale` fields is 1/√d_model whatever the
    vector's own length (s_z has vocab_size entries, s_u and s_ν mlp_hidden), see `_scale`."""

    def __init__(self, dim: int, init: float, scale: float) -> None:
        super().__init__()
        self.init, self.scale = init, float(scale)
        self.raw = nn.Parameter(torch.full((dim,), self.scale))

    def forward(self) -> Tensor:
        return self.raw * (self.init / self.scale)


def _scale(value: float | None, config: ModelConfig) -> float:
    """A config `ngpt_*_scale`: None -> the reference's base_scale 1/√d_model (never 1/√len(vector))."""
    return 1.0 / math.sqrt(config.n_embd) if value is None else value


def lerp_update(h: Tensor, target: Tensor, alpha: Tensor) -> Tensor:
    """The paper's practical update, a normalized linear step from h towards the unit vector `target`.
    `torch.lerp` is h + α ⊙ (target − h) in one pass over the tensors instead of three; it does not promote
    dtypes (bf16 sublayer outputs under autocast), so the operands are first cast to the promoted type."""
    dtype = torch.promote_types(torch.result_type(h, target), torch.result_type(h, alpha))
    # h ← Norm(h + α ⊙ (target − h))
    return l2_normalize(torch.lerp(h.to(dtype), target.to(dtype), alpha.to(dtype)))


def slerp(a: Tensor, b: Tensor, alpha: Tensor | float, tiny: float = 1e-3) -> Tensor:
    """Spherical interpolation from unit vectors a to b (along the last dim) with per-dimension weights α.

    With α equal in every dimension the result lies at angle α·θ from a on the great circle through b.
    SLERP's coefficients are sin((1 − α)θ)/sin θ and sin(αθ)/sin θ; the division by sin θ, a positive number
    per token, is left out because Norm(·) removes any positive per-token factor: the same result, with two
    fewer full-size operations (and their backward) per update.

    Where sin θ < `tiny` (θ → 0 or θ → π) the angle is replaced by a tiny constant θ₀ (no gradient through
    it), which makes the coefficients (1 − α) and α up to a relative O(θ₀²) ~ 1e-8: LERP's, the limit as
    θ → 0, and at θ → π, where the geodesic is undefined, a finite choice. The clamp keeps arccos' gradient
    finite. Only per-token quantities are branched on, never the (B, T, d) tensors.

    On the CPU in float32 with one α per dimension (the model's case) `_SlerpFunction`, at the end of this
    file, computes the same values (up to rounding) with its backward written out, in fewer passes.
    """
    if isinstance(alpha, Tensor) and alpha.shape == a.shape[-1:] and fast_cpu_path(a, b, alpha):
        return _SlerpFunction.apply(a, b, alpha, tiny)
    dtype = a.dtype
    a, b = a.float(), b.float()
    alpha = torch.as_tensor(alpha, dtype=torch.float32, device=a.device)
    # θ = arccos(<a, b>), per token; the clamp bounds sin θ below by ~5e-4 (float32), under `tiny`
    theta = torch.arccos((a * b).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    theta = torch.where(torch.sin(theta) < tiny, torch.full_like(theta, _SLERP_THETA0), theta)
    # h ← Norm( sin((1−α)θ) ⊙ a + sin(αθ) ⊙ b )        (= Norm of SLERP's sum: 1/sin θ > 0 drops out)
    alpha_theta = alpha * theta
    return l2_normalize(torch.addcmul(torch.sin(theta - alpha_theta) * a, torch.sin(alpha_theta), b)).to(dtype)


_SLERP_THETA0 = 1e-4  # the stand-in angle where sin θ < tiny: float32 keeps sin(αθ₀) to full relative precision


class Attention(CausalSelfAttention):
    """Causal attention with q, k on the sphere: q = Norm(q) ⊙ s_qk, k = Norm(k) ⊙ s_qk per head (after RoPE),
    softmax scale √d_head (Sec. 2.3.2). v is not normalized. `transform_qk` returns (q̂ ⊙ s_qk², k̂), whose
    dot products are the same."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.s_qk = ScaledParam(config.n_embd, config.ngpt_sqk_init, _scale(config.ngpt_sqk_scale, config))
        self.softmax_scale = math.sqrt(self.head_dim)

    def transform_qk(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        s_qk = self.s_qk().to(q.dtype).view(self.n_head, 1, self.head_dim)  # one d_head slice per head
        # q = Norm(q) ⊙ s_qk,  k = Norm(k) ⊙ s_qk,  applied as q = Norm(q) ⊙ s_qk², k = Norm(k): the same
        # logits √d_head · Σ s_qk² q̂ k̂ with one (B, nh, T, d_head) multiply fewer, and what GQA needs anyway
        return l2_normalize(q) * s_qk.square(), l2_normalize(k)


class NormalizedMLP(MLP):
    """SwiGLU with the scaled gate (Sec. 2.4.2). c_fc holds [W_u; W_ν], c_proj is W_o."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.s_u = ScaledParam(config.mlp_hidden, config.ngpt_suv_init, _scale(config.ngpt_suv_scale, config))
        self.s_nu = ScaledParam(config.mlp_hidden, config.ngpt_suv_init, _scale(config.ngpt_suv_scale, config))
        self.sqrt_d = math.sqrt(config.n_embd)

    def forward(self, h: Tensor) -> Tensor:
        # u = s_u ⊙ (W_u h),  ν = s_ν ⊙ (W_ν h) · √d_model     (W_ν h are cosines ~ 1/√d: rescale for SiLU)
        # computed as (diag(s) W) h: the same numbers, but the scales multiply the (2·hidden, d) weight rather
        # than the (B, T, 2·hidden) activations, 8x fewer elements at cpu-tiny (benchmarks/throughput.py)
        scale = torch.cat([self.s_u(), self.s_nu() * self.sqrt_d])
        u, nu = F.linear(h, self.c_fc.weight * scale[:, None]).chunk(2, dim=-1)
        # h_M = W_o (u ⊙ SiLU(ν))
        return self.dropout(self.c_proj(u * F.silu(nu)))


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attn = Attention(config)
        self.alpha_attn = ScaledParam(config.n_embd, config.ngpt_alpha_init, _scale(config.ngpt_alpha_scale, config))
        self.mlp = NormalizedMLP(config)
        self.alpha_mlp = ScaledParam(config.n_embd, config.ngpt_alpha_init, _scale(config.ngpt_alpha_scale, config))
        self.update = slerp if config.ngpt_update == "slerp" else lerp_update

    def forward(self, h: Tensor) -> Tensor:
        # h ← Norm(h + |α_A| ⊙ (Norm(h_A) − h))        (slerp: h ← SLERP(h, Norm(h_A); |α_A|))
        h = self.update(h, l2_normalize(self.attn(h)), self.alpha_attn().abs())
        # h ← Norm(h + |α_M| ⊙ (Norm(h_M) − h))        (slerp: h ← SLERP(h, Norm(h_M); |α_M|))
        h = self.update(h, l2_normalize(self.mlp(h)), self.alpha_mlp().abs())
        return h


class GPT(GPTBase):
    """nGPT. Call `after_optimizer_step()` after every `optimizer.step()` (the trainer does).

    Honours: vocab_size, block_size, n_layer, n_head, n_kv_head (GQA), n_embd, rope_base, dropout (attention
    probabilities and sublayer outputs, never h_0, which must stay on the sphere), z_loss, logit_softcap
    (rarely useful: |z_i| ≤ |s_z,i| already), ngpt_*. Ignores: norm, norm_eps (no norm layers), mlp (always
    SwiGLU), bias (none), position (always RoPE), qk_norm (q, k are always normalized), tie_embeddings (never
    tied), init_std (N(0, 1/d_model), then normalized), resid_scale. `model.config` is the config as given.

    Effective scales: `block.alpha_attn()`, `block.alpha_mlp()`, `block.attn.s_qk()`, `block.mlp.s_u()`,
    `block.mlp.s_nu()`, `model.s_z()`; the stored parameters are their `.raw`.
    """

    Block = Block
    final_norm = False

    def __init__(self, config: ModelConfig) -> None:
        inner = dataclasses.replace(config, bias=False, qk_norm=False, mlp="swiglu", tie_embeddings=False)
        super().__init__(inner)
        self.config = config
        self.s_z = ScaledParam(config.vocab_size, config.ngpt_sz_init, _scale(config.ngpt_sz_scale, config))
        # (module, dim): normalize module.weight along `dim`, its d_model side. nn.Linear.weight is (out, in):
        # inputs of size d_model -> dim 1 (rows); outputs of size d_model (W_o) -> dim 0.
        self._sphere: list[tuple[nn.Module, int]] = [(self.wte, 1), (self.lm_head, 1)]
        for block in self.blocks:
            self._sphere += [(block.attn.c_attn, 1), (block.attn.c_proj, 0), (block.mlp.c_fc, 1),
                             (block.mlp.c_proj, 0)]
        with torch.no_grad():
            for module, _ in self._sphere:
                nn.init.normal_(module.weight, mean=0.0, std=1.0 / math.sqrt(config.n_embd))
        self.after_optimizer_step()

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Project every weight vector along d_model back onto the unit sphere, in place: per matrix one norm
        (accumulated in at least float32) and one division, with no normalized copy to write back."""
        for module, dim in self._sphere:
            w = module.weight
            # W ← W / ||W|| along d_model
            norm = torch.linalg.vector_norm(w, dim=dim, keepdim=True, dtype=torch.promote_types(w.dtype, torch.float32))
            w.div_(norm.clamp_min_(1e-6))

    def embed(self, idx: Tensor) -> Tensor:
        # h_0 = E_in[token]        (unit rows; no position embedding, no dropout)
        return self.wte(idx)

    def head(self, h: Tensor) -> Tensor:
        # z = s_z ⊙ (E_out h)      (no final norm: h is on the sphere)
        return self.s_z() * self.lm_head(h)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """One group, weight decay 0 whatever is asked: decay would pull the unit vectors off the sphere."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "weight_decay": 0.0}]


# ------------------------------------------------------------------------------------ CPU fast path


class _SlerpFunction(torch.autograd.Function):
    """`slerp` for float32 CPU tensors and α of shape (d,), with the backward written out.

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
    def forward(ctx: Any, a: Tensor, b: Tensor, alpha: Tensor, tiny: float) -> Tensor:
        cos_ab = torch.linalg.vecdot(a, b).unsqueeze(-1)
        cos_clamped = cos_ab.clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.arccos(cos_clamped)
        replaced = torch.sin(theta) < tiny
        theta = torch.where(replaced, torch.full_like(theta, _SLERP_THETA0), theta)
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
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
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
        return grad_a, grad_b, grad_alpha, None
