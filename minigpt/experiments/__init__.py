"""The experiments of docs/design.md §6: the papers' claims about normalization placement, reproduced at a scale
a laptop affords. Each function trains (or just builds) models through the same `train` loop the CLI uses and
returns plain data (a dataclass of lists, floats and a few tensors); `plots.py` draws it and the notebooks
assert the claims on it.

    from minigpt import experiments as E
    r = E.grad_norms_vs_depth("cpu-tiny", steps=100)          # §6.1 / §6.2
    r.last_first("post_ln", "ffn_in", when="init")            # Xiong et al. 2020: > 1 for post-LN ...
    r.early_late("pre_ln", "ffn_out", when="trained")         # NormFormer: pre-LN's early layers get more

Every experiment takes a preset name (None: `config.default_preset_name()`, the gpu-* preset on CUDA, else
cpu-*), its own budget arguments and any ModelConfig / TrainConfig field as a keyword override
(`n_layer=2, block_size=32, batch_size=4`), applied on top of the preset for every variant. Each variant gets
its preset's learning rate unless `lr` is overridden, so the comparisons are the presets' fair ones
(docs/design.md §5). Nothing here asserts: the numbers are what the small scale gives, and the notebooks say
which claims hold and which do not.

    1. grad_norms_vs_depth   gradient norm per layer at init and after training, all variants; also the
                             residual-stream and sublayer-output norms of the same models (§6.1, §6.2)
    2. warmup_ablation       post-LN vs pre-LN, same peak LR, with and without warmup (§6.3)
    3. lr_stability          LR multiplied every step until the loss explodes; LR at divergence (§6.4)
    4. race                  equal budget, val loss vs step and wall-clock; nGPT's steps-to-target speedup
       speedup_vs_context    ... and its trend with the context length (§6.5)
    5. hypersphere           nGPT's geometry (norms, cosines, conditioning, learned scales, a 3-D
                             projection) and LERP vs SLERP (§6.6)
    6. modern_block          LayerNorm/RMSNorm (incl. the share of step time in the norms), GELU/SwiGLU, bias,
                             learned/RoPE, QK-norm, z-loss, soft-cap, GQA (§6.7)
       stability_bounds      ... and what QK-norm, soft-cap and z-loss bound, measured along the LR ramp of 3
    make_figures             the README figures (`python -m minigpt figures`, `python -m minigpt.experiments`)

One module per claim: depth.py (1), warmup.py (2), lr_stability.py (3), race.py (4), hypersphere.py (5),
modern_block.py and stability_bounds.py (6); figures.py makes the README figures and scale.py holds the
notebooks' CPU scale, which the figures and notebooks/build_notebooks.py both read. Everything public is
importable from here.

The same claims as curves with seed bands, each at a CI tier (seconds) and a full tier (minutes; committed
in docs/results/ by `python -m minigpt experiments --tier full`, see tiers.py): speedup_curves.py (nGPT's
speedup vs budget and vs context), normformer_recipe.py (GPT-2's init vs fairseq's), depth_law.py (Xiong et
al.'s Theorem 1 across depth, post-LN without warmup).
"""

from __future__ import annotations

from ._common import WEIGHTS
from .depth import DepthResult, grad_norms_vs_depth, xavier_init_
from .depth_law import depth_law, loglog_slope
from .hypersphere import HypersphereResult, hypersphere, lerp_slerp_gap
from .lr_stability import LRStabilityResult, LRSweep, lr_stability
from .modern_block import (
    AblationRow,
    ModernBlockResult,
    default_ablations,
    modern_block,
    norm_flop_share,
    norm_time_share,
)
from .normformer_recipe import normformer_recipe
from .race import ContextPoint, RaceResult, RaceRun, Speedup, race, speedup, speedup_vs_context, steps_to_reach
from .scale import CPU_SCALE, notebook_scale, notebook_steps
from .speedup_curves import budget_curve, context_curve
from .stability_bounds import BOUND_ABLATIONS, BoundsRun, StabilityBoundsResult, stability_bounds
from .tiers import TIERS
from .tiers import run as run_tier
from .warmup import Curve, WarmupResult, warmup_ablation


def __getattr__(name: str):
    """`make_figures` on first use: it imports matplotlib (through plots.py), which `train` and the rest of the
    CLI never need (tests/test_file_access.py checks that a training run builds no font cache)."""
    if name == "make_figures":
        from .figures import make_figures

        return make_figures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "WEIGHTS",
    "DepthResult",
    "grad_norms_vs_depth",
    "xavier_init_",
    "Curve",
    "WarmupResult",
    "warmup_ablation",
    "LRSweep",
    "LRStabilityResult",
    "lr_stability",
    "RaceRun",
    "Speedup",
    "RaceResult",
    "race",
    "steps_to_reach",
    "speedup",
    "ContextPoint",
    "speedup_vs_context",
    "HypersphereResult",
    "hypersphere",
    "lerp_slerp_gap",
    "AblationRow",
    "ModernBlockResult",
    "modern_block",
    "default_ablations",
    "norm_time_share",
    "norm_flop_share",
    "BOUND_ABLATIONS",
    "BoundsRun",
    "StabilityBoundsResult",
    "stability_bounds",
    "CPU_SCALE",
    "notebook_scale",
    "notebook_steps",
    "make_figures",
    "budget_curve",
    "context_curve",
    "normformer_recipe",
    "depth_law",
    "loglog_slope",
    "TIERS",
    "run_tier",
]
