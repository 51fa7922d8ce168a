"""The init recipes of `ModelConfig.init` (gpt2 | fairseq | xavier) and NormFormer's dropout order."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from minigpt import build_model
from minigpt.config import ConfigError
from minigpt.placement import Placement, PlacementGPT

from .conftest import FAIR, tiny_config

D = 64  # conftest.TINY's n_embd


def make(variant: str, seed: int = 0, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(tiny_config(variant, **overrides))


def _bound(w: torch.Tensor) -> float:
    return w.abs().max().item()


def test_unknown_init_names_the_field_and_the_recipes():
    with pytest.raises(ConfigError, match=r"init='gpt3'.*gpt2, fairseq, xavier"):
        tiny_config("pre_ln", init="gpt3")


@pytest.mark.parametrize("variant", ["post_ln", "pre_ln", "normformer"])
def test_gpt2_recipe_is_gpt2s_init(variant):
    m = make(variant, **FAIR)
    assert m.embed_scale == 1.0
    std = m.config.init_std
    assert abs(m.wte.weight.std().item() / std - 1) < 0.05
    for blk in m.blocks:
        assert abs(blk.attn.c_attn.weight.std().item() / std - 1) < 0.05
        for proj in (blk.attn.c_proj, blk.mlp.c_proj):  # residual projections / sqrt(2L)
            assert abs(proj.weight.std().item() / (std / math.sqrt(2 * m.config.n_layer)) - 1) < 0.1


@pytest.mark.parametrize("variant", ["post_ln", "pre_ln", "normformer"])
def test_fairseq_recipe_is_transformer_lms(variant):
    m = make(variant, init="fairseq", **FAIR)
    assert m.embed_scale == math.sqrt(D)
    assert abs(m.wte.weight.std().item() * math.sqrt(D) - 1) < 0.05  # N(0, d^-1/2)
    assert abs(m.lm_head.weight.std().item() * math.sqrt(D) - 1) < 0.05
    idx = torch.randint(0, 84, (4, 32))
    with torch.no_grad():
        x = m.embed(idx)
    assert torch.equal(x, m.wte(idx) * math.sqrt(D))  # x sqrt(d) in the forward: unit scale per element
    assert abs(x.std().item() - 1) < 0.1
    for blk in m.blocks:
        # W_q, W_k, W_v each Xavier-uniform with gain 1/sqrt(2): bound sqrt(6 / (d + d)) / sqrt(2)
        for w in blk.attn.c_attn.weight.split(D, dim=0):
            assert 0.95 < _bound(w) / (math.sqrt(6 / (2 * D)) / math.sqrt(2)) <= 1
        assert 0.95 < _bound(blk.attn.c_proj.weight) / math.sqrt(6 / (2 * D)) <= 1
        # FFN: torch's nn.Linear default, uniform +-1/sqrt(fan_in), no 1/sqrt(2L)
        assert 0.95 < _bound(blk.mlp.c_fc.weight) * math.sqrt(D) <= 1
        hidden = blk.mlp.c_proj.weight.size(1)
        assert 0.95 < _bound(blk.mlp.c_proj.weight) * math.sqrt(hidden) <= 1


def test_xavier_recipe_is_xiong_et_als_setting():
    m = make("post_ln", init="xavier", position="learned", mlp="swiglu", bias=True, tie_embeddings=False)
    hidden = m.config.mlp_hidden
    assert abs(m.wpe.weight.std().item() - 1) < 0.05  # unit-variance inputs
    with torch.no_grad():
        assert abs(m.wte(torch.arange(84)).std().item() * m.embed_scale - 1) < 0.1
    for blk in m.blocks:
        for w in blk.attn.c_attn.weight.split(D, dim=0):  # each of W_q, W_k, W_v its own Xavier matrix
            assert 0.95 < _bound(w) / math.sqrt(6 / (2 * D)) <= 1
        for w in blk.mlp.c_fc.weight.split(hidden, dim=0):  # SwiGLU's W_1 and W_3
            assert 0.95 < _bound(w) / math.sqrt(6 / (D + hidden)) <= 1
        assert 0.95 < _bound(blk.mlp.c_proj.weight) / math.sqrt(6 / (D + hidden)) <= 1
        assert torch.equal(blk.attn.c_attn.bias, torch.zeros_like(blk.attn.c_attn.bias))


def test_ngpt_ignores_the_recipe():
    a, b = make("ngpt", seed=3), make("ngpt", seed=3, init="fairseq")
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert torch.equal(a.embed(torch.arange(10)[None]), b.embed(torch.arange(10)[None]))


@pytest.mark.parametrize("init,lo,hi", [("gpt2", 10, 1000), ("fairseq", 0.3, 3)])
def test_post_attention_norm_output_against_the_stream(init, lo, hi):
    """What notebook 02 teaches: NormFormer's N_attn makes the attention output unit-scale per element
    whatever the stream's scale, so on GPT-2's 0.02-scale stream it dwarfs the token embedding (ratio ~50),
    on fairseq's unit-scale stream it is comparable (ratio ~1)."""
    m = make("normformer", init=init, **FAIR)
    blk = m.blocks[0]
    with torch.no_grad():
        x = m.embed(torch.randint(0, 84, (4, 32)))
        branch = blk.post_attn_norm(blk.attn(blk.ln_1(x)))
    ratio = (branch.norm(dim=-1) / x.norm(dim=-1)).mean().item()
    assert lo < ratio < hi


def _attn_branch(model: nn.Module, x_idx: torch.Tensor) -> torch.Tensor:
    """x' - x of the first block (what the attention branch adds), captured in one training-mode forward."""
    blk = model.blocks[0]
    seen = {}
    h1 = blk.ln_1.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    h2 = blk.ln_2.register_forward_pre_hook(lambda mod, args: seen.setdefault("x1", args[0]))
    try:
        model(x_idx)
    finally:
        h1.remove()
        h2.remove()
    return seen["x1"] - seen["x"]


@pytest.mark.parametrize("build", ["normformer", "placement"])
@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_normformer_dropout_comes_after_the_post_attention_norm(build, norm):
    """fairseq: x = attn_ln(attn(x)); x = dropout(x); x = residual + x. After the norm, dropout zeroes a
    fraction p of what is added and scales the rest by 1/(1-p): per token, rms = 1/sqrt(1-p) (1.41 at p=0.5).
    Before it, the norm rescales the dropped-out output back to rms 1 (and LayerNorm's centering leaves no
    entry at 0): the dropout's scaling undone."""
    cfg = tiny_config("normformer", norm=norm, dropout=0.5, norm_eps=1e-12, **FAIR)  # exact norms
    torch.manual_seed(0)
    model = build_model(cfg) if build == "normformer" else PlacementGPT(cfg, Placement.preset("normformer", norm))
    model.train()
    with torch.no_grad():
        branch = _attn_branch(model, torch.randint(0, 84, (4, 32)))
    zeros = (branch == 0).float().mean().item()
    rms = branch.square().mean(-1).sqrt().mean().item()
    assert 0.4 < zeros < 0.6 and 1.3 < rms < 1.55


def test_placement_normformer_with_dropout_is_the_variant_file():
    """Same weights and the same RNG state: the playground's NormFormer draws the same dropout masks in
    the same order as normformer.py, so the two agree in training mode too."""
    cfg = tiny_config("normformer", dropout=0.3, **FAIR)
    torch.manual_seed(0)
    ref = build_model(cfg)
    pg = PlacementGPT(cfg, Placement.preset("normformer"))
    pg.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randint(0, 84, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.manual_seed(5)
        a, _ = ref(x)
        torch.manual_seed(5)
        b, _ = pg(x)
        torch.manual_seed(6)
        c, _ = pg(x)
    assert (a - b).abs().max() < 1e-6 and (a - c).abs().max() > 1e-3
