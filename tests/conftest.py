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
