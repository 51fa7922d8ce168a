"""Shared fixtures: tiny configs that run in milliseconds on a laptop CPU."""

from __future__ import annotations

import torch

from minigpt import ModelConfig

TINY = dict(vocab_size=84, block_size=32, n_layer=2, n_head=4, n_embd=64)
# The ingredients the cpu-*/gpu-* presets give every variant (nGPT's): RoPE, SwiGLU, no bias.
FAIR = dict(position="rope", mlp="swiglu", bias=False, tie_embeddings=False)


def tiny_config(variant: str, **overrides) -> ModelConfig:
    return ModelConfig(variant=variant, **{**TINY, **overrides})


# Tiny test models are fastest on one thread, and on a loaded 2-core machine torch's default of 2 threads is
# pathologically slow (measured: 800 ms vs 5 ms per step). One thread also keeps reductions deterministic.
torch.set_num_threads(1)


# Hypothesis (tests/test_cli_fuzz.py): the default profile is small and derandomized, so the README command
# stays within a minute and cannot flake; `--hypothesis-profile=long` is the full search (minutes).
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the dev extra is not installed: the fuzz test skips itself
    pass
else:
    _slow_ok = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile("minigpt", max_examples=24, deadline=None, derandomize=True, database=None,
                              suppress_health_check=_slow_ok, print_blob=True)
    settings.register_profile("long", max_examples=2000, deadline=None, derandomize=False, database=None,
                              suppress_health_check=_slow_ok, print_blob=True)
    settings.load_profile("minigpt")
