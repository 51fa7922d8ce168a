"""Properties every variant must have, and the placement facts of post-LN, pre-LN and NormFormer."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from minigpt import VARIANTS, build_model
from minigpt.layers import ModelInputError, Rotary

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


@pytest.mark.parametrize("block", BLOCKS)
def test_post_ln_block_outputs_are_normalized(block):
    """Post-LN: each block ends with LayerNorm(x' + FFN(x')), so every position of every block's output has
    mean 0 and variance 1 (the affine weight is 1 and bias 0 at init)."""
    model = make("post_ln", norm="layernorm", **block)
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


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("variant", ["pre_ln", "normformer"])
def test_final_norm_is_what_the_head_reads(variant, block):
    """logits = W_out · N(x_L): the final norm is not just present but applied to the last block's output
    (its affine parameters are moved off their init so that skipping it, or applying it twice, shows)."""
    model = make(variant, **block)
    with torch.no_grad():
        model.ln_f.weight.uniform_(0.5, 1.5)
        if model.ln_f.bias is not None:
            model.ln_f.bias.uniform_(-0.5, 0.5)
    x = batch()[0]
    last = _block_outputs(model, x)[-1]
    with torch.no_grad():
        logits, _ = model(x)
        want = model.lm_head(model.ln_f(last))
        assert torch.allclose(logits, want, atol=1e-6)
        assert (logits - model.lm_head(last)).abs().max() > 1e-2  # without the norm: another function


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
    with torch.no_grad():  # off their init, so that e.g. swapping ln_1 and ln_2 (both identity at init) shows
        for p in pre.parameters():
            p.add_(0.1 * torch.randn_like(p))
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
        # per head, before W_o: with W_o = I the output is concat_i(head_i); then gamma_i scales head i's slice
        W_o = attn.c_proj.weight.clone()
        attn.c_proj.weight.copy_(torch.eye(64))
        attn.head_scale.fill_(1.0)
        heads = attn(x)
        attn.head_scale.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
        attn.c_proj.weight.copy_(W_o)
        gamma = attn.head_scale.repeat_interleave(64 // attn.n_head)
        assert torch.allclose(attn(x), (heads * gamma) @ W_o.T, atol=1e-5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bad_inputs_raise_clear_errors(variant):
    model = make(variant)
    with pytest.raises(ModelInputError, match="block_size=32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ModelInputError, match="token id 84"):
        model(torch.full((1, 4), 84, dtype=torch.long))
    with pytest.raises(ModelInputError, match="token id -1"):
        model(torch.full((1, 4), -1, dtype=torch.long))


# ------------------------------------------------------------------------- block ingredients (config flags)
# Each flag of issue #3's list must exist and change what the model computes in the way its name says.

CLASSIC = ["post_ln", "pre_ln", "normformer"]  # the variants built from layers.py's norms and MLP


def _same_weights(dst: nn.Module, src: nn.Module) -> nn.Module:
    dst.load_state_dict(src.state_dict(), strict=True)
    return dst


@pytest.mark.parametrize("variant", CLASSIC)
def test_norm_option_selects_layernorm_or_rmsnorm(variant):
    ln = make(variant, norm="layernorm", bias=False)
    rms = _same_weights(make(variant, norm="rmsnorm", bias=False), ln)  # same parameter names and shapes
    n_norms = {"post_ln": 2, "pre_ln": 2, "normformer": 4}[variant] * 2 + (variant != "post_ln")
    assert sum(isinstance(m, nn.RMSNorm) for m in rms.modules()) == n_norms
    assert not any(isinstance(m, nn.LayerNorm) for m in rms.modules())
    assert sum(isinstance(m, nn.LayerNorm) for m in ln.modules()) == n_norms
    assert not any(isinstance(m, nn.RMSNorm) for m in ln.modules())
    x = batch()[0]
    with torch.no_grad():
        assert (ln(x)[0] - rms(x)[0]).abs().max() > 1e-3
    if variant == "post_ln":  # RMSNorm pins the mean square of each position to 1, not its mean to 0
        outs = _block_outputs(rms, x)
        for out in outs:
            assert (out.square().mean(-1) - 1).abs().max() < 1e-3
        assert max(o.mean(-1).abs().max().item() for o in outs) > 1e-2


def test_mlp_option_gelu_or_swiglu():
    x = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(0))
    gelu = make("pre_ln", mlp="gelu").blocks[0].mlp
    assert gelu.c_fc.weight.shape == (4 * 64, 64)
    with torch.no_grad():
        assert torch.allclose(gelu(x), gelu.c_proj(F.gelu(gelu.c_fc(x))), atol=1e-6)
    model = make("pre_ln", mlp="swiglu")
    swiglu = model.blocks[0].mlp
    hidden = 64 * math.ceil(8 * 64 / 3 / 64)  # 8/3 d = 170.7 rounded up to a multiple of 64
    assert hidden == model.config.mlp_hidden == 192
    assert swiglu.c_fc.weight.shape == (2 * hidden, 64) and swiglu.c_proj.weight.shape == (64, hidden)
    W1, W3 = swiglu.c_fc.weight.chunk(2, dim=0)
    b1, b3 = swiglu.c_fc.bias.chunk(2)
    with torch.no_grad():  # W2 · (silu(W1 x) ⊙ W3 x)
        want = swiglu.c_proj(F.silu(x @ W1.T + b1) * (x @ W3.T + b3))
        assert torch.allclose(swiglu(x), want, atol=1e-6)


@pytest.mark.parametrize("variant", CLASSIC)
def test_bias_option_adds_exactly_the_biases(variant):
    with_b, without = make(variant, bias=True, mlp="gelu"), make(variant, bias=False, mlp="gelu")
    assert not [n for n, _ in without.named_parameters() if n.endswith("bias")]
    cfg, d = with_b.config, with_b.config.n_embd
    # per block: c_attn 3d, attn c_proj d, c_fc 4d, mlp c_proj d, and one bias per LayerNorm
    n_norms = {"post_ln": 2, "pre_ln": 2, "normformer": 3}[variant]  # of size d (NormFormer: + post-attn)
    norm_extra = cfg.mlp_hidden if variant == "normformer" else 0  # NormFormer's FFN mid norm has size 4d
    per_block = 3 * d + d + 4 * d + d + n_norms * d + norm_extra
    final = 0 if variant == "post_ln" else d
    assert with_b.num_params() - without.num_params() == cfg.n_layer * per_block + final


def test_rope_is_a_norm_preserving_relative_rotation():
    rot = Rotary(16, 32)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)
    Q, K = rot(q.expand(1, 1, 32, 16)), rot(k.expand(1, 1, 32, 16))  # the same vectors at positions 0..31
    assert torch.allclose(Q.norm(dim=-1), q.norm(dim=-1).expand(1, 1, 32), atol=1e-5)
    dots = (Q[0, 0] @ K[0, 0].T)  # dots[m, n] = <R_m q, R_n k>: a function of m - n only
    for offset in (0, 3, -5):
        diag = torch.diagonal(dots, offset)
        assert torch.allclose(diag, diag[0].expand_as(diag), atol=1e-4), offset
    assert (torch.diagonal(dots, 0)[0] - torch.diagonal(dots, 3)[0]).abs() > 1e-3


@pytest.mark.parametrize("variant", CLASSIC)
def test_position_option_learned_or_rope(variant):
    learned, rope = make(variant, position="learned"), make(variant, position="rope")
    assert learned.wpe is not None and learned.wpe.weight.shape == (32, 64)
    assert all(b.attn.rotary is None for b in learned.blocks)
    assert rope.wpe is None and all(isinstance(b.attn.rotary, Rotary) for b in rope.blocks)
    assert learned.num_params() - rope.num_params() == 32 * 64
    # with learned positions and no RoPE, permuting the position table changes the logits; RoPE logits
    # change when the same tokens sit at other positions although there is no position table at all
    x = batch()[0]
    with torch.no_grad():
        base = learned(x)[0]
        learned.wpe.weight.copy_(learned.wpe.weight.flip(0))
        assert (learned(x)[0] - base).abs().max() > 1e-4
        seq = torch.full((1, 32), 7)
        seq[0, 0] = 3
        out = rope(seq)[0][0]  # positions 1..31 all hold token 7 after a 3: only attention sees the position
        assert (out[1] - out[31]).abs().max() > 1e-4


@pytest.mark.parametrize("variant", CLASSIC)
def test_qk_norm_makes_attention_invariant_to_the_scale_of_q_and_k(variant):
    """With QK-norm the logits see only the direction of each q, k head: scaling W_q and W_k by 7 leaves the
    model unchanged; without it the same scaling sharpens the softmax and changes the logits."""
    x = torch.randn(2, 32, 64, generator=torch.Generator().manual_seed(0))
    for qk_norm in (True, False):  # a tiny eps: the norm is then scale-invariant to float precision
        model = make(variant, qk_norm=qk_norm, norm_eps=1e-12, **FAIR)
        attn = model.blocks[0].attn
        assert hasattr(attn, "q_norm") == qk_norm
        with torch.no_grad():
            before = attn(x)
            attn.c_attn.weight[: 2 * 64].mul_(7.0)  # the W_q and W_k rows (n_kv_head = n_head)
            change = ((attn(x) - before).abs().max() / before.abs().max()).item()  # relative
        if qk_norm:
            assert attn.q_norm.weight.shape == attn.k_norm.weight.shape == (16,) and change < 1e-5, change
        else:
            assert change > 1e-2, change


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_z_loss_adds_its_term_and_only_to_the_loss(variant):
    c = 1e-2
    plain = make(variant)
    zl = _same_weights(make(variant, z_loss=c), plain)
    x, y = batch()
    logits, loss = plain(x, y)
    logits_z, loss_z = zl(x, y)
    assert torch.equal(logits, logits_z)
    lse = torch.logsumexp(logits.float(), dim=-1)
    assert torch.allclose(loss_z - loss, c * lse.square().mean(), rtol=1e-5, atol=1e-7)
    assert (loss_z - loss).item() > 1e-3
    loss.backward()
    loss_z.backward()
    assert (zl.lm_head.weight.grad - plain.lm_head.weight.grad).abs().max() > 1e-6


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_logit_softcap_is_c_tanh_z_over_c(variant):
    plain = make(variant)
    x = batch()[0]
    with torch.no_grad():
        raw = plain(x)[0]
    c = 0.5 * raw.abs().max().item()  # a cap that bites on the largest logits
    capped = _same_weights(make(variant, logit_softcap=c), plain)
    with torch.no_grad():
        got = capped(x)[0]
    assert torch.allclose(got, c * torch.tanh(raw / c), atol=1e-6)
    assert got.abs().max() < c and (got - raw).abs().max() > 0.1 * c


def _mha_twin(gqa: nn.Module) -> nn.Module:
    """The multi-head model whose key/value heads are copies of the GQA model's shared heads."""
    cfg = gqa.config
    mha = build_model(dataclasses.replace(cfg, n_kv_head=None))
    state = gqa.state_dict()
    hd, group = cfg.head_dim, cfg.n_head // cfg.kv_heads
    for i in range(cfg.n_layer):
        key = f"blocks.{i}.attn.c_attn.weight"
        q, k, v = state[key].split([cfg.n_head * hd, cfg.kv_heads * hd, cfg.kv_heads * hd])
        k, v = (t.view(cfg.kv_heads, hd, -1).repeat_interleave(group, dim=0).reshape(cfg.n_head * hd, -1)
                for t in (k, v))
        state[key] = torch.cat([q, k, v])
    mha.load_state_dict(state, strict=True)
    return mha


@pytest.mark.parametrize("n_kv_head", [2, 1])  # GQA, MQA
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_n_kv_head_shares_key_value_heads(variant, n_kv_head):
    gqa = make(variant, n_kv_head=n_kv_head, **FAIR)
    hd = gqa.config.head_dim
    assert gqa.blocks[0].attn.c_attn.weight.shape == ((4 + 2 * n_kv_head) * hd, 64)
    mha = _mha_twin(gqa)
    assert mha.num_params() - gqa.num_params() == gqa.config.n_layer * 2 * (4 - n_kv_head) * hd * 64
    x = batch()[0]
    with torch.no_grad():
        assert torch.allclose(gqa(x)[0], mha(x)[0], atol=1e-5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_dropout_acts_in_training_mode_only(variant):
    plain = make(variant)
    drop = _same_weights(make(variant, dropout=0.2), plain)
    x = batch()[0]
    with torch.no_grad():
        drop.eval()
        assert torch.equal(drop(x)[0], plain(x)[0])
        drop.train()
        torch.manual_seed(0)
        a = drop(x)[0]
        b = drop(x)[0]
    assert (a - b).abs().max() > 1e-3 and (a - plain(x)[0]).abs().max() > 1e-3


@pytest.mark.parametrize("variant", CLASSIC)
def test_tie_embeddings_shares_one_matrix(variant):
    tied, untied = make(variant, tie_embeddings=True), make(variant, tie_embeddings=False)
    assert tied.lm_head.weight is tied.wte.weight
    assert untied.lm_head.weight is not untied.wte.weight
    assert untied.num_params() - tied.num_params() == 84 * 64
    # One matrix, two uses: its gradient is the sum of what an untied model with the same values gets in
    # its embedding and in its head.
    state = tied.state_dict()
    state["lm_head.weight"] = state["wte.weight"].clone()
    untied.load_state_dict(state, strict=True)
    x, y = batch()
    tied(x, y)[1].backward()
    untied(x, y)[1].backward()
    want = untied.wte.weight.grad + untied.lm_head.weight.grad
    assert torch.allclose(tied.wte.weight.grad, want, atol=1e-6)
    assert untied.wte.weight.grad.abs().max() > 1e-6  # both parts are there, not just the head's
