"""minigpt: a readable reference implementation of normalization placement in transformers.

    from minigpt import ModelConfig, TrainConfig, build_model, VARIANTS, PRESETS
    model = build_model(ModelConfig(variant="ngpt", ngpt_update="slerp"))
    logits, loss = model(idx, targets)

`VARIANTS` is the one registry of model classes; nothing outside it branches on the variant name.
"""

from __future__ import annotations

from torch import nn

from . import ngpt, normformer, post_ln, pre_ln
from .config import PRESETS, ConfigError, ModelConfig, TrainConfig, get_preset

__version__ = "0.1.0"

VARIANTS: dict[str, type[nn.Module]] = {
    "post_ln": post_ln.GPT,
    "pre_ln": pre_ln.GPT,
    "normformer": normformer.GPT,
    "ngpt": ngpt.GPT,
}


def build_model(config: ModelConfig) -> nn.Module:
    """The model `config.variant` names: `VARIANTS[config.variant](config)`."""
    if config.variant not in VARIANTS:
        raise ConfigError(f"variant={config.variant!r} is not valid; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[config.variant](config)


__all__ = ["ModelConfig", "TrainConfig", "ConfigError", "PRESETS", "VARIANTS", "build_model", "get_preset"]
