"""The parts every variant shares, written once: norms, RoPE, causal attention, the MLP, and `GPTBase`
(token embedding -> blocks -> optional final norm -> LM head -> loss) that the variant files subclass.

A variant file only has to say what its `Block` is and whether the model ends with a final norm; everything
else (embedding, head, loss, init, generation) lives here so that the variant files differ *only* in where the
norms sit. The block ingredients the notebooks compare are all config flags handled here (DESIGN.md §2):
norm type, GELU/SwiGLU, bias, learned positions/RoPE, QK-norm, z-loss, logit soft-capping, GQA, dropout,
weight tying.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .fast_cpu import L2NormalizeFunction, RMSNormFunction, fast_cpu_path


class ModelInputError(ValueError):
    """A forward/generate input does not fit the model (sequence too long, token id out of range, bad shape)."""


# ------------------------------------------------------------------------------------------------ norms


def make_norm(kind: str, dim: int, eps: float = 1e-5, bias: bool = True) -> nn.Module:
    """N(.) of the design doc: LayerNorm (center + scale, optional bias) or RMSNorm (scale only).

    RMSNorm drops the mean subtraction and the bias; it is cheaper and, at these scales, trains as well.
    """
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(dim, eps=eps)
    raise ValueError(f"norm={kind!r} is not valid; choose one of layernorm, rmsnorm")


class RMSNorm(nn.RMSNorm):
    """`nn.RMSNorm` (same parameters, same state_dict, same values up to rounding), faster in float32 on the CPU.

    Why: in torch 2.13 the CPU `rms_norm` is a chain of generic ops (pow, mean, add, rsqrt, mul, mul) whose
    autograd backward is twice as long again, while LayerNorm has one fused kernel each way; so the "cheaper"
    norm was the slower one. `fast_cpu.RMSNormFunction`'s written-out backward makes a call (forward +
    backward) 1.5-2x faster than torch's, but it is still several passes against LayerNorm's one, so on the CPU
    RMSNorm stays slower than LayerNorm, per call and per step. A fused C kernel (benchmark-only) is ~1.5x
    cheaper than LayerNorm's, but the norms' kernels are under 2% of a cpu-tiny step, so even that does not
    show per step above the noise: `python benchmarks/rmsnorm.py` measures all of it. On CUDA, and for other
    dtypes, torch's own (fused on CUDA) implementation runs.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__(dim, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        if self.weight is not None and fast_cpu_path(x, self.weight):
            return RMSNormFunction.apply(x, self.weight, self.eps)
        return super().forward(x)


def l2_normalize(x: Tensor, dim: int = -1, eps: float = 1e-6) -> Tensor:
    """Norm(v) = v / ||v||_2 along `dim` (nGPT's projection onto the unit hypersphere).

    Computed in float32 and cast back: under bf16 the squared sum loses the precision that keeps vectors on
    the sphere. `eps` guards only the all-zero vector. On the CPU in float32 `fast_cpu.L2NormalizeFunction` computes
    it (the same values up to rounding) in 6 operations on the full tensor, forward and backward, where
    autograd's chain of square, sum, clamp, rsqrt and mul takes 10; nGPT calls this up to 6 times per block.
    """
    if fast_cpu_path(x):
        return L2NormalizeFunction.apply(x, dim, eps)
    xf = x.float()
    return (xf * torch.rsqrt(xf.square().sum(dim, keepdim=True).clamp_min(eps * eps))).type_as(x)


@torch.no_grad()
def l2_normalize_(w: Tensor, dim: int, eps: float = 1e-6) -> Tensor:
    """w ← Norm(w) along `dim`, in place (nGPT's weight projection): one norm, accumulated in at least float32,
    and one division, with no normalized copy to write back."""
    norm = torch.linalg.vector_norm(w, dim=dim, keepdim=True, dtype=torch.promote_types(w.dtype, torch.float32))
    return w.div_(norm.clamp_min_(eps))


class Scale(nn.Module):
    """Elementwise learnable scale, init 1 (NormFormer's lambda_resid)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * x


# ------------------------------------------------------------------------------------------------- RoPE


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021), the standard form with the rotate-half pairing
    (dimension i is paired with i + d/2, as in GPT-NeoX and LLaMA).

    RoPE is a rotation, so it preserves the norm of q and k; nGPT relies on that (it normalizes after it).
    The cos/sin tables are non-persistent buffers: derived state, not part of a checkpoint.
    """

    def __init__(self, head_dim: int, max_seq_len: int, base: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)  # (T, hd/2)
        angles = torch.cat([angles, angles], dim=-1)  # (T, hd)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, nh, T, hd) -> x rotated by position."""
        T = x.size(-2)
        cos, sin = self.cos[:T].to(x.dtype), self.sin[:T].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-x2, x1], dim=-1) * sin


# -------------------------------------------------------------------------------------------- attention


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with grouped-query support, on `F.scaled_dot_product_attention`.

    - `n_kv_head < n_head` shares each key/value head across a group of query heads (GQA; 1 = MQA).
    - `qk_norm` normalizes q and k per head (config.norm, no bias) before the dot product.
    - `head_scale=True` is NormFormer's HeadScale: one learnable scalar per head, init 1, multiplying each
      head's output *before* the output projection (paper, Eq. 2).
    - Subclasses change the geometry by overriding `transform_qk` and `softmax_scale` (nGPT does).
    - `out_dropout=False` leaves the dropout on the output to the caller: a block that normalizes the output
      (NormFormer's post-attention norm) applies it after that norm, as fairseq does.
    """

    def __init__(self, config: ModelConfig, head_scale: bool = False, out_dropout: bool = True) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.kv_heads, config.head_dim
        qkv_out = (self.n_head + 2 * self.n_kv_head) * self.head_dim
        self.c_attn = nn.Linear(config.n_embd, qkv_out, bias=config.bias)  # fused W_q, W_k, W_v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)  # W_o
        self.rotary = Rotary(self.head_dim, config.block_size, config.rope_base) if config.uses_rope else None
        if config.qk_norm:
            self.q_norm = make_norm(config.norm, self.head_dim, config.norm_eps, bias=False)
            self.k_norm = make_norm(config.norm, self.head_dim, config.norm_eps, bias=False)
        self.qk_norm = config.qk_norm
        self.head_scale = nn.Parameter(torch.ones(self.n_head)) if head_scale else None
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout) if out_dropout else nn.Identity()
        self.softmax_scale: float | None = None  # None -> SDPA's default 1/sqrt(head_dim)

    def transform_qk(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """Hook between RoPE and the dot product: optional QK-norm here; nGPT's normalization in ngpt.py."""
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        return q, k

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(
            [self.n_head * self.head_dim, self.n_kv_head * self.head_dim, self.n_kv_head * self.head_dim], dim=-1
        )
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        q, k = self.transform_qk(q, k)
        if self.n_kv_head != self.n_head:  # GQA: each kv head serves n_head / n_kv_head query heads
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)  # (B, nh, T, hd)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0, scale=self.softmax_scale
        )  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        if self.head_scale is None:
            return self.resid_dropout(self.c_proj(y))
        # NormFormer: W_o concat_i(gamma_i * head_i), computed as (W_o diag(gamma)) concat_i(head_i), gamma_i
        # repeated over head i's columns (in-features) of the (out, in) weight: equal up to rounding, with the
        # scale on the (C, C) weight instead of the (B, T, C) activations
        w_o = self.c_proj.weight * self.head_scale.repeat_interleave(self.head_dim).to(self.c_proj.weight.dtype)
        return self.resid_dropout(F.linear(y, w_o, self.c_proj.bias))


# -------------------------------------------------------------------------------------------------- MLP


class MLP(nn.Module):
    """Position-wise FFN: GELU (W2 · gelu(W1 x)) or SwiGLU (W2 · (silu(W1 x) ⊙ W3 x), Shazeer 2020).

    `mid_norm=True` is NormFormer's FFN LN: a norm of size `mlp_hidden` on the activation, before W2. With
    SwiGLU it normalizes the gated product silu(W1 x) ⊙ W3 x. W1 and W3 are fused in one `c_fc`.
    `out_dropout=False` leaves the output dropout to the caller (a block with a norm on the FFN output).
    """

    def __init__(self, config: ModelConfig, mid_norm: bool = False, out_dropout: bool = True) -> None:
        super().__init__()
        hidden = config.mlp_hidden
        self.swiglu = config.mlp == "swiglu"
        self.c_fc = nn.Linear(config.n_embd, (2 if self.swiglu else 1) * hidden, bias=config.bias)
        self.ffn_mid_norm = make_norm(config.norm, hidden, config.norm_eps, config.bias) if mid_norm else None
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout) if out_dropout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.swiglu:
            gate, up = self.c_fc(x).chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(self.c_fc(x))
        if self.ffn_mid_norm is not None:
            h = self.ffn_mid_norm(h)
        return self.dropout(self.c_proj(h))


# ---------------------------------------------------------------------------------------------- the model


class LMHead(nn.Linear):
    """The LM head over the padded vocabulary (`ModelConfig.pad_vocab_to`): the matmul keeps its aligned
    (padded) output width, then the logits of the padding ids are sliced off, so the loss, the softmax and
    sampling only ever see the real `vocab_size` ids. The padding rows get no gradient through the slice."""

    def __init__(self, n_embd: int, vocab_size: int, padded_vocab_size: int) -> None:
        super().__init__(n_embd, padded_vocab_size, bias=False)
        self.vocab_size = vocab_size

    def forward(self, x: Tensor) -> Tensor:
        logits = super().forward(x)  # (B, T, padded V)
        return logits if logits.size(-1) == self.vocab_size else logits[..., : self.vocab_size]  # (B, T, V)



def _xavier_rows_(linear: nn.Linear, sizes: list[int], gain: float = 1.0) -> None:
    """Xavier-uniform init of a fused Linear as the separate matrices it stacks along its rows (fused W_q, W_k,
    W_v: each its own fan-out), bias 0."""
    with torch.no_grad():
        for w in linear.weight.split(sizes, dim=0):
            nn.init.xavier_uniform_(w, gain=gain)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


class GPTBase(nn.Module):
    """Token embedding -> `blocks` -> final norm (if `final_norm`) -> LM head -> loss.

    A variant subclasses this, sets `Block` (a module class taking the config) and `final_norm`, and gets the
    rest: GPT-2 initialization, weight tying, z-loss / soft-capping, `num_params`, optimizer groups and
    `generate`. nGPT overrides more (it has no norms and scales its logits); see ngpt.py.
    """

    Block: type[nn.Module]
    final_norm: bool = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.padded_vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd) if not config.uses_rope else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([self.Block(config) for _ in range(config.n_layer)])
        self.ln_f = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias) if self.final_norm else None
        self.lm_head = LMHead(config.n_embd, config.vocab_size, config.padded_vocab_size)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        # fairseq and the original Transformer multiply the token embeddings by sqrt(d) (Vaswani et al. Sec.
        # 3.4): with their N(0, 1/d) init the residual stream starts at unit scale per element, GPT-2's at 0.02
        self.embed_scale = 1.0 if config.init == "gpt2" else math.sqrt(config.n_embd)
        self.init_weights()

    def init_weights(self) -> None:
        """Initialize every weight by `config.init`, the recipe of each variant's paper (norms: weight 1,
        bias 0; NormFormer's head and residual scales: 1, as constructed).

        gpt2     all matrices N(0, init_std), residual output projections (the `c_proj`s) init_std/sqrt(2L)
                 so the stream's variance does not grow with depth (Radford et al. 2019, Sec. 2.3)
        fairseq  `transformer_lm`, where NormFormer was trained: token and learned position embeddings and an
                 untied LM head N(0, d^-1/2); W_q, W_k, W_v Xavier-uniform with gain 1/sqrt(2) each, W_o
                 Xavier-uniform (`MultiheadAttention.reset_parameters`); FFN matrices torch's default
                 (`nn.Linear`: uniform +-1/sqrt(fan_in)); embeddings times sqrt(d) in `embed`
        xavier   the setting of Xiong et al.'s Theorem 1: every matrix Xavier-uniform (W_q, W_k, W_v and
                 SwiGLU's two input halves each as its own matrix), biases 0, token embeddings N(0, 1/d) times
                 sqrt(d) and learned positions N(0, 1): unit-variance inputs
        """
        config = self.config
        if config.init == "gpt2":
            self.apply(self._init_weights)
            for name, p in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    nn.init.normal_(p, mean=0.0, std=config.init_std / math.sqrt(2 * config.n_layer))
            return
        d_std = config.n_embd**-0.5
        qkv = [config.n_head * config.head_dim] + 2 * [config.kv_heads * config.head_dim]
        for module in self.modules():
            if isinstance(module, CausalSelfAttention):
                gain = 1 / math.sqrt(2) if config.init == "fairseq" else 1.0
                _xavier_rows_(module.c_attn, qkv, gain)
                _xavier_rows_(module.c_proj, [config.n_embd])
            elif isinstance(module, MLP):
                if config.init == "fairseq":
                    module.c_fc.reset_parameters()
                    module.c_proj.reset_parameters()
                else:
                    _xavier_rows_(module.c_fc, [config.mlp_hidden] * (2 if module.swiglu else 1))
                    _xavier_rows_(module.c_proj, [config.n_embd])
        nn.init.normal_(self.wte.weight, std=d_std)
        if self.wpe is not None:
            nn.init.normal_(self.wpe.weight, std=d_std if config.init == "fairseq" else 1.0)
        if not config.tie_embeddings:
            if config.init == "fairseq":
                nn.init.normal_(self.lm_head.weight, std=d_std)
            else:
                nn.init.xavier_uniform_(self.lm_head.weight)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    # -- forward pieces, overridable

    def check_input(self, idx: Tensor) -> None:
        """Fail with a clear message instead of an index error deep in an embedding (DESIGN.md §8). The id
        range check needs the values, so it runs only on CPU (on CUDA it would cost a host sync per step)."""
        if idx.dim() != 2 or idx.dtype not in (torch.int64, torch.int32):
            raise ModelInputError(f"idx must be an integer tensor of shape (B, T); got {tuple(idx.shape)} "
                                  f"{idx.dtype}")
        T = idx.size(1)
        if T > self.config.block_size:
            raise ModelInputError(f"sequence length {T} exceeds block_size={self.config.block_size}")
        if idx.device.type == "cpu" and idx.numel() and (idx.min() < 0 or idx.max() >= self.config.vocab_size):
            bad = idx[(idx < 0) | (idx >= self.config.vocab_size)][0].item()
            raise ModelInputError(f"token id {bad} is outside the vocabulary [0, {self.config.vocab_size})")

    def embed(self, idx: Tensor) -> Tensor:
        x = self.wte(idx)
        if self.embed_scale != 1.0:
            x = x * self.embed_scale
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(idx.size(1), device=idx.device))
        return self.drop(x)

    def head(self, x: Tensor) -> Tensor:
        if self.ln_f is not None:
            x = self.ln_f(x)
        return self.lm_head(x)

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """idx, targets: (B, T) token ids -> logits (B, T, V) and the mean loss (None without targets)."""
        self.check_input(idx)
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        logits = self.head(x)
        if self.config.logit_softcap:  # Gemma 2: c * tanh(z / c) bounds the logits to (-c, c)
            c = self.config.logit_softcap
            logits = c * torch.tanh(logits / c)
        return logits, (None if targets is None else self.loss(logits, targets))

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Cross-entropy (float32), plus the PaLM z-loss z_loss * mean(logsumexp(z)^2) when enabled: it keeps
        the softmax normalizer near 1 and the logits from drifting."""
        logits = logits.float().reshape(-1, logits.size(-1))  # reshape: padded-vocab logits are a slice
        loss = F.cross_entropy(logits, targets.reshape(-1))
        if self.config.z_loss:
            loss = loss + self.config.z_loss * torch.logsumexp(logits, dim=-1).square().mean()
        return loss

    # -- utilities

    def num_params(self) -> int:
        """Number of distinct parameters (a tied embedding counts once)."""
        return sum(p.numel() for p in self.parameters())

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: weight decay on matrices (dim >= 2), none on norms, biases and 1-D scales."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Autoregressive sampling; the context is cropped to the last `block_size` tokens."""
        if temperature <= 0:
            raise ModelInputError(f"temperature={temperature} must be > 0")
        if top_k is not None and top_k < 1:
            raise ModelInputError(f"top_k={top_k} must be >= 1")
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.block_size:])
            logits = logits[:, -1, :].float() / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            nxt = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx
