"""§6.1 / §6.2: gradient norm per layer at init and after training, and the residual-stream norms (Xiong et al. 2020;
NormFormer).

Part of the experiments package; the overview is in minigpt/experiments/__init__.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from .. import diagnostics as D
from ..config import VARIANT_NAMES, ConfigError
from ..registry import VARIANTS
from ..train import (
    resolve_device,
    train,
)
from ._common import WEIGHTS, _build, _configs, _data, _preset_name, _probe_batches, _with_vocab


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
        if init == "xavier" and not VARIANTS[variant].unit_norm_weights:
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
