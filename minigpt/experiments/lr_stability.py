"""§6.4: NormFormer's LR stability test, the LR multiplied every step until the loss explodes.

Part of the experiments package; the overview is in minigpt/experiments/__init__.py.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import diagnostics as D
from ..config import VARIANT_NAMES, ConfigError
from ..progress import progress_bar
from ..train import (
    divergence_reason,
    divergence_threshold,
    make_optimizer,
    resolve_device,
    resolve_dtype,
)
from ._common import _build, _configs, _data, _preset_name, _with_vocab


@dataclass
class LRSweep:
    """One LR range test. `lrs[i]`, `losses[i]`: the LR and train loss of step i + 1."""

    variant: str
    lrs: list[float]
    losses: list[float]
    diverged_lr: float | None  # LR at divergence (None: not within the range)
    diverged_step: int | None
    reason: str
    best_lr: float  # LR at the lowest smoothed loss
    best_loss: float


@dataclass
class LRStabilityResult:
    preset: str
    lr_start: float
    lr_end: float
    steps: int
    growth: float  # the LR is multiplied by this every step
    rise: float  # divergence: the smoothed loss climbs this fraction above its lowest value
    runs: dict[str, LRSweep] = field(default_factory=dict)
    unigram: float = math.nan  # the unigram loss of the training split: where a model that "only" forgot sits

    def divergence_lr(self, variant: str) -> float:
        """LR at divergence; inf if the variant did not diverge within the range."""
        lr = self.runs[variant].diverged_lr
        return lr if lr is not None else math.inf

    def table(self) -> str:
        lines = [f"{'variant':<11} {'LR at divergence':>17} {'best LR':>9} {'best loss':>9}"]
        for v, r in self.runs.items():
            div = f"{r.diverged_lr:.3g}" if r.diverged_lr is not None else f"> {r.lrs[-1]:.3g}"
            lines.append(f"{v:<11} {div:>17} {r.best_lr:>9.3g} {r.best_loss:>9.3f}")
        return "\n".join(lines)


def _median_smooth(xs: Sequence[float], k: int) -> list[float]:
    """Centered running median over 2k + 1 steps, for the positions that have k steps on each side (the
    first k use what is there); robust to single noisy batches and free of an EMA's lag."""
    out = []
    for i in range(len(xs) - k):
        window = sorted(x for x in xs[max(0, i - k): i + k + 1] if math.isfinite(x))
        out.append(window[len(window) // 2] if window else math.inf)
    return out


def _rise_index(losses: Sequence[float], rise: float, k: int = 3) -> int | None:
    """First step index where the smoothed loss exceeds (1 + rise) x its lowest value so far."""
    low = math.inf
    for i, v in enumerate(_median_smooth(losses, k)):
        if v > (1.0 + rise) * low:
            return i
        low = min(low, v)
    return None


def lr_stability(
    preset: str | None = None,
    variants: Sequence[str] = VARIANT_NAMES,
    lr_start: float = 1e-5,
    lr_end: float = 1.0,
    steps: int = 150,
    rise: float = 0.1,
    tail: float = 3.0,
    progress: bool = True,
    on_step: Callable[[nn.Module, int, float, float], Any] | None = None,
    **overrides: Any,
) -> LRStabilityResult:
    """§6.4, NormFormer's LR stability test (its Fig. 5 raises the LR every update until the loss explodes):
    the LR starts at `lr_start` and is multiplied by a constant every step so that it would reach `lr_end`
    at step `steps`. The LR at divergence is that of the first step where

    - the loss blows up by the trainer's own rule (`train.divergence_reason`: a non-finite loss or gradient,
      or a loss above 2 x ln V); that update is not applied and the run ends; or
    - the loss, smoothed by a centered 7-step running median, climbs `rise` (10%) above the lowest value it
      reached. At this scale a too-high LR rarely produces an overflow (the norms and the gradient clipping
      keep the logits bounded); the loss climbs back toward the unigram loss instead, and this catches it.

    After a divergence the run goes on until the LR is `tail` x the divergence LR (to show the curve
    turning up) or the range ends. A short loop of its own rather than `train`, whose schedule is warmup +
    cosine: the same optimizer (`make_optimizer`: the variant's parameter groups and weight decay), gradient
    clipping, autocast, data order and nGPT's `after_optimizer_step`; no evaluation, warmup or decay.

    `on_step(model, step, lr, loss)`, if given, is called after every applied update (for measurements along
    the ramp). `unigram` in the result is the entropy of the training split's token frequencies: at the top
    of the ramp a model whose loss did not "diverge" may still sit there, having learned nothing but them."""
    if not (0 < lr_start < lr_end) or steps < 2 or rise <= 0:
        raise ConfigError(f"need 0 < lr_start < lr_end, steps >= 2 and rise > 0; got {lr_start}, {lr_end}, "
                          f"{steps}, {rise}")
    name = _preset_name(preset)
    growth = (lr_end / lr_start) ** (1.0 / (steps - 1))
    out = LRStabilityResult(preset=name, lr_start=lr_start, lr_end=lr_end, steps=steps, growth=growth, rise=rise)
    for variant in variants:
        model_cfg, train_cfg = _configs(name, variant, overrides, steps=steps, progress=progress)
        tokenizer, batches = _data(train_cfg, model_cfg.block_size)
        model_cfg = _with_vocab(model_cfg, tokenizer)
        if math.isnan(out.unigram):
            out.unigram = D.unigram_entropy(batches.train, model_cfg.vocab_size)
        device = resolve_device(train_cfg.device)
        dtype = resolve_dtype(train_cfg.dtype, device)
        model = _build(model_cfg, train_cfg).to(device).train()
        optimizer = make_optimizer(model, train_cfg, device)
        params = [p for p in model.parameters() if p.requires_grad]
        generator = torch.Generator().manual_seed(train_cfg.seed)
        clip = train_cfg.grad_clip if train_cfg.grad_clip > 0 else float("inf")
        threshold = divergence_threshold(model_cfg.vocab_size)
        lrs: list[float] = []
        losses: list[float] = []
        div_i: int | None = None
        reason = ""
        bar = progress_bar(steps, desc=f"LR test {variant}", disable=not progress, leave=True)
        for s in range(1, steps + 1):
            lr = lr_start * growth ** (s - 1)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            x, y = (t.to(device) for t in batches.sample("train", train_cfg.batch_size, generator))
            with (torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()):
                _, loss = model(x, y)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip).item()
            loss_value = loss.item()
            if s == 1 and math.isfinite(loss_value):
                threshold = divergence_threshold(model_cfg.vocab_size, loss_value)
            lrs.append(lr)
            losses.append(loss_value)
            bar.update(1)
            why = divergence_reason(loss_value, grad_norm, threshold)
            if why is not None:  # blown up: do not apply it; nothing useful comes after
                if div_i is None:
                    div_i, reason = s - 1, why
                break
            optimizer.step()
            model.after_optimizer_step()
            if on_step is not None:
                on_step(model, s, lr, loss_value)
            if div_i is None:
                i = _rise_index(losses, rise)
                if i is not None:
                    div_i, reason = i, f"smoothed loss rose {100 * rise:.0f}% above its minimum"
            if div_i is not None and lr >= tail * lrs[div_i]:
                break
        bar.close()
        smooth = _median_smooth(losses, 3) or losses
        best_i = min(range(len(smooth)), key=lambda i: smooth[i] if math.isfinite(smooth[i]) else math.inf)
        out.runs[variant] = LRSweep(variant, lrs, losses, None if div_i is None else lrs[div_i],
                                    None if div_i is None else div_i + 1, reason, lrs[best_i], smooth[best_i])
    return out
