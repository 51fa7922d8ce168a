"""Data: the corpus, the two tokenizers, the token cache, the train/val split and batch sampling.

Everything here works offline. The corpus (``shakespeare.txt``) and the GPT-2 merge ranks (``gpt2.tiktoken``)
ship in the repository's ``data/`` folder (and inside the wheel as ``minigpt/_data``); nothing is downloaded.

The path from text to batches (docs/design.md §4)::

    corpus = load_corpus()                                   # str, the complete works
    tok = build_tokenizer("gpt2", corpus)                    # or "char"; gpt2 compacts its vocab by default
    tokens = encode_corpus(tok, corpus)                      # uint16 array, cached on disk as .npy
    batches = Batches(tokens, block_size=128)                # first 90% train, last 10% val
    x, y = batches.sample("train", 16, generator)            # (16, 128) int64 each, y = x shifted by one

``load_data(train_cfg, block_size)`` does all of that from a ``TrainConfig``. Every failure raises
``DataError`` with a message that names the file, field or value at fault (docs/design.md §8).

The files (corpus, data folder, cache folder) are in data_files.py, the tokenizers in tokenizers.py and
``Batches`` in batches.py; their public names are re-exported here. A corpus prepared on disk by ``python -m
minigpt prepare`` is read by prepared.py, which ``load_data`` hands over to when ``train_cfg.data`` is set.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .batches import Batches, split_index
from .config import TOKENIZERS, TrainConfig
from .data_files import (
    CACHE_DIR_ENV,
    CORPUS_FILE,
    DATA_DIR_ENV,
    GPT2_VOCAB_SIZE,
    DataError,
    default_cache_dir,
    load_corpus,
    resolve_data_dir,
)
from .tokenizers import CharTokenizer, GPT2Tokenizer, Tokenizer, tokenizer_from_dict

__all__ = [
    "CORPUS_FILE",
    "DATA_DIR_ENV",
    "CACHE_DIR_ENV",
    "DataError",
    "resolve_data_dir",
    "load_corpus",
    "default_cache_dir",
    "Tokenizer",
    "CharTokenizer",
    "GPT2Tokenizer",
    "tokenizer_from_dict",
    "build_tokenizer",
    "encode_corpus",
    "split_index",
    "Batches",
    "load_data",
]


def build_tokenizer(
    name: str,
    corpus: str,
    data_dir: str | Path | None = None,
    compact_vocab: bool = True,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> Tokenizer:
    """The tokenizer ``name`` (one of config.TOKENIZERS) for this corpus.

    ``char`` takes its vocabulary from the corpus. ``gpt2`` with ``compact_vocab`` needs the set of GPT-2
    ids the corpus uses, which costs one encoding of the corpus; that encoding goes through the token cache
    (``cache_dir``/``use_cache`` as in ``encode_corpus``) so it is paid once, not on every run.
    """
    if name not in TOKENIZERS:
        raise DataError(f"tokenizer={name!r} is not valid; choose one of {', '.join(TOKENIZERS)}")
    if name == "char":
        return CharTokenizer.from_corpus(corpus)
    full = GPT2Tokenizer(data_dir)
    if not compact_vocab:
        return full
    if not corpus:
        raise DataError("cannot build a compact GPT-2 vocabulary from an empty corpus")
    gpt2_ids = encode_corpus(full, corpus, cache_dir, use_cache=use_cache)
    used = np.flatnonzero(np.bincount(gpt2_ids, minlength=GPT2_VOCAB_SIZE))
    return GPT2Tokenizer(data_dir, used_ids=used)


# ---------------------------------------------------------------------------------------- token cache


def _token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned type that holds every id: halves the cache and the memory for GPT-2 ids."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def _cache_file(tokenizer: Tokenizer, corpus: str) -> str:
    """File name for (tokenizer, corpus): readable prefix, then hashes of the tokenizer's full identity (its
    to_dict, which includes the compact id map) and of the corpus text."""
    ident = json.dumps(tokenizer.to_dict(), sort_keys=True).encode()
    tok_hash = hashlib.sha256(ident).hexdigest()[:16]
    corpus_hash = hashlib.sha256(corpus.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]
    kind = f"{tokenizer.name}-compact" if getattr(tokenizer, "compact", False) else tokenizer.name
    return f"{kind}-v{tokenizer.vocab_size}-{tok_hash}-{corpus_hash}.npy"


def _read_cache(path: Path, tokenizer: Tokenizer) -> np.ndarray | None:
    """The cached tokens, or None if absent or unusable (a damaged cache is rebuilt, with a warning)."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, mmap_mode="r")
        ok = arr.ndim == 1 and arr.dtype == _token_dtype(tokenizer.vocab_size) and arr.size > 0
        if ok and int(arr.max()) < tokenizer.vocab_size:
            return arr
        reason = f"unexpected contents (shape {arr.shape}, dtype {arr.dtype})"
    except (OSError, ValueError) as e:
        reason = str(e)
    warnings.warn(f"ignoring damaged token cache {path}: {reason}; re-encoding", stacklevel=3)
    return None


def _write_cache(path: Path, tokens: np.ndarray) -> bool:
    """Write atomically (temp file in the same folder + os.replace) so that a crash or a concurrent run never
    leaves a half-written cache behind. Returns False, with a warning, if the folder is not writable."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.stem, suffix=".tmp", delete=False) as f:
            tmp = f.name
            np.save(f, tokens)
        os.replace(tmp, path)
        return True
    except OSError as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        warnings.warn(f"cannot write token cache {path} ({e}); continuing without a cache", stacklevel=3)
        return False


def encode_corpus(
    tokenizer: Tokenizer, corpus: str, cache_dir: str | Path | None = None, *, use_cache: bool = True
) -> np.ndarray:
    """The corpus as a 1-D array of token ids (uint16 if the vocabulary fits, else uint32).

    Cached as ``.npy`` under ``cache_dir`` (default ``default_cache_dir()``), keyed by the tokenizer's
    identity and the corpus's sha256, and loaded memory-mapped (read-only) on the next call. An unwritable
    cache folder only costs the re-encoding next time. A compact GPT-2 tokenizer maps the cached full GPT-2
    encoding instead of running BPE again. ``use_cache=False`` neither reads nor writes the cache.
    """
    dtype = _token_dtype(tokenizer.vocab_size)
    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / _cache_file(tokenizer, corpus)
    if use_cache:
        cached = _read_cache(path, tokenizer)
        if cached is not None:
            return cached
    if isinstance(tokenizer, GPT2Tokenizer) and tokenizer.compact:
        ids = tokenizer.compact_ids(encode_corpus(tokenizer.full(), corpus, cache_dir, use_cache=use_cache))
    else:
        ids = tokenizer.encode_array(corpus)
    tokens = ids.astype(dtype)
    if use_cache and _write_cache(path, tokens):
        return np.load(path, mmap_mode="r")
    return tokens


def load_data(train_cfg: TrainConfig, block_size: int) -> tuple[Tokenizer, Batches]:
    """Corpus -> tokenizer -> (cached) tokens -> Batches, as ``train_cfg`` (tokenizer, compact_vocab,
    data_dir) says. The tokenizer's ``vocab_size`` is what the model's ``vocab_size`` must be.

    With ``train_cfg.data`` set, the batches come from that prepared folder's memory-mapped ``train.bin`` /
    ``val.bin`` instead, and the tokenizer from its ``meta.json`` (minigpt.prepared)."""
    if train_cfg.data is not None:
        from .prepared import load_prepared

        return load_prepared(train_cfg.data, block_size, tokenizer=train_cfg.tokenizer, data_dir=train_cfg.data_dir)
    data_dir = resolve_data_dir(train_cfg.data_dir)
    corpus = load_corpus(data_dir)
    tokenizer = build_tokenizer(train_cfg.tokenizer, corpus, data_dir, compact_vocab=train_cfg.compact_vocab)
    tokens = encode_corpus(tokenizer, corpus)
    return tokenizer, Batches(tokens, block_size)
