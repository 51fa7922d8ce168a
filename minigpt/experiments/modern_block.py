"""§6.7: the modern block's ingredients (LayerNorm/RMSNorm, GELU/SwiGLU, bias, RoPE, QK-norm, z-loss, soft-cap, GQA)
and the norms' share of step time and FLOPs.

Part of the experiments package; the overview is in minigpt/experiments/__init__.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..train import (
    resolve_device,
    train,
)
from ._common import _build, _configs, _data, _preset_name, _probe_batches, _val_ce, _with_vocab


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


# Forward FLOPs per normalized element, counted op by op: LayerNorm 7 (mean: add; centre: sub; variance: square,
# add; scale by 1/σ: mul; gain γ: mul; bias: add), RMSNorm 4 (square, add, mul by 1/rms, mul by γ), an L2
# normalization 3 (square, add, divide). A training step costs ~3x the forward (backward ~ 2x). Rough by design:
# the comparison is with the matmuls, two to three orders of magnitude larger. benchmarks/norm_share.py counts
# with the same table.
NORM_FWD_FLOPS_PER_ELEMENT = {"layernorm": 7, "rmsnorm": 4, "l2": 3}


def norm_flop_share(model: nn.Module, block_size: int, norm: str) -> float:
    """The norms' share of a training step's FLOPs, per token: 3 x NORM_FWD_FLOPS_PER_ELEMENT x (elements
    normalized per token) against `model.flops_per_token` (PaLM's 6N + 12LTd), + the norms themselves."""
    elements = sum(m.weight.numel() if m.weight is not None else 0
                   for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.RMSNorm)))
    norm_flops = 3 * NORM_FWD_FLOPS_PER_ELEMENT[norm] * elements
    return norm_flops / (model.flops_per_token(block_size) + norm_flops)


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
