"""NormFormer's recipe: the paper trained in fairseq's `transformer_lm` (token embeddings N(0, d^-1/2) times
sqrt(d), a unit-scale stream); minigpt's default is GPT-2's init (a 0.02-scale stream, which NormFormer's
post-attention norm swamps). Both recipes, NormFormer and pre-LN, equal budgets, several seeds, and a small LR
sweep for the paper's higher-LR claim (docs/results/normformer_recipe.json).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._common import SEEDS, _configs, band
from .race import race
from .speedup_curves import _pair_record


def normformer_recipe(preset: str = "cpu-tiny", steps: int = 600, seeds: Sequence[int] = SEEDS,
                      lrs: Sequence[float] = (2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2),
                      variants: Sequence[str] = ("pre_ln", "normformer"), inits: Sequence[str] = ("gpt2", "fairseq"),
                      overrides: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """NormFormer and pre-LN under each init recipe (`ModelConfig.init`), equal budgets:
    - at each variant's preset LR, every seed: final val loss, and NormFormer's steps-to-target speedup over
      pre-LN with the same recipe and seed;
    - an LR sweep (first seed): final val loss at each LR and the best LR (the paper's higher-LR claim).
    The preset-LR run of the first seed is also the sweep's point at that LR when the LR is in `lrs`."""
    overrides = overrides or {}
    cache: dict[tuple, Any] = {}

    def run(variant: str, init: str, seed: int, lr: float | None) -> Any:
        key = (variant, init, seed, lr if lr is not None else _configs(preset, variant, overrides)[1].lr)
        if key not in cache:
            extra = {} if lr is None else {"lr": lr}
            r = race(preset, (variant,), steps=steps, progress=progress,
                     **{**overrides, "init": init, "seed": seed, **extra})
            cache[key] = r.runs[variant]
        return cache[key]

    out: dict[str, Any] = dict(steps=steps, final={}, speedup={}, sweep={}, best_lr={})
    for init in inits:
        for v in variants:
            rs = [run(v, init, sd, None) for sd in seeds]
            out["final"][f"{v}/{init}"] = dict(lr=rs[0].lr, val=band([r.final_val for r in rs]),
                                               curves=[r.val for r in rs])
        if len(variants) == 2:
            pairs = [_pair_record(run(variants[0], init, sd, None), run(variants[1], init, sd, None), sd)
                     for sd in seeds]
            out["speedup"][init] = dict(band=band([p["speedup"] for p in pairs]),
                                        values=[p["speedup"] for p in pairs])
    for init in inits:
        for v in variants:
            finals = [run(v, init, seeds[0], lr).final_val for lr in lrs]
            out["sweep"][f"{v}/{init}"] = dict(lrs=list(lrs), val=finals)
            ok = [(f, lr) for f, lr in zip(finals, lrs, strict=True) if math.isfinite(f)]
            out["best_lr"][f"{v}/{init}"] = min(ok)[1] if ok else float("nan")
    return out
