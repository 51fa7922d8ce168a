"""nGPT's steps-to-target speedup over the same-ingredient pre-LN as a curve, not a point: against the
training budget and against the context length (tokens per step fixed), each point over several seeds. A claim
measured at one short budget says nothing about where it crosses 1 (docs/results/budget.json, context.json:
`python -m minigpt experiments --tier full --only budget context`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._common import SEEDS, band
from .race import race, speedup, speedup_vs_context


def _pair(preset: str, steps: int, seed: int, baseline: str, challenger: str, progress: bool,
          overrides: dict[str, Any]) -> dict[str, Any]:
    """One race of two variants at one seed: both val curves and the steps-to-target speedup."""
    r = race(preset, (baseline, challenger), steps=steps, baseline=baseline, challenger=challenger,
             progress=progress, **{**overrides, "seed": seed})
    return _pair_record(r.runs[baseline], r.runs[challenger], seed)


def _pair_record(b: Any, c: Any, seed: int) -> dict[str, Any]:
    ok = not (b.diverged or c.diverged) and b.val and c.val
    s = speedup(b, c) if ok else None
    return dict(seed=seed, speedup=s.factor if s else float("nan"), target=s.target if s else float("nan"),
                baseline_val=b.val, challenger_val=c.val, baseline_final=b.final_val, challenger_final=c.final_val,
                baseline_lr=b.lr, challenger_lr=c.lr)


def budget_curve(preset: str = "cpu-tiny", budgets: Sequence[int] = (150, 300, 600, 1200),
                 seeds: Sequence[int] = SEEDS, baseline: str = "pre_ln", challenger: str = "ngpt",
                 overrides: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Steps-to-target speedup of `challenger` over `baseline` (`experiments.Speedup`) at each training
    budget, one race per (budget, seed), each variant at its preset LR with the cosine schedule of that
    budget. points[i] = {budget, speedup: band, runs: [per seed]}."""
    points = []
    for steps in budgets:
        runs = [_pair(preset, steps, sd, baseline, challenger, progress, overrides or {}) for sd in seeds]
        points.append(dict(budget=steps, speedup=band([r["speedup"] for r in runs]), runs=runs))
    return dict(baseline=baseline, challenger=challenger, points=points)


def context_curve(preset: str = "cpu-tiny", context_lengths: Sequence[int] = (32, 64, 128, 256),
                  tokens_per_step: int = 512, steps: int = 600, seeds: Sequence[int] = SEEDS,
                  baseline: str = "pre_ln", challenger: str = "ngpt", overrides: dict[str, Any] | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """The same speedup against context length T at a fixed number of tokens per step (batch = tokens / T),
    so every point trains on the same tokens (`experiments.speedup_vs_context`, once per seed)."""
    per_seed = {sd: speedup_vs_context(preset, context_lengths, steps, tokens_per_step, baseline, challenger,
                                       progress, **{**(overrides or {}), "seed": sd}) for sd in seeds}
    points = []
    for i, T in enumerate(context_lengths):
        runs = [_pair_record(p[i].runs[baseline], p[i].runs[challenger], sd) for sd, p in per_seed.items()]
        points.append(dict(block_size=T, batch_size=per_seed[seeds[0]][i].batch_size,
                           speedup=band([r["speedup"] for r in runs]), runs=runs))
    return dict(baseline=baseline, challenger=challenger, tokens_per_step=tokens_per_step, steps=steps,
                points=points)
