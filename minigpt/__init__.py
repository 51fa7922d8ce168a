"""minigpt: a readable reference implementation of normalization placement in transformers.

    from minigpt import ModelConfig, TrainConfig, build_model, VARIANTS, PRESETS
    model = build_model(ModelConfig(variant="ngpt", ngpt_update="slerp"))
    logits, loss = model(idx, targets)

`VARIANTS` is the one registry of model classes (registry.py; filled by variants.py, one line per variant);
nothing outside it branches on the variant name.
"""

from __future__ import annotations

from torch import nn

from .config import PRESETS, ConfigError, ModelConfig, TrainConfig, get_preset
from .registry import RUNS, VARIANTS

__version__ = "0.1.0"

def build_model(config: ModelConfig) -> nn.Module:
    """The model `config.variant` names: `VARIANTS[config.variant](config)`."""
    if config.variant not in VARIANTS:
        raise ConfigError(f"variant={config.variant!r} is not valid; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[config.variant](config)


__all__ = ["ModelConfig", "TrainConfig", "ConfigError", "PRESETS", "VARIANTS", "RUNS", "build_model", "get_preset"]
