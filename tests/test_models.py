"""Properties every variant must have, and the placement facts of post-LN, pre-LN and NormFormer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from minigpt import VARIANTS, build_model
from minigpt.layers import ModelInputError

from .conftest import FAIR, tiny_config

VARIANT_CASES = [(v, {}) for v in VARIANTS] + [("ngpt", {"ngpt_update": "slerp"})]
IDS = [v if not o else f"{v}-{o['ngpt_update']}" for v, o in VARIANT_CASES]
BLOCKS = [pytest.param({}, id="gpt2-block"), pytest.param(FAIR, id="fair-block")]


def batch(B: int = 4, T: int = 32, V: int = 84, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, V, (B, T + 1), generator=g)
    return data[:, :-1], data[:, 1:]


def make(variant: str, seed: int = 0, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(tiny_config(variant, **overrides))


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("variant,opts", VARIANT_CASES, ids=IDS)
def test_shapes_initial_loss_and_finite_grads(variant, opts, block):
    model = make(variant, **opts, **block)
    x, y = batch()
    logits, loss = model(x, y)
    assert logits.shape == (4, 32, 84)
    # A model at init should be close to a uniform guess: ln(V) within 15%.
    assert abs(loss.item() - math.log(84)) < 0.15 * math.log(84), loss.item()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads), "a parameter got no gradient"
    assert all(torch.isfinite(g).all() for g in grads)
    logits_only, no_loss = model(x)
    assert no_loss is None and torch.equal(logits_only, logits)


def _overfit_losses(variant: str, opts: dict, steps: int, seed: int = 0) -> list[float]:
    model = make(variant, seed=seed, **opts, **FAIR)
    # nGPT trains with its own recipe (higher LR, no weight decay); both are the presets' choices.
    lr = 1e-2 if variant == "ngpt" else 3e-3
    opt = torch.optim.AdamW(model.param_groups(0.0), lr=lr, betas=(0.9, 0.95))
    x, y = batch(seed=seed)
    losses = []
    for _ in range(steps):
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if hasattr(model, "after_optimizer_step"):
            model.after_optimizer_step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("variant,opts", VARIANT_CASES, ids=IDS)
def test_overfits_one_batch(variant, opts):
    losses = _overfit_losses(variant, opts, steps=60)
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize("variant,opts", VARIANT_CASES, ids=IDS)
def test_same_seed_same_losses_bitwise(variant, opts):
    a = _overfit_losses(variant, opts, steps=20, seed=3)
    b = _overfit_losses(variant, opts, steps=20, seed=3)
    assert a == b
    c = _overfit_losses(variant, opts, steps=20, seed=4)
    assert a != c, "a different seed must change the run"


def _block_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    outs: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda m, i, o: outs.append(o.detach())) for b in model.blocks]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return outs


def test_post_ln_block_outputs_are_normalized():
    """Post-LN: each block ends with LayerNorm(x' + FFN(x')), so every position of every block's output has
    mean 0 and variance 1 (the affine weight is 1 and bias 0 at init)."""
    model = make("post_ln", norm="layernorm")
    assert model.ln_f is None, "post-LN has no final norm"
    outs = _block_outputs(model, batch()[0])
    for out in outs:
        assert out.mean(-1).abs().max() < 1e-5
        assert (out.var(-1, unbiased=False) - 1).abs().max() < 1e-3


def test_pre_ln_has_final_norm_and_unnormalized_stream():
    model = make("pre_ln", norm="layernorm")
    assert isinstance(model.ln_f, nn.LayerNorm)
    outs = _block_outputs(model, batch()[0])
    # The stream is a sum of an embedding (std 0.02) and block outputs: far from unit variance, and its
    # per-position mean is not pinned to zero.
    for out in outs:
        assert (out.var(-1, unbiased=False) - 1).abs().min() > 0.5
    assert max(o.mean(-1).abs().max().item() for o in outs) > 1e-4
    # ...and it grows with depth.
    norms = [o.norm(dim=-1).mean().item() for o in outs]
    assert norms[-1] > norms[0]


def _normformer_extra_params(cfg) -> int:
    """The exact size of NormFormer's three operations per block, for the configured norm:
    head scales (n_head), post-attention norm (n_embd), FFN mid norm (mlp_hidden); a LayerNorm has a weight
    and, with bias, a bias; an RMSNorm only a weight."""
    per_norm = 2 if (cfg.norm == "layernorm" and cfg.bias) else 1
    return cfg.n_layer * (cfg.n_head + per_norm * (cfg.n_embd + cfg.mlp_hidden))


@pytest.mark.parametrize("block", BLOCKS + [pytest.param({"norm": "rmsnorm", **FAIR}, id="rms-fair")])
def test_normformer_param_overhead_is_exactly_three_ops(block):
    pre = make("pre_ln", **block)
    nf = make("normformer", **block)
    assert nf.num_params() - pre.num_params() == _normformer_extra_params(nf.config)
    assert nf.num_params() / pre.num_params() - 1 < 0.05  # a few tenths of a percent at real scale


@pytest.mark.parametrize("block", BLOCKS)
def test_normformer_reduces_to_pre_ln(block):
    """With the head scales at 1 and the two extra norms replaced by identity, NormFormer computes exactly
    pre-LN's function from the same weights: the placement is 'pre-LN + three ops' and nothing else."""
    pre = make("pre_ln", seed=1, **block)
    nf = make("normformer", seed=2, **block)
    missing, unexpected = nf.load_state_dict(pre.state_dict(), strict=False)
    assert not unexpected
    assert all(k.endswith(("head_scale", "post_attn_norm.weight", "post_attn_norm.bias",
                           "ffn_mid_norm.weight", "ffn_mid_norm.bias")) for k in missing), missing
    x, _ = batch()
    with torch.no_grad():
        ref, _ = pre(x)
        full, _ = nf(x)
        assert (full - ref).abs().max() > 1e-3, "the three ops must change the function"
        for blk in nf.blocks:
            assert torch.equal(blk.attn.head_scale, torch.ones_like(blk.attn.head_scale))
            blk.post_attn_norm = nn.Identity()
            blk.mlp.ffn_mid_norm = None
        reduced, _ = nf(x)
    assert (reduced - ref).abs().max() < 1e-6


def test_normformer_resid_scale_is_optional_and_per_dim():
    nf = make("normformer", resid_scale=True)
    base = make("normformer")
    assert nf.num_params() - base.num_params() == nf.config.n_layer * nf.config.n_embd
    assert all(torch.equal(b.lambda_resid.weight, torch.ones(64)) for b in nf.blocks)


def test_head_scale_multiplies_each_head_before_the_output_projection():
    nf = make("normformer", **FAIR)
    attn = nf.blocks[0].attn
    x = torch.randn(2, 8, 64)
    with torch.no_grad():
        y1 = attn(x)
        attn.head_scale.zero_()
        assert attn(x).abs().max() == 0  # no bias: zero heads -> zero output
        attn.head_scale.fill_(2.0)
        assert torch.allclose(attn(x), 2 * y1, atol=1e-6)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bad_inputs_raise_clear_errors(variant):
    model = make(variant)
    with pytest.raises(ModelInputError, match="block_size=32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ModelInputError, match="token id 84"):
        model(torch.full((1, 4), 84, dtype=torch.long))
    with pytest.raises(ModelInputError, match="token id -1"):
        model(torch.full((1, 4), -1, dtype=torch.long))
