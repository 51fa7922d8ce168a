"""minigpt/experiments/ and plots.py at a minuscule budget: every experiment runs end to end on a 2-layer, 32-wide
model for a handful of steps and returns well-formed data; the pure helpers (speedup, divergence detection,
angles) are checked on hand-built inputs with known answers. The science itself is asserted, at a real
budget, by the notebooks."""

from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure

from minigpt import ModelConfig, build_model, plots
from minigpt import experiments as E
from minigpt.config import VARIANT_NAMES, ConfigError, get_preset
from minigpt.experiments._common import _val_ce
from minigpt.experiments.hypersphere import _angle
from minigpt.experiments.lr_stability import _rise_index
from minigpt.experiments.scale import CPU_THREADS

PRESET = "cpu-tiny"
TINY = dict(n_layer=2, n_embd=32, n_head=2, block_size=32, batch_size=4, eval_batches=2, progress=False)



@pytest.fixture(scope="module")
def depth():
    return E.grad_norms_vs_depth(PRESET, steps=6, n_batches=2, **TINY)


@pytest.fixture(scope="module")
def sphere():
    return E.hypersphere(PRESET, steps=6, n_tokens=4, **TINY)


@pytest.fixture(scope="module")
def race_result():
    return E.race(PRESET, steps=8, eval_interval=2, **TINY)


def _check_figure(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    fig.canvas.draw()  # renders: catches bad data and broken LaTeX in labels


# ------------------------------------------------------------------------------------ gradients vs depth


def test_grad_norms_vs_depth(depth):
    assert depth.variants == list(VARIANT_NAMES) and depth.n_layer == 2 and depth.steps == 6
    for when in ("init", "trained"):
        for v in VARIANT_NAMES:
            for k in E.WEIGHTS:
                g = depth.grads[when][v][k]
                assert len(g) == 2 and all(math.isfinite(x) and x > 0 for x in g)
            assert len(depth.residual[when][v]) == 3
            assert set(depth.sublayer[when][v]) == {"attn", "ffn"}
        assert depth.residual[when]["ngpt"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)
    for v in VARIANT_NAMES:
        assert all(len(depth.ratio_history[v][k]) == 6 for k in E.WEIGHTS)
        g = depth.grads["init"][v]["ffn_in"]
        assert depth.last_first(v, "ffn_in") == pytest.approx(g[-1] / g[0])
        assert depth.early_late(v, "ffn_in", "init") == pytest.approx(g[0] / g[1])
        assert math.isfinite(depth.val_loss[v])
    # training moved the weights, so the trained gradients differ from the ones at init
    assert depth.grads["trained"]["pre_ln"]["ffn_in"] != depth.grads["init"]["pre_ln"]["ffn_in"]
    assert "post_ln" in depth.table()
    for fig in (plots.plot_grad_norms(depth), plots.plot_grad_ratio_history(depth),
                plots.plot_residual_norms(depth)):
        _check_figure(fig)


def test_init_only_and_xavier():
    default = E.grad_norms_vs_depth(PRESET, ("post_ln",), steps=0, n_batches=1, **TINY)
    xavier = E.grad_norms_vs_depth(PRESET, ("post_ln",), steps=0, n_batches=1, init="xavier", **TINY)
    assert list(default.grads) == ["init"] and not default.ratio_history
    assert xavier.init == "xavier"
    assert xavier.grads["init"]["post_ln"]["ffn_in"] != default.grads["init"]["post_ln"]["ffn_in"]
    with pytest.raises(ConfigError):
        E.grad_norms_vs_depth(PRESET, steps=0, init="kaiming", **TINY)
    with pytest.raises(ConfigError, match="ngpt_update"):  # hypersphere runs both updates itself
        E.hypersphere(PRESET, steps=1, ngpt_update="slerp", **TINY)
    with pytest.raises(ConfigError, match="n_layr"):  # a misspelled override names itself
        E.race(PRESET, steps=1, n_layr=2, **TINY)


def test_xavier_init():
    torch.manual_seed(0)
    cfg = ModelConfig(variant="post_ln", vocab_size=84, block_size=32, n_layer=2, n_head=2, n_embd=32,
                      tie_embeddings=False)
    model = E.xavier_init_(build_model(cfg))
    assert model.wte.weight.std().item() == pytest.approx(1.0, rel=0.1)
    w = model.blocks[0].mlp.c_fc.weight
    bound = math.sqrt(6.0 / (w.size(0) + w.size(1)))
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.9 * bound
    assert torch.count_nonzero(model.blocks[0].mlp.c_fc.bias) == 0


# ------------------------------------------------------------------------------------------------ warmup


def test_warmup_ablation():
    r = E.warmup_ablation(PRESET, steps=6, warmup_steps=3, lr=2e-3, **TINY)
    assert [(c.variant, c.warmup_steps) for c in r.runs] == [("post_ln", 3), ("post_ln", 0), ("pre_ln", 3),
                                                               ("pre_ln", 0)]
    assert all(c.lr == 2e-3 and len(c.losses) == 6 and c.val and c.val[-1][0] == 6 for c in r.runs)
    warm, cold = r.get("post_ln", True), r.get("post_ln", False)
    # same init and data: the first loss (before any update) is identical; the updates then differ
    assert warm.losses[0] == cold.losses[0] and warm.losses[1:] != cold.losses[1:]
    assert math.isfinite(warm.final_val) and math.isfinite(warm.final_train)
    _check_figure(plots.plot_warmup(r))


# ----------------------------------------------------------------------------------------- LR stability


def test_lr_stability_schedule_and_forced_divergence():
    r = E.lr_stability(PRESET, ("pre_ln", "ngpt"), lr_start=1e-5, lr_end=1e3, steps=16, **TINY)
    assert r.growth == pytest.approx((1e3 / 1e-5) ** (1 / 15))
    for v, sweep in r.runs.items():
        assert sweep.lrs[0] == pytest.approx(1e-5)
        ratios = [b / a for a, b in zip(sweep.lrs, sweep.lrs[1:], strict=False)]
        assert ratios == pytest.approx([r.growth] * len(ratios))
        assert len(sweep.losses) == len(sweep.lrs) <= 16
        # an LR of up to 1000 must break every variant, and the run says where and why
        assert sweep.diverged_lr is not None and sweep.reason, v
        assert sweep.diverged_lr == sweep.lrs[sweep.diverged_step - 1]
        assert r.divergence_lr(v) == sweep.diverged_lr
        assert sweep.best_lr <= sweep.diverged_lr
    assert "LR at divergence" in r.table()
    _check_figure(plots.plot_lr_stability(r))


def test_lr_stability_without_divergence():
    r = E.lr_stability(PRESET, ("pre_ln",), lr_start=1e-6, lr_end=1e-5, steps=5, **TINY)
    assert r.runs["pre_ln"].diverged_lr is None and r.divergence_lr("pre_ln") == math.inf
    assert len(r.runs["pre_ln"].lrs) == 5


def test_rise_detection():
    flat_then_up = [4.0, 3.5, 3.0, 2.5, 2.4, 2.4, 2.45, 2.5, 2.7, 3.0, 3.3, 3.6, 3.9, 4.2, 4.5]
    i = _rise_index(flat_then_up, 0.1)
    assert i is not None and flat_then_up[i] > 1.1 * 2.4
    assert _rise_index([4.0, 3.0, 2.0, 1.5, 1.4, 1.3, 1.2, 1.1], 0.1) is None
    spike = [3.0, 2.9, 2.8, 9.0, 2.7, 2.6, 2.5, 2.4, 2.3]  # one bad batch is not a divergence
    assert _rise_index(spike, 0.1) is None


# ------------------------------------------------------------------------------------------------- race


def _run(label: str, val: list[tuple[int, float]]) -> E.RaceRun:
    return E.RaceRun(label, label, 1e-3, 0, val, [], 1.0)


def test_steps_to_reach_and_speedup_on_hand_built_curves():
    curve = [(10, 3.0), (20, 2.0), (30, 1.0)]
    assert E.steps_to_reach(curve, 3.5) == 10.0
    assert E.steps_to_reach(curve, 2.5) == pytest.approx(15.0)
    assert E.steps_to_reach(curve, 1.0) == pytest.approx(30.0)
    assert E.steps_to_reach(curve, 0.5) == math.inf
    base, fast = _run("pre_ln", [(10, 3.0), (20, 2.0)]), _run("ngpt", [(10, 2.5), (20, 1.5)])
    s = E.speedup(base, fast)
    assert s.challenger_reached_baseline and s.target == 2.0
    assert (s.baseline_steps, s.challenger_steps) == (20.0, pytest.approx(15.0))
    assert s.factor == pytest.approx(4 / 3)
    slow = E.speedup(base, _run("ngpt", [(10, 3.5), (20, 2.5)]))  # never gets to 2.0: target is its 2.5
    assert not slow.challenger_reached_baseline and slow.target == 2.5
    assert slow.factor == pytest.approx(15 / 20)


def test_race(race_result):
    r = race_result
    assert list(r.runs) == list(VARIANT_NAMES) and r.block_size == 32 and r.batch_size == 4
    for run in r.runs.values():
        assert [s for s, _ in run.val] == [2, 4, 6, 8]
        secs = [t for t, _ in run.wall]
        assert len(secs) == 4 and all(b > a > 0 for a, b in zip(secs, secs[1:], strict=False))
        assert [v for _, v in run.wall] == [v for _, v in run.val]
        assert run.params > 0 and run.ms_per_step > 0 and math.isfinite(run.final_val)
    sp = r.speedup
    assert sp is not None and (sp.baseline, sp.challenger) == ("pre_ln", "ngpt")
    assert 0 < sp.baseline_steps <= 8 and 0 < sp.challenger_steps <= 8 and sp.factor > 0
    assert "speedup" in r.table()
    _check_figure(plots.plot_race(r))


def test_race_over_seeds_has_bands_and_seed_one_is_the_plain_race(race_result):
    """seeds=2: each variant keeps both seeds' runs, which differ (another init and batch order); the mean lies
    within the band; seed 0 is exactly the plain race's run (same val curve, same speedup) and seed 1 exactly
    a plain race at seed + 1. The figure draws one band per variant."""
    pair = ("pre_ln", "ngpt")
    r = E.race(PRESET, pair, steps=8, eval_interval=2, seeds=2, **TINY)
    seed = get_preset(PRESET).train.seed
    next_seed = E.race(PRESET, pair, steps=8, eval_interval=2, seed=seed + 1, **TINY)
    assert r.seeds == 2 and len(r.seed_speedups) == 2 and r.speedup is not None
    for v in pair:
        run, (s0, s1) = r.runs[v], r.runs[v].per_seed
        assert s0.val == race_result.runs[v].val and s1.val == next_seed.runs[v].val
        assert s0.val != s1.val
        assert [s for s, _ in run.val] == [2, 4, 6, 8]
        for (_, mean), (_, lo, hi) in zip(run.val, run.band, strict=True):
            assert lo <= mean <= hi and lo < hi
    assert r.seed_speedups[0].factor == race_result.speedup.factor
    assert r.seed_speedups[1].factor == next_seed.speedup.factor
    lo, hi = r.speedup_range
    assert lo == min(s.factor for s in r.seed_speedups) and hi == max(s.factor for s in r.seed_speedups)
    assert "per seed" in r.table() and "per seed" not in race_result.table()
    fig = plots.plot_race(r)
    assert len(fig.axes[0].collections) == 2  # one fill_between band per variant
    _check_figure(fig)
    assert not plots.plot_race(race_result).axes[0].collections  # one seed: no band
    with pytest.raises(ConfigError, match="seeds=0"):
        E.race(PRESET, pair, steps=1, seeds=0, **TINY)


def test_speedup_vs_context():
    tiny = {k: v for k, v in TINY.items() if k not in ("block_size", "batch_size")}
    points = E.speedup_vs_context(PRESET, context_lengths=(16, 32), steps=4, tokens_per_step=128, **tiny)
    assert [(p.block_size, p.batch_size) for p in points] == [(16, 8), (32, 4)]
    assert all(set(p.runs) == {"pre_ln", "ngpt"} and p.speedup is not None for p in points)
    _check_figure(plots.plot_speedup_vs_context(points))


# ------------------------------------------------------------------------------------------- hypersphere


def test_hypersphere(sphere):
    r = sphere
    assert r.labels == ["pre_ln", "ngpt-lerp", "ngpt-slerp"]
    for k in ("ngpt-lerp", "ngpt-slerp"):
        assert r.max_norm_error[k] < 1e-4
        assert r.embedding_norms[k] == pytest.approx([1.0] * 84, abs=1e-4)
        assert r.hidden_norms[k] == pytest.approx([1.0] * 3, abs=1e-4)
    assert r.max_norm_error["pre_ln"] > 0.1
    for k in r.labels:
        assert r.cosines[k].shape == (84 * 83 // 2,) and r.cosines[k].abs().max() <= 1 + 1e-5
        assert r.embedding_cond[k] >= 1 and len(r.attention_cond[k]) == 2 and len(r.attention_cond[k][0]) == 2
        assert len(r.losses[k]) == 6 and math.isfinite(r.final_val[k]) and r.ms_per_step[k] > 0
    assert set(r.scalars) == {"alpha_attn", "alpha_mlp", "s_qk", "s_u", "s_nu", "s_z"}
    assert r.scalars["alpha_attn"] == pytest.approx([0.05, 0.05], rel=0.2)  # init 0.05, 6 small steps
    assert r.projection.points.shape == (3, 4, 3) and len(r.projection_tokens) == 4
    assert set(r.projections) == set(r.labels) and r.projection is r.projections["ngpt-lerp"]
    assert torch.allclose(r.projections["ngpt-lerp"].norms, torch.ones(3, 4), atol=1e-4)  # nGPT: norm 1
    assert (r.projections["pre_ln"].norms - 1).abs().max() > 0.1  # pre-LN's norms are kept, not hidden
    assert all((p.kept <= 1 + 1e-5).all() for p in r.projections.values())  # inside or on the sphere
    for k in r.labels:  # one angle per block and position, each in [0, pi]
        ang = torch.tensor(r.step_angles[k])
        assert ang.shape == (2, TINY["block_size"]) and (ang >= 0).all() and (ang <= math.pi).all()
    for key in ("attn_gap", "attn_step", "mlp_gap", "mlp_step"):
        assert len(r.gap[key]) == 2 and all(x >= 0 for x in r.gap[key])
    for fig in (plots.plot_hypersphere_stats(r), plots.plot_ngpt_scalars(r), plots.plot_sphere_projection(r),
                plots.plot_lerp_vs_slerp(r)):
        _check_figure(fig)


def test_angle_is_accurate_for_tiny_and_large_angles():
    for t in (1e-6, 1e-3, 0.5, 3.0):
        a, b = torch.tensor([1.0, 0.0]), torch.tensor([math.cos(t), math.sin(t)])
        assert _angle(a, b).item() == pytest.approx(t, rel=1e-4)


def test_lerp_slerp_gap_matches_the_closed_form():
    """With the same α in every dimension both updates stay on the great circle through h and the target:
    LERP turns h by atan2(α sin θ, 1 − α + α cos θ), SLERP by α θ; the gap is their difference."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(variant="ngpt", vocab_size=84, block_size=16, n_layer=1, n_head=2, n_embd=32))
    a = 0.3
    with torch.no_grad():
        for sp in (model.blocks[0].alpha_attn, model.blocks[0].alpha_mlp):
            sp.raw.fill_(a * sp.scale / sp.init)  # effective value raw * init / scale = a
    x = torch.randint(0, 84, (1, 16))
    gap = E.lerp_slerp_gap(model, x)
    h = model.wte(x)[0].detach()
    target = torch.nn.functional.normalize(model.blocks[0].attn(h[None])[0], dim=-1).detach()
    theta = torch.arccos((h * target).sum(-1).clamp(-1, 1)).double()
    lerp_turn = torch.atan2(a * torch.sin(theta), 1 - a + a * torch.cos(theta))
    assert gap["attn_gap"][0] == pytest.approx((a * theta - lerp_turn).abs().mean().item(), rel=1e-3)
    assert gap["attn_step"][0] == pytest.approx(lerp_turn.mean().item(), rel=1e-3)


# ------------------------------------------------------------------------------------------ modern block


def test_modern_block():
    abl = {"baseline": {}, "RMSNorm": {"norm": "rmsnorm"}, "MQA": {"n_kv_head": 1}, "z-loss": {"z_loss": 1e-2}}
    r = E.modern_block(PRESET, ablations=abl, steps=4, profile_steps=2, **TINY)
    assert [row.label for row in r.rows] == list(abl)
    assert r.row("RMSNorm").params == r.row("baseline").params  # no bias either way: one gain vector each
    assert r.row("MQA").params < r.row("baseline").params
    assert all(math.isfinite(row.val_ce) and row.ms_per_step > 0 for row in r.rows)
    assert set(r.norm_share) == {"layernorm", "rmsnorm"} and all(0 < v < 1 for v in r.norm_share.values())
    assert "time in layernorm" in r.table()
    _check_figure(plots.plot_modern_block(r))
    with pytest.raises(KeyError):
        r.row("nope")


def test_default_ablations():
    four, two = E.default_ablations(4), E.default_ablations(2)
    assert four["GQA (2 kv heads)"] == {"n_kv_head": 2} and four["MQA (1 kv head)"] == {"n_kv_head": 1}
    assert not any(k.startswith("GQA") for k in two) and "MQA (1 kv head)" in two
    for overrides in four.values():  # every ablation is a valid config
        ModelConfig(**{"n_head": 4, "n_embd": 32, **overrides})


def test_val_ce_leaves_out_the_z_loss():
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=84, block_size=16, n_layer=1, n_head=2, n_embd=32, z_loss=1.0))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 84, (2, 16), generator=g), torch.randint(0, 84, (2, 16), generator=g)
    ce = _val_ce(model, [(x, y)])
    assert model(x, y)[1].item() > ce + 0.1
    assert ce == pytest.approx(torch.nn.functional.cross_entropy(model(x)[0].view(-1, 84), y.view(-1)).item())


def test_norm_time_share_without_norms_is_zero():
    torch.manual_seed(0)
    model = build_model(ModelConfig(variant="ngpt", vocab_size=84, block_size=16, n_layer=1, n_head=2, n_embd=32))
    x = torch.randint(0, 84, (2, 16))
    assert E.norm_time_share(model, x, x, steps=1) == (0.0, 0.0)


# ---------------------------------------------------------------------------------------- figures, blocks


def test_make_figures_quick(tmp_path, monkeypatch):
    """The figures train on the notebooks' CPU_THREADS (reproducible numbers.md) and give the thread count back."""
    from minigpt.experiments import figures

    seen = []
    real = figures._make_figures
    monkeypatch.setattr(figures, "_make_figures", lambda *a: seen.append(torch.get_num_threads()) or real(*a))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        paths = E.make_figures(tmp_path, PRESET, progress=False, quick=True)
        assert seen == [CPU_THREADS] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert set(paths) == {"grad_norms", "race", "lr_stability", "hypersphere", "numbers"}
    for key, p in paths.items():
        if key != "numbers":
            assert p.exists() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = paths["numbers"].read_text()
    for section in ("grad_norms.png", "lr_stability.png", "race.png", "hypersphere.png", "LR at divergence"):
        assert section in numbers


def test_block_schematics():
    _check_figure(plots.plot_blocks())
    with pytest.raises(ValueError, match="variant"):
        plots.plot_block("sandwich")
