"""The run folder: checkpoints (atomic writes, safe loading, exact-resume checks), metrics.jsonl and
config.json.

A checkpoint is a dict saved with `torch.save` and read with `torch.load(weights_only=True)`: format and version
markers, the step, both configs and the tokenizer as plain dicts, the model and optimizer state dicts, the RNG
states and the run's `History` (plain lists and floats). `load_checkpoint` refuses anything else with a
`CheckpointError` that names the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import build_model
from .config import ConfigError, ModelConfig, TrainConfig

CHECKPOINT_FILE = "ckpt.pt"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
CHECKPOINT_FORMAT = "minigpt-checkpoint"
CHECKPOINT_VERSION = 1

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


@dataclass
class History:
    """Everything besides weights and optimizer that an exact resume restores. Plain lists and floats, so
    the checkpoint stays loadable with weights_only=True."""

    losses: list[float] = field(default_factory=list)
    val: list[list[float]] = field(default_factory=list)  # [step, val_loss]
    metrics: list[dict[str, Any]] = field(default_factory=list)  # the metrics.jsonl records
    skipped: list[int] = field(default_factory=list)
    initial_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def checkpoint_state(step: int, model_cfg: ModelConfig, train_cfg: TrainConfig, tokenizer: Any, model: nn.Module,
                     optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, rng: dict[str, Any],
                     hist: History, world_size: int) -> dict[str, Any]:
    """What `save_checkpoint` writes after `step`: everything an exact resume needs (the format the loaders
    check; unchanged since version 1, so old checkpoints load)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": step,
        "model_config": model_cfg.to_dict(),
        "train_config": train_cfg.to_dict(),
        "tokenizer": tokenizer.to_dict() if tokenizer is not None else None,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "rng": rng,
        "history": hist.to_dict(),
        "world_size": world_size,
    }
