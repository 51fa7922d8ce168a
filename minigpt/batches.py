"""Batches: a token stream split into train and validation by position, and random windows from each.

Its own module so that both ways of getting tokens use it without importing each other: data.py (the
Shakespeare corpus, tokenized in memory and cached) and prepared.py (a corpus that ``python -m minigpt prepare``
wrote to disk, memory-mapped). data.py re-exports both names.
"""

from __future__ import annotations

import numpy as np
import torch

from .data_files import DataError

__all__ = ["split_index", "Batches"]


def split_index(n_tokens: int, val_fraction: float) -> int:
    """Where the train split ends: train = tokens[:i], val = tokens[i:]. One formula for the in-memory corpus
    and for a prepared DIR (minigpt.prepare), so the same tokens give the same two streams either way."""
    return int(n_tokens * (1.0 - val_fraction))


class Batches:
    """Train and validation token streams and random windows from them.

    train = the first 90% of the token array by position, val = the last 10% (``val_fraction``). Splitting by
    position, not by shuffled windows, means no validation text is ever seen in training. Both are views of
    ``tokens`` (no copy, so a memory-mapped cache stays on disk).
    """

    def __init__(self, tokens: np.ndarray, block_size: int, val_fraction: float = 0.1):
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise DataError(
                f"tokens must be a 1-D integer array, got shape {tokens.shape} dtype {tokens.dtype}"
            )
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise DataError(f"block_size={block_size!r} is not valid; it must be an integer >= 1")
        if not 0.0 < val_fraction < 1.0:
            raise DataError(f"val_fraction={val_fraction!r} is not valid; it must be in (0, 1)")
        n = len(tokens)
        if n == 0:
            raise DataError("the corpus is empty: 0 tokens to split into train and val")
        n_train = split_index(n, val_fraction)
        self.tokens = tokens
        self.val_fraction = val_fraction
        self._set_splits(tokens[:n_train], tokens[n_train:], block_size)

    def _set_splits(self, train: np.ndarray, val: np.ndarray, block_size: int) -> None:
        """Keep the two streams (views, never copies) after checking each holds one window."""
        self.block_size = block_size
        self.train = train
        self.val = val
        need = block_size + 1
        n = len(train) + len(val)
        for split, data in (("val", self.val), ("train", self.train)):
            if len(data) < need:
                raise DataError(
                    f"the {split} split has {len(data)} tokens (of {n} in the corpus, val_fraction="
                    f"{self.val_fraction:g}) but block_size={block_size} needs at least {need}; "
                    f"use a smaller block_size or a longer corpus"
                )

    def split(self, split: str) -> np.ndarray:
        if split == "train":
            return self.train
        if split == "val":
            return self.val
        raise DataError(f"split={split!r} is not valid; choose one of train, val")

    def sample(
        self, split: str, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` random contiguous windows of ``block_size + 1`` tokens from ``split``.

        Returns x, y: int64 tensors of shape (batch_size, block_size) on the CPU, y = x shifted left by one
        (the next-token targets). The offsets come from ``torch.randint(generator=generator)`` alone, so the
        batches are a function of the generator's state: reseed it and you get the same batches.
        """
        data = self.split(split)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise DataError(f"batch_size={batch_size!r} is not valid; it must be an integer >= 1")
        high = len(data) - self.block_size  # last valid start is len - block_size - 1
        starts = torch.randint(high, (batch_size,), generator=generator, device=generator.device)
        index = starts.cpu().numpy()[:, None] + np.arange(self.block_size + 1)
        windows = torch.from_numpy(data[index].astype(np.int64))
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()

    def val_batches(
        self, n_batches: int, batch_size: int, seed: int = 0
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Fixed evaluation batches: drawn from a generator of their own seeded with ``seed``, so every call
        (and every run, and every variant in a comparison) is evaluated on exactly the same windows."""
        generator = torch.Generator().manual_seed(seed)
        return [self.sample("val", batch_size, generator) for _ in range(n_batches)]

    def __repr__(self) -> str:
        return f"Batches(train={len(self.train)}, val={len(self.val)} tokens, block_size={self.block_size})"
