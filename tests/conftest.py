"""Shared fixtures: tiny configs that run in milliseconds on a laptop CPU."""

from __future__ import annotations

import pytest
import torch

from minigpt import ModelConfig

TINY = dict(vocab_size=84, block_size=32, n_layer=2, n_head=4, n_embd=64)
# The ingredients the cpu-*/gpu-* presets give every variant (nGPT's): RoPE, SwiGLU, no bias.
FAIR = dict(position="rope", mlp="swiglu", bias=False, tie_embeddings=False)


def tiny_config(variant: str, **overrides) -> ModelConfig:
    return ModelConfig(variant=variant, **{**TINY, **overrides})


@pytest.fixture(autouse=True)
def _single_thread_determinism():
    """Tests compare bitwise results; keep torch's thread count fixed during a test."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
