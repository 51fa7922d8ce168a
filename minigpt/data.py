"""Data: the corpus, the two tokenizers, the token cache, the train/val split and batch sampling.

Everything here works offline. The corpus (``shakespeare.txt``) and the GPT-2 merge ranks (``gpt2.tiktoken``)
ship in the repository's ``data/`` folder (and inside the wheel as ``minigpt/_data``); nothing is downloaded.

The path from text to batches (DESIGN.md section 4)::

    corpus = load_corpus()                                   # str, the complete works
    tok = build_tokenizer("gpt2", corpus)                    # or "char"; gpt2 compacts its vocab by default
    tokens = encode_corpus(tok, corpus)                      # uint16 array, cached on disk as .npy
    batches = Batches(tokens, block_size=128)                # first 90% train, last 10% val
    x, y = batches.sample("train", 16, generator)            # (16, 128) int64 each, y = x shifted by one

``load_data(train_cfg, block_size)`` does all of that from a ``TrainConfig``. Every failure raises
``DataError`` with a message that names the file, field or value at fault (DESIGN.md section 8).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .config import TOKENIZERS, TrainConfig

if TYPE_CHECKING:
    import tiktoken

__all__ = [
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
    "Batches",
    "load_data",
]

CORPUS_FILE = "shakespeare.txt"
GPT2_RANKS_FILE = "gpt2.tiktoken"
# sha256 of data/gpt2.tiktoken; the same hash tiktoken itself expects for r50k_base (see data/README.md).
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
GPT2_VOCAB_SIZE = 50257  # 50,256 merge ranks + <|endoftext|>
GPT2_EOT = "<|endoftext|>"

DATA_DIR_ENV = "MINIGPT_DATA_DIR"
CACHE_DIR_ENV = "MINIGPT_CACHE_DIR"

# Where the data lives when no path is given: a clone / editable install keeps it at <repo>/data, a wheel
# carries it as <package>/_data. Module-level so that tests can point them elsewhere.
_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE_DIR.parent
_DEFAULT_DATA_DIRS: tuple[Path, ...] = (_REPO_ROOT / "data", _PACKAGE_DIR / "_data")


class DataError(ValueError):
    """The data cannot be used as asked. The message names the file, field or value and what was expected."""


# ---------------------------------------------------------------------------------------------- files


def resolve_data_dir(path: str | Path | None = None, *, filename: str = CORPUS_FILE) -> Path:
    """The folder that holds the data files, found in this order:

    1. ``path``, if given;
    2. ``$MINIGPT_DATA_DIR``, if set;
    3. ``<repo root>/data`` (a clone or an editable install);
    4. ``<package>/_data`` (a wheel install; pyproject force-includes ``data/`` there).

    An explicit ``path`` or a set environment variable is authoritative: if it lacks ``filename`` we raise
    rather than quietly fall back to another copy of the data, which would hide a typo. The two built-in
    places are searched in turn. The DataError lists every place that was looked at.
    """
    if path is not None:
        candidates = [(Path(path).expanduser(), f"data_dir={str(path)!r}")]
    elif os.environ.get(DATA_DIR_ENV):
        env = os.environ[DATA_DIR_ENV]
        candidates = [(Path(env).expanduser(), f"${DATA_DIR_ENV}={env!r}")]
    else:
        candidates = [(d, "built-in location") for d in _DEFAULT_DATA_DIRS]
    for folder, _ in candidates:
        if (folder / filename).is_file():
            return folder
    looked = "; ".join(f"{folder} ({why})" for folder, why in candidates)
    hint = "" if path is not None else f"; set ${DATA_DIR_ENV} or pass data_dir to point at the data folder"
    raise DataError(f"could not find {filename}; looked in: {looked}{hint}")


def load_corpus(data_dir: str | Path | None = None, filename: str = CORPUS_FILE) -> str:
    """The corpus as one string, byte-exact (no newline translation) so that encode/decode round-trips it."""
    path = resolve_data_dir(data_dir, filename=filename) / filename
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read corpus {path}: {e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"corpus {path} is not valid UTF-8 (byte {e.start}: {e.reason})") from e
    if not text.strip():
        raise DataError(f"corpus {path} is empty ({len(raw)} bytes, no text)")
    return text


def default_cache_dir() -> Path:
    """Where encoded corpora are cached: ``$MINIGPT_CACHE_DIR``, else ``<repo>/.cache/minigpt`` in a clone
    (git-ignored), else the user cache (``$XDG_CACHE_HOME`` or ``~/.cache``) ``/minigpt`` for a wheel install,
    so that we never write into site-packages."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    if (_REPO_ROOT / ".git").exists() or (_REPO_ROOT / "pyproject.toml").is_file():
        return _REPO_ROOT / ".cache" / "minigpt"
    user_cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(user_cache) / "minigpt"


# ------------------------------------------------------------------------------------------ tokenizers


def _id_array(ids: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
    """Token ids as a 1-D int64 array, whatever they came as (list, numpy array, CPU or GPU tensor)."""
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(
            f"token ids must be a 1-D sequence of integers, got shape {arr.shape} dtype {arr.dtype}"
        )
    return arr.astype(np.int64, copy=False)


def _check_range(ids: np.ndarray, vocab_size: int, what: str) -> None:
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = int(ids[(ids < 0) | (ids >= vocab_size)][0])
        raise DataError(f"token id {bad} is out of range for the {what} (valid ids are 0..{vocab_size - 1})")


class Tokenizer:
    """What the rest of minigpt needs from a tokenizer.

    ``encode``/``decode`` are the plain-Python interface (lists of ints); ``encode_array`` is the vectorized
    one that ``encode_corpus`` uses on the whole corpus. ``to_dict`` is JSON-safe (str, int, list only) so a
    checkpoint can store it and ``tokenizer_from_dict`` can rebuild the identical tokenizer for sampling.
    """

    name: str
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class CharTokenizer(Tokenizer):
    """One id per character: id i is the i-th of the sorted distinct characters of the corpus (84 for
    Shakespeare). The vocabulary is tiny, which is what lets the CPU presets train in seconds.

    Encoding goes through UTF-32 code points and a lookup table, so the 5 MB corpus encodes in milliseconds.
    """

    name = "char"

    def __init__(self, chars: str | Sequence[str]):
        chars = list(chars)
        if not chars:
            raise DataError("CharTokenizer needs at least one character")
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise DataError(f"CharTokenizer characters must be single characters, got {bad[0]!r}")
        if len(set(chars)) != len(chars):
            dup = next(c for c in chars if chars.count(c) > 1)
            raise DataError(f"CharTokenizer characters must be distinct, {dup!r} appears twice")
        self.chars = "".join(chars)
        self.vocab_size = len(chars)
        self._codepoints = np.array([ord(c) for c in chars], dtype=np.int64)  # id -> code point
        self._table = np.full(int(self._codepoints.max()) + 1, -1, dtype=np.int64)  # code point -> id
        self._table[self._codepoints] = np.arange(self.vocab_size)

    @classmethod
    def from_corpus(cls, corpus: str) -> CharTokenizer:
        if not corpus:
            raise DataError("cannot build a character vocabulary from an empty corpus")
        return cls(sorted(set(corpus)))

    def encode_array(self, text: str) -> np.ndarray:
        # surrogatepass: a lone surrogate becomes a code point we report as unknown, instead of a codec error
        cps = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4").astype(np.int64)
        ids = np.full(cps.shape, -1, dtype=np.int64)
        known = cps < len(self._table)
        ids[known] = self._table[cps[known]]
        if (ids < 0).any():
            pos = int(np.flatnonzero(ids < 0)[0])
            raise DataError(
                f"character {text[pos]!r} (U+{ord(text[pos]):04X}, at position {pos}) is not in the "
                f"{self.vocab_size}-character vocabulary of this CharTokenizer"
            )
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        arr = _id_array(ids)
        _check_range(arr, self.vocab_size, f"{self.vocab_size}-character vocabulary")
        return self._codepoints[arr].astype("<u4").tobytes().decode("utf-32-le", errors="surrogatepass")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "vocab_size": self.vocab_size, "chars": self.chars}


# The GPT-2 Encoding, built once per process: the ranks file is still hash-checked on every GPT2Tokenizer.
_GPT2_ENCODING: tiktoken.Encoding | None = None


def _gpt2_encoding(data_dir: str | Path | None) -> tiktoken.Encoding:
    """The GPT-2 byte-level BPE from ``gpt2.tiktoken``, verified against its sha256.

    We read, hash and parse the file ourselves (one ``<base64 token> <rank>`` per line) rather than calling
    ``tiktoken.load.load_tiktoken_bpe``: that function copies every file it loads into a cache under the
    system temp folder (writing outside the data folder) and, keyed by path, would go on returning the good
    copy after the file itself was damaged. Parsing the very bytes we hashed leaves no gap between the check
    and the use.
    """
    global _GPT2_ENCODING
    try:
        import tiktoken
        from tiktoken_ext.openai_public import r50k_pat_str
    except ImportError as e:
        raise DataError(f"tokenizer='gpt2' needs the tiktoken package (pip install tiktoken): {e}") from e

    path = resolve_data_dir(data_dir, filename=GPT2_RANKS_FILE) / GPT2_RANKS_FILE
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read the GPT-2 BPE ranks {path}: {e}") from e
    actual = hashlib.sha256(raw).hexdigest()
    if actual != GPT2_RANKS_SHA256:
        raise DataError(
            f"GPT-2 BPE ranks {path} have the wrong sha256 {actual}; expected {GPT2_RANKS_SHA256}. The file "
            f"is damaged or not the GPT-2 (r50k_base) ranks; restore it from the repository's data/ folder"
        )
    if _GPT2_ENCODING is None:
        try:
            lines = (line.split() for line in raw.splitlines() if line)
            ranks = {base64.b64decode(token): int(rank) for token, rank in lines}
            _GPT2_ENCODING = tiktoken.Encoding(
                name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={GPT2_EOT: 50256}
            )
        except (ValueError, TypeError) as e:
            raise DataError(f"could not parse the GPT-2 BPE ranks {path}: {e}") from e
    return _GPT2_ENCODING


class GPT2Tokenizer(Tokenizer):
    """GPT-2's byte-level BPE (tiktoken, from the offline ``gpt2.tiktoken``), optionally compacted.

    Compaction: Shakespeare uses only 19,378 of the 50,257 GPT-2 ids. Given ``used_ids`` (sorted GPT-2 ids),
    GPT-2 id ``used_ids[i]`` becomes id ``i``, so a small model's embedding and LM head shrink 2.6x while the
    tokenization itself stays exactly GPT-2's. ``decode`` maps back. Text that needs a GPT-2 token outside
    the compact vocabulary cannot be encoded (DataError names the token).

    Special tokens are never parsed out of text: ``"<|endoftext|>"`` in the input is encoded as ordinary
    characters, so ``decode(encode(text)) == text`` for any text.
    """

    name = "gpt2"

    def __init__(
        self, data_dir: str | Path | None = None, used_ids: Sequence[int] | np.ndarray | None = None
    ):
        self._enc = _gpt2_encoding(data_dir)
        self.data_dir = data_dir
        if used_ids is None:
            self.used_ids: np.ndarray | None = None
            self.vocab_size = GPT2_VOCAB_SIZE
            return
        used = _id_array(used_ids)
        if used.size == 0:
            raise DataError("used_ids is empty; a compact GPT-2 vocabulary needs at least one id")
        _check_range(used, GPT2_VOCAB_SIZE, "GPT-2 vocabulary (in used_ids)")
        if (np.diff(used) <= 0).any():
            raise DataError("used_ids must be strictly increasing (sorted GPT-2 ids, no repeats)")
        self.used_ids = used
        self.vocab_size = int(used.size)
        self._to_compact = np.full(GPT2_VOCAB_SIZE, -1, dtype=np.int64)  # GPT-2 id -> compact id
        self._to_compact[used] = np.arange(used.size)

    @property
    def compact(self) -> bool:
        return self.used_ids is not None

    def full(self) -> GPT2Tokenizer:
        """The uncompacted GPT-2 tokenizer over the same ranks."""
        return self if not self.compact else GPT2Tokenizer(self.data_dir)

    def compact_ids(self, gpt2_ids: np.ndarray) -> np.ndarray:
        """Map GPT-2 ids onto this tokenizer's ids (identity when not compacted), vectorized."""
        gpt2_ids = _id_array(gpt2_ids)
        if not self.compact:
            return gpt2_ids
        _check_range(gpt2_ids, GPT2_VOCAB_SIZE, "GPT-2 vocabulary")
        ids = self._to_compact[gpt2_ids]
        if (ids < 0).any():
            missing = int(gpt2_ids[ids < 0][0])
            raise DataError(
                f"GPT-2 token {self._enc.decode([missing])!r} (GPT-2 id {missing}) is not in the compact "
                f"vocabulary of {self.vocab_size} ids used by the corpus; build the tokenizer with "
                f"compact_vocab=False to encode arbitrary text"
            )
        return ids

    def encode_array(self, text: str) -> np.ndarray:
        return self.compact_ids(np.asarray(self._enc.encode_ordinary(text), dtype=np.int64))

    def decode(self, ids: Sequence[int]) -> str:
        arr = _id_array(ids)
        if self.compact:
            _check_range(arr, self.vocab_size, f"compact GPT-2 vocabulary of {self.vocab_size} ids")
            arr = self.used_ids[arr]
        else:
            _check_range(arr, GPT2_VOCAB_SIZE, "GPT-2 vocabulary")
        return self._enc.decode(arr.tolist())

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "vocab_size": self.vocab_size,
            "ranks_sha256": GPT2_RANKS_SHA256,
        }
        if self.compact:
            d["used_ids"] = self.used_ids.tolist()
        return d


def tokenizer_from_dict(d: dict[str, Any], data_dir: str | Path | None = None) -> Tokenizer:
    """Rebuild a tokenizer from ``Tokenizer.to_dict()`` (stored in checkpoints), without the corpus."""
    if not isinstance(d, dict) or "name" not in d:
        raise DataError(f"a tokenizer dict needs a 'name' field, got {d!r:.200}")
    name = d["name"]
    if name == "char":
        if not isinstance(d.get("chars"), (str, list)):
            raise DataError("char tokenizer dict needs 'chars' (the vocabulary as a string)")
        tok: Tokenizer = CharTokenizer(d["chars"])
    elif name == "gpt2":
        if d.get("ranks_sha256", GPT2_RANKS_SHA256) != GPT2_RANKS_SHA256:
            raise DataError(
                f"gpt2 tokenizer dict was made with BPE ranks of sha256 {d['ranks_sha256']}, "
                f"but this minigpt uses {GPT2_RANKS_SHA256}"
            )
        tok = GPT2Tokenizer(data_dir, used_ids=d.get("used_ids"))
    else:
        raise DataError(f"tokenizer name {name!r} is not valid; choose one of {', '.join(TOKENIZERS)}")
    if "vocab_size" in d and d["vocab_size"] != tok.vocab_size:
        raise DataError(
            f"{name} tokenizer dict says vocab_size={d['vocab_size']} but its contents give {tok.vocab_size}"
        )
    return tok


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


# -------------------------------------------------------------------------------------------- batches


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
        n_train = int(n * (1.0 - val_fraction))
        self.tokens = tokens
        self.block_size = block_size
        self.val_fraction = val_fraction
        self.train = tokens[:n_train]
        self.val = tokens[n_train:]
        need = block_size + 1
        for split, data in (("val", self.val), ("train", self.train)):
            if len(data) < need:
                raise DataError(
                    f"the {split} split has {len(data)} tokens (of {n} in the corpus, val_fraction="
                    f"{val_fraction}) but block_size={block_size} needs at least {need}; "
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


def load_data(train_cfg: TrainConfig, block_size: int) -> tuple[Tokenizer, Batches]:
    """Corpus -> tokenizer -> (cached) tokens -> Batches, as ``train_cfg`` (tokenizer, compact_vocab,
    data_dir) says. The tokenizer's ``vocab_size`` is what the model's ``vocab_size`` must be."""
    data_dir = resolve_data_dir(train_cfg.data_dir)
    corpus = load_corpus(data_dir)
    tokenizer = build_tokenizer(train_cfg.tokenizer, corpus, data_dir, compact_vocab=train_cfg.compact_vocab)
    tokens = encode_corpus(tokenizer, corpus)
    return tokenizer, Batches(tokens, block_size)
