"""Reading a prepared corpus: the folder ``python -m minigpt prepare`` writes (minigpt.prepare).

A prepared DIR holds::

    DIR/train.bin   token ids, raw little-endian uint16 (uint32 when the vocabulary needs it), one stream
    DIR/val.bin     the same for the validation split
    DIR/meta.json   format, tokenizer (its to_dict), dtype, token and document counts, sha256 of each .bin,
                    the source and the command that made it

``load_prepared`` opens both .bin files as read-only memory maps and hands them to ``PreparedBatches``, which
samples with ``Batches``' own code: a batch reads only the windows it needs from disk, so a corpus far larger
than RAM trains in flat memory, and the same token streams give exactly the batches an in-memory ``Batches``
gives (tests/test_prepare.py). The tokenizer comes from meta.json, whatever the preset says.

Checks on load (a damaged DIR fails here, with the file named, not as a shape error mid-run): meta.json is
present and of our format; each .bin's size is a whole number of ids and equals the count in meta.json; and
each .bin's sha256 is recomputed when the file is at most ``VERIFY_SHA_MAX_BYTES`` (1 GiB, about a second).
Larger files get the size check only, so that training on a 20 GB corpus does not start with a minute of
hashing; compare ``sha256sum DIR/train.bin`` with meta.json by hand when in doubt.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .batches import Batches
from .config import default_preset_name, get_preset
from .data_files import DataError
from .tokenizers import Tokenizer, tokenizer_from_dict

__all__ = [
    "META_FILE",
    "SPLIT_FILES",
    "PreparedBatches",
    "read_meta",
    "check_tokenizer",
    "with_prepared_data",
    "load_prepared",
]

FORMAT = "minigpt-prepared"
VERSION = 1
META_FILE = "meta.json"
SPLIT_FILES = {"train": "train.bin", "val": "val.bin"}
DTYPES = ("uint16", "uint32")
VERIFY_SHA_MAX_BYTES = 1 << 30
_HASH_CHUNK = 1 << 24


def sha256_file(path: Path) -> str:
    """sha256 of a file read in 16 MiB chunks (plain reads: hashing does not grow the process's memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def read_meta(folder: str | Path) -> dict[str, Any]:
    """DIR/meta.json, checked to be ours. A folder without it (a typo, or a prepare that never finished:
    those live in a separate ``.DIR.partial`` folder until the last step) is not a prepared corpus."""
    folder = Path(folder)
    path = folder / META_FILE
    if not folder.is_dir():
        raise DataError(f"data={str(folder)!r} is not a folder; make one with `python -m minigpt prepare SOURCE "
                        f"--out {folder}`")
    if not path.is_file():
        raise DataError(f"{folder} is not a prepared corpus (no {META_FILE}); make one with `python -m minigpt "
                        f"prepare SOURCE --out {folder}`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path} is not a minigpt prepared-corpus file (format {FORMAT!r} expected)")
    if meta.get("version") != VERSION:
        raise DataError(f"{path} has version {meta.get('version')!r}; this minigpt reads version {VERSION}: "
                        f"prepare the corpus again")
    if meta.get("dtype") not in DTYPES or not isinstance(meta.get("tokenizer"), dict):
        raise DataError(f"{path} lacks a valid dtype ({', '.join(DTYPES)}) or tokenizer entry")
    return meta


def check_tokenizer(meta: dict[str, Any], folder: str | Path, tokenizer: str | None) -> str:
    """The tokenizer name DIR was prepared with; ``tokenizer`` (one asked for explicitly) must agree, since
    ids from one tokenizer mean nothing to the other."""
    name = meta["tokenizer"].get("name")
    if tokenizer is not None and tokenizer != name:
        raise DataError(f"tokenizer={tokenizer!r} disagrees with {folder}, prepared with tokenizer {name!r} (its "
                        f"{META_FILE}); drop the tokenizer option (a prepared corpus sets it) or prepare the "
                        f"corpus again with --tokenizer {tokenizer}")
    return name


def with_prepared_data(overrides: dict[str, Any], preset_name: str | None) -> dict[str, Any]:
    """The CLI's field overrides with ``tokenizer`` set from ``overrides["data"]``'s meta.json, whatever the
    preset's (an explicit tokenizer must agree). A preset that ``needs_data`` (gpu-web) refuses to run without
    a prepared DIR rather than fall back to Shakespeare. ``preset_name`` None = the default preset."""
    if overrides.get("data") is None:
        name = preset_name or default_preset_name()
        if get_preset(name).needs_data:
            raise DataError(f"preset {name} trains on a prepared web-text corpus: pass --data DIR, made with "
                            f"`python -m minigpt prepare fineweb-edu --out DIR --max_tokens 300000000`")
        return overrides
    meta = read_meta(overrides["data"])
    return {**overrides, "tokenizer": check_tokenizer(meta, overrides["data"], overrides.get("tokenizer"))}


def _open_split(folder: Path, meta: dict[str, Any], split: str, verify_sha: bool | None) -> np.memmap:
    """One .bin as a read-only memmap after the size check (always) and the sha256 check (see module doc)."""
    path = folder / SPLIT_FILES[split]
    dtype = np.dtype(meta["dtype"])
    entry = meta.get("files", {}).get(SPLIT_FILES[split], {})
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    if size % dtype.itemsize:
        raise DataError(f"{path} is corrupt: {size} bytes is not a whole number of {meta['dtype']} token ids "
                        f"({dtype.itemsize} bytes each); prepare the corpus again")
    if size // dtype.itemsize != entry.get("tokens"):
        raise DataError(f"{path} is corrupt: it holds {size // dtype.itemsize} tokens but {META_FILE} says "
                        f"{entry.get('tokens')}; prepare the corpus again")
    if verify_sha if verify_sha is not None else size <= VERIFY_SHA_MAX_BYTES:
        actual = sha256_file(path)
        if actual != entry.get("sha256"):
            raise DataError(f"{path} is corrupt: sha256 {actual} differs from {entry.get('sha256')} in "
                            f"{META_FILE}; prepare the corpus again")
    if size == 0:
        raise DataError(f"{path} holds no tokens; prepare the corpus again with more text")
    return np.memmap(path, dtype=dtype, mode="r")


class PreparedBatches(Batches):
    """``Batches`` over two streams that are already separate (a prepared DIR's memory-mapped train.bin and
    val.bin). Sampling is inherited unchanged, so windows are read from disk on demand, never copied whole."""

    def __init__(self, train: np.ndarray, val: np.ndarray, block_size: int):
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise DataError(f"block_size={block_size!r} is not valid; it must be an integer >= 1")
        self.tokens = None  # no single array: the two files are the corpus
        self.val_fraction = len(val) / (len(train) + len(val))
        self._set_splits(train, val, block_size)


def load_prepared(
    folder: str | Path,
    block_size: int,
    *,
    tokenizer: str | None = None,
    data_dir: str | Path | None = None,
    verify_sha: bool | None = None,
) -> tuple[Tokenizer, PreparedBatches]:
    """(tokenizer, batches) of a prepared DIR. ``tokenizer``: the name the caller's config asks for; it must
    match meta.json's (check_tokenizer). ``data_dir``: where gpt2.tiktoken is. ``verify_sha``: None = hash
    files up to VERIFY_SHA_MAX_BYTES, True/False = always/never."""
    folder = Path(folder)
    meta = read_meta(folder)
    check_tokenizer(meta, folder, tokenizer)
    tok = tokenizer_from_dict(meta["tokenizer"], data_dir)
    train, val = (_open_split(folder, meta, split, verify_sha) for split in ("train", "val"))
    return tok, PreparedBatches(train, val, block_size)
