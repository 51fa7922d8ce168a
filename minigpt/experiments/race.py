"""§6.5: equal budget, val loss vs step and wall-clock; nGPT's steps-to-target speedup and its trend with context.

Part of the experiments package; the overview is in minigpt/experiments/__init__.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from ..config import VARIANT_NAMES, ConfigError, ModelConfig, TrainConfig, _integer, get_preset
from ..train import (
    train,
)
from ._common import _configs, _data, _preset_name


@dataclass
class RaceRun:
    """One variant's run. `val`: (step, val loss); `wall`: (seconds of training, val loss) at the same
    evaluations, seconds summed over the steps (evaluation excluded). A race over several seeds keeps each
    seed's run in `per_seed`; `val`, `wall` and `ms_per_step` are then their mean (`_seed_mean`)."""

    label: str
    variant: str
    lr: float
    params: int
    val: list[tuple[int, float]]
    wall: list[tuple[float, float]]
    ms_per_step: float
    diverged: bool = False
    per_seed: list[RaceRun] = field(default_factory=list)

    @property
    def final_val(self) -> float:
        return float("nan") if self.diverged or not self.val else self.val[-1][1]

    @property
    def band(self) -> list[tuple[int, float, float]]:
        """(step, lowest, highest val loss across seeds) at each evaluation of `val`: the spread the mean
        hides. One seed: lowest = highest = the run's own loss."""
        runs = self.per_seed or [self]
        return [(s, min(r.val[i][1] for r in runs), max(r.val[i][1] for r in runs))
                for i, (s, _) in enumerate(self.val)]


def _seed_mean(runs: Sequence[RaceRun]) -> RaceRun:
    """One variant's runs at several seeds as one run: val loss and wall-clock averaged at each evaluation
    every seed reached (all evaluate at the same steps), diverged if any seed diverged."""
    first = runs[0]
    n_val, n_wall = min(len(r.val) for r in runs), min(len(r.wall) for r in runs)
    val = [(first.val[i][0], fmean(r.val[i][1] for r in runs)) for i in range(n_val)]
    wall = [(fmean(r.wall[i][0] for r in runs), fmean(r.wall[i][1] for r in runs)) for i in range(n_wall)]
    return RaceRun(first.label, first.variant, first.lr, first.params, val, wall,
                   fmean(r.ms_per_step for r in runs), any(r.diverged for r in runs), list(runs))


@dataclass
class Speedup:
    """Steps-to-target speedup of `challenger` over `baseline` (docs/design.md §6.5).

    The target is the loss both runs reach: the baseline's final val loss when the challenger gets there
    (the nGPT paper's metric: steps the baseline needs to reach its final loss / steps the challenger needs),
    otherwise the challenger's final loss (then the speedup is < 1: the challenger is slower).
    `factor` = baseline_steps / challenger_steps."""

    baseline: str
    challenger: str
    target: float
    baseline_steps: float
    challenger_steps: float
    challenger_reached_baseline: bool

    @property
    def factor(self) -> float:
        return self.baseline_steps / self.challenger_steps


def steps_to_reach(val: Sequence[tuple[int, float]], target: float) -> float:
    """The first (fractional) step at which a val curve reaches `target`, interpolating linearly between
    evaluations (from (0, +first loss) for the first one); inf if it never does."""
    prev_s, prev_l = 0.0, None
    for s, loss in val:
        if loss <= target:
            if prev_l is None or prev_l == loss:
                return float(s)
            return prev_s + (s - prev_s) * (prev_l - target) / (prev_l - loss)
        prev_s, prev_l = float(s), loss
    return float("inf")


def speedup(baseline: RaceRun, challenger: RaceRun) -> Speedup:
    """Speedup as `Speedup` defines it, from two runs' val curves."""
    b_final, c_final = baseline.val[-1][1], challenger.val[-1][1]
    reached = c_final <= b_final
    target = b_final if reached else c_final
    return Speedup(baseline.label, challenger.label, target, steps_to_reach(baseline.val, target),
                   steps_to_reach(challenger.val, target), reached)


@dataclass
class RaceResult:
    preset: str
    steps: int
    block_size: int
    batch_size: int
    runs: dict[str, RaceRun] = field(default_factory=dict)
    speedup: Speedup | None = None  # on the seed-mean curves (with one seed: the run's own)
    seeds: int = 1
    seed_speedups: list[Speedup] = field(default_factory=list)  # seed i's baseline against seed i's challenger

    @property
    def speedup_range(self) -> tuple[float, float] | None:
        """(lowest, highest) per-seed speedup factor; None with fewer than two seeds' speedups."""
        factors = [s.factor for s in self.seed_speedups]
        return (min(factors), max(factors)) if len(factors) >= 2 else None

    def table(self) -> str:
        spread = self.seeds > 1
        lines = [f"{'variant':<11} {'peak lr':>8} {'val loss':>9} {'ms/step':>8}"
                 + (f" {'min val':>8} {'max val':>8}" if spread else "")]
        for r in self.runs.values():
            lines.append(f"{r.label:<11} {r.lr:>8.3g} {r.final_val:>9.4f} {r.ms_per_step:>8.1f}"
                         + (f" {r.band[-1][1]:>8.4f} {r.band[-1][2]:>8.4f}" if spread and r.val else ""))
        if spread:
            lines.append(f"(val loss, ms/step: mean of {self.seeds} seeds; min/max val: across the seeds)")
        if self.speedup is not None:
            s = self.speedup
            lines.append(f"steps-to-target speedup of {s.challenger} over {s.baseline} at val loss {s.target:.4f}"
                         + (f" (on the {self.seeds}-seed mean curves)" if spread else "")
                         + f": {s.baseline_steps:.0f} / {s.challenger_steps:.0f} = {s.factor:.2f}x")
        rng = self.speedup_range
        if rng is not None:
            lines.append("per seed: " + ", ".join(f"{s.factor:.2f}x" for s in self.seed_speedups)
                         + f" (min {rng[0]:.2f}x, max {rng[1]:.2f}x)")
        return "\n".join(lines)


def _race_run(model_cfg: ModelConfig, train_cfg: TrainConfig, batches: Any, tokenizer: Any, label: str) -> RaceRun:
    result = train(model_cfg, train_cfg, batches=batches, tokenizer=tokenizer, label=label)
    elapsed = [0.0]
    for m in result.step_ms:  # the trainer's per-step times (evaluation excluded)
        elapsed.append(elapsed[-1] + m / 1000.0)
    wall = [(elapsed[s], loss) for s, loss in result.val if s < len(elapsed)]
    params = result.model.num_params() if hasattr(result.model, "num_params") else 0
    return RaceRun(label, model_cfg.variant, train_cfg.lr, params, list(result.val), wall, result.ms_per_step,
                   result.diverged)


def race(
    preset: str | None = None,
    variants: Sequence[str] = VARIANT_NAMES,
    steps: int = 300,
    eval_interval: int | None = None,
    baseline: str = "pre_ln",
    challenger: str = "ngpt",
    progress: bool = True,
    seeds: int = 1,
    **overrides: Any,
) -> RaceResult:
    """§6.5: every variant with the same step budget, seed and batches, each at its preset LR (the presets
    give all of them nGPT's ingredients, so only the norm placement differs); val loss every
    `eval_interval` steps (default steps // 15), against step and against training wall-clock. `speedup` is
    `challenger` over `baseline` (nGPT over pre-LN) as `Speedup` defines it, or None if either is missing
    or diverged. Report what the scale gives: the nGPT paper's 4-20x are at 0.5-1B parameters and 1k-8k
    tokens of context.

    `seeds` > 1 trains every variant again with seed + 1, seed + 2, ... (init and batch order; seed is the
    preset's or the `seed` override): at a small scale one seed's speedup is partly luck. Each run is then
    the seeds' mean with the runs kept in `per_seed` and their spread in `band`; `speedup` is computed on
    the mean curves and `seed_speedups` per seed. The cost grows with `seeds`; seeds=1 is the plain race."""
    _integer("seeds", seeds)
    name = _preset_name(preset)
    interval = eval_interval or max(1, steps // 15)
    out: RaceResult | None = None
    for variant in variants:
        model_cfg, train_cfg = _configs(name, variant, overrides, steps=steps, eval_interval=interval,
                                        progress=progress)
        tokenizer, batches = _data(train_cfg, model_cfg.block_size)
        if out is None:
            out = RaceResult(name, steps, model_cfg.block_size, train_cfg.batch_size, seeds=seeds)
        runs = [_race_run(model_cfg, dataclasses.replace(train_cfg, seed=train_cfg.seed + i), batches, tokenizer,
                          variant) for i in range(seeds)]
        out.runs[variant] = runs[0] if seeds == 1 else _seed_mean(runs)
    if out is None:
        raise ConfigError("race needs at least one variant")
    b, c = out.runs.get(baseline), out.runs.get(challenger)
    if b is not None and c is not None and b.val and c.val and not (b.diverged or c.diverged):
        out.speedup = speedup(b, c)
        out.seed_speedups = [speedup(bs, cs) for bs, cs in zip(b.per_seed, c.per_seed, strict=True)]
    return out


@dataclass
class ContextPoint:
    block_size: int
    batch_size: int
    speedup: Speedup | None
    runs: dict[str, RaceRun]


def speedup_vs_context(
    preset: str | None = None,
    context_lengths: Sequence[int] = (64, 128, 256),
    steps: int = 300,
    tokens_per_step: int | None = None,
    baseline: str = "pre_ln",
    challenger: str = "ngpt",
    progress: bool = True,
    **overrides: Any,
) -> list[ContextPoint]:
    """The nGPT paper's speedup grows with context length (4x / 10x / 20x at 1k / 4k / 8k tokens): the same
    race, baseline and challenger only, at each context length. Tokens per step are held fixed
    (`tokens_per_step`, default the preset's batch_size x block_size; batch_size = tokens_per_step // T), so
    every point trains on the same number of tokens."""
    name = _preset_name(preset)
    spec = get_preset(name)
    tokens = tokens_per_step or spec.train.batch_size * spec.model.block_size
    points = []
    for T in context_lengths:
        bs = max(1, tokens // T)
        r = race(name, (baseline, challenger), steps=steps, baseline=baseline, challenger=challenger,
                 progress=progress, **{**overrides, "block_size": T, "batch_size": bs})
        points.append(ContextPoint(T, bs, r.speedup, r.runs))
    return points
