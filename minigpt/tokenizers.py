"""The two tokenizers: characters (84 symbols) and GPT-2 BPE (tiktoken, from the shipped merge ranks, with an
optional compaction of the ids the corpus uses onto a dense range); and `tokenizer_from_dict` (data.build_tokenizer
makes one for a corpus)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .config import TOKENIZERS

if TYPE_CHECKING:
    import tiktoken

from .data_files import GPT2_EOT, GPT2_RANKS_FILE, GPT2_RANKS_SHA256, GPT2_VOCAB_SIZE, DataError, resolve_data_dir


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

    @property
    def encoding(self) -> tiktoken.Encoding:
        """The tiktoken Encoding underneath (full GPT-2 ids), for batch encoding in minigpt.prepare."""
        return self._enc

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
