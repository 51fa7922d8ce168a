"""§6.7, the modern block's stability claims, tested: QK-norm bounds the attention logits, logit soft-capping
the output logits, z-loss keeps the softmax normalizer log Z near 0, and dropping the biases is said to help
stability. Each ingredient is one flag on the preset's block; each runs the LR ramp of lr_stability (the LR
multiplied every step) while the quantity it bounds is measured along the way.

Part of the experiments package; the overview is in minigpt/experiments/__init__.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .. import diagnostics as D
from ._common import _configs, _data, _preset_name
from .lr_stability import LRSweep, lr_stability

# label -> overrides of the preset's block (pre-LN, no bias): the baseline, the same with another seed (the
# yardstick: how far one run's divergence LR moves by chance), and one ingredient each. The soft-cap and z-loss
# values are chosen to act within a short ramp on a small model: its logits stay far below Gemma 2's cap of 30,
# and PaLM's z-loss 1e-4 acts over 100k+ steps (modern_block trains with both of those).
BOUND_ABLATIONS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "baseline, seed 2": {"seed": 2},
    "QK-norm": {"qk_norm": True},
    "z-loss 0.1": {"z_loss": 0.1},
    "soft-cap 5": {"logit_softcap": 5.0},
    "bias": {"bias": True},
}
MEASURES = ("max_attn_logit", "max_logit", "mean_log_z")  # the keys of diagnostics.logit_bounds


@dataclass
class BoundsRun:
    """One ingredient's ramp: the LR sweep and, every `every` steps, `diagnostics.logit_bounds` on a fixed
    validation batch (`measured[k][i]` at LR `lrs[i]`)."""

    label: str
    overrides: dict[str, Any]
    sweep: LRSweep | None = None  # set when the ramp is done
    lrs: list[float] = field(default_factory=list)
    measured: dict[str, list[float]] = field(default_factory=dict)

    def peak(self, measure: str) -> float:
        """The largest |value| of `measure` along the whole ramp."""
        return max(abs(v) for v in self.measured[measure])

    def late(self, measure: str) -> float:
        """The mean of `measure` over the second half of the ramp (the high LRs, where the bounds matter)."""
        vals = self.measured[measure][len(self.measured[measure]) // 2 :]
        return sum(vals) / len(vals)


@dataclass
class StabilityBoundsResult:
    preset: str
    steps: int
    unigram: float
    runs: dict[str, BoundsRun] = field(default_factory=dict)

    def divergence_lr(self, label: str) -> float:
        """LR at divergence (lr_stability's rule); inf if it did not diverge within the ramp."""
        sweep = self.runs[label].sweep
        lr = sweep.diverged_lr if sweep is not None else None
        return lr if lr is not None else math.inf

    def table(self) -> str:
        lines = [
            f"{'ingredient':<17} {'diverges at':>11} {'max |attn logit|':>16} {'max |logit|':>11} "
            f"{'mean log Z, high LRs':>20}"
        ]
        for label, r in self.runs.items():
            div = self.divergence_lr(label)
            div_text = "-" if math.isinf(div) else f"{div:.3g}"
            lines.append(
                f"{label:<17} {div_text:>11} {r.peak('max_attn_logit'):>16.2f} "
                f"{r.peak('max_logit'):>11.2f} {r.late('mean_log_z'):>20.2f}"
            )
        return "\n".join(lines)


def stability_bounds(
    preset: str | None = None,
    ablations: Mapping[str, dict[str, Any]] = BOUND_ABLATIONS,
    steps: int = 100,
    every: int = 5,
    lr_start: float = 1e-5,
    lr_end: float = 1.0,
    progress: bool = True,
    **overrides: Any,
) -> StabilityBoundsResult:
    """Run lr_stability's ramp (pre-LN, the preset's block plus each ablation's flags and `overrides`) to the
    end of the range (no early stop after a rise; a blow-up still ends a run), measuring
    `diagnostics.logit_bounds` on one validation batch every `every` steps."""
    if every < 1:
        raise ValueError(f"every={every} must be >= 1")
    name = _preset_name(preset)
    model_cfg, train_cfg = _configs(name, "pre_ln", overrides)
    _, batches = _data(train_cfg, model_cfg.block_size)
    probe = batches.val_batches(1, train_cfg.batch_size)[0][0]
    out = StabilityBoundsResult(preset=name, steps=steps, unigram=math.nan)
    for label, extra in ablations.items():
        run = BoundsRun(label, dict(extra), measured={k: [] for k in MEASURES})

        def measure(model: nn.Module, step: int, lr: float, loss: float, run: BoundsRun = run) -> None:
            if step % every == 0:
                values = D.logit_bounds(model, probe.to(next(model.parameters()).device))
                run.lrs.append(lr)
                for k in MEASURES:
                    run.measured[k].append(values[k])

        result = lr_stability(
            name,
            ("pre_ln",),
            lr_start=lr_start,
            lr_end=lr_end,
            steps=steps,
            tail=math.inf,
            progress=progress,
            on_step=measure,
            **{**overrides, **extra},
        )
        run.sweep = result.runs["pre_ln"]
        out.unigram = result.unigram
        out.runs[label] = run
    return out
