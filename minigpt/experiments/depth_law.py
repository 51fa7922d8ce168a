"""Xiong et al. 2020, Theorem 1, as a law across depth: post-LN / pre-LN last-layer gradient at Xavier init
grows as sqrt(L) (slope 1/2 on log-log axes); and post-LN without warmup failing as depth grows, which
reconciles "pre-LN trains better" with post-LN winning at L = 4 (docs/results/depth_law.json).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch

from .. import diagnostics as D
from ._common import SEEDS, _build, _configs, _data, _probe_batches, _with_vocab, band
from .race import race


def _grad_ratio(preset: str, n_layer: int, seed: int, overrides: dict[str, Any], n_batches: int = 2) -> dict:
    """||dL/dW_2|| of the last block's FFN output matrix (Xiong et al.'s W^{2,L}) at Xavier init, post-LN and
    pre-LN built from the same seed, averaged over `n_batches` fixed training batches."""
    grads = {}
    for variant in ("post_ln", "pre_ln"):
        model_cfg, train_cfg = _configs(preset, variant, overrides, n_layer=n_layer, init="xavier", seed=seed)
        tokenizer, batches = _data(train_cfg, model_cfg.block_size)
        model = _build(_with_vocab(model_cfg, tokenizer), train_cfg)
        probe = _probe_batches(batches, n_batches, train_cfg.batch_size, torch.device("cpu"))
        grads[variant] = D.gradient_norms(model, probe)["ffn_out"][-1]
    return dict(post_ln=grads["post_ln"], pre_ln=grads["pre_ln"], ratio=grads["post_ln"] / grads["pre_ln"])


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def depth_law(preset: str = "cpu-tiny", depths: Sequence[int] = (2, 4, 8, 16), init_seeds: Sequence[int] = range(8),
              train_seeds: Sequence[int] = SEEDS, steps: int = 200, warmup: int = 50,
              overrides: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Xiong et al. 2020, Theorem 1: with Xavier init the last FFN layer's gradient is O(d sqrt(ln d)) for
    post-LN and O(d sqrt(ln d / L)) for pre-LN, so their ratio grows as sqrt(L): a slope of 1/2 on log-log
    axes (`slope`, fitted to the ratio of the init-seed means). Then training with that init: post-LN
    without warmup, post-LN with `warmup` steps and pre-LN without warmup, each at its preset LR, final val
    loss per depth and seed (NaN = diverged)."""
    overrides = overrides or {}
    grad = []
    for L in depths:
        rs = [_grad_ratio(preset, L, sd, overrides) for sd in init_seeds]
        grad.append(dict(n_layer=L, post_ln=band([r["post_ln"] for r in rs]), pre_ln=band([r["pre_ln"] for r in rs]),
                         ratio=band([r["ratio"] for r in rs])))
    ratios = [g["post_ln"]["mean"] / g["pre_ln"]["mean"] for g in grad]
    arms = {"post_ln, no warmup": ("post_ln", 0), f"post_ln, warmup {warmup}": ("post_ln", warmup),
            "pre_ln, no warmup": ("pre_ln", 0)}
    train_pts: dict[str, list[dict[str, Any]]] = {k: [] for k in arms}
    for L in depths:
        for label, (variant, w) in arms.items():
            finals = []
            for sd in train_seeds:
                r = race(preset, (variant,), steps=steps, progress=progress,
                         **{**overrides, "n_layer": L, "init": "xavier", "seed": sd, "warmup_steps": w})
                finals.append(r.runs[variant].final_val)
            train_pts[label].append(dict(n_layer=L, val=band(finals)))
    return dict(grad=grad, ratio_of_means=ratios, slope=loglog_slope(depths, ratios), train=train_pts,
                steps=steps, warmup=warmup)
