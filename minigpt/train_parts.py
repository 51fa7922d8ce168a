"""The pieces the training loop (train.py) is made of, each testable alone: the LR schedule, the divergence
rule, device and dtype resolution, the optimizer, evaluation; and what a run returns (`TrainResult`) or raises.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import _json_float
from .config import ConfigError, ModelConfig, TrainConfig

# A loss above EXPLODE_FACTOR x the uniform-guess loss ln(V) counts as divergence (see divergence_threshold).
EXPLODE_FACTOR = 2.0

# ------------------------------------------------------------------------------------------------ results


def final_train_loss(losses: list[float]) -> float:
    """Mean of the last (up to) 10 finite train losses: one batch is too noisy to compare runs on."""
    finite = [x for x in losses if math.isfinite(x)][-10:]
    return sum(finite) / len(finite) if finite else float("nan")


@dataclass
class TrainResult:
    """What a run produced. `losses[i]` is the train loss of step i + 1 (as measured, also for a step whose
    update was skipped); `val` holds (step, val_loss) pairs. Timings cover this invocation only (a
    resumed run reports the speed of its second half) and exclude evaluation and checkpointing."""

    model: nn.Module
    model_config: ModelConfig
    train_config: TrainConfig
    tokenizer: Any = None
    losses: list[float] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)
    step: int = 0  # optimizer steps completed
    ms_per_step: float = float("nan")
    tokens_per_s: float = float("nan")
    diverged: bool = False
    diverged_step: int | None = None
    message: str = ""
    interrupted: bool = False
    skipped_steps: list[int] = field(default_factory=list)
    out_dir: Path | None = None
    checkpoint: Path | None = None  # the newest checkpoint written (None if none was)
    checkpoint_step: int | None = None
    stopped: bool = False  # a hook raised StopTraining
    # one dict per step, as logged to metrics.jsonl: step, loss, lr, grad_norm, ms, tokens_per_s, and val_loss
    # (evaluated steps), skipped/diverged + reason (refused updates). A resumed run holds the first half's too.
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def step_ms(self) -> list[float]:
        """Milliseconds of each completed step in `records`, evaluation and hooks excluded."""
        return [r["ms"] for r in self.records if "ms" in r]

    @property
    def final_train_loss(self) -> float:
        return final_train_loss(self.losses)

    @property
    def final_val_loss(self) -> float:
        return self.val[-1][1] if self.val else float("nan")

    def summary(self) -> dict[str, Any]:
        """JSON-safe numbers for config.json and reports."""
        return {
            "step": self.step,
            "final_train_loss": _json_float(self.final_train_loss),
            "final_val_loss": _json_float(self.final_val_loss),
            "ms_per_step": _json_float(self.ms_per_step),
            "tokens_per_s": _json_float(self.tokens_per_s),
            "diverged": self.diverged,
            "diverged_step": self.diverged_step,
            "interrupted": self.interrupted,
            "skipped_steps": list(self.skipped_steps),
            "message": self.message,
        }


class StopTraining(Exception):  # noqa: N818  (a request, not an error)
    """Raise from a hook (`hooks`, `on_step`, `on_eval`) to end training after the current step: the last
    completed step is checkpointed and `train` returns its result with `stopped=True`. Raised from a gradient
    hook, the current step's update is not applied."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `train`: the checkpoint is saved and the partial `result` rides along. It is a
    KeyboardInterrupt, so a loop over runs stops as the user asked, while a notebook can still catch it and
    use `e.result.model`."""

    def __init__(self, result: TrainResult) -> None:
        where = ""
        if result.checkpoint is not None:
            where = f"; checkpoint {result.checkpoint} (step {result.checkpoint_step})"
        super().__init__(f"training interrupted after step {result.step}{where}")
        self.result = result


# --------------------------------------------------------------------------------------- pure pieces


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step `step` (1-based; lr_at(0) is the value before any update).

    Linear warmup from 0 to `cfg.lr` over `warmup_steps` (step == warmup_steps reaches lr), then a half
    cosine from lr down to lr * min_lr_ratio, reached exactly at step == steps. Warmup matters for post-LN
    (Xiong et al. 2020: its output-layer gradients are large at init); the cosine tail is the standard
    GPT-2/Chinchilla recipe. Past `steps` the rate stays at the minimum.
    """
    lr, warmup, total = cfg.lr, cfg.warmup_steps, cfg.steps
    min_lr = lr * cfg.min_lr_ratio
    if warmup > 0 and step < warmup:
        return lr * step / warmup
    if total <= warmup:
        return lr
    progress = min(max((step - warmup) / (total - warmup), 0.0), 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def divergence_threshold(vocab_size: int, initial_loss: float | None = None) -> float:
    """The loss above which a run counts as exploded: EXPLODE_FACTOR x max(ln V, first step's loss).

    Why this rule: ln V is the cross-entropy of guessing uniformly, the loss of a freshly initialized model
    (within a few percent). A model at twice that is confidently wrong on most tokens — a state training
    reaches only by blowing up (an LR spike, attention logit growth), never by a noisy batch of a healthy
    run, whose spikes stay below ln V. It needs no tuning per preset and it fires long before the loss
    overflows to inf, so the LR-stability experiment sees the divergence at the step it happens. The first
    step's loss enters only if it is larger than ln V (an unusual init), so a run never trips at step 1.
    """
    base = math.log(max(vocab_size, 2))
    if initial_loss is not None and math.isfinite(initial_loss):
        base = max(base, initial_loss)
    return EXPLODE_FACTOR * base


def divergence_reason(loss: float, grad_norm: float | None, threshold: float) -> str | None:
    """Why this step must not be applied, or None if it is fine: a non-finite loss, a non-finite gradient
    norm (the update would write NaN/inf into every weight), or a loss above `threshold`."""
    if not math.isfinite(loss):
        return f"non-finite loss {loss}"
    if grad_norm is not None and not math.isfinite(grad_norm):
        return f"non-finite gradient norm {grad_norm} (loss {loss:.4g})"
    if loss > threshold:
        return f"loss {loss:.4g} exploded above {threshold:.4g} ({EXPLODE_FACTOR:g} x the uniform-guess loss)"
    return None


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA if present, else CPU. Asking for an absent accelerator is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but CUDA is not available on this machine; use device=auto or cpu")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("device='mps' but MPS is not available on this machine; use device=auto or cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The autocast dtype. `auto` -> bfloat16 on a CUDA GPU that supports it, else float32 (no autocast).
    Mixed precision is a CUDA feature here (docs/design.md §5): on the CPU it is slower and changes the numbers
    the tests compare bitwise, so asking for it there is an error."""
    if name == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    if dtype != torch.float32 and device.type != "cuda":
        raise ConfigError(
            f"dtype={name!r} (autocast) is only used on CUDA; on {device.type} use float32 or auto"
        )
    return dtype


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the model's own parameter groups (weight decay on matrices only; nGPT: none at all).
    The fused kernel on CUDA, the multi-tensor (foreach) one elsewhere: same math, fewer kernel launches."""
    if hasattr(model, "param_groups"):
        groups = model.param_groups(cfg.weight_decay)
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": params, "weight_decay": cfg.weight_decay}]
    impl = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **impl)


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    val_batches: Sequence[tuple[Tensor, Tensor]],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> float:
    """Mean loss over fixed validation batches, in eval mode (no dropout) and without autograd; the model's
    train/eval mode is restored afterwards. The same batches for every call make val curves comparable
    across steps and across variants."""
    if not val_batches:
        raise ValueError("evaluate needs at least one validation batch")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        total = torch.zeros((), device=device)
        for x, y in val_batches:
            with _autocast(device, dtype):
                _, loss = model(x.to(device), y.to(device))
            total += loss.float()
    finally:
        model.train(was_training)
    return (total / len(val_batches)).item()


def _hook_fns(hooks: Iterable[Any]) -> list[Callable[[nn.Module, int, float], Any]]:
    """Hooks are objects with `on_step(model, step, loss)` or plain callables with that signature."""
    fns = []
    for h in hooks:
        fn = getattr(h, "on_step", h)
        if not callable(fn):
            raise TypeError(f"hook {h!r} is neither callable nor has an on_step(model, step, loss) method")
        fns.append(fn)
    return fns
