"""Shared plumbing of the experiments: presets and overrides, cached data, probes, a plain validation loss.

Part of the experiments package; the overview is in minigpt/experiments/__init__.py.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import build_model
from ..config import ConfigError, ModelConfig, TrainConfig, default_preset_name, get_preset
from ..diagnostics import WEIGHTS  # noqa: F401  (re-exported)

# The four weight matrices of a block: their keys are diagnostics.WEIGHTS' (re-exported as experiments.WEIGHTS)


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
    """(tokenizer, Batches), loaded once per process for each (tokenizer, data folders, block_size)."""
    from ..data import load_data

    key = (train_cfg.tokenizer, train_cfg.compact_vocab, train_cfg.data_dir, train_cfg.data, block_size)
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


SEEDS = (1337, 1338, 1339)  # the claim-vs-scale seeds; 1337 is the presets' seed: a notebook's live run is the first


def band(values: Sequence[float]) -> dict[str, Any]:
    """mean, sample std (0 for one value), min, max and the values themselves; inf/NaN values are kept in
    `values` and make the statistics NaN (a run that never reached the target is not averaged away)."""
    vals = [float(v) for v in values]
    finite = all(math.isfinite(v) for v in vals) and vals
    mean = statistics.fmean(vals) if finite else float("nan")
    std = statistics.stdev(vals) if finite and len(vals) > 1 else (0.0 if finite else float("nan"))
    return dict(mean=mean, std=std, min=min(vals) if vals else float("nan"), max=max(vals) if vals else float("nan"),
                values=vals)
