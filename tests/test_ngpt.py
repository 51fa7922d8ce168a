"""nGPT (minigpt/ngpt.py) checked against the equations of docs/design.md §3: unit norms, SLERP's closed form,
the bounded logits, the attention geometry and the scaled-parameter parametrization."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from minigpt import VARIANTS, ModelConfig, build_model
from minigpt.layers import l2_normalize
from minigpt.ngpt import GPT, ScaledParam, lerp_update, slerp

V, T, D = 32, 16, 32


def make(update: str = "lerp", **kw) -> GPT:
    torch.manual_seed(0)
    cfg = dict(variant="ngpt", vocab_size=V, block_size=T, n_layer=2, n_head=4, n_embd=D, ngpt_update=update)
    return build_model(ModelConfig(**{**cfg, **kw}))


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (4, T), generator=g), torch.randint(0, V, (4, T), generator=g)


def sphere_matrices(model: GPT) -> list[tuple[str, torch.Tensor, int]]:
    """Written out independently of the model's own list: (name, weight, dim along d_model)."""
    out = [("wte", model.wte.weight, 1), ("lm_head", model.lm_head.weight, 1)]
    for i, b in enumerate(model.blocks):
        out += [(f"{i}.c_attn", b.attn.c_attn.weight, 1), (f"{i}.attn.c_proj", b.attn.c_proj.weight, 0),
                (f"{i}.c_fc", b.mlp.c_fc.weight, 1), (f"{i}.mlp.c_proj", b.mlp.c_proj.weight, 0)]
    return out


def norm_error(w: torch.Tensor, dim: int) -> float:
    return (w.detach().norm(dim=dim) - 1).abs().max().item()


def train_steps(model: GPT, steps: int, lr: float = 1e-2) -> None:
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=lr)
    for s in range(steps):
        idx, tgt = batch(seed=s)
        model(idx, tgt)[1].backward()
        opt.step()
        opt.zero_grad()
        model.after_optimizer_step()


# ---------------------------------------------------------------------------------------- the model


def test_registry_and_ignored_options():
    assert VARIANTS["ngpt"] is GPT
    model = make()
    assert model.wpe is None and model.ln_f is None
    assert model.lm_head.weight is not model.wte.weight
    # options nGPT ignores build the same parameters (no biases, no norms, SwiGLU, untied)
    other = make(bias=True, qk_norm=True, mlp="gelu", tie_embeddings=True, norm="rmsnorm", init_std=0.5)
    assert not any(n.endswith("bias") for n, _ in other.named_parameters())
    assert [(n, p.shape) for n, p in model.named_parameters()] == [
        (n, p.shape) for n, p in other.named_parameters()]
    assert other.config.mlp == "gelu"  # the config is kept as given


@pytest.mark.parametrize("update", ["lerp", "slerp"])
def test_shapes_initial_loss_and_grads(update):
    model = make(update)
    idx, tgt = batch()
    logits, loss = model(idx, tgt)
    assert logits.shape == (4, T, V)
    assert model(idx)[1] is None
    assert abs(loss.item() - math.log(V)) < 0.15 * math.log(V)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_param_groups_no_weight_decay():
    model = make()
    groups = model.param_groups(0.1)
    assert all(g["weight_decay"] == 0.0 for g in groups)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_matrices_unit_norm_at_init():
    model = make()
    for name, w, dim in sphere_matrices(model):
        assert norm_error(w, dim) < 1e-5, name
    # the list is complete: every matrix of the model is on it (and every other parameter is a 1-D scale)
    listed = {id(w) for _, w, _ in sphere_matrices(model)}
    assert {id(p) for p in model.parameters() if p.dim() >= 2} == listed
    assert all(p.dim() == 1 for p in model.parameters() if id(p) not in listed)
    # the init is N(0, 1/d_model) then normalized: the directions are random, not a structured matrix
    cos = l2_normalize(model.wte.weight.detach()) @ l2_normalize(model.wte.weight.detach()).T
    assert cos.fill_diagonal_(0).abs().max() < 0.9


def test_after_optimizer_step_renormalizes():
    model = make()
    opt = torch.optim.AdamW(model.param_groups(0.0), lr=1e-2)
    idx, tgt = batch()
    model(idx, tgt)[1].backward()
    opt.step()
    errors = {name: norm_error(w, dim) for name, w, dim in sphere_matrices(model)}
    assert min(errors.values()) > 1e-3, errors  # the step moved every matrix off the sphere
    scales = {n: p.detach().clone() for n, p in model.named_parameters() if p.dim() == 1}
    model.after_optimizer_step()
    for name, w, dim in sphere_matrices(model):
        assert norm_error(w, dim) < 1e-5, name
    for n, p in model.named_parameters():  # 1-D scales are left alone
        if p.dim() == 1:
            assert torch.equal(p, scales[n]), n


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_after_optimizer_step_in_other_dtypes(dtype):
    """The in-place projection accumulates norms in at least float32, whatever the weights' dtype."""
    model = make().to(dtype)
    with torch.no_grad():
        for _, w, _ in sphere_matrices(model):
            w.mul_(torch.rand(w.shape, dtype=dtype) + 0.5)
    model.after_optimizer_step()
    for name, w, dim in sphere_matrices(model):
        assert norm_error(w.float(), dim) < (1e-6 if dtype == torch.float64 else 1e-2), name


@pytest.mark.parametrize("update", ["lerp", "slerp"])
def test_hidden_state_on_sphere(update):
    model = make(update)
    train_steps(model, 2)
    outs = []
    hooks = [b.register_forward_hook(lambda m, i, o: outs.append(o)) for b in model.blocks]
    h0 = model.embed(batch()[0])
    model(batch()[0])
    for hk in hooks:
        hk.remove()
    assert len(outs) == len(model.blocks)
    for h in [h0, *outs]:
        assert (h.detach().norm(dim=-1) - 1).abs().max() < 1e-5


@pytest.mark.parametrize("update", ["lerp", "slerp"])
def test_logits_bounded_by_s_z(update):
    model = make(update)
    for steps in (0, 3):
        train_steps(model, steps)
        logits, _ = model(batch()[0])
        s_z = model.s_z().detach().abs()
        assert (logits.detach().abs() <= s_z + 1e-5).all()
    assert s_z.std() > 0  # training moved s_z, so the bound is checked per logit, not against a constant


@pytest.mark.parametrize("update", ["lerp", "slerp"])
def test_block_equations(update):
    """The two updates, recomputed from the block's own sublayers; α has mixed signs (the update uses |α|)."""
    block = make(update).blocks[0]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for sp in (block.alpha_attn, block.alpha_mlp):
            sp.raw.copy_(torch.randn(D, generator=g) * sp.scale)
    h = l2_normalize(torch.randn(2, T, D, generator=g))
    a_attn, a_mlp = block.alpha_attn().abs(), block.alpha_mlp().abs()
    if update == "lerp":  # h ← Norm(h + |α| ⊙ (Norm(h_X) − h))
        step = lambda h, target, alpha: l2_normalize(h + alpha * (l2_normalize(target) - h))
    else:  # h ← SLERP(h, Norm(h_X); |α|), slerp itself checked against the closed form below
        step = lambda h, target, alpha: slerp(h, l2_normalize(target), alpha)
    want = step(h, block.attn(h), a_attn)
    want = step(want, block.mlp(want), a_mlp)
    assert torch.allclose(block(h), want, atol=1e-6)


def test_mlp_equation():
    mlp = make().blocks[0].mlp
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mlp.s_u.raw.uniform_(0.5, 2.0, generator=g)
        mlp.s_nu.raw.uniform_(0.5, 2.0, generator=g)
    h = l2_normalize(torch.randn(2, T, D, generator=g))
    W_u, W_nu = mlp.c_fc.weight.chunk(2, dim=0)
    # u = s_u ⊙ (W_u h), ν = s_ν ⊙ (W_ν h) · √d_model, h_M = W_o (u ⊙ SiLU(ν))
    u, nu = mlp.s_u() * (h @ W_u.T), mlp.s_nu() * (h @ W_nu.T) * math.sqrt(D)
    assert torch.allclose(mlp(h), (u * F.silu(nu)) @ mlp.c_proj.weight.T, atol=1e-6)


# ------------------------------------------------------------------------------------------ attention


@pytest.mark.parametrize("n_kv_head", [None, 2])
def test_attention_geometry(n_kv_head):
    model = make(n_kv_head=n_kv_head)
    attn = model.blocks[0].attn
    hd = D // 4
    assert attn.softmax_scale == pytest.approx(math.sqrt(hd))
    with torch.no_grad():
        attn.s_qk.raw.uniform_(0.05, 0.4)
    s = attn.s_qk().detach().view(4, 1, hd)
    q, k = torch.randn(2, 4, T, hd), torch.randn(2, attn.n_kv_head, T, hd)
    q2, k2 = attn.transform_qk(q, k)
    k_rep = k.repeat_interleave(4 // attn.n_kv_head, dim=1)
    k2_rep = k2.repeat_interleave(4 // attn.n_kv_head, dim=1)
    # returned as (q̂ ⊙ s_qk², k̂): both factors on q
    assert torch.allclose(q2, l2_normalize(q) * s**2, atol=1e-6)
    assert torch.allclose(k2, l2_normalize(k), atol=1e-6)
    # logit = √d_head · (Norm(q) ⊙ s_qk) · (Norm(k) ⊙ s_qk), the paper's form, per query head
    want = math.sqrt(hd) * torch.einsum("bhid,bhjd->bhij", l2_normalize(q) * s, l2_normalize(k_rep) * s)
    got = attn.softmax_scale * q2 @ k2_rep.transpose(-1, -2)
    assert torch.allclose(got, want, atol=1e-5)

    # the module's forward uses exactly these logits: recompute it by hand
    x = l2_normalize(torch.randn(2, T, D))
    qkv = attn.c_attn(x).split([D, attn.n_kv_head * hd, attn.n_kv_head * hd], dim=-1)
    q, k, v = (t.view(2, T, -1, hd).transpose(1, 2) for t in qkv)
    q, k = l2_normalize(attn.rotary(q)), l2_normalize(attn.rotary(k))
    k, v = (t.repeat_interleave(4 // attn.n_kv_head, dim=1) for t in (k, v))
    logits = math.sqrt(hd) * (q * s**2) @ k.transpose(-1, -2)
    logits = logits.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    y = (F.softmax(logits, dim=-1) @ v).transpose(1, 2).reshape(2, T, D)
    assert torch.allclose(attn(x), attn.c_proj(y), atol=1e-5)


# ------------------------------------------------------------------------------------- scaled params


def test_scaled_parameters():
    """Defaults of docs/design.md §3: every default scale is 1/√d_model (the reference's base_scale), whatever the
    vector's own length: s_z has vocab_size entries and still gets 1/√d_model, not 1/√V (vocab_size = 84 ≠ D
    here, so the two cannot coincide)."""
    model = make(vocab_size=84)
    b = model.blocks[0]
    r = 1 / math.sqrt(D)
    assert model.s_z.raw.shape == (84,) and b.mlp.s_u.raw.shape == b.mlp.s_nu.raw.shape == (128,)  # 8/3·32 -> 128
    assert b.attn.s_qk.raw.shape == b.alpha_attn.raw.shape == b.alpha_mlp.raw.shape == (D,)
    for sp, init, scale in [(b.alpha_attn, 0.05, r), (b.alpha_mlp, 0.05, r), (b.attn.s_qk, 1.0, r),
                            (b.mlp.s_u, 1.0, 1.0), (b.mlp.s_nu, 1.0, 1.0), (model.s_z, 1.0, r)]:
        assert torch.allclose(sp(), torch.full_like(sp.raw, init))
        assert torch.allclose(sp.raw, torch.full_like(sp.raw, scale))
    custom = make(ngpt_alpha_init=0.2, ngpt_alpha_scale=0.5, ngpt_sz_init=3.0, ngpt_sz_scale=0.1)
    assert torch.allclose(custom.blocks[1].alpha_mlp(), torch.full((D,), 0.2))
    assert torch.allclose(custom.blocks[1].alpha_mlp.raw, torch.full((D,), 0.5))
    assert torch.allclose(custom.s_z(), torch.full((V,), 3.0))
    # the effective step on the value is init/scale times the step on the raw parameter
    sp = ScaledParam(4, init=0.05, scale=0.5)
    sp().sum().backward()
    assert torch.allclose(sp.raw.grad, torch.full((4,), 0.1))


# ------------------------------------------------------------------------------------------------ SLERP


def plane(theta: float, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit a, b at angle theta and the unit u ⟂ a in their plane, in a random orientation."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    a, u = Q[:, 0], Q[:, 1]
    return a, math.cos(theta) * a + math.sin(theta) * u, u


@pytest.mark.parametrize("theta", [3e-4, 2e-3, 0.3, 1.5, 2.8, 3.1, math.pi - 2e-3, math.pi - 5e-4, math.pi - 1e-4])
@pytest.mark.parametrize("alpha", [0.05, 0.5, 0.9])
def test_slerp_closed_form(theta, alpha):
    """Against the float64 closed form. Near π float32 knows b's direction off a only to ~6e-8 / sin θ (b's
    own rounding, ~eps/2 per component, before slerp sees it), hence the tolerance."""
    a, b, u = plane(theta)
    want = math.cos(alpha * theta) * a + math.sin(alpha * theta) * u  # angle α·θ from a, towards b
    got = slerp(a.float(), b.float(), torch.full((16,), alpha))
    assert (got.double() - want).norm() < 1e-5 + 6e-8 / math.sin(theta)


def angle_moved(h: torch.Tensor, a: torch.Tensor) -> float:
    """The angle between h and a in float64 (atan2: accurate at small angles, where arccos is not)."""
    h, a = h.double(), a.double()
    cos = (h @ a).item()
    return math.atan2((h - cos * a).norm().item(), cos)


@pytest.mark.parametrize("fast", [True, False])
def test_slerp_moves_alpha_theta_continuously_up_to_pi_and_down_to_0(fast):
    """The angle moved is α·θ for every θ from 1e-7 to π − 2e-6 (no jump where sin θ crosses 1e-3, which the
    former LERP fallback near π had: 0 rad moved instead of 0.157), and at θ = π exactly h stays at a."""
    import minigpt.fast_cpu as fast_cpu

    before, fast_cpu.FAST_CPU_PATHS = fast_cpu.FAST_CPU_PATHS, fast
    try:
        alpha = 0.05
        deltas = torch.logspace(math.log10(3e-2), math.log10(2e-6), 40).tolist()
        for theta in [math.pi - d for d in deltas] + torch.logspace(-1.5, -7, 40).tolist():
            a, b, u = plane(theta)
            got = slerp(a.float(), b.float(), torch.full((16,), alpha))
            assert abs(angle_moved(got, a) - alpha * theta) < 2e-7 + 1e-8 / math.sin(theta), theta
            want = math.cos(alpha * theta) * a + math.sin(alpha * theta) * u
            assert (got.double() - want).norm() < 1e-5 + 1e-8 / math.sin(theta), theta
        a, _, _ = plane(1.0)
        a = a.float()
        assert torch.allclose(slerp(a, -a, torch.full((16,), alpha)), a, atol=1e-6)
    finally:
        fast_cpu.FAST_CPU_PATHS = before


def test_slerp_on_sphere_with_per_dim_alpha():
    g = torch.Generator().manual_seed(0)
    a, b = l2_normalize(torch.randn(3, 5, D, generator=g)), l2_normalize(torch.randn(3, 5, D, generator=g))
    out = slerp(a, b, torch.rand(D, generator=g))
    assert (out.norm(dim=-1) - 1).abs().max() < 1e-5


@pytest.mark.parametrize("case", ["equal", "nearly_equal", "opposite", "nearly_opposite"])
def test_slerp_finite_at_degenerate_angles(case):
    g = torch.Generator().manual_seed(0)
    a = l2_normalize(torch.randn(4, D, generator=g))
    noise = 1e-6 * torch.randn(4, D, generator=g)
    b = {"equal": a, "nearly_equal": a + noise, "opposite": -a, "nearly_opposite": -a + noise}[case]
    a, b = a.clone().requires_grad_(), l2_normalize(b).detach().requires_grad_()
    alpha = torch.full((D,), 0.05, requires_grad=True)
    out = slerp(a, b, alpha)
    assert torch.isfinite(out).all()
    assert (out.norm(dim=-1) - 1).abs().max() < 1e-5
    if case.endswith("equal") or case == "opposite":  # opposite: θ = π, the geodesic undefined: h stays
        assert torch.allclose(out, a, atol=1e-5)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    for t in (a, b, alpha):
        assert torch.isfinite(t.grad).all()


def test_lerp_agrees_with_slerp_to_first_order():
    """Both move from a along the same tangent, LERP at speed sin θ and SLERP at θ: so SLERP(α) equals
    LERP(α θ / sin θ) up to O(α²), and plain LERP(α) differs at first order unless θ is small."""
    theta = 1.2
    a, b, _ = plane(theta)
    a, b = a.float(), b.float()
    diff = {}
    for alpha in (1e-3, 1e-1):
        matched = torch.tensor(alpha * theta / math.sin(theta))
        diff[alpha] = (slerp(a, b, alpha) - lerp_update(a, b, matched)).norm().item()
        assert (slerp(a, b, alpha) - lerp_update(a, b, torch.tensor(alpha))).norm() > 0.1 * alpha
    assert diff[1e-3] < 1e-5 < diff[1e-1]
    a, b, _ = plane(0.01)  # small θ: plain LERP agrees, θ/sin θ ≈ 1
    a, b = a.float(), b.float()
    assert (slerp(a, b, 0.05) - lerp_update(a, b, torch.tensor(0.05))).norm() < 1e-6
