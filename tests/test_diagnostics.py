"""diagnostics.py measured against hand-built cases with known answers, and against the properties of the
variants that the notebooks show (each test can fail: a wrong norm, a missing hook or a swapped layer order
breaks it)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from minigpt import build_model
from minigpt import diagnostics as D
from minigpt.experiments import xavier_init_

from .conftest import FAIR, tiny_config


def batch(B: int = 4, T: int = 32, V: int = 84, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, V, (B, T + 1), generator=g)
    return data[:, :-1], data[:, 1:]


def make(variant: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_model(tiny_config(variant, **overrides))


# ------------------------------------------------------------------------------------------- gradients


def test_gradient_norms_average_per_batch_norms_and_clean_up():
    model = make("pre_ln", **FAIR)
    model.eval()
    batches = [batch(seed=s) for s in range(3)]
    per_batch = []
    for x, y in batches:
        model.zero_grad()
        model(x, y)[1].backward()
        per_batch.append(D.layer_grad_norms(model))
    avg = D.gradient_norms(model, batches)
    assert set(avg) == set(D.WEIGHTS)
    for key in avg:
        assert len(avg[key]) == model.config.n_layer
        want = [sum(b[key][i] for b in per_batch) / 3 for i in range(model.config.n_layer)]
        assert avg[key] == pytest.approx(want, rel=1e-5)
    # an independent recomputation of one entry: ||dL/dW||_F of block 1's FFN input matrix, batch 0
    model.zero_grad()
    model(*batches[0])[1].backward()
    assert per_batch[0]["ffn_in"][1] == pytest.approx(model.blocks[1].mlp.c_fc.weight.grad.norm().item(), rel=1e-6)
    model.zero_grad()
    D.gradient_norms(model, batches)
    assert all(p.grad is None for p in model.parameters()), "gradient_norms must leave no gradients behind"
    assert not model.training, "gradient_norms must restore eval mode"


def test_layer_grad_norms_without_backward_are_nan():
    model = make("pre_ln")
    assert all(math.isnan(v) for vals in D.layer_grad_norms(model).values() for v in vals)


def test_early_late_ratio():
    assert D.early_late_ratio([4.0, 4.0, 1.0, 1.0]) == pytest.approx(4.0)
    assert D.early_late_ratio([1.0, 9.0, 3.0]) == pytest.approx(1.0 / 3.0)  # odd L: the middle layer is left out
    with pytest.raises(ValueError):
        D.early_late_ratio([1.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_post_ln_tilts_gradient_toward_the_output_relative_to_pre_ln(seed):
    """Xiong et al. 2020 (Fig. 3), in their setting (Xavier init, unit-variance embeddings, GELU FFN): at
    init the last/first-layer ratio of the FFN gradient is larger for post-LN than for pre-LN, and pre-LN's
    early layers get the larger gradients (ratio < 1; notebook 01 shows why)."""
    ratios = {}
    for variant in ("post_ln", "pre_ln"):
        model = xavier_init_(make(variant, seed=seed, n_layer=6, mlp="gelu", tie_embeddings=False))
        g = D.gradient_norms(model, [batch(B=8, seed=s) for s in range(2)])
        ratios[variant] = g["ffn_in"][-1] / g["ffn_in"][0]
    assert ratios["post_ln"] > 1.15 * ratios["pre_ln"], ratios
    assert ratios["pre_ln"] < 1.0, ratios


# ----------------------------------------------------------------------------------------- activations


def test_ngpt_residual_norms_are_one():
    model = make("ngpt")
    x, y = batch()
    norms = D.residual_norms(model, x)
    assert len(norms) == model.config.n_layer + 1
    assert norms == pytest.approx([1.0] * len(norms), abs=1e-4)
    # still on the sphere after some training, every token and layer (not just on average)
    opt = torch.optim.AdamW(model.param_groups(0.0), lr=1e-2)
    for _ in range(3):
        model(x, y)[1].backward()
        opt.step()
        opt.zero_grad()
        model.after_optimizer_step()
    for h in D.hidden_states(model, x):
        assert (h.norm(dim=-1) - 1).abs().max() < 1e-4


def test_pre_ln_residual_norm_grows_with_depth():
    model = make("pre_ln", n_layer=4, **FAIR)
    norms = D.residual_norms(model, batch()[0])
    assert all(b > a for a, b in zip(norms, norms[1:], strict=False)), norms


def test_post_ln_residual_norm_is_pinned_by_its_norms():
    model = make("post_ln", bias=False)  # LayerNorm without bias: output norm sqrt(d) (minus eps) per token
    norms = D.residual_norms(model, batch()[0])
    assert norms[1:] == pytest.approx([math.sqrt(model.config.n_embd)] * model.config.n_layer, rel=1e-3)


def test_hidden_states_are_what_the_head_reads():
    model = make("pre_ln")
    x, _ = batch()
    states = D.hidden_states(model, x)
    assert len(states) == model.config.n_layer + 1
    assert torch.allclose(states[0], model.wte(x) + model.wpe(torch.arange(x.size(1))))
    logits, _ = model(x)
    assert torch.allclose(model.lm_head(model.ln_f(states[-1])), logits, atol=1e-5)
    assert torch.allclose(model.blocks[0](states[0]), states[1], atol=1e-6)


def test_sublayer_output_norms_match_a_manual_pass():
    model = make("pre_ln")
    x, _ = batch()
    got = D.sublayer_output_norms(model, x)
    with torch.no_grad():
        h = model.embed(x)
        for i, blk in enumerate(model.blocks):
            a = blk.attn(blk.ln_1(h))
            assert got["attn"][i] == pytest.approx(a.norm(dim=-1).mean().item(), rel=1e-5)
            h = h + a
            f = blk.mlp(blk.ln_2(h))
            assert got["ffn"][i] == pytest.approx(f.norm(dim=-1).mean().item(), rel=1e-5)
            h = h + f


# ------------------------------------------------------------------------------------------- attention


@pytest.mark.parametrize("variant,opts", [("pre_ln", {}), ("pre_ln", {"n_kv_head": 2, **FAIR}),
                                          ("ngpt", {}), ("ngpt", {"n_kv_head": 1})])
def test_attention_probs_reproduce_the_modules_output(variant, opts):
    """The recomputed pattern, applied to the module's own values, gives the module's output: the same
    RoPE, q/k transform (nGPT's normalization and s_qk), softmax scale and GQA grouping."""
    model = make(variant, **opts)
    attn = model.blocks[0].attn
    h = torch.randn(2, 16, model.config.n_embd, generator=torch.Generator().manual_seed(0))
    p = D.attention_probs(attn, h)
    B, T, _ = h.shape
    assert p.shape == (B, attn.n_head, T, T)
    assert torch.allclose(p.sum(-1), torch.ones(B, attn.n_head, T), atol=1e-5)
    assert torch.all(p.triu(1) == 0), "attention must be causal"
    v = attn.c_attn(h)[..., (attn.n_head + attn.n_kv_head) * attn.head_dim:]
    v = v.view(B, T, attn.n_kv_head, attn.head_dim).transpose(1, 2).repeat_interleave(
        attn.n_head // attn.n_kv_head, dim=1)
    y = (p @ v).transpose(1, 2).reshape(B, T, -1)
    with torch.no_grad():
        assert torch.allclose(attn.c_proj(y), attn(h), atol=1e-5)


def test_uniform_attention_has_entropy_ln_t():
    """With W_q = W_k = 0 every score is 0, so position t attends uniformly to t tokens: entropy ln t; the
    per-head value is the mean over positions, (1/T) sum_t ln t."""
    model = make("pre_ln", n_layer=2)
    with torch.no_grad():
        for blk in model.blocks:
            blk.attn.c_attn.weight[: 2 * model.config.n_embd].zero_()
            blk.attn.c_attn.bias[: 2 * model.config.n_embd].zero_()
    T = 32
    ent = D.attention_entropy(model, batch(T=T)[0])
    assert ent.shape == (model.config.n_layer, model.config.n_head)
    want = sum(math.log(t) for t in range(1, T + 1)) / T
    assert torch.allclose(ent, torch.full_like(ent, want), atol=1e-5)


def test_peaked_attention_has_low_entropy():
    model = make("pre_ln", n_layer=1)
    x = batch()[0]
    before = D.attention_entropy(model, x).mean()
    with torch.no_grad():
        model.blocks[0].attn.c_attn.weight.mul_(200.0)  # scores x 40000: (near) one-hot attention
    after = D.attention_entropy(model, x).mean()
    assert after < 0.25 * before


# ----------------------------------------------------------------------------------------- hypersphere


def test_pairwise_cosines_of_orthonormal_and_repeated_rows():
    q, _ = torch.linalg.qr(torch.randn(16, 8, generator=torch.Generator().manual_seed(0)))
    rows = q.T * torch.arange(1.0, 9.0)[:, None]  # orthogonal rows of different lengths: cosine ignores length
    cos = D.pairwise_cosines(rows)
    assert cos.shape == (8 * 7 // 2,)
    assert cos.abs().max() < 1e-5
    same = D.pairwise_cosines(torch.ones(5, 3) * torch.arange(1.0, 6.0)[:, None])
    assert torch.allclose(same, torch.ones(10))
    assert len(D.pairwise_cosines(torch.randn(50, 4), max_vectors=10)) == 45


def test_condition_numbers():
    assert D.condition_number(torch.eye(5)) == pytest.approx(1.0)
    assert D.condition_number(torch.diag(torch.tensor([1.0, 2.0, 4.0]))) == pytest.approx(4.0)
    assert D.condition_number(torch.tensor([[1.0, 0.0], [0.0, 0.0]])) == math.inf
    # E with orthogonal columns of lengths s: E^T E / V = diag(s^2) / V -> condition (max s / min s)^2
    q, _ = torch.linalg.qr(torch.randn(10, 3, generator=torch.Generator().manual_seed(1)))
    e = q * torch.tensor([1.0, 2.0, 3.0])
    assert D.embedding_condition_number(e) == pytest.approx(9.0, rel=1e-6)


def test_attention_condition_numbers_shape_and_identity_case():
    model = make("pre_ln", n_kv_head=2, **FAIR)
    cfg = model.config
    with torch.no_grad():
        for blk in model.blocks:
            w = blk.attn.c_attn.weight
            w.zero_()
            for h in range(cfg.n_head):  # W_q of head h = W_k of its kv group = the same (hd, C) selector
                w[h * cfg.head_dim:(h + 1) * cfg.head_dim].copy_(torch.eye(cfg.n_embd)[:cfg.head_dim])
            for k in range(cfg.kv_heads):
                off = (cfg.n_head + k) * cfg.head_dim
                w[off:off + cfg.head_dim].copy_(torch.eye(cfg.n_embd)[:cfg.head_dim] * 3.0)
    cond = D.attention_condition_numbers(model)
    assert cond.shape == (cfg.n_layer, cfg.n_head)
    assert torch.allclose(cond, torch.ones_like(cond, dtype=cond.dtype))
    assert torch.all(D.attention_condition_numbers(make("pre_ln")) > 1.0)


def test_sphere_projection_is_not_renormalized():
    """Directions the 3 axes miss land inside the sphere (not pushed onto it); the states' norms are kept."""
    g = torch.Generator().manual_seed(0)
    states = [3.0 * (i + 1) * torch.randn(5, 16, generator=g) for i in range(4)]
    proj = D.sphere_projection(states)
    assert proj.points.shape == (4, 5, 3)
    assert (proj.kept <= 1 + 1e-5).all() and proj.kept.min() < 0.9  # 16-d random directions: 3 axes miss much
    assert torch.allclose(proj.norms, torch.stack([s.norm(dim=-1) for s in states]))
    assert 0.0 < proj.explained <= 1.0
    # states that span only 3 directions keep all their variance, and the projection preserves angles
    basis, _ = torch.linalg.qr(torch.randn(16, 3, generator=g))
    coords = [F.normalize(torch.randn(5, 3, generator=g), dim=-1) for _ in range(4)]
    flat = D.sphere_projection([c @ basis.T for c in coords])
    assert flat.explained == pytest.approx(1.0, abs=1e-6)
    gram_in = torch.cat(coords) @ torch.cat(coords).T
    gram_out = flat.points.reshape(-1, 3) @ flat.points.reshape(-1, 3).T
    assert torch.allclose(gram_in, gram_out, atol=1e-5)
    assert torch.allclose(flat.kept, torch.ones(4, 5), atol=1e-5)  # nothing missed: on the unit sphere


def test_step_angles():
    """The angle between consecutive states of each token, exact for right angles and tiny ones."""
    e = torch.eye(4)
    states = [e[:2], torch.stack([e[1], e[1]]), torch.stack([e[1], 5.0 * (e[1] + 1e-4 * e[2])])]
    ang = D.step_angles(states)
    assert ang.shape == (2, 2)
    assert ang[0, 0].item() == pytest.approx(math.pi / 2) and ang[0, 1].item() == pytest.approx(0.0, abs=1e-7)
    assert ang[1, 1].item() == pytest.approx(1e-4, rel=1e-3)  # scale-free: the norm 5 does not matter


def test_row_norms_of_ngpt_embeddings_are_one():
    model = make("ngpt")
    assert torch.allclose(D.row_norms(model.wte.weight), torch.ones(model.config.vocab_size), atol=1e-5)
    assert not torch.allclose(D.row_norms(make("pre_ln").wte.weight), torch.ones(84), atol=1e-2)


def test_ngpt_scalars_are_the_effective_values():
    assert D.ngpt_scalars(make("pre_ln")) == {}
    model = make("ngpt")
    s = D.ngpt_scalars(model)
    assert set(s) == {"alpha_attn", "alpha_mlp", "s_qk", "s_u", "s_nu", "s_z"}
    cfg = model.config
    assert len(s["alpha_attn"]) == cfg.n_layer and len(s["s_z"]) == 1
    # at init each effective scale is its configured init, whatever its storage scale (docs/design.md §3)
    assert torch.allclose(s["alpha_attn"][0], torch.full((cfg.n_embd,), cfg.ngpt_alpha_init))
    assert torch.allclose(s["s_qk"][1], torch.full((cfg.n_embd,), cfg.ngpt_sqk_init))
    hidden = model.blocks[0].mlp.c_proj.in_features
    assert torch.allclose(s["s_u"][0], torch.full((hidden,), cfg.ngpt_suv_init))
    assert torch.allclose(s["s_z"][0], torch.full((cfg.vocab_size,), cfg.ngpt_sz_init))
