"""§6.3: post-LN vs pre-LN, same peak LR, with and without warmup.

Part of the experiments package; the overview is in minigpt/experiments/__init__.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError, get_preset
from ..registry import VARIANTS
from ..train import (
    TrainResult,
    train,
)
from ._common import _build, _configs, _data, _preset_name, _with_vocab
from .depth import xavier_init_


@dataclass
class Curve:
    """One training run: train loss per step (NaN where a step was skipped), (step, val loss) pairs."""

    label: str
    variant: str
    lr: float
    warmup_steps: int
    losses: list[float]
    val: list[tuple[int, float]]
    diverged: bool = False
    diverged_step: int | None = None
    ms_per_step: float = float("nan")

    @property
    def final_val(self) -> float:
        """The last val loss, NaN if the run diverged before finishing (a number from before the blow-up
        would flatter it)."""
        return float("nan") if self.diverged or not self.val else self.val[-1][1]

    @property
    def final_train(self) -> float:
        finite = [x for x in self.losses if math.isfinite(x)][-10:]
        return sum(finite) / len(finite) if finite and not self.diverged else float("nan")


def _curve(label: str, result: TrainResult) -> Curve:
    t = result.train_config
    return Curve(label, result.model_config.variant, t.lr, t.warmup_steps, list(result.losses),
                 list(result.val), result.diverged, result.diverged_step, result.ms_per_step)


@dataclass
class WarmupResult:
    preset: str
    lr: float
    steps: int
    warmup_steps: int
    init: str = "default"
    runs: list[Curve] = field(default_factory=list)

    def get(self, variant: str, warmup: bool) -> Curve:
        for c in self.runs:
            if c.variant == variant and (c.warmup_steps > 0) == warmup:
                return c
        raise KeyError(f"no run for variant={variant!r} warmup={warmup}")


def warmup_ablation(
    preset: str | None = None,
    variants: Sequence[str] = ("post_ln", "pre_ln"),
    steps: int = 200,
    warmup_steps: int | None = None,
    lr: float | None = None,
    init: str = "default",
    progress: bool = True,
    **overrides: Any,
) -> WarmupResult:
    """§6.3: each variant trained twice at the same peak LR, with `warmup_steps` of linear warmup (default
    steps // 10) and with none; the rest of the schedule (cosine decay) is identical. Xiong et al. 2020:
    post-LN needs the warmup, pre-LN does not. `lr` defaults to the highest preset LR among `variants` (the
    LR pre-LN is tuned for, above post-LN's own), where the difference shows. A run whose loss explodes stops
    there (`diverged`). `init="xavier"`: Xiong et al.'s initialization (`xavier_init_`) for the non-nGPT
    variants."""
    if init not in ("default", "xavier"):
        raise ConfigError(f"init={init!r} is not valid; choose one of default, xavier")
    name = _preset_name(preset)
    spec = get_preset(name)
    if lr is None:
        lr = max(spec.lr.get(v, spec.train.lr) for v in variants)
    if warmup_steps is None:
        warmup_steps = max(1, steps // 10)
    out = WarmupResult(preset=name, lr=lr, steps=steps, warmup_steps=warmup_steps, init=init)
    for variant in variants:
        for w in (warmup_steps, 0):
            model_cfg, train_cfg = _configs(name, variant, overrides, steps=steps, lr=lr, warmup_steps=w,
                                            progress=progress)
            tokenizer, batches = _data(train_cfg, model_cfg.block_size)
            label = f"{variant}, {'warmup ' + str(w) if w else 'no warmup'}"
            model = _build(_with_vocab(model_cfg, tokenizer), train_cfg)
            if init == "xavier" and not VARIANTS[variant].unit_norm_weights:
                xavier_init_(model)
            result = train(model_cfg, train_cfg, batches=batches, tokenizer=tokenizer, model=model, label=label)
            out.runs.append(_curve(label, result))
    return out
