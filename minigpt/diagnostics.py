"""Measurements on a model: gradients, activations, attention and the hypersphere. Pure functions: each takes
a model (and a batch) and returns plain data (lists / dicts / tensors); plotting lives in plots.py.

Layer-wise quantities follow the papers' figures: Xiong et al. 2020 (Fig. 3) and NormFormer (Fig. 2) plot the
Frobenius norm of the gradient of each layer's weights against depth; the nGPT paper (Sec. 4, App.) plots norms
of embeddings, condition numbers of attention matrices and the learned scaling factors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The four weight matrices of a block, by their names in every variant (attention W_qkv / W_o, FFN W_1 / W_2).
WEIGHTS = {"attn_qkv": "attn.c_attn.weight", "attn_out": "attn.c_proj.weight",
           "ffn_in": "mlp.c_fc.weight", "ffn_out": "mlp.c_proj.weight"}


# ------------------------------------------------------------------------------------------- gradients


def layer_grad_norms(model: nn.Module) -> dict[str, list[float]]:
    """||dL/dW||_F of each block's attention and FFN weights, from the `.grad`s currently on the model
    (call after `backward()`; the trainer's `on_step` hooks run exactly there). {name: [per layer]}."""
    out: dict[str, list[float]] = {k: [] for k in WEIGHTS}
    for block in model.blocks:
        params = dict(block.named_parameters())
        for key, name in WEIGHTS.items():
            g = params[name].grad
            out[key].append(float("nan") if g is None else g.float().norm().item())
    return out


def gradient_norms(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> dict[str, list[float]]:
    """Per-layer gradient norms averaged over `batches` (each batch: its own backward, its own norms).

    Leaves the model's `.grad`s cleared and its train/eval mode unchanged."""
    was_training = model.training
    model.train()
    sums: dict[str, list[float]] | None = None
    n = 0
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        norms = layer_grad_norms(model)
        sums = norms if sums is None else {k: [a + b for a, b in zip(sums[k], norms[k], strict=True)] for k in sums}
        n += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    if sums is None:
        raise ValueError("gradient_norms needs at least one batch")
    return {k: [v / n for v in vals] for k, vals in sums.items()}


def early_late_ratio(per_layer: Sequence[float]) -> float:
    """Mean gradient norm of the first half of the layers over the last half (NormFormer's imbalance: > 1
    means early layers get larger gradients)."""
    h = len(per_layer) // 2
    if h == 0:
        raise ValueError("early_late_ratio needs at least two layers")
    return (sum(per_layer[:h]) / h) / (sum(per_layer[-h:]) / h)


# ----------------------------------------------------------------------------------------- activations


@contextmanager
def _hooks(modules: Sequence[nn.Module], fn, pre: bool = False):
    handles = [(m.register_forward_pre_hook(fn(i)) if pre else m.register_forward_hook(fn(i)))
               for i, m in enumerate(modules)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def residual_norms(model: nn.Module, x: Tensor) -> list[float]:
    """Mean L2 norm (over batch and positions) of the residual stream entering block 0 and leaving each block:
    L + 1 numbers. Pre-LN's grows with depth; post-LN's is pinned by its norms; nGPT's is exactly 1."""
    norms: list[float] = [0.0] * (len(model.blocks) + 1)

    def inp(i):
        def hook(m, args):
            if i == 0:
                norms[0] = args[0].float().norm(dim=-1).mean().item()
        return hook

    def out(i):
        def hook(m, args, o):
            norms[i + 1] = o.float().norm(dim=-1).mean().item()
        return hook

    with _hooks(model.blocks, inp, pre=True), _hooks(model.blocks, out):
        model(x)
    return norms


@torch.no_grad()
def hidden_states(model: nn.Module, x: Tensor) -> list[Tensor]:
    """The residual stream entering block 0 and leaving each block: L + 1 tensors (B, T, C)."""
    states: list[Tensor] = [torch.empty(0)] * (len(model.blocks) + 1)

    def inp(i):
        def hook(m, args):
            if i == 0:
                states[0] = args[0].detach().float()
        return hook

    def out(i):
        def hook(m, args, o):
            states[i + 1] = o.detach().float()
        return hook

    with _hooks(model.blocks, inp, pre=True), _hooks(model.blocks, out):
        model(x)
    return states


@torch.no_grad()
def sublayer_output_norms(model: nn.Module, x: Tensor) -> dict[str, list[float]]:
    """Mean L2 norm of what each attention and FFN sublayer outputs, per layer (before any post-sublayer norm
    and before the residual add): how much each block writes into the stream."""
    out: dict[str, list[float]] = {"attn": [0.0] * len(model.blocks), "ffn": [0.0] * len(model.blocks)}

    def rec(key):
        def make(i):
            def hook(m, args, o):
                out[key][i] = o.float().norm(dim=-1).mean().item()
            return hook
        return make

    with _hooks([b.attn for b in model.blocks], rec("attn")), _hooks([b.mlp for b in model.blocks], rec("ffn")):
        model(x)
    return out


def attention_logits(attn: nn.Module, h: Tensor) -> Tensor:
    """Recompute the attention logits (B, nh, T, T), the softmax's input, of a `CausalSelfAttention` (or
    subclass) from its input `h`, with the module's own projections, RoPE, q/k transform and softmax scale;
    positions a query may not see (the future) are -inf. SDPA never materializes them, so diagnostics rebuild
    them."""
    B, T, _ = h.shape
    nh, nkv, hd = attn.n_head, attn.n_kv_head, attn.head_dim
    q, k, _ = attn.c_attn(h).split([nh * hd, nkv * hd, nkv * hd], dim=-1)
    q = q.view(B, T, nh, hd).transpose(1, 2)
    k = k.view(B, T, nkv, hd).transpose(1, 2)
    if attn.rotary is not None:
        q, k = attn.rotary(q), attn.rotary(k)
    q, k = attn.transform_qk(q, k)
    k = k.repeat_interleave(nh // nkv, dim=1)
    scale = attn.softmax_scale if attn.softmax_scale is not None else hd**-0.5
    scores = (q.float() @ k.float().transpose(-2, -1)) * scale
    mask = torch.ones(T, T, dtype=torch.bool, device=h.device).tril()
    return scores.masked_fill(~mask, float("-inf"))


def attention_probs(attn: nn.Module, h: Tensor) -> Tensor:
    """The attention pattern (B, nh, T, T): the softmax of `attention_logits`."""
    return F.softmax(attention_logits(attn, h), dim=-1)


@torch.no_grad()
def logit_bounds(model: nn.Module, x: Tensor) -> dict[str, float]:
    """What the modern block's stability ingredients bound, on the token ids `x`: `max_attn_logit`, the
    largest |attention logit| over every block, head and visible position (QK-norm bounds it);
    `max_logit`, the largest |output logit| after any soft-cap (soft-capping bounds it); `mean_log_z`, the
    mean of log Z = logsumexp(logits) over positions (z-loss pulls it toward 0)."""
    inputs: list[Tensor] = []
    was_training = model.training
    model.eval()
    with _hooks([b.attn for b in model.blocks], lambda i: lambda m, a: inputs.append(a[0]), pre=True):
        logits, _ = model(x)
    model.train(was_training)
    attn = max(attention_logits(b.attn, h).nan_to_num(neginf=0.0).abs().max().item()
               for b, h in zip(model.blocks, inputs, strict=True))
    logits = logits.float()
    return {"max_attn_logit": attn, "max_logit": logits.abs().max().item(),
            "mean_log_z": torch.logsumexp(logits, dim=-1).mean().item()}


@torch.no_grad()
def attention_entropy(model: nn.Module, x: Tensor) -> Tensor:
    """Mean entropy (nats) of each head's attention distribution, (L, n_head). Uniform attention over t
    previous tokens has entropy ln t; a head that always looks at one token has 0."""
    ents: list[Tensor] = [torch.empty(0)] * len(model.blocks)

    def make(i):
        def hook(m, args):
            p = attention_probs(m, args[0])
            ents[i] = -(p * p.clamp_min(1e-12).log()).sum(-1).mean(dim=(0, 2))
        return hook

    with _hooks([b.attn for b in model.blocks], make, pre=True):
        model(x)
    return torch.stack(ents)


# ----------------------------------------------------------------------------------------- hypersphere


def row_norms(weight: Tensor) -> Tensor:
    """L2 norm of each row (each token's embedding vector for an embedding / LM-head matrix)."""
    return weight.detach().float().norm(dim=1)


def pairwise_cosines(vectors: Tensor, max_vectors: int = 2000, seed: int = 0) -> Tensor:
    """Cosine similarity of every distinct pair among (a seeded subsample of at most `max_vectors` of) the
    rows; returns a 1-D tensor of n(n-1)/2 values for a histogram."""
    v = vectors.detach().float()
    if v.size(0) > max_vectors:
        idx = torch.randperm(v.size(0), generator=torch.Generator().manual_seed(seed))[:max_vectors]
        v = v[idx]
    u = F.normalize(v, dim=1)
    sims = u @ u.T
    i, j = torch.triu_indices(len(u), len(u), offset=1)
    return sims[i, j]


def condition_number(matrix: Tensor) -> float:
    """Ratio of the largest to the smallest singular value (inf if singular)."""
    s = torch.linalg.svdvals(matrix.detach().double())
    return float(s[0] / s[-1]) if s[-1] > 0 else float("inf")


def embedding_condition_number(weight: Tensor) -> float:
    """Condition number of the embedding covariance E^T E / V: how anisotropic the embedding cloud is."""
    e = weight.detach().double()
    return condition_number(e.T @ e / e.size(0))


def attention_condition_numbers(model: nn.Module) -> Tensor:
    """Condition number of each head's W_q W_k^T (d_head x d_head... from the (d_head, C) row blocks), shape
    (L, n_head); the nGPT paper (Fig. 7) reports these are far lower (better conditioned) for nGPT."""
    out = []
    for block in model.blocks:
        a = block.attn
        nh, nkv, hd = a.n_head, a.n_kv_head, a.head_dim
        w = a.c_attn.weight.detach().double()
        wq = w[: nh * hd].view(nh, hd, -1)
        wk = w[nh * hd: (nh + nkv) * hd].view(nkv, hd, -1).repeat_interleave(nh // nkv, dim=0)
        out.append(torch.tensor([condition_number(wq[h] @ wk[h].T) for h in range(nh)]))
    return torch.stack(out)


@dataclass
class SphereProjection:
    """3-D coordinates of hidden states for drawing on a sphere: `points[l, i]` is the direction of token i
    after layer l (l = 0 is the embedding), h / ||h||, projected on the 3 principal axes and **not**
    re-normalized: a unit direction that the 3 axes describe fully lands on the unit sphere, one they miss
    lands inside it, at the norm they keep (`kept`). `norms[l, i]` is ||h|| itself (nGPT: 1; pre-LN: grows),
    which a sphere cannot show. `explained` is the share of variance the 3 principal components keep."""

    points: Tensor  # (L + 1, n_tokens, 3)
    explained: float
    norms: Tensor | None = None  # (L + 1, n_tokens)

    @property
    def kept(self) -> Tensor:
        """(L + 1, n_tokens): the norm of each projected unit direction, the share the 3 axes keep (<= 1)."""
        return self.points.norm(dim=-1)


def sphere_projection(states: Sequence[Tensor]) -> SphereProjection:
    """PCA of the directions of a set of hidden states (all layers' states of a few tokens, stacked) onto 3
    components.

    `states`: L + 1 tensors (n_tokens, C). Each state is divided by its norm (its direction; for nGPT a no-op),
    the principal axes are fitted on all of them together (uncentered, since directions from the origin are
    what a sphere shows) so one layer's move is comparable to another's, and the projections are kept as they
    are: re-normalizing them would put any model's states on the sphere."""
    raw = torch.stack([s.float() for s in states])  # (L+1, n, C)
    x = F.normalize(raw, dim=-1)
    flat = x.reshape(-1, x.size(-1)).double()
    _, s, vh = torch.linalg.svd(flat, full_matrices=False)
    proj = (flat @ vh[:3].T).float()
    explained = float((s[:3] ** 2).sum() / (s**2).sum())
    return SphereProjection(proj.view(x.size(0), x.size(1), 3), explained, raw.norm(dim=-1))


def step_angles(states: Sequence[Tensor]) -> Tensor:
    """(L, n_tokens): the angle (radians) by which block l turns each token's hidden state, between the state
    entering it and the state leaving it. `states`: L + 1 tensors (n_tokens, C), as `sphere_projection`."""
    x = F.normalize(torch.stack([s.double() for s in states]), dim=-1)  # (L+1, n, C)
    cos = (x[:-1] * x[1:]).sum(-1)
    sin = torch.linalg.vector_norm(x[1:] - cos[..., None] * x[:-1], dim=-1)  # atan2: exact for tiny angles too
    return torch.atan2(sin, cos).float()


def ngpt_scalars(model: nn.Module) -> dict[str, list[Tensor]]:
    """The effective learned nGPT scale vectors, per layer: alpha_attn, alpha_mlp (the eigen learning rates),
    s_qk, s_u, s_nu; and s_z (one entry). Empty for models without them (the other variants)."""
    if not hasattr(model, "s_z"):
        return {}
    paths = {"alpha_attn": "alpha_attn", "alpha_mlp": "alpha_mlp", "s_qk": "attn.s_qk", "s_u": "mlp.s_u",
             "s_nu": "mlp.s_nu"}
    out: dict[str, list[Tensor]] = {k: [] for k in paths}
    for block in model.blocks:
        for key, path in paths.items():
            out[key].append(block.get_submodule(path)().detach().float().cpu())
    out["s_z"] = [model.s_z().detach().float().cpu()]
    return out


def unigram_entropy(tokens: Sequence[int] | Tensor | np.ndarray, vocab_size: int) -> float:
    """Entropy (nats) of the token frequencies: the loss of a model that has learned which tokens are common
    and nothing about context. A run whose loss sits there has learned letter frequencies only."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64).ravel(), minlength=vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
