"""The experiments of DESIGN.md §6: the papers' claims about normalization placement, reproduced at a scale
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
(DESIGN.md §5). Nothing here asserts: the numbers are what the small scale gives, and the notebooks say
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
    make_figures             the README figures (`python -m minigpt figures`, `python -m minigpt.experiments`)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import build_model
from . import diagnostics as D
from .config import VARIANT_NAMES, ConfigError, ModelConfig, TrainConfig, default_preset_name, get_preset
from .ngpt import lerp_update, slerp
from .progress import progress_bar
from .train import (
    METRICS_FILE,
    TrainResult,
    divergence_reason,
    divergence_threshold,
    make_optimizer,
    resolve_device,
    resolve_dtype,
    train,
)

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
    "CPU_SCALE",
    "make_figures",
]

# The four weight matrices of a block (diagnostics.WEIGHTS), with the names the plots use.
WEIGHTS = {"attn_qkv": "attention W_qkv", "attn_out": "attention W_o", "ffn_in": "FFN W_1", "ffn_out": "FFN W_2"}


# ---------------------------------------------------------------------------------------------- plumbing


def _preset_name(preset: str | None) -> str:
    return preset or default_preset_name()


def _configs(preset: str | None, variant: str, overrides: dict[str, Any], **fixed: Any
             ) -> tuple[ModelConfig, TrainConfig]:
    """The preset's (model, train) configs for `variant`, then the user's overrides, then `fixed` (what the
    experiment itself sets, e.g. its step budget)."""
    clash = sorted(set(overrides) & set(fixed))
    if clash:
        raise ConfigError(f"this experiment sets {', '.join(clash)} itself; pass it as the experiment's argument")
    return get_preset(_preset_name(preset)).configs(variant, **{**overrides, **fixed})


_DATA_CACHE: dict[tuple, tuple[Any, Any]] = {}


def _data(train_cfg: TrainConfig, block_size: int) -> tuple[Any, Any]:
    """(tokenizer, Batches), loaded once per process for each (tokenizer, data folder, block_size)."""
    from .data import load_data

    key = (train_cfg.tokenizer, train_cfg.compact_vocab, train_cfg.data_dir, block_size)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_data(train_cfg, block_size)
    return _DATA_CACHE[key]


def _with_vocab(model_cfg: ModelConfig, tokenizer: Any) -> ModelConfig:
    return dataclasses.replace(model_cfg, vocab_size=tokenizer.vocab_size)


def _probe_batches(batches: Any, n: int, batch_size: int, device: torch.device, seed: int = 4321
                   ) -> list[tuple[Tensor, Tensor]]:
    """Fixed training-split batches for measurements: the same windows for every variant and every time."""
    g = torch.Generator().manual_seed(seed)
    return [tuple(t.to(device) for t in batches.sample("train", batch_size, g)) for _ in range(n)]


def _build(model_cfg: ModelConfig, train_cfg: TrainConfig) -> nn.Module:
    """The model `train` would build for these configs (same seed, so the same init)."""
    torch.manual_seed(train_cfg.seed)
    return build_model(model_cfg)


def _val_ce(model: nn.Module, val_batches: Sequence[tuple[Tensor, Tensor]]) -> float:
    """Mean next-token cross-entropy on fixed batches, *without* the z-loss term `model.loss` may add, so
    runs with and without z-loss compare on the same quantity."""
    was = model.training
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for x, y in val_batches:
            logits, _ = model(x, None)
            total += F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1)).item()
            n += 1
    model.train(was)
    return total / max(n, 1)


def _step_times(result: TrainResult) -> list[float] | None:
    """Per-step milliseconds (evaluation excluded) from the run's metrics.jsonl, if the run wrote one."""
    if result.out_dir is None:
        return None
    try:
        lines = (Path(result.out_dir) / METRICS_FILE).read_text(encoding="utf-8").splitlines()
        ms = [float(json.loads(line)["ms"]) for line in lines if line.strip()]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ms if len(ms) == result.step else None


# ------------------------------------------------------------------------------- 1. gradients vs depth


def xavier_init_(model: nn.Module) -> nn.Module:
    """Re-initialize a post-LN / pre-LN / NormFormer model as in the setting Xiong et al. 2020 analyse:
    Xavier-uniform weight matrices, zero biases, and unit-variance inputs (token and position embeddings
    N(0, 1), like the original Transformer's sqrt(d)-scaled embeddings). With GPT-2's small init (0.02,
    residual projections / sqrt(2L)) the sublayers add little to the residual stream, so post-LN's norms
    barely rescale the gradient and its growth toward the output disappears; see notebook 01. A tied
    embedding is also the LM head: it keeps the Xavier scale, and so do the position embeddings then.
    In place; returns the model."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    if model.lm_head.weight is not model.wte.weight:
        nn.init.normal_(model.wte.weight, std=1.0)
        if getattr(model, "wpe", None) is not None:
            nn.init.normal_(model.wpe.weight, std=1.0)
    return model


@dataclass
class DepthResult:
    """Per-layer measurements of each variant at init and after `steps` training steps.

    grads[when][variant][weight]     ||dL/dW||_F per layer, averaged over the probe batches (when: "init",
                                     "trained"; weight: a key of WEIGHTS)
    residual[when][variant]          mean ||x|| of the residual stream entering block 0 and leaving each block
    sublayer[when][variant][part]    mean ||output|| of each "attn" / "ffn" sublayer per layer
    ratio_history[variant][weight]   early/late gradient ratio of every training step's own gradients
    """

    preset: str
    variants: list[str]
    steps: int
    init: str
    n_layer: int
    n_embd: int = 0
    seeds: list[int] = field(default_factory=list)  # the inits averaged over (empty: the preset's seed only)
    grads: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    residual: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    sublayer: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    ratio_history: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    val_loss: dict[str, float] = field(default_factory=dict)
    lr: dict[str, float] = field(default_factory=dict)

    def last_first(self, variant: str, weight: str = "ffn_in", when: str = "init") -> float:
        """Gradient norm of the last layer over the first (Xiong et al.: > 1 for post-LN at init)."""
        g = self.grads[when][variant][weight]
        return g[-1] / g[0]

    def early_late(self, variant: str, weight: str = "ffn_out", when: str = "trained") -> float:
        """Mean gradient norm of the first half of the layers over the last half (NormFormer: > 1 for pre-LN;
        NormFormer brings it closer to 1)."""
        return D.early_late_ratio(self.grads[when][variant][weight])

    def table(self, when: str = "init") -> str:
        """One line per variant: last/first and early/late ratio of each weight at `when`."""
        lines = [f"{'variant':<11} " + " ".join(f"{k + ' L/F':>13} {k + ' E/L':>13}" for k in WEIGHTS)]
        for v in self.grads.get(when, {}):
            cells = " ".join(f"{self.last_first(v, k, when):>13.2f} {self.early_late(v, k, when):>13.2f}"
                             for k in WEIGHTS)
            lines.append(f"{v:<11} {cells}")
        return "\n".join(lines)


def grad_norms_vs_depth(
    preset: str | None = None,
    variants: Sequence[str] = VARIANT_NAMES,
    steps: int = 100,
    n_batches: int = 4,
    init: str = "default",
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    **overrides: Any,
) -> DepthResult:
    """§6.1 + §6.2: for each variant, ||dL/dW||_F of every block's W_qkv, W_o, W_1, W_2 against depth, at
    init and after `steps` training steps (Xiong et al. 2020, Fig. 3; NormFormer's gradient figure), and the
    residual-stream / sublayer-output norms of the same models.

    `init="xavier"` re-initializes the non-nGPT variants with `xavier_init_` (Xiong et al.'s setting) before
    measuring and training; "default" keeps each model's own init. `steps=0` measures at init only. The
    gradients are averaged over `n_batches` fixed training batches (the same for every variant and both
    times). `ratio_history` records the early/late ratio of each training step's raw gradients (the
    trainer's `on_step` hook, before clipping).

    `seeds` (with `steps=0` only): measure one freshly initialized model per seed and average every
    per-layer number over them. Xiong et al.'s statements are about the expected gradient over the random
    init; one small model's profile carries that init's noise."""
    if init not in ("default", "xavier"):
        raise ConfigError(f"init={init!r} is not valid; choose one of default, xavier")
    if steps < 0 or n_batches < 1:
        raise ConfigError(f"steps={steps} must be >= 0 and n_batches={n_batches} >= 1")
    if seeds is not None:
        if steps != 0 or not seeds:
            raise ConfigError("seeds averages measurements at init: pass steps=0 and at least one seed")
        if "seed" in overrides:
            raise ConfigError("pass either seed or seeds, not both")
        runs = [grad_norms_vs_depth(preset, variants, 0, n_batches, init, None, progress, seed=sd, **overrides)
                for sd in seeds]
        return _average_depth(runs)
    name = _preset_name(preset)
    whens = ["init"] + (["trained"] if steps > 0 else [])
    out = DepthResult(preset=name, variants=list(variants), steps=steps, init=init, n_layer=0,
                      grads={w: {} for w in whens}, residual={w: {} for w in whens},
                      sublayer={w: {} for w in whens})
    for variant in variants:
        model_cfg, train_cfg = _configs(name, variant, overrides, steps=max(steps, 1), progress=progress)
        tokenizer, batches = _data(train_cfg, model_cfg.block_size)
        model_cfg = _with_vocab(model_cfg, tokenizer)
        out.n_layer, out.n_embd, out.seeds = model_cfg.n_layer, model_cfg.n_embd, [train_cfg.seed]
        out.lr[variant] = train_cfg.lr
        device = resolve_device(train_cfg.device)
        probe = _probe_batches(batches, n_batches, train_cfg.batch_size, device)
        model = _build(model_cfg, train_cfg)
        if init == "xavier" and variant != "ngpt":
            xavier_init_(model)
        model.to(device)
        _measure_depth(out, "init", variant, model, probe)
        if steps == 0:
            continue
        history: dict[str, list[float]] = {k: [] for k in WEIGHTS}

        def record(m: nn.Module, step: int, loss: float, history: dict[str, list[float]] = history) -> None:
            norms = D.layer_grad_norms(m)
            for k in history:
                history[k].append(D.early_late_ratio(norms[k]) if len(norms[k]) >= 2 else float("nan"))

        result = train(model_cfg, train_cfg, batches=batches, tokenizer=tokenizer, hooks=[record], model=model,
                       label=variant)
        out.ratio_history[variant] = history
        out.val_loss[variant] = result.final_val_loss
        _measure_depth(out, "trained", variant, result.model, probe)
    return out


def _average_depth(runs: list[DepthResult]) -> DepthResult:
    """The per-layer mean over several DepthResults at init (same variants and shapes)."""

    def mean(lists: list[list[float]]) -> list[float]:
        return [sum(vals) / len(vals) for vals in zip(*lists, strict=True)]

    first = runs[0]
    out = dataclasses.replace(first, grads={"init": {}}, residual={"init": {}}, sublayer={"init": {}},
                              seeds=[s for r in runs for s in r.seeds])
    for v in first.grads["init"]:
        out.grads["init"][v] = {k: mean([r.grads["init"][v][k] for r in runs]) for k in first.grads["init"][v]}
        out.residual["init"][v] = mean([r.residual["init"][v] for r in runs])
        out.sublayer["init"][v] = {k: mean([r.sublayer["init"][v][k] for r in runs])
                                   for k in first.sublayer["init"][v]}
    return out


def _measure_depth(out: DepthResult, when: str, variant: str, model: nn.Module,
                   probe: list[tuple[Tensor, Tensor]]) -> None:
    out.grads[when][variant] = D.gradient_norms(model, probe)
    out.residual[when][variant] = D.residual_norms(model, probe[0][0])
    out.sublayer[when][variant] = D.sublayer_output_norms(model, probe[0][0])


# ------------------------------------------------------------------------------------- 2. warmup ablation


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
            if init == "xavier" and variant != "ngpt":
                xavier_init_(model)
            result = train(model_cfg, train_cfg, batches=batches, tokenizer=tokenizer, model=model, label=label)
            out.runs.append(_curve(label, result))
    return out


# ----------------------------------------------------------------------------------------- 3. LR stability


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
    clipping, autocast, data order and nGPT's `after_optimizer_step`; no evaluation, warmup or decay."""
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
        device = resolve_device(train_cfg.device)
        dtype = resolve_dtype(train_cfg.dtype, device)
        model = _build(model_cfg, train_cfg).to(device).train()
        optimizer = make_optimizer(model, train_cfg, device)
        params = [p for p in model.parameters() if p.requires_grad]
        after = getattr(model, "after_optimizer_step", None)
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
            if after is not None:
                after()
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


# ------------------------------------------------------------------------------------------------ 4. race


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
    """Steps-to-target speedup of `challenger` over `baseline` (DESIGN.md §6.5).

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
    with tempfile.TemporaryDirectory(prefix="minigpt-race-") as tmp:
        result = train(model_cfg, train_cfg, out_dir=tmp, batches=batches, tokenizer=tokenizer, label=label)
        ms = _step_times(result)
    if ms is None:  # no per-step times: assume a constant speed
        ms = [result.ms_per_step] * result.step
    elapsed = [0.0]
    for m in ms:
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


# ----------------------------------------------------------------------------------------- 5. hypersphere


def _angle(a: Tensor, b: Tensor) -> Tensor:
    """Angle (radians) between unit vectors along the last dim: 2 atan2(||a - b||, ||a + b||), accurate
    for the tiny angles LERP and SLERP differ by (arccos of a dot product is not)."""
    a, b = a.double(), b.double()
    return 2 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1))


@torch.no_grad()
def lerp_slerp_gap(model: nn.Module, x: Tensor) -> dict[str, list[float]]:
    """For an nGPT model and a batch, per block and sublayer: the mean angle (radians) between the LERP and
    the SLERP update computed from the *same* h, target Norm(h_X) and |α| ("gap"), and the mean angle the
    update moves h ("step"). The model's own update (whichever it uses) carries h to the next sublayer.

    Returns {"attn_gap", "attn_step", "mlp_gap", "mlp_step"}: one number per layer each."""
    out: dict[str, list[float]] = {k: [] for k in ("attn_gap", "attn_step", "mlp_gap", "mlp_step")}
    states = D.hidden_states(model, x)
    for block, h in zip(model.blocks, states[:-1], strict=True):
        for part, sub, alpha in (("attn", block.attn, block.alpha_attn), ("mlp", block.mlp, block.alpha_mlp)):
            target = F.normalize(sub(h), dim=-1)
            a = alpha().abs()
            by_lerp, by_slerp = lerp_update(h, target, a), slerp(h, target, a)
            out[f"{part}_gap"].append(_angle(by_lerp, by_slerp).mean().item())
            out[f"{part}_step"].append(_angle(h, block.update(h, target, a)).mean().item())
            h = block.update(h, target, a)
    return out


@dataclass
class HypersphereResult:
    """nGPT's geometry after `steps` steps, beside pre-LN's, and LERP vs SLERP. Keys of the dicts are the run
    labels ("pre_ln", "ngpt-lerp", "ngpt-slerp").

    embedding_norms   ||row|| of the input embedding, one per token
    hidden_norms      mean ||h|| entering block 0 and leaving each block (diagnostics.residual_norms)
    max_norm_error    max over tokens and layers of | ||h|| - 1 | (nGPT: rounding only)
    cosines           pairwise cosines of the input-embedding rows (for a histogram)
    embedding_cond    condition number of the embedding covariance E^T E / V
    attention_cond    condition number of each head's W_q W_k^T, (L, n_head) as nested lists
    scalars           nGPT LERP run: mean |value| per layer of alpha_attn, alpha_mlp, s_qk, s_u, s_nu; and s_z
    projection        3-D PCA projection of a few tokens' hidden states, layer by layer (LERP run)
    gap               lerp_slerp_gap on the LERP-trained model
    """

    preset: str
    steps: int
    labels: list[str]
    embedding_norms: dict[str, list[float]] = field(default_factory=dict)
    hidden_norms: dict[str, list[float]] = field(default_factory=dict)
    max_norm_error: dict[str, float] = field(default_factory=dict)
    cosines: dict[str, Tensor] = field(default_factory=dict)
    embedding_cond: dict[str, float] = field(default_factory=dict)
    attention_cond: dict[str, list[list[float]]] = field(default_factory=dict)
    scalars: dict[str, list[float]] = field(default_factory=dict)
    projection: D.SphereProjection | None = None
    projection_tokens: list[str] = field(default_factory=list)
    projection_positions: list[int] = field(default_factory=list)
    losses: dict[str, list[float]] = field(default_factory=dict)
    val: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    ms_per_step: dict[str, float] = field(default_factory=dict)
    gap: dict[str, list[float]] = field(default_factory=dict)

    @property
    def final_val(self) -> dict[str, float]:
        return {k: (v[-1][1] if v else float("nan")) for k, v in self.val.items()}


def hypersphere(
    preset: str | None = None,
    steps: int = 200,
    n_tokens: int = 6,
    prompt: str | None = None,
    include_pre_ln: bool = True,
    eval_interval: int | None = None,
    progress: bool = True,
    **overrides: Any,
) -> HypersphereResult:
    """§6.6: train nGPT with the LERP update and with the exact SLERP update (same seed, data, LR), and
    pre-LN for contrast; measure the geometry of each (see HypersphereResult) and the distance between the
    LERP and the SLERP update on the LERP model's own hidden states. The projection follows `n_tokens`
    positions of `prompt` (default: a validation window), evenly spaced, through every layer. Validation
    loss every `eval_interval` steps (default steps // 10)."""
    name = _preset_name(preset)
    runs: list[tuple[str, str, dict[str, Any]]] = [("ngpt-lerp", "ngpt", {"ngpt_update": "lerp"}),
                                                    ("ngpt-slerp", "ngpt", {"ngpt_update": "slerp"})]
    if include_pre_ln:
        runs.insert(0, ("pre_ln", "pre_ln", {}))
    clash = [k for k in ("ngpt_update",) if k in overrides]
    if clash:
        raise ConfigError("hypersphere runs both nGPT updates; do not override ngpt_update")
    out = HypersphereResult(preset=name, steps=steps, labels=[r[0] for r in runs])
    probe_x: Tensor | None = None
    for label, variant, extra in runs:
        model_cfg, train_cfg = _configs(name, variant, {**overrides, **extra}, steps=steps, progress=progress,
                                        eval_interval=eval_interval or max(1, steps // 10))
        tokenizer, batches = _data(train_cfg, model_cfg.block_size)
        device = resolve_device(train_cfg.device)
        if probe_x is None:
            if prompt is not None:
                ids = tokenizer.encode(prompt)[: model_cfg.block_size]
                probe_x = torch.tensor([ids], dtype=torch.long)
            else:
                probe_x = batches.val_batches(1, 1)[0][0]
        x = probe_x.to(device)
        result = train(model_cfg, train_cfg, batches=batches, tokenizer=tokenizer, label=label)
        model = result.model.eval()
        out.losses[label] = list(result.losses)
        out.val[label] = list(result.val)
        out.ms_per_step[label] = result.ms_per_step
        emb = model.wte.weight.detach()
        out.embedding_norms[label] = D.row_norms(emb).cpu().tolist()
        out.cosines[label] = D.pairwise_cosines(emb.cpu())
        out.embedding_cond[label] = D.embedding_condition_number(emb.cpu())
        out.attention_cond[label] = D.attention_condition_numbers(model).tolist()
        states = D.hidden_states(model, x)
        out.hidden_norms[label] = [s.norm(dim=-1).mean().item() for s in states]
        out.max_norm_error[label] = max((s.norm(dim=-1) - 1).abs().max().item() for s in states)
        if label == "ngpt-lerp":
            scal = D.ngpt_scalars(model)
            out.scalars = {k: [v.abs().mean().item() for v in vals] for k, vals in scal.items()}
            n = min(n_tokens, x.size(1))
            pos = torch.linspace(0, x.size(1) - 1, n).round().long()
            out.projection = D.sphere_projection([s[0, pos].cpu() for s in states])
            out.projection_tokens = [tokenizer.decode([int(t)]) for t in x[0, pos].tolist()]
            out.projection_positions = pos.tolist()
            out.gap = lerp_slerp_gap(model, x)
        model.train()
    return out


# -------------------------------------------------------------------------------------- 6. modern block


def default_ablations(n_head: int) -> dict[str, dict[str, Any]]:
    """label -> overrides, each one change from the preset's block (pre-LN, LayerNorm, SwiGLU, RoPE, no bias):
    the ingredients of a modern LLM block from the lecture notes."""
    abl: dict[str, dict[str, Any]] = {
        "baseline": {},
        "RMSNorm": {"norm": "rmsnorm"},
        "GELU MLP": {"mlp": "gelu"},
        "bias": {"bias": True},
        "learned positions": {"position": "learned"},
        "QK-norm": {"qk_norm": True},
        "z-loss 1e-4": {"z_loss": 1e-4},
        "logit soft-cap 30": {"logit_softcap": 30.0},
    }
    if n_head % 2 == 0 and n_head > 2:
        abl[f"GQA ({n_head // 2} kv heads)"] = {"n_kv_head": n_head // 2}
    if n_head > 1:
        abl["MQA (1 kv head)"] = {"n_kv_head": 1}
    return abl


@dataclass
class AblationRow:
    label: str
    overrides: dict[str, Any]
    params: int
    val_ce: float  # validation cross-entropy without any z-loss term
    train_loss: float
    ms_per_step: float
    diverged: bool


@dataclass
class ModernBlockResult:
    """`norm_share[norm]`: share of a training step's forward + backward time spent inside the norm
    modules, for "layernorm" and "rmsnorm" (the baseline block with each)."""

    preset: str
    variant: str
    steps: int
    rows: list[AblationRow] = field(default_factory=list)
    norm_share: dict[str, float] = field(default_factory=dict)
    norm_ms: dict[str, float] = field(default_factory=dict)  # ms per step inside the norms
    norm_flop_share: dict[str, float] = field(default_factory=dict)  # the norms' share of the FLOPs

    def row(self, label: str) -> AblationRow:
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(f"no ablation {label!r}; have {', '.join(r.label for r in self.rows)}")

    def table(self) -> str:
        base = self.rows[0]
        lines = [f"{'ablation':<22} {'params':>9} {'val CE':>7} {'Δ vs base':>9} {'ms/step':>8}"]
        for r in self.rows:
            lines.append(f"{r.label:<22} {r.params:>9,} {r.val_ce:>7.4f} {r.val_ce - base.val_ce:>+9.4f} "
                         f"{r.ms_per_step:>8.1f}")
        for k, v in self.norm_share.items():
            flops = self.norm_flop_share.get(k, float("nan"))
            lines.append(f"time in {k}: {100 * v:.1f}% of forward + backward ({self.norm_ms[k]:.2f} ms/step) "
                         f"for {100 * flops:.2f}% of the FLOPs")
        return "\n".join(lines)


def norm_time_share(model: nn.Module, x: Tensor, y: Tensor, steps: int = 5) -> tuple[float, float]:
    """(share, ms per step) of forward + backward time spent inside the model's LayerNorm / RMSNorm modules.

    Timed with module hooks (forward pre/post and full-backward pre/post): on the CPU ops run synchronously,
    so a hook pair brackets exactly the norm's own work; on CUDA the hooks record CUDA events instead.
    torch.profiler would need op names, and RMSNorm's backward is a chain of generic ops (pow, mean, rsqrt,
    mul) that cannot be told apart from the model's other element-wise work by name. The first step is a
    warm-up and is not counted."""
    cuda = x.is_cuda
    norms = [m for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.RMSNorm))]
    if not norms:
        return 0.0, 0.0
    spans: list[tuple[Any, Any]] = []
    open_: dict[tuple[int, str], Any] = {}

    def now() -> Any:
        if cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def start(key: tuple[int, str]) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            open_[key] = now()
        return hook

    def stop(key: tuple[int, str]) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            spans.append((open_.pop(key), now()))
        return hook

    handles = []
    for i, m in enumerate(norms):
        handles += [m.register_forward_pre_hook(start((i, "f"))), m.register_forward_hook(stop((i, "f"))),
                    m.register_full_backward_pre_hook(start((i, "b"))), m.register_full_backward_hook(stop((i, "b")))]
    x = x.detach()
    inside, total = 0.0, 0.0
    try:
        for s in range(steps + 1):
            spans.clear()
            model.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            _, loss = model(x, y)
            loss.backward()
            if cuda:
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            if cuda:
                span = sum(a.elapsed_time(b) for a, b in spans) / 1000.0
            else:
                span = sum(b - a for a, b in spans)
            if s > 0:
                inside, total = inside + span, total + dt
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
    return inside / total, 1000.0 * inside / steps


# FLOPs per normalized element, forward + backward (backward ~ 2x forward): LayerNorm's forward is mean,
# subtract, square, mean, scale by rsqrt, gain (~6); RMSNorm drops the centering (~4). Rough by design: the
# comparison is with the matmuls, two to three orders of magnitude larger.
NORM_FLOPS_PER_ELEMENT = {"layernorm": 18, "rmsnorm": 12}


def norm_flop_share(model: nn.Module, block_size: int, norm: str) -> float:
    """The norms' share of a training step's FLOPs, per token: NORM_FLOPS_PER_ELEMENT x (elements normalized
    per token) against 6 x (matmul weights) + 12 x L x T x d for attention (the estimate nanoGPT and the
    PaLM paper use), + the norms themselves."""
    cfg = model.config
    elements = sum(m.weight.numel() if m.weight is not None else 0
                   for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.RMSNorm)))
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    norm_flops = NORM_FLOPS_PER_ELEMENT[norm] * elements
    return norm_flops / (6 * matmul + 12 * cfg.n_layer * block_size * cfg.n_embd + norm_flops)


def modern_block(
    preset: str | None = None,
    ablations: dict[str, dict[str, Any]] | None = None,
    steps: int = 200,
    variant: str = "pre_ln",
    profile_steps: int = 5,
    progress: bool = True,
    **overrides: Any,
) -> ModernBlockResult:
    """§6.7: the block ingredients of modern LLMs, one change at a time from the preset's `variant` block
    (`default_ablations`), same seed, data and step budget; validation cross-entropy (z-loss excluded) and
    ms/step. Also the share of forward + backward time spent in the norm layers, LayerNorm vs RMSNorm
    (`norm_time_share`; the lecture notes quote ~25% of runtime for 0.17% of the FLOPs, measured on GPUs,
    where norms are memory-bound). Rows are in the order of `ablations`; the first is the reference."""
    name = _preset_name(preset)
    base_cfg, _ = _configs(name, variant, overrides, steps=steps, progress=progress)
    if ablations is None:
        ablations = default_ablations(base_cfg.n_head)
    out = ModernBlockResult(preset=name, variant=variant, steps=steps)
    for label, extra in ablations.items():
        model_cfg, train_cfg = _configs(name, variant, {**overrides, **extra}, steps=steps, progress=progress)
        tokenizer, batches = _data(train_cfg, model_cfg.block_size)
        device = resolve_device(train_cfg.device)
        result = train(model_cfg, train_cfg, batches=batches, tokenizer=tokenizer, label=label)
        val = [(x.to(device), y.to(device)) for x, y in batches.val_batches(train_cfg.eval_batches,
                                                                           train_cfg.batch_size)]
        ce = float("nan") if result.diverged else _val_ce(result.model, val)
        params = result.model.num_params() if hasattr(result.model, "num_params") else 0
        out.rows.append(AblationRow(label, dict(extra), params, ce, result.final_train_loss, result.ms_per_step,
                                    result.diverged))
    if profile_steps > 0:
        for norm in ("layernorm", "rmsnorm"):
            model_cfg, train_cfg = _configs(name, variant, {**overrides, "norm": norm}, steps=steps)
            tokenizer, batches = _data(train_cfg, model_cfg.block_size)
            device = resolve_device(train_cfg.device)
            model = _build(_with_vocab(model_cfg, tokenizer), train_cfg).to(device).train()
            x, y = _probe_batches(batches, 1, train_cfg.batch_size, device)[0]
            out.norm_share[norm], out.norm_ms[norm] = norm_time_share(model, x, y, profile_steps)
            out.norm_flop_share[norm] = norm_flop_share(model, model_cfg.block_size, norm)
    return out


# ------------------------------------------------------------------------------------------------ figures


# The CPU scale of the notebooks: cpu-tiny narrowed so that each experiment takes seconds on two cores. The
# README figures use it too, so that they show what the notebooks assert.
CPU_SCALE = dict(n_embd=64, block_size=64, batch_size=8, eval_batches=4)


def _budgets(preset: str, quick: bool) -> dict[str, dict[str, Any]]:
    """Budgets for the README figures: the notebooks' (a minute or two in all on a laptop CPU with a cpu-*
    preset, a few minutes on one GPU with gpu-*); `quick` is a smoke test."""
    if quick:
        tiny = dict(n_layer=2, n_embd=32, n_head=2, block_size=32, batch_size=4, eval_batches=2)
        return {"depth": dict(steps=5, **tiny), "race": dict(steps=6, **tiny),
                "lr": dict(steps=12, **tiny), "sphere": dict(steps=5, **tiny)}
    if preset.startswith("gpu"):
        fast = dict(compile=False)  # short runs: compiling costs more than it saves
        return {"depth": dict(steps=500, **fast), "race": dict(steps=500, **fast), "lr": dict(steps=200, **fast),
                "sphere": dict(steps=1000, **fast)}
    return {"depth": dict(steps=150, **CPU_SCALE), "race": dict(steps=200, **CPU_SCALE),
            "lr": dict(steps=100, **CPU_SCALE), "sphere": dict(steps=150, **CPU_SCALE)}


def make_figures(out_dir: str | Path = "docs/figures", preset: str | None = None, progress: bool = True,
                 quick: bool = False) -> dict[str, Path]:
    """Run the experiments behind the README figures and write them as PNGs into `out_dir`:
    grad_norms.png (gradient vs depth, all variants, at init and after training), race.png (val loss vs
    step and wall-clock, with nGPT's speedup), lr_stability.png (loss vs LR, LR at divergence) and
    hypersphere.png (nGPT hidden states moving on the sphere), plus numbers.md with the tables the README's
    captions quote. Returns {name: path}."""
    from . import plots

    name = _preset_name(preset)
    budget = _budgets(name, quick)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def save(fig: Any, file: str) -> None:
        path = out / file
        fig.savefig(path, dpi=110)
        paths[file.removesuffix(".png")] = path

    depth = grad_norms_vs_depth(name, progress=progress, **budget["depth"])
    save(plots.plot_grad_norms(depth), "grad_norms.png")
    race_result = race(name, progress=progress, **budget["race"])
    save(plots.plot_race(race_result), "race.png")
    stability = lr_stability(name, progress=progress, **budget["lr"])
    save(plots.plot_lr_stability(stability), "lr_stability.png")
    sphere = hypersphere(name, include_pre_ln=False, progress=progress, **budget["sphere"])
    save(plots.plot_sphere_projection(sphere), "hypersphere.png")

    # The numbers the README's captions quote, written next to the figures so that every one has a source.
    numbers = out / "numbers.md"
    numbers.write_text("\n".join([
        f"# Numbers behind the figures (`python -m minigpt figures`, preset {name})", "",
        f"## grad_norms.png: gradient norms vs depth, after {depth.steps} steps", "```", depth.table("trained"),
        "```", "", "At init:", "```", depth.table("init"), "```", "",
        "## lr_stability.png: LR multiplied every step until the loss explodes", "```", stability.table(), "```",
        "", "## race.png: same budget, same ingredients", "```", race_result.table(), "```", "",
        "## hypersphere.png: nGPT hidden states", "```",
        *(f"{k}: max | ||h|| - 1 | = {v:.2e}" for k, v in sphere.max_norm_error.items()), "```", ""]))
    paths["numbers"] = numbers
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m minigpt.experiments", description=make_figures.__doc__)
    p.add_argument("--out", default="docs/figures", help="output folder (default docs/figures)")
    p.add_argument("--preset", default=None, help="preset name (default: gpu-small on CUDA, else cpu-tiny)")
    p.add_argument("--quick", action="store_true", help="minuscule budgets: a smoke test, not the figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    for key, path in make_figures(args.out, args.preset, progress=not args.no_progress, quick=args.quick).items():
        print(f"{key}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
