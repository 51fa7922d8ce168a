"""How much memory one training step needs, checked before the first step so a run that cannot fit is refused
with a number instead of swapping until the OOM killer ends it.

The estimate, in bytes, for a model with P parameters, L layers, width d, MLP hidden size h, H heads, padded
vocabulary V, batch_size B and block_size T (tokens per micro-batch: N = B·T):

    weights, gradients, AdamW's exp_avg and exp_avg_sq          16·P                   (all float32)
    activations autograd saves for the backward                 s·N·(L·a + 2d + V + 4)
    the backward's transient working set                        s·N·max(3a, 2V)        (the grads of the layer
                                                                                         being differentiated
                                                                                         and what the allocator
                                                                                         keeps, or the logits')
    attention probabilities, when SDPA has no fused kernel      4·N·H·T·(L·k + 2)      (k = 1, 3 with dropout)
    validation batches on the device                            16·eval_batches·N      (int64 inputs, targets)
    the runtime's first-step allocations (CPU)                  80 MB                  (measured, below)

a = floats saved per token and layer (float32, counted with autograd's saved-tensor hooks; `tests/test_memory.py`
checks the formula against that count for every variant):

    post-LN, pre-LN   8d + m·h + H + 4      m = 4 for SwiGLU (W1 x, W3 x, silu, product), 2 for GELU
    NormFormer        the same + d + h + 4  (its post-attention and mid-FFN norms)
    nGPT              the same + d + 3H     (Norm of h_A, h_M and of q, k per head); SLERP + 10d + 10
    RoPE (nGPT too)   + 2d                  (the rotated q, k)
    qk_norm           + 3d + 4H             (the normalized q, k and their statistics)
    dropout > 0       + d for nGPT          (its dropout outputs leave the sphere's Norm a new input)

s = bytes per saved element: 4 in float32; under bfloat16/float16 autocast 4·r, r the measured share of a
variant's activations autocast keeps in 16 bits (`_SAVES`: 0.6 for the LayerNorm variants, 0.9 for
nGPT, which normalizes in float32). The attention matrix (B, H, T, T) exists only on SDPA's math path: torch is
asked which kernel it would pick for the device, dtype and dropout in use (in torch 2.13 the CPU has a fused
flash kernel unless dropout > 0; CUDA has flash / memory-efficient kernels for every dtype here), and the math
path saves the softmax output (plus the dropout mask and the dropped probabilities: k = 3) in every layer and
holds the scores and their gradient (2) for the layer being computed.

Calibrated against the peak RSS of two-step CPU runs (`python benchmarks/memory_estimate.py`): the 3a of
the working set is what that measurement needed and 80 MB is what a cpu-tiny step takes beyond the rest (the
first backward's and optimizer step's one-off allocations); the other terms are counts. Measured: the
estimate is 1.05x to 1.21x the peak over five configs (fused and math attention, LERP/SLERP nGPT, GELU).

Not counted: the Python process and the corpus (already in use when the check runs, so already subtracted from
what is available), torch.compile's and the allocator's overheads, DDP's gradient buckets (+4·P). The check
refuses a run whose estimate exceeds the memory available and warns above `WARN_FRACTION` of it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from pathlib import Path

import torch

from .config import ConfigError, ModelConfig, TrainConfig

WARN_FRACTION = 0.75  # warn when the estimate is above this share of the available memory
RUNTIME_BYTES = 80_000_000  # a CPU step's one-off allocations beyond the counted terms (module docstring)



@dataclasses.dataclass(frozen=True)
class _Saves:
    """What a variant's block saves per token beyond the pre-LN block's 8d + m·h + H + 4 floats (the table in
    the module docstring), and the share of it autocast keeps in 16 bits."""

    d: int = 0
    h: int = 0
    heads: int = 0
    const: int = 0
    slerp: tuple[int, int] = (0, 0)  # (per d, constant) added by ngpt_update="slerp"
    dropout_d: int = 0  # per d added by dropout > 0
    fixed_ingredients: bool = False  # the variant ignores config.mlp, position and qk_norm (nGPT)
    autocast_ratio: float = 0.6


# a variant not in this table (a newly registered one) gets the largest extras of these, until measured
_UNKNOWN = _Saves(d=1, h=1, heads=3, const=4, slerp=(10, 10), dropout_d=1, autocast_ratio=0.9)
_SAVES = {"post_ln": _Saves(), "pre_ln": _Saves(), "normformer": _Saves(d=1, h=1, const=4),
          "ngpt": _Saves(d=1, heads=3, slerp=(10, 10), dropout_d=1, fixed_ingredients=True,
                        autocast_ratio=0.9)}


class InsufficientMemoryError(ConfigError):
    """The run's estimated memory per step exceeds what the device has available (a ConfigError: the CLI
    prints it in one line and exits 2)."""


@dataclasses.dataclass
class MemoryEstimate:
    """Bytes one training step needs, by part (see the module docstring for each formula)."""

    params: int  # number of parameters P
    states: int  # weights + gradients + AdamW moments
    activations: int  # saved for the backward + the backward's working set
    attention: int  # attention probabilities on SDPA's math path (0 with a fused kernel)
    data: int  # validation batches on the device
    runtime: int  # the runtime's own first-step allocations
    fused_attention: bool

    @property
    def total(self) -> int:
        return self.states + self.activations + self.attention + self.data + self.runtime


def activation_floats_per_token_layer(cfg: ModelConfig) -> int:
    """a in the module docstring: float32 values autograd saves per token in one block (no attention matrix)."""
    x = _SAVES.get(cfg.variant, _UNKNOWN)
    if x.fixed_ingredients:  # nGPT: also always RoPE, never qk_norm (its own q, k normalization is counted above)
        cfg = dataclasses.replace(cfg, mlp="swiglu", position="rope", qk_norm=False)
    d, h, H = cfg.n_embd, cfg.mlp_hidden, cfg.n_head
    m = 4 if cfg.mlp == "swiglu" else 2
    a = (8 + x.d) * d + (m + x.h) * h + (1 + x.heads) * H + 4 + x.const
    if cfg.ngpt_update == "slerp":
        a += x.slerp[0] * d + x.slerp[1]
    a += 2 * d * cfg.uses_rope + (3 * d + 4 * H) * cfg.qk_norm
    if cfg.dropout > 0:
        a += x.dropout_d * d
    return a


def num_params(cfg: ModelConfig) -> int:
    """P ≈ (1 or 2)·V·d + [T·d] + L·(d·(H + 2·KV)·d_head + d² + (3 | 2)·d·h): the embedding and LM head (one
    matrix when tied), learned positions, and per block the attention's W_qkv and W_o and the MLP's (SwiGLU:
    three matrices, GELU: two). Norms, biases and scale vectors are left out (under 3% of P at the smallest
    widths here; `tests/test_memory.py` checks the count against the models' own). Counted, not built: a
    model built even on the meta device costs ~0.2 s, and this runs before every training."""
    if _SAVES.get(cfg.variant, _UNKNOWN).fixed_ingredients:  # nGPT: RoPE, SwiGLU, never tied
        cfg = dataclasses.replace(cfg, mlp="swiglu", position="rope", tie_embeddings=False)
    d, h = cfg.n_embd, cfg.mlp_hidden
    embeddings = (1 if cfg.tie_embeddings else 2) * cfg.padded_vocab_size * d
    positions = 0 if cfg.uses_rope else cfg.block_size * d
    attention = d * (cfg.n_head + 2 * cfg.kv_heads) * cfg.head_dim + d * d
    mlp = (3 if cfg.mlp == "swiglu" else 2) * d * h
    return embeddings + positions + cfg.n_layer * (attention + mlp)


def fused_attention(device: torch.device, dtype: torch.dtype, dropout: float, head_dim: int) -> bool:
    """Whether `F.scaled_dot_product_attention` would run a fused kernel (flash / memory-efficient, no (T, T)
    matrix kept) for causal attention with these settings, as torch itself decides. Asked on a tiny tensor;
    if torch cannot say, assume the math path (the larger estimate)."""
    try:
        from torch.nn.attention import SDPBackend

        q = torch.zeros(1, 1, 8, head_dim, device=device, dtype=dtype)
        return torch._fused_sdp_choice(q, q, q, None, dropout, True) != SDPBackend.MATH.value
    except Exception:  # noqa: BLE001 - a private torch function: any failure means "don't know"
        return False


def estimate_train_memory(model_cfg: ModelConfig, train_cfg: TrainConfig, device: torch.device | str = "cpu",
                          amp_dtype: torch.dtype = torch.float32, *, n_params: int | None = None,
                          fused: bool | None = None) -> MemoryEstimate:
    """The memory one training step of `model_cfg` / `train_cfg` needs on `device` (formula: module docstring).
    `n_params` and `fused` override what is otherwise derived (a custom model's count, a known kernel)."""
    device = torch.device(device)
    P = num_params(model_cfg) if n_params is None else n_params
    if fused is None:
        fused = fused_attention(device, amp_dtype, model_cfg.dropout, model_cfg.head_dim)
    B, T, L = train_cfg.batch_size, model_cfg.block_size, model_cfg.n_layer
    N = B * T
    s = 4.0 if amp_dtype == torch.float32 else 4.0 * _SAVES.get(model_cfg.variant, _UNKNOWN).autocast_ratio
    a, V = activation_floats_per_token_layer(model_cfg), model_cfg.padded_vocab_size
    saved = N * (L * a + 2 * model_cfg.n_embd + V + 4)
    working = N * max(3 * a, 2 * V)
    attention = 0
    if not fused:
        k = 3 if model_cfg.dropout > 0 else 1
        attention = 4 * N * model_cfg.n_head * T * (L * k + 2)
    return MemoryEstimate(params=P, states=16 * P, activations=math.ceil(s * (saved + working)),
                          attention=attention, data=16 * train_cfg.eval_batches * N,
                          runtime=RUNTIME_BYTES if device.type == "cpu" else 0, fused_attention=fused)


def available_memory(device: torch.device | str) -> tuple[int, str] | None:
    """(bytes available, where that number comes from), or None where it cannot be known (then nothing is
    checked). CUDA: the device's free memory. CPU (and MPS, which shares it): Linux's MemAvailable, capped by
    a cgroup memory limit when one is set (a container)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free, f"free on {device}"
    if device.type not in ("cpu", "mps"):
        return None
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in meminfo.splitlines() if ":" in line)
    if "MemAvailable" not in fields:
        return None
    avail, source = int(fields["MemAvailable"].split()[0]) * 1024, "MemAvailable"
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = int(Path("/sys/fs/cgroup", limit_file).read_text())
            usage = int(Path("/sys/fs/cgroup", usage_file).read_text())
        except (OSError, ValueError):  # no such cgroup file, or "max" (no limit)
            continue
        if limit - usage < avail:
            avail, source = max(limit - usage, 0), "cgroup memory limit"
        break
    return avail, source


def human(n: float) -> str:
    """Bytes as a short decimal string: 12.3 MB, 1.31 TB."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def _largest(fits, upper: int) -> int:
    """The largest n in [1, upper] with fits(n) (monotone), 0 if none."""
    if not fits(1):
        return 0
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def check_memory(model_cfg: ModelConfig, train_cfg: TrainConfig, device: torch.device | str,
                 amp_dtype: torch.dtype = torch.float32, *, n_params: int | None = None,
                 processes: int | None = None) -> MemoryEstimate | None:
    """Refuse (InsufficientMemoryError) a run whose step cannot fit in the available memory, naming the
    estimate, what is available and the largest batch_size / block_size that fits; warn when it is close.
    `processes`: how many processes share this memory (torchrun's ranks on one CPU node; default
    LOCAL_WORLD_SIZE on the CPU, 1 on a GPU, which each rank has to itself). Returns the estimate, or None
    where the available memory is unknown."""
    device = torch.device(device)
    got = available_memory(device)
    if got is None:
        return None
    avail, source = got
    if processes is None:
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if device.type != "cuda" else 1
    fused = fused_attention(device, amp_dtype, model_cfg.dropout, model_cfg.head_dim)
    P = num_params(model_cfg) if n_params is None else n_params

    def need(m: ModelConfig, t: TrainConfig) -> int:  # P changes with block_size (learned positions)
        p = P if n_params is not None or m.block_size == model_cfg.block_size else None
        return processes * estimate_train_memory(m, t, device, amp_dtype, n_params=p, fused=fused).total

    est = estimate_train_memory(model_cfg, train_cfg, device, amp_dtype, n_params=P, fused=fused)
    total = processes * est.total
    parts = (f"parameters+gradients+AdamW {human(est.states)}, activations {human(est.activations)}"
             + (f", attention matrices {human(est.attention)} (no fused SDPA kernel for {device.type} "
                f"{str(amp_dtype).removeprefix('torch.')} with dropout={model_cfg.dropout:g})"
                if est.attention else ""))
    where = f"{human(avail)} available ({device.type}: {source})"
    per = f" for {processes} processes" if processes > 1 else ""
    if total > avail:
        T, B = model_cfg.block_size, train_cfg.batch_size
        best_b = _largest(lambda b: need(model_cfg, dataclasses.replace(train_cfg, batch_size=b)) <= avail, B)
        best_t = _largest(lambda t: need(dataclasses.replace(model_cfg, block_size=t), train_cfg) <= avail, T)
        advice = []
        if best_b:
            advice.append(f"--batch_size {best_b} fits at block_size {T}")
        if best_t:
            advice.append(f"--block_size {best_t} fits at batch_size {B}")
        hint = " or ".join(advice) if advice else "even batch_size 1 at block_size 1 does not fit: the " \
                                                  "parameters and optimizer state alone are too large"
        raise InsufficientMemoryError(
            f"this run needs about {human(total)} per step{per} ({parts}) but only {where}: {hint} "
            f"(the estimate is documented in minigpt/memory.py)")
    if total > WARN_FRACTION * avail:
        warnings.warn(f"this run needs about {human(total)} per step{per} ({parts}), "
                      f"{100 * total / avail:.0f}% of the {where}; it may swap or be killed", stacklevel=2)
    return est
