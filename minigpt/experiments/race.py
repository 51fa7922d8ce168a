"""§6.5: equal budget, val loss vs step and wall-clock; nGPT's steps-to-target speedup and its trend with context.

Part of the experiments package; the overview is in minigpt/experiments/__init__.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import VARIANT_NAMES, ConfigError, ModelConfig, TrainConfig, get_preset
from ..train import (
    train,
)
from ._common import _configs, _data, _preset_name


@dataclass
class RaceRun:
    """One variant's run. `val`: (step, val loss); `wall`: (seconds of training, val loss) at the same
    evaluations, seconds summed over the steps (evaluation excluded)."""

    label: str
    variant: str
    lr: float
    params: int
    val: list[tuple[int, float]]
    wall: list[tuple[float, float]]
    ms_per_step: float
    diverged: bool = False

    @property
    def final_val(self) -> float:
        return float("nan") if self.diverged or not self.val else self.val[-1][1]


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
    speedup: Speedup | None = None

    def table(self) -> str:
        lines = [f"{'variant':<11} {'peak lr':>8} {'val loss':>9} {'ms/step':>8}"]
        for r in self.runs.values():
            lines.append(f"{r.label:<11} {r.lr:>8.3g} {r.final_val:>9.4f} {r.ms_per_step:>8.1f}")
        if self.speedup is not None:
            s = self.speedup
            lines.append(f"steps-to-target speedup of {s.challenger} over {s.baseline} at val loss {s.target:.4f}: "
                         f"{s.baseline_steps:.0f} / {s.challenger_steps:.0f} = {s.factor:.2f}x")
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
    **overrides: Any,
) -> RaceResult:
    """§6.5: every variant with the same step budget, seed and batches, each at its preset LR (the presets
    give all of them nGPT's ingredients, so only the norm placement differs); val loss every
    `eval_interval` steps (default steps // 15), against step and against training wall-clock. `speedup` is
    `challenger` over `baseline` (nGPT over pre-LN) as `Speedup` defines it, or None if either is missing
    or diverged. Report what the scale gives: the nGPT paper's 4-20x are at 0.5-1B parameters and 1k-8k
    tokens of context."""
    name = _preset_name(preset)
    interval = eval_interval or max(1, steps // 15)
    out: RaceResult | None = None
    for variant in variants:
        model_cfg, train_cfg = _configs(name, variant, overrides, steps=steps, eval_interval=interval,
                                        progress=progress)
        tokenizer, batches = _data(train_cfg, model_cfg.block_size)
        if out is None:
            out = RaceResult(name, steps, model_cfg.block_size, train_cfg.batch_size)
        out.runs[variant] = _race_run(model_cfg, train_cfg, batches, tokenizer, variant)
    if out is None:
        raise ConfigError("race needs at least one variant")
    b, c = out.runs.get(baseline), out.runs.get(challenger)
    if b is not None and c is not None and b.val and c.val and not (b.diverged or c.diverged):
        out.speedup = speedup(b, c)
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
