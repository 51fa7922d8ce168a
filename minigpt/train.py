"""The training loop: AdamW, warmup + cosine schedule, clipping, eval, hooks, checkpoints, NaN guard.

One function, `train`, runs one model for `train_cfg.steps` optimizer steps and returns a `TrainResult`. It is
plain PyTorch, written to be read top to bottom; every variant goes through exactly the same code (the only
variant-specific call is `model.after_optimizer_step()`, made on any model that defines it — nGPT uses it to
put its weights back on the hypersphere, DESIGN.md §3).

What a step does, in order::

    lr = lr_at(step, cfg)                          # linear warmup, then cosine to lr * min_lr_ratio
    for each of grad_accum micro-batches:          # data order from a generator of its own (seeded)
        loss = model(x, y) / grad_accum; loss.backward()
    hook.on_step(model, step, loss)                # diagnostics read the raw gradients here
    grad_norm = clip_grad_norm_(params, grad_clip) # also the divergence signal for poisoned gradients
    if diverged: stop (keep the last good checkpoint) or skip this update
    optimizer.step(); model.after_optimizer_step()
    evaluate every eval_interval steps and at the last one; metrics.jsonl; checkpoint

Steps are counted from 1: "step s" is the s-th optimizer update, the one that uses `lr_at(s)`; val losses
and checkpoints labelled s are taken after it.

Never losing work (issue 6): checkpoints are written atomically (temp file in the same folder, fsync,
os.replace) and read with `torch.load(weights_only=True)`; they hold everything an exact resume needs (model,
optimizer, step, the torch and batch-sampler RNG states, the history), so a 40-step run stopped after 20
(`stop_at`, Ctrl-C) and resumed is bitwise the same run as 40 steps straight on the CPU. (Resuming with a
different `steps` re-stretches the cosine schedule: allowed, but then no longer that run.) Ctrl-C finishes
the current step, saves, and raises `TrainingInterrupted` (a KeyboardInterrupt that carries the result). A
diverging run stops before the bad update is applied and never overwrites the last good checkpoint.

Multi-GPU / multi-node (issue 7): under ``torchrun`` the same function runs in every process, wrapped in
DistributedDataParallel; see `_Dist` for what changes and why. Run alone, nothing changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pickle
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import build_model
from .config import ConfigError, ModelConfig, TrainConfig
from .progress import progress_bar

__all__ = [
    "CHECKPOINT_FILE",
    "METRICS_FILE",
    "CONFIG_FILE",
    "EXPLODE_FACTOR",
    "CheckpointError",
    "TrainingInterrupted",
    "TrainResult",
    "train",
    "evaluate",
    "lr_at",
    "divergence_threshold",
    "divergence_reason",
    "make_optimizer",
    "resolve_device",
    "resolve_dtype",
    "save_checkpoint",
    "load_checkpoint",
    "model_from_checkpoint",
]

CHECKPOINT_FILE = "ckpt.pt"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
CHECKPOINT_FORMAT = "minigpt-checkpoint"
CHECKPOINT_VERSION = 1

# A loss above EXPLODE_FACTOR x the uniform-guess loss ln(V) counts as divergence (see divergence_threshold).
EXPLODE_FACTOR = 2.0

# TrainConfig fields that change the trajectory of a run: a resume must use the checkpoint's values, or it
# would silently continue a different experiment. The others (steps, eval_interval, device, progress, ...)
# may change between the two halves of a run.
RESUME_MUST_MATCH = (
    "batch_size", "grad_accum", "lr", "min_lr_ratio", "warmup_steps", "weight_decay", "beta1", "beta2",
    "grad_clip", "seed", "tokenizer", "compact_vocab", "eval_batches",
)  # fmt: skip


class CheckpointError(ValueError):
    """A checkpoint cannot be used: missing, truncated or corrupt, refused by the safe loader, or made for
    another model/run. The message names the file and what is wrong with it."""


# ------------------------------------------------------------------------------------------------ results


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

    @property
    def final_train_loss(self) -> float:
        """Mean of the last (up to) 10 finite train losses: one batch is too noisy to compare runs on."""
        finite = [x for x in self.losses if math.isfinite(x)][-10:]
        return sum(finite) / len(finite) if finite else float("nan")

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
    Mixed precision is a CUDA feature here (DESIGN.md §5): on the CPU it is slower and changes the numbers
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


# -------------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` to `path` atomically: a temp file in the same folder, flushed and fsynced, then
    `os.replace` (atomic on POSIX and Windows). A crash or a full disk mid-write leaves the previous
    checkpoint intact and no half-written file under the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); not possible, and not needed, everywhere."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_REQUIRED_KEYS = ("model", "optimizer", "model_config", "train_config", "step", "rng", "history")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `train`, safely: `torch.load(weights_only=True)` only rebuilds tensors
    and plain containers, so a file with pickled code (a malicious `__reduce__`) is refused, not run.

    Raises CheckpointError naming the file if it is missing, truncated or corrupt, refused by the safe
    loader, or not a minigpt checkpoint."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} was refused by the safe loader (torch.load weights_only=True): it contains "
            f"objects other than tensors and plain containers, so it was not written by minigpt or was "
            f"tampered with ({first})"
        ) from e
    except Exception as e:  # truncated zip, random bytes, I/O errors: torch raises several types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt and cannot be read ({first})"
        ) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is a torch file but not a minigpt checkpoint (no '{CHECKPOINT_FORMAT}' tag)"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {', '.join(missing)}")
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {ckpt['version']}; this minigpt reads up to "
            f"{CHECKPOINT_VERSION} (upgrade minigpt)"
        )
    return ckpt


def _config_from_ckpt(ckpt: dict[str, Any], path: Path) -> tuple[ModelConfig, TrainConfig]:
    try:
        return ModelConfig.from_dict(ckpt["model_config"]), TrainConfig.from_dict(ckpt["train_config"])
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} holds a config this minigpt cannot use: {e}") from e


def _load_model_state(model: nn.Module, state: dict[str, Tensor], path: Path) -> None:
    """`load_state_dict(strict=True)`, but a mismatch names the keys (missing, unexpected, wrong shape)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} in checkpoint vs {tuple(own[k].shape)} in model"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short(unexpected)}")
        if shapes:
            parts.append(f"shape mismatch: {_short(shapes)}")
        raise CheckpointError(f"checkpoint {path} does not fit this model: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)


def _short(items: list[str], n: int = 5) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _check_resumable(ckpt: dict[str, Any], model_cfg: ModelConfig, train_cfg: TrainConfig, tokenizer: Any,
                     path: Path, world_size: int = 1) -> None:
    """A resume must continue the *same* experiment: the model config must match field by field, and so
    must every TrainConfig field that shapes the trajectory (RESUME_MUST_MATCH) and the number of DDP ranks
    (the global batch). Say which ones differ. Fields added since the checkpoint count with their default."""
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    saved_model, saved_train = {**defaults, **ckpt["model_config"]}, ckpt["train_config"]
    diffs = [
        f"{k}: {saved_model.get(k)!r} in checkpoint vs {v!r} now"
        for k, v in model_cfg.to_dict().items()
        if saved_model.get(k) != v
    ]
    diffs += [
        f"{k}: {saved_train.get(k)!r} in checkpoint vs {getattr(train_cfg, k)!r} now"
        for k in RESUME_MUST_MATCH
        if saved_train.get(k) != getattr(train_cfg, k)
    ]
    if ckpt.get("world_size", 1) != world_size:
        diffs.append(f"world_size (DDP ranks, part of the global batch): {ckpt.get('world_size', 1)} in "
                     f"checkpoint vs {world_size} now")
    saved_tok = ckpt.get("tokenizer")
    if tokenizer is not None and saved_tok is not None and saved_tok != tokenizer.to_dict():
        diffs.append("tokenizer: the checkpoint's vocabulary differs from this data's")
    if diffs:
        raise CheckpointError(
            f"cannot resume {path}: it was trained with a different configuration ({'; '.join(diffs)}); "
            f"use the original settings, or a new --out folder to start a new run"
        )


def model_from_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", data_dir: str | Path | None = None
) -> tuple[nn.Module, Any, ModelConfig]:
    """(model in eval mode, tokenizer, ModelConfig) from a checkpoint, for sampling or analysis. The
    tokenizer is rebuilt from the checkpoint (GPT-2 needs the BPE ranks from the data folder)."""
    from .data import tokenizer_from_dict

    path = Path(path)
    ckpt = load_checkpoint(path)
    model_cfg, train_cfg = _config_from_ckpt(ckpt, path)
    model = build_model(model_cfg)
    _load_model_state(model, ckpt["model"], path)
    tok = None
    if ckpt.get("tokenizer") is not None:
        tok = tokenizer_from_dict(ckpt["tokenizer"], data_dir if data_dir is not None else train_cfg.data_dir)
    return model.to(device).eval(), tok, model_cfg


# ---------------------------------------------------------------------------------------------- helpers


def _json_float(x: float | None) -> float | None:
    """JSON has no NaN/inf: write them as null (the `skipped`/`diverged` flags say why)."""
    return x if x is not None and math.isfinite(x) else None


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _hook_fns(hooks: Iterable[Any]) -> list[Callable[[nn.Module, int, float], Any]]:
    """Hooks are objects with `on_step(model, step, loss)` or plain callables with that signature."""
    fns = []
    for h in hooks:
        fn = getattr(h, "on_step", h)
        if not callable(fn):
            raise TypeError(f"hook {h!r} is neither callable nor has an on_step(model, step, loss) method")
        fns.append(fn)
    return fns


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "batch": generator.get_state(),
    }


def _set_rng_state(rng: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["batch"])
    cuda = rng.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class _SigintGuard:
    """While training, the first Ctrl-C only sets a flag: the current step finishes, the loop saves a
    checkpoint at a consistent point and raises TrainingInterrupted. A second Ctrl-C interrupts at once.
    Signal handlers can only be installed from the main thread; elsewhere this is a no-op."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> _SigintGuard:
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.signal(signal.SIGINT, self._handler)
                self._installed = True
            except (ValueError, OSError):
                self._installed = False
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:  # second Ctrl-C: the user wants out now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


@dataclass
class _History:
    """Everything besides weights and optimizer that an exact resume restores. Plain lists and floats, so
    the checkpoint stays loadable with weights_only=True."""

    losses: list[float] = field(default_factory=list)
    val: list[list[float]] = field(default_factory=list)  # [step, val_loss]
    metrics: list[dict[str, Any]] = field(default_factory=list)  # the metrics.jsonl records
    skipped: list[int] = field(default_factory=list)
    initial_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------- distributed


@dataclass
class _Dist:
    """This process's place in a `torchrun` job (DistributedDataParallel); rank 0 of 1 when run alone.

    torchrun starts one process per GPU and tells each its RANK (global), LOCAL_RANK (on its node) and
    WORLD_SIZE in the environment. Each piece exists for one reason:

    - `setup`/`close`: one process group per job, NCCL between GPUs (each process on the GPU its LOCAL_RANK
      names) and gloo on the CPU; destroyed on the way out even when training fails.
    - `shard`: every rank draws the *global* batch from the same seeded generator and keeps slice `rank` of
      it, so the ranks see different examples that together are exactly one process's batch of
      batch_size x world_size: global batch = batch_size x grad_accum x world_size sequences per step, and
      a single-process run is the same code with world_size 1.
    - `sum`/`mean`/`any`: what decides the control flow (the NaN guard, Ctrl-C) is all-reduced first, so
      every rank takes the same branch; a rank that stopped alone would leave the others blocked forever.
      The val loss is the mean of the ranks' losses on their slices of the same global val batches.
    - `check_in_sync`: at the end, every rank's weights must equal rank 0's bit for bit (DDP averages the
      gradients, and nGPT's `after_optimizer_step` runs on every rank on identical weights); a mismatch
      would mean rank 0's checkpoint is not the model the job trained, so it is an error.
    - `is_main`: only rank 0 writes files and shows the progress bar.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def setup(cls, device: torch.device) -> _Dist:
        """Join the torchrun job this process belongs to (WORLD_SIZE > 1), else rank 0 of 1 on `device`. A
        process group the caller already created is used as it is, and left to the caller to destroy."""
        import torch.distributed as td

        owns = not (td.is_available() and td.is_initialized())
        world = int(os.environ.get("WORLD_SIZE", "1")) if owns else td.get_world_size()
        if world == 1:
            return cls(device=device)
        rank = int(os.environ["RANK"]) if owns else td.get_rank()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if owns:
            if device.type == "cuda":
                td.init_process_group("nccl", device_id=device)
            else:
                td.init_process_group("gloo")
        return cls(rank, local_rank, world, device, owns)

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as td

            td.destroy_process_group()
            self.owns_group = False

    def shard(self, batch: Tensor) -> Tensor:
        """Rows [rank * n, (rank + 1) * n) of a global batch of world_size * n rows."""
        if not self.enabled:
            return batch
        n = batch.size(0) // self.world_size
        return batch[self.rank * n:(self.rank + 1) * n]

    def sum(self, value: float) -> float:
        """`value` summed over the ranks (gloo has no AVG reduction, hence sum, then divide)."""
        if not self.enabled:
            return value
        import torch.distributed as td

        t = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        td.all_reduce(t)
        return t.item()

    def mean(self, value: float) -> float:
        return self.sum(value) / self.world_size if self.enabled else value

    def any(self, flag: bool) -> bool:
        return self.sum(float(flag)) > 0 if self.enabled else flag

    @contextlib.contextmanager
    def local_main_first(self) -> Iterator[None]:
        """Local rank 0 of each node runs the body first (e.g. fills the token cache), then the others."""
        import torch.distributed as td

        if self.enabled and self.local_rank != 0:
            td.barrier()
        try:
            yield
        finally:  # also on an error: the others then fail on their own, rather than wait forever
            if self.enabled and self.local_rank == 0:
                td.barrier()

    def check_in_sync(self, model: nn.Module) -> None:
        """Compare every tensor of the state dict with rank 0's (broadcast), bitwise; raise on all ranks if
        any rank differs. One broadcast of the model, once per run."""
        if not self.enabled:
            return
        import torch.distributed as td

        differ = []
        for name, tensor in model.state_dict().items():
            reference = tensor.detach().clone()
            td.broadcast(reference, src=0)
            if not torch.equal(reference, tensor):
                differ.append(name)
        if self.any(bool(differ)):
            raise RuntimeError(
                f"DDP ranks ended with different weights (rank {self.rank} differs from rank 0 in "
                f"{_short(differ) or 'nothing; another rank does'}): every rank must apply the same update"
            )


# ---------------------------------------------------------------------------------------------- the loop


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    out_dir: str | Path | None = None,
    hooks: Iterable[Any] = (),
    batches: Any = None,
    tokenizer: Any = None,
    resume: bool = False,
    *,
    model: nn.Module | None = None,
    label: str | None = None,
    stop_at: int | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train `build_model(model_cfg)` for `train_cfg.steps` optimizer steps and return a TrainResult.

    - `out_dir`: where `ckpt.pt`, `metrics.jsonl` and `config.json` go (None: keep nothing on disk).
    - `hooks`: objects with `on_step(model, step, loss)` (or plain callables), called after backward and
      before clipping and the optimizer step, so they see the raw gradients of that step.
    - `batches`/`tokenizer`: data already loaded (`data.load_data`); by default it is loaded from
      `train_cfg`. `model_cfg.vocab_size` is set from the tokenizer.
    - `resume`: continue `out_dir/ckpt.pt` up to `train_cfg.steps` (exactly: same data order and RNG).
      Without it, an existing checkpoint in `out_dir` is an error unless `overwrite`.
    - `model`: train this module instead of building one (e.g. the placement playground); it must accept
      `model_cfg`'s shapes. `label`: the progress-bar name. `stop_at`: stop (and checkpoint) after this step
      while keeping the `steps`-long schedule, to be continued with `resume`.

    Seeding: `torch.manual_seed(seed)` before the model is built (same init for the same config), and a
    separate generator seeded with `seed` draws the batches, so every variant sees the same data in the same
    order whatever its init or dropout consumes.

    Under torchrun (WORLD_SIZE > 1) every process calls this: the process group is created here and
    destroyed on the way out, also on errors; only rank 0 writes files. The global batch is batch_size x
    grad_accum x world_size sequences per step (`_Dist`).
    """
    dist = _Dist.setup(resolve_device(train_cfg.device))
    try:
        return _train(model_cfg, train_cfg, out_dir, hooks, batches, tokenizer, resume, model=model, label=label,
                      stop_at=stop_at, overwrite=overwrite, dist=dist)
    finally:
        dist.close()


def _train(model_cfg: ModelConfig, train_cfg: TrainConfig, out_dir: str | Path | None, hooks: Iterable[Any],
           batches: Any, tokenizer: Any, resume: bool, *, model: nn.Module | None, label: str | None,
           stop_at: int | None, overwrite: bool, dist: _Dist) -> TrainResult:
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT_FILE if out is not None else None
    if resume and ckpt_path is None:
        raise ConfigError("resume=True needs out_dir: the folder whose ckpt.pt to continue")
    if resume and not ckpt_path.exists():
        raise CheckpointError(f"cannot resume: checkpoint {ckpt_path} does not exist")
    if ckpt_path is not None and not resume and not overwrite and ckpt_path.exists():
        raise CheckpointError(
            f"{ckpt_path} already exists; resume it (--resume), pass overwrite=True (--overwrite) to start "
            f"over, or choose another output folder"
        )
    if stop_at is not None and stop_at < 1:
        raise ConfigError(f"stop_at={stop_at!r} is not valid; it must be an integer >= 1")

    # --- data and config
    if batches is None:
        from .data import load_data

        with dist.local_main_first():  # one process per node fills the token cache, then the others read it
            loaded_tok, batches = load_data(train_cfg, model_cfg.block_size)
        tokenizer = tokenizer if tokenizer is not None else loaded_tok
    if tokenizer is not None and model_cfg.vocab_size != tokenizer.vocab_size:
        model_cfg = dataclasses.replace(model_cfg, vocab_size=tokenizer.vocab_size)
    data_block = getattr(batches, "block_size", model_cfg.block_size)
    if data_block > model_cfg.block_size:
        raise ConfigError(f"the batches have block_size={data_block} but the model's block_size is "
                          f"{model_cfg.block_size}")

    # --- model, optimizer, RNG
    device = dist.device  # resolve_device(train_cfg.device); with several GPUs per node, this rank's own
    amp_dtype = resolve_dtype(train_cfg.dtype, device)
    if device.type == "cuda":  # float32 matmuls (outside autocast) on tensor cores: TF32, the usual trade
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(train_cfg.seed)
    raw_model = model if model is not None else build_model(model_cfg)
    raw_model.to(device).train()
    optimizer = make_optimizer(raw_model, train_cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    generator = torch.Generator().manual_seed(train_cfg.seed)
    hist = _History()
    start_step = 0
    result = TrainResult(raw_model, model_cfg, train_cfg, tokenizer, out_dir=out)

    if resume:
        ckpt = load_checkpoint(ckpt_path)
        _check_resumable(ckpt, model_cfg, train_cfg, tokenizer, ckpt_path, dist.world_size)
        _load_model_state(raw_model, ckpt["model"], ckpt_path)
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
            if ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            _set_rng_state(ckpt["rng"], generator)
            hist = _History(**ckpt["history"])
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise CheckpointError(f"checkpoint {ckpt_path} has an unusable optimizer/RNG/history: {e}") from e
        start_step = int(ckpt["step"])
        result.checkpoint, result.checkpoint_step = ckpt_path, start_step
        saved_steps = ckpt["train_config"].get("steps")
        if saved_steps != train_cfg.steps and dist.is_main:
            # Allowed (extending a finished run is a real use), but it is not the run the checkpoint was
            # part of: the cosine schedule is stretched over the new total. Say so rather than let a user
            # believe `--steps 20` + `--steps 40 --resume` equals 40 straight (use --stop_at for that).
            warnings.warn(f"resuming {ckpt_path} (trained for steps={saved_steps}) with steps={train_cfg.steps}: "
                          f"the LR schedule is re-stretched from step {start_step}, so this is not the run a "
                          f"straight {train_cfg.steps}-step training gives (for that, stop with --stop_at)",
                          stacklevel=2)

    fwd_model = raw_model
    if train_cfg.compile if train_cfg.compile is not None else device.type == "cuda":
        fwd_model = torch.compile(raw_model)
    if dist.enabled:  # after the resume: DDP starts by broadcasting rank 0's weights to the other ranks
        from torch.nn.parallel import DistributedDataParallel

        fwd_model = DistributedDataParallel(fwd_model, device_ids=[device.index] if device.type == "cuda" else None)
    after_step = getattr(raw_model, "after_optimizer_step", None)
    hook_fns = _hook_fns(hooks)
    # Under DDP each rank evaluates its slice of the global val batches; the mean of the slices' means is
    # then the loss one process gets on the whole batches (equal slices), up to summation order.
    val_batches = [(dist.shard(x).to(device), dist.shard(y).to(device))
                   for x, y in batches.val_batches(train_cfg.eval_batches, train_cfg.batch_size * dist.world_size)]
    params = [p for p in raw_model.parameters() if p.requires_grad]
    vocab = model_cfg.vocab_size
    tokens_per_step = train_cfg.batch_size * train_cfg.grad_accum * dist.world_size * data_block
    end_step = train_cfg.steps if stop_at is None else min(stop_at, train_cfg.steps)

    # --- files (rank 0 only: the other ranks hold the same weights and would write the same files)
    writes = out if dist.is_main else None
    metrics_file = None
    if writes is not None:
        out.mkdir(parents=True, exist_ok=True)
        # On resume the metrics are rewritten from the checkpoint: lines logged after it (the steps a crash
        # lost) must not appear twice.
        lines = "".join(json.dumps(r) + "\n" for r in hist.metrics)
        _write_text_atomic(out / METRICS_FILE, lines)
        metrics_file = open(out / METRICS_FILE, "a", encoding="utf-8")  # closed by _finish / on error
        compiled = fwd_model is not raw_model
        _write_config(out, raw_model, model_cfg, train_cfg, tokenizer, device, amp_dtype, compiled,
                      dist.world_size)

    def checkpoint(step: int, rng: dict[str, Any]) -> None:
        if ckpt_path is None or not dist.is_main:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": step,
            "model_config": model_cfg.to_dict(),
            "train_config": train_cfg.to_dict(),
            "tokenizer": tokenizer.to_dict() if tokenizer is not None else None,
            "model": raw_model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            "rng": rng,
            "history": hist.to_dict(),
            "world_size": dist.world_size,
        }
        save_checkpoint(state, ckpt_path)
        result.checkpoint, result.checkpoint_step = ckpt_path, step

    bar = progress_bar(train_cfg.steps, initial=start_step, desc=label or model_cfg.variant,
               disable=not (train_cfg.progress and dist.is_main), dynamic_ncols=True, leave=True)
    step_ms: list[float] = []
    step = start_step
    last_val: float | None = hist.val[-1][1] if hist.val else None
    updating = False  # inside optimizer.step()/after_optimizer_step(): state is not consistent
    rng: dict[str, Any] | None = None  # RNG state matching `step`, while the generator has moved past it
    try:
        with _SigintGuard() as sigint:
            while step < end_step:
                rng = _rng_state(generator)  # the state a checkpoint of the last completed step needs
                s = step + 1
                t0 = time.perf_counter()
                lr = lr_at(s, train_cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.zero_grad(set_to_none=True)
                loss_value = _forward_backward(fwd_model, batches, generator, train_cfg, device, amp_dtype,
                                               scaler, dist)
                loss_value = dist.mean(loss_value)  # the NaN guard below must decide the same on every rank
                if scaler.is_enabled():
                    scaler.unscale_(optimizer)  # hooks and clipping see true gradients
                for fn in hook_fns:
                    fn(raw_model, s, loss_value)
                max_norm = train_cfg.grad_clip if train_cfg.grad_clip > 0 else float("inf")
                grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True).item()
                if hist.initial_loss is None and math.isfinite(loss_value):
                    hist.initial_loss = loss_value
                # With fp16 the GradScaler owns inf gradients (it skips that step and lowers the scale).
                reason = divergence_reason(
                    loss_value, None if scaler.is_enabled() else grad_norm,
                    divergence_threshold(vocab, hist.initial_loss),
                )
                record: dict[str, Any] = {"step": s, "loss": _json_float(loss_value), "lr": lr,
                                          "grad_norm": _json_float(grad_norm)}
                if reason is not None and train_cfg.on_nan == "stop":
                    record.update(diverged=True, reason=reason)
                    if metrics_file is not None:
                        metrics_file.write(json.dumps(record) + "\n")
                    result.diverged, result.diverged_step = True, s
                    result.message = _diverged_message(s, reason, lr, result)
                    break
                if reason is not None:  # on_nan == "skip": drop this update, keep going
                    optimizer.zero_grad(set_to_none=True)
                    record.update(skipped=True, reason=reason)
                    hist.skipped.append(s)
                else:
                    updating = True
                    scaler.step(optimizer)
                    scaler.update()
                    if after_step is not None:
                        after_step()  # nGPT: back onto the hypersphere
                    updating = False
                ms = (time.perf_counter() - t0) * 1000.0
                step, rng = s, None  # from here the generator's current state belongs to `step`
                step_ms.append(ms)
                hist.losses.append(loss_value)
                record["ms"] = round(ms, 3)
                if s % train_cfg.eval_interval == 0 or s == train_cfg.steps:
                    last_val = dist.mean(evaluate(raw_model, val_batches, device, amp_dtype))
                    hist.val.append([s, last_val])
                    record["val_loss"] = _json_float(last_val)
                hist.metrics.append(record)
                if metrics_file is not None:
                    metrics_file.write(json.dumps(record) + "\n")
                    metrics_file.flush()
                interval = train_cfg.checkpoint_interval
                if (interval and s % interval == 0) or s == end_step:
                    checkpoint(s, _rng_state(generator))
                postfix = {"loss": f"{loss_value:.3f}"}
                if last_val is not None:
                    postfix["val"] = f"{last_val:.3f}"
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
                if dist.any(sigint.requested):  # every rank stops after the same step
                    raise KeyboardInterrupt
    except KeyboardInterrupt as e:
        # Ctrl-C (or a hook raising KeyboardInterrupt): save the last completed step. If the interrupt
        # landed inside the update itself (a second Ctrl-C), the weights are half-updated: keep the old
        # checkpoint rather than write an inconsistent one.
        if not updating and step > start_step and result.checkpoint_step != step:
            checkpoint(step, rng if rng is not None else _rng_state(generator))
        _finish(result, hist, step, step_ms, tokens_per_step, writes, metrics_file, bar)
        result.interrupted = True
        result.message = str(TrainingInterrupted(result))
        raise TrainingInterrupted(result) from e
    except BaseException:
        bar.close()
        if metrics_file is not None:
            metrics_file.close()
        raise
    dist.check_in_sync(raw_model)
    _finish(result, hist, step, step_ms, tokens_per_step, writes, metrics_file, bar)
    return result


def _forward_backward(model: nn.Module, batches: Any, generator: torch.Generator, cfg: TrainConfig,
                      device: torch.device, dtype: torch.dtype, scaler: torch.amp.GradScaler,
                      dist: _Dist | None = None) -> float:
    """Accumulate the gradients of `grad_accum` micro-batches; return the step's mean loss (this rank's).
    Each micro-loss is divided by grad_accum so the summed gradient equals that of one batch grad_accum times
    larger. Under DDP every rank draws the global micro-batch and keeps its slice (`_Dist.shard`), and the
    gradient all-reduce runs only in the last micro-step's backward (`no_sync` before it: same sum, 1/grad_accum
    of the traffic)."""
    dist = dist if dist is not None else _Dist()
    total = torch.zeros((), device=device)
    for i in range(cfg.grad_accum):
        x, y = batches.sample("train", cfg.batch_size * dist.world_size, generator)
        x, y = dist.shard(x), dist.shard(y)
        if device.type == "cuda":  # page-locked host memory: the copy below runs asynchronously
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        last = i == cfg.grad_accum - 1
        with contextlib.nullcontext() if last or not dist.enabled else model.no_sync():
            with _autocast(device, dtype):
                _, loss = model(x, y)
                loss = loss / cfg.grad_accum
            scaler.scale(loss).backward()
        total += loss.detach().float()
    return total.item()


def _finish(result: TrainResult, hist: _History, step: int, step_ms: list[float], tokens_per_step: int,
            out: Path | None, metrics_file: Any, bar: Any) -> None:
    """Fill in the result, close the bar and the metrics file, and write the final config.json."""
    bar.close()
    if metrics_file is not None:
        metrics_file.close()
    result.step = step
    result.losses = list(hist.losses)
    result.val = [(int(s), float(v)) for s, v in hist.val]
    result.skipped_steps = list(hist.skipped)
    # The first step of an invocation pays one-off costs (allocator warm-up, torch.compile): leave it out.
    timed = step_ms[1:] if len(step_ms) > 1 else step_ms
    if timed:
        result.ms_per_step = sum(timed) / len(timed)
        result.tokens_per_s = tokens_per_step / (result.ms_per_step / 1000.0)
    if out is not None:
        path = out / CONFIG_FILE
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cfg = {}
        cfg["result"] = result.summary()
        _write_text_atomic(path, json.dumps(cfg, indent=2) + "\n")


def _write_config(out: Path, model: nn.Module, model_cfg: ModelConfig, train_cfg: TrainConfig, tokenizer: Any,
                  device: torch.device, dtype: torch.dtype, compiled: bool, world_size: int = 1) -> None:
    """config.json at the start of a run (so a crashed run still says what it was); `_finish` adds the
    results at the end."""
    if hasattr(model, "num_params"):
        n_params = model.num_params()
    else:
        n_params = sum(p.numel() for p in model.parameters())
    cfg = {
        "model": model_cfg.to_dict(),
        "train": train_cfg.to_dict(),
        "tokenizer": None if tokenizer is None else {
            "name": tokenizer.name,
            "vocab_size": tokenizer.vocab_size,
        },
        "num_params": n_params,
        "device": str(device),
        "autocast_dtype": str(dtype).removeprefix("torch."),
        "compiled": compiled,
        "world_size": world_size,
        "torch": torch.__version__,
    }
    _write_text_atomic(out / CONFIG_FILE, json.dumps(cfg, indent=2) + "\n")


def _diverged_message(step: int, reason: str, lr: float, result: TrainResult) -> str:
    if result.checkpoint is not None:
        where = f"the last good checkpoint is {result.checkpoint} (step {result.checkpoint_step})"
    else:
        where = "no checkpoint was written before it (set checkpoint_interval to keep one)"
    return f"training diverged at step {step}: {reason} at lr {lr:.3g}; the update was not applied; {where}"
