"""What the modern block's stability ingredients bound (diagnostics.logit_bounds) and the LR-ramp experiment
that measures it (experiments.stability_bounds)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from minigpt import build_model, plots
from minigpt import diagnostics as D
from minigpt import experiments as E
from minigpt.config import get_preset

TINY = dict(n_layer=2, n_embd=32, n_head=2, block_size=32, batch_size=4, eval_batches=2, progress=False)


def _model(**kw):
    cfg, _ = get_preset("cpu-tiny").configs("pre_ln", n_layer=2, n_embd=32, n_head=2, block_size=16, **kw)
    torch.manual_seed(0)
    return build_model(dataclasses.replace(cfg, vocab_size=84))


def _blow_up(model):
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(50.0)
    return model


X = torch.randint(0, 84, (2, 16), generator=torch.Generator().manual_seed(0))


def test_qk_norm_bounds_the_attention_logits_by_sqrt_d_head():
    """With QK-norm (gains 1) |q.k| / sqrt(d_head) <= ||q|| ||k|| / sqrt(d_head) = d_head / sqrt(d_head)."""
    bound = math.sqrt(32 // 2)
    assert D.logit_bounds(_blow_up(_model(qk_norm=True)), X)["max_attn_logit"] <= bound + 1e-4
    assert D.logit_bounds(_blow_up(_model()), X)["max_attn_logit"] > 10 * bound  # without it: unbounded


def test_soft_cap_bounds_the_output_logits_and_log_z_is_logsumexp():
    capped = D.logit_bounds(_blow_up(_model(logit_softcap=2.0)), X)
    assert capped["max_logit"] <= 2.0  # tanh saturates to exactly c in float32
    model = _blow_up(_model())
    got = D.logit_bounds(model, X)
    logits, _ = model.eval()(X)
    assert got["max_logit"] > 2.0
    assert got["mean_log_z"] == pytest.approx(torch.logsumexp(logits, -1).mean().item(), rel=1e-5)
    assert model.training is False  # left as found (it was put in eval above)
    model.train()
    D.logit_bounds(model, X)
    assert model.training


def test_stability_bounds_measures_along_the_ramp():
    r = E.stability_bounds(
        "cpu-tiny", {"baseline": {}, "soft-cap 1": {"logit_softcap": 1.0}}, steps=12, every=3, lr_end=1.0, **TINY
    )
    assert list(r.runs) == ["baseline", "soft-cap 1"] and math.isfinite(r.unigram)
    for run in r.runs.values():
        assert run.lrs == pytest.approx(run.sweep.lrs[2::3][: len(run.lrs)])  # every 3rd applied step
        assert all(len(v) == len(run.lrs) >= 2 for v in run.measured.values())
    assert r.runs["soft-cap 1"].peak("max_logit") <= 1.0
    assert "soft-cap 1" in r.table()
    fig = plots.plot_stability_bounds(r)
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="every"):
        E.stability_bounds("cpu-tiny", {"baseline": {}}, steps=4, every=0, **TINY)
