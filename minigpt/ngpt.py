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
- s_qk: both factors go on q (q̂ ⊙ s_qk², k̂): the same logits, one multiply fewer, and what GQA (not in the
  paper: one key head serves query heads with different s_qk) needs anyway.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .fast_cpu import SlerpFunction, fast_cpu_path
from .layers import MLP, CausalSelfAttention, GPTBase, l2_normalize, l2_normalize_


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
    """The paper's practical update, a normalized linear step from h towards the unit vector `target`."""
    dtype = torch.promote_types(torch.result_type(h, target), torch.result_type(h, alpha))  # lerp won't promote
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
    """
    # float32 CPU, one α per dimension (the blocks' case): the same values with a written-out backward
    if isinstance(alpha, Tensor) and alpha.shape == a.shape[-1:] and fast_cpu_path(a, b, alpha):
        return SlerpFunction.apply(a, b, alpha, tiny, _SLERP_THETA0)
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
    softmax scale √d_head (Sec. 2.3.2). v is not normalized."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.s_qk = ScaledParam(config.n_embd, config.ngpt_sqk_init, _scale(config.ngpt_sqk_scale, config))
        self.softmax_scale = math.sqrt(self.head_dim)

    def transform_qk(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        s_qk = self.s_qk().to(q.dtype).view(self.n_head, 1, self.head_dim)  # one d_head slice per head
        # q = Norm(q) ⊙ s_qk, k = Norm(k) ⊙ s_qk, returned as (Norm(q) ⊙ s_qk², Norm(k)): the same logits
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
        # as (diag(s) W) h: the scales on the (2·hidden, d) weight, not the (B, T, 2·hidden) activations
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
        return self.update(h, l2_normalize(self.mlp(h)), self.alpha_mlp().abs())


class GPT(GPTBase):
    """nGPT. Call `after_optimizer_step()` after every `optimizer.step()` (the trainer does).

    Honours: vocab_size, block_size, n_layer, n_head, n_kv_head (GQA), n_embd, rope_base, dropout (attention
    probabilities and sublayer outputs, never h_0, which must stay on the sphere), z_loss, logit_softcap
    (rarely useful: |z_i| ≤ |s_z,i| already), ngpt_*. Ignores: norm, norm_eps (no norm layers), mlp (always
    SwiGLU), bias (none), position (always RoPE), qk_norm (q, k are always normalized), tie_embeddings (never
    tied), init and init_std (N(0, 1/d_model), then normalized), resid_scale. `model.config` is the config as given.

    Effective scales: `block.alpha_attn()`, `block.alpha_mlp()`, `block.attn.s_qk()`, `block.mlp.s_u()`,
    `block.mlp.s_nu()`, `model.s_z()`; the stored parameters are their `.raw`.
    """

    Block = Block
    final_norm = False

    def __init__(self, config: ModelConfig) -> None:
        inner = dataclasses.replace(config, bias=False, qk_norm=False, mlp="swiglu", tie_embeddings=False,
                                    init="gpt2")
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
        """Project every weight vector along d_model back onto the unit sphere (in place, one op per matrix)."""
        for module, dim in self._sphere:
            l2_normalize_(module.weight, dim)

    def embed(self, idx: Tensor) -> Tensor:
        # h_0 = E_in[token]        (unit rows; no position embedding, no dropout)
        return self.wte(idx)

    def head(self, h: Tensor) -> Tensor:
        # z = s_z ⊙ (E_out h)      (no final norm: h is on the sphere)
        return self.s_z() * self.lm_head(h)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """One group, weight decay 0 whatever is asked: decay would pull the unit vectors off the sphere."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "weight_decay": 0.0}]
