"""``python -m minigpt prepare SOURCE --out DIR``: tokenize a corpus once into memory-mappable token files.

The same job as nanoGPT's ``data/openwebtext/prepare.py``, for any source minigpt.sources reads::

    prepare("fineweb-edu", "corpora/web", max_tokens=300_000_000)   # or a .txt/.jsonl/.json/.parquet file or folder

1. The source is read as a stream of documents and encoded in a pool of processes (tiktoken's
   ``encode_ordinary_batch`` for ``gpt2``; code points for ``char``), in order, at most a few batches ahead
   of the writer, so memory does not grow with the corpus. Each document is followed by the end-of-text
   token (GPT-2's ``<|endoftext|>``, id 50256; for ``char`` the ASCII control character END OF TEXT, U+0003).
2. Token ids are appended to one file in ``.DIR.partial/`` beside DIR. After every batch a small state file
   records how many pieces and tokens are safely written: an interrupted prepare resumes from there when
   run again with the same source and tokenizer, and starts clean otherwise; it says which.
3. At the end the stream is split by position, as the in-memory corpus is (``data.split_index``): the first
   1 - val_fraction of the tokens become ``train.bin``, the rest ``val.bin``; then ``meta.json`` is written
   and the partial folder is renamed to DIR in one step. A DIR without meta.json never exists, so a
   half-written corpus is never taken for a prepared one (minigpt.prepared reads it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import textwrap
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .batches import split_index
from .data import _token_dtype
from .data_files import DataError
from .prepared import FORMAT, META_FILE, SPLIT_FILES, VERSION, read_meta, sha256_file
from .sources import Piece, Source, open_source
from .tokenizers import CharTokenizer, GPT2Tokenizer

__all__ = ["PrepareResult", "prepare", "CHAR_EOT", "PREPARE_TOKENIZERS"]

PREPARE_TOKENIZERS = ("gpt2", "char")
CHAR_EOT = "\x03"  # ASCII END OF TEXT: the char tokenizer's document separator
BATCH_CHARS = 1 << 21  # text per task sent to a worker: large enough to amortize the pickling
STATE_FILE = "state.json"
TOKENS_FILE = "tokens.bin"
_COPY_TOKENS = 1 << 24
# The default validation split: 10% of the tokens (as for Shakespeare), but at most 5M tokens, which is
# already several times what one evaluation reads (gpu-web: 20 batches x 32 x 1025 tokens = 0.66M).
AUTO_VAL_FRACTION = 0.1
AUTO_VAL_MAX_TOKENS = 5_000_000


@dataclass
class PrepareResult:
    out_dir: Path
    meta: dict[str, Any]
    status: str  # "prepared", "resumed" or "unchanged"


# ---------------------------------------------------------------------------------------------- workers

_encoder: Any = None  # set in each worker by _init_worker (and in this process for num_proc=1)


def _init_worker(tokenizer: str, data_dir: str | None) -> None:
    global _encoder
    _encoder = GPT2Tokenizer(data_dir).encoding if tokenizer == "gpt2" else None


def _encode(pieces: list[Piece]) -> np.ndarray:
    """The ids of a batch of pieces, end-of-text after each piece that ends a document. gpt2: uint16 ids;
    char: uint32 code points (mapped to the vocabulary once the whole corpus has been seen)."""
    if _encoder is None:
        text = "".join(t + CHAR_EOT if last else t for t, last in pieces)
        return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4")
    eot = _encoder.eot_token
    ids: list[int] = []
    for encoded, (_, last) in zip(_encoder.encode_ordinary_batch([t for t, _ in pieces], num_threads=1),
                                  pieces, strict=True):
        ids.extend(encoded)
        if last:
            ids.append(eot)
    return np.array(ids, dtype=np.uint16)


def _batches(pieces: Iterator[Piece]) -> Iterator[list[Piece]]:
    batch: list[Piece] = []
    chars = 0
    for piece in pieces:
        batch.append(piece)
        chars += len(piece[0])
        if chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _encoded(pieces: Iterator[Piece], tokenizer: str, data_dir: str | None,
             num_proc: int) -> Iterator[tuple[int, np.ndarray]]:
    """(pieces in the batch, its ids) in source order. With several processes at most 2 x num_proc batches
    are in flight (Pool.imap would read the whole source ahead into memory)."""
    if num_proc <= 1:
        _init_worker(tokenizer, data_dir)
        for batch in _batches(pieces):
            yield len(batch), _encode(batch)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(num_proc, initializer=_init_worker, initargs=(tokenizer, data_dir)) as pool:
        pending: deque[tuple[int, Any]] = deque()
        for batch in _batches(pieces):
            pending.append((len(batch), pool.apply_async(_encode, (batch,))))
            if len(pending) >= 2 * num_proc:
                n, job = pending.popleft()
                yield n, job.get()
        while pending:
            n, job = pending.popleft()
            yield n, job.get()


# ------------------------------------------------------------------------------------------ the folder


def _partial_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _resume_state(partial: Path, identity: dict[str, Any], dtype: np.dtype, say: Any) -> dict[str, Any]:
    """The state to continue from: the partial folder's own if it was made by the same job and its token file
    holds what the state says, else a fresh one (and the partial folder cleared). Says which."""
    fresh = {"identity": identity, "pieces": 0, "documents": 0, "tokens": 0, "chars": []}
    state_path, tokens_path = partial / STATE_FILE, partial / TOKENS_FILE
    if not partial.exists():
        say(f"starting: writing to {partial} until done")
    else:
        why = None
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            have = tokens_path.stat().st_size // dtype.itemsize
        except (OSError, ValueError) as e:
            state, have, why = None, 0, f"its state is unreadable ({e})"
        if state is not None and state.get("identity") != identity:
            changed = [k for k in identity if state.get("identity", {}).get(k) != identity[k]]
            why = f"it was made from another {' and '.join(changed) or 'job'}"
        elif state is not None and have < state.get("tokens", 0):
            why = f"its token file is shorter ({have}) than its state says ({state.get('tokens')})"
        if why is None:
            with open(tokens_path, "r+b") as f:  # drop anything written after the last recorded batch
                f.truncate(state["tokens"] * dtype.itemsize)
            say(f"resuming the interrupted prepare in {partial}: {state['documents']:,} documents "
                f"({state['tokens']:,} tokens) already done")
            return state
        say(f"starting clean: the unfinished prepare in {partial} is unusable ({why})")
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    tokens_path.touch()
    _write_json(state_path, fresh)
    return fresh


def _truncate(partial: Path, state: dict[str, Any], n: int, dtype: np.dtype, eot: int) -> None:
    with open(partial / TOKENS_FILE, "r+b") as f:
        f.truncate(n * dtype.itemsize)
    src = np.memmap(partial / TOKENS_FILE, dtype=dtype, mode="r")
    state["documents"] = sum(int(np.count_nonzero(src[i:i + _COPY_TOKENS] == eot)) for i in range(0, n, _COPY_TOKENS))
    state["tokens"] = n
    del src


def _finish(partial: Path, state: dict[str, Any], tokenizer_name: str, data_dir: str | None,
            val_fraction: float | None, stream_dtype: np.dtype) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split the token stream into train.bin / val.bin (char: mapping code points to vocabulary ids) and
    return (tokenizer dict, files entry). For gpt2 the tail is copied out and the file truncated: no
    second copy of the corpus on disk."""
    n = state["tokens"]
    if val_fraction is None:
        val_fraction = min(AUTO_VAL_FRACTION, AUTO_VAL_MAX_TOKENS / n)
    n_train = split_index(n, val_fraction)
    if n_train < 1 or n - n_train < 1:
        raise DataError(f"the corpus has {n} tokens: too few for a train and a val split at val_fraction="
                        f"{val_fraction:g}; give more text")
    stream = partial / TOKENS_FILE
    train_path, val_path = partial / SPLIT_FILES["train"], partial / SPLIT_FILES["val"]
    if tokenizer_name == "gpt2":
        tok = GPT2Tokenizer(data_dir).to_dict()
        src = np.memmap(stream, dtype=stream_dtype, mode="r")
        with open(val_path, "wb") as f:
            for i in range(n_train, n, _COPY_TOKENS):
                f.write(src[i:min(i + _COPY_TOKENS, n)].tobytes())
        del src
        with open(stream, "r+b") as f:
            f.truncate(n_train * stream_dtype.itemsize)
        os.replace(stream, train_path)
    else:
        chars = CharTokenizer(sorted(state["chars"]))
        tok = chars.to_dict()
        dtype = _token_dtype(chars.vocab_size)
        src = np.memmap(stream, dtype=stream_dtype, mode="r")
        for path, lo, hi in ((train_path, 0, n_train), (val_path, n_train, n)):
            with open(path, "wb") as f:
                for i in range(lo, hi, _COPY_TOKENS):
                    text = src[i:min(i + _COPY_TOKENS, hi)].tobytes().decode("utf-32-le", errors="surrogatepass")
                    f.write(chars.encode_array(text).astype(dtype).tobytes())
        del src
        stream.unlink()
    files = {SPLIT_FILES[s]: {"tokens": t, "sha256": sha256_file(p)}
             for s, t, p in (("train", n_train, train_path), ("val", n - n_train, val_path))}
    return tok, files


def prepare(
    source: str,
    out_dir: str | Path,
    *,
    tokenizer: str = "gpt2",
    max_tokens: int | None = None,
    val_fraction: float | None = None,
    num_proc: int | None = None,
    data_dir: str | None = None,
    overwrite: bool = False,
    command: str | None = None,
    progress: bool = True,
    log: Any = None,
) -> PrepareResult:
    """Prepare ``source`` (a path or a name in minigpt.sources.NAMED_DATASETS) into ``out_dir`` (module doc).

    ``max_tokens``: stop after this many tokens (the last document is cut there). ``val_fraction``: the share
    of tokens in val.bin; None = 10%, at most 5M tokens (AUTO_VAL_*). ``num_proc``: encoding
    processes (default: the CPU count, at most 8). ``log``: where progress lines go (default stderr).
    A DIR that already holds this very corpus is left as it is; one that holds another needs ``overwrite``.
    """
    say = log or (lambda msg: print(msg, file=sys.stderr))
    if tokenizer not in PREPARE_TOKENIZERS:
        raise DataError(f"tokenizer={tokenizer!r} is not valid; choose one of {', '.join(PREPARE_TOKENIZERS)}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                   or max_tokens < 2):
        raise DataError(f"max_tokens={max_tokens!r} is not valid; it must be an integer >= 2")
    if val_fraction is not None and (isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float))
                                     or not 0 < val_fraction < 1):
        raise DataError(f"val_fraction={val_fraction!r} is not valid; it must be in (0, 1)")
    num_proc = num_proc or min(8, os.cpu_count() or 1)
    out = Path(out_dir)
    src: Source = open_source(source)
    identity = {"source": src.fingerprint, "tokenizer": tokenizer}
    wanted = {"source": src.description, "tokenizer": tokenizer, "max_tokens": max_tokens,
              "val_fraction": val_fraction}
    if out.exists():
        if (out / META_FILE).is_file() and not overwrite:
            meta = read_meta(out)
            recorded = {**meta, "tokenizer": meta["tokenizer"].get("name")}
            differ = [k for k, v in wanted.items() if recorded.get(k) != v] + (
                ["source files"] if meta.get("fingerprint") != json.loads(json.dumps(src.fingerprint)) else [])
            if not differ:
                say(f"{out} already holds this corpus ({meta['tokens']['total']:,} tokens); nothing to do")
                return PrepareResult(out, meta, "unchanged")
            raise DataError(f"{out} already holds a corpus prepared with another {', '.join(differ)}; pass "
                            f"--overwrite to replace it, or choose another --out")
        if not overwrite and any(out.iterdir()):
            raise DataError(f"{out} exists and is not a prepared corpus; choose another --out or pass --overwrite")

    # Read the first document before anything is written: a missing field, an empty or unreadable first
    # file, or no network fails here, with no partial folder left behind.
    stream = src.pieces()
    first = next(stream, None)
    if first is None:
        raise DataError(f"source {source!r} gave no text to prepare")
    stream_dtype = np.dtype(np.uint16) if tokenizer == "gpt2" else np.dtype("<u4")
    eot = GPT2Tokenizer(data_dir).encoding.eot_token if tokenizer == "gpt2" else ord(CHAR_EOT)
    partial = _partial_dir(out)
    state = _resume_state(partial, json.loads(json.dumps(identity)), stream_dtype, say)
    status = "resumed" if state["pieces"] else "prepared"
    chars = set(state["chars"])
    limit = max_tokens if max_tokens is not None else float("inf")
    started = time.perf_counter()
    bar = tqdm(total=max_tokens, initial=min(state["tokens"], limit), unit="tok", unit_scale=True,
               desc="prepare", disable=not progress, dynamic_ncols=True)
    try:
        if state["tokens"] < limit:
            pieces = islice(chain([first], stream), state["pieces"], None)
            with open(partial / TOKENS_FILE, "ab") as f:
                for n_pieces, ids in _encoded(pieces, tokenizer, data_dir, num_proc):
                    ids = ids[: int(min(len(ids), limit - state["tokens"]))]
                    f.write(ids.tobytes())
                    f.flush()
                    state["pieces"] += n_pieces
                    state["tokens"] += len(ids)
                    state["documents"] += int(np.count_nonzero(ids == eot))
                    if tokenizer == "char":
                        chars.update(map(chr, np.unique(ids).tolist()))
                        state["chars"] = sorted(chars)
                    _write_json(partial / STATE_FILE, state)
                    bar.update(len(ids))
                    bar.set_postfix(docs=f"{state['documents']:,}", refresh=False)
                    if state["tokens"] >= limit:
                        break
    finally:
        bar.close()
    if state["tokens"] > limit:  # resumed with a smaller max_tokens than the interrupted run had reached
        _truncate(partial, state, int(limit), stream_dtype, eot)
    if state["tokens"] == 0:
        raise DataError(f"source {source!r} gave no text to prepare")

    tok, files = _finish(partial, state, tokenizer, data_dir, val_fraction, stream_dtype)
    (partial / STATE_FILE).unlink()
    n_train, n_val = files[SPLIT_FILES["train"]]["tokens"], files[SPLIT_FILES["val"]]["tokens"]
    meta = {
        "format": FORMAT,
        "version": VERSION,
        **wanted,
        "fingerprint": src.fingerprint,
        "tokenizer": tok,
        "vocab_size": tok["vocab_size"],
        "dtype": _token_dtype(tok["vocab_size"]).name,
        "eot": CHAR_EOT if tokenizer == "char" else "<|endoftext|>",
        "tokens": {"train": n_train, "val": n_val, "total": n_train + n_val},
        "documents": state["documents"],
        "files": files,
        "command": command,
        "seconds": round(time.perf_counter() - started, 1),
    }
    _write_json(partial / META_FILE, meta)
    if out.exists():  # overwrite: move the old folder aside first, so DIR is always whole or absent
        old = out.parent / f".{out.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(partial, out)
        shutil.rmtree(old)
    else:
        os.replace(partial, out)
    say(f"{status} {out}: {n_train:,} train + {n_val:,} val tokens from {state['documents']:,} documents "
        f"({tokenizer}, vocab {tok['vocab_size']:,}, {meta['dtype']})")
    return PrepareResult(out, meta, status)


def prepare_main(ns: Any, command: str) -> int:
    """The CLI's ``prepare`` (registered in __main__)."""
    try:
        prepare(ns.source, ns.out, tokenizer=ns.tokenizer, max_tokens=ns.max_tokens, val_fraction=ns.val_fraction,
                num_proc=ns.num_proc, data_dir=ns.data_dir, overwrite=ns.overwrite, command=command,
                progress=ns.progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume from {_partial_dir(Path(ns.out))}",
              file=sys.stderr)
        return 130
    return 0


def _bool(text: str) -> bool:
    if text.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return text.strip().lower() in ("true", "1", "yes", "on")
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_prepare_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``prepare`` subcommand's options, on the CLI's subparsers (``sub``)."""
    p = sub.add_parser(
        "prepare", help="tokenize a corpus once into DIR/train.bin, val.bin, meta.json for train --data DIR",
        description=textwrap.fill(
            "Tokenize SOURCE into DIR/train.bin and DIR/val.bin (memory-mapped by `train --data DIR`) and "
            "DIR/meta.json. SOURCE is a named dataset (fineweb-edu, openwebtext: streamed with Hugging Face "
            "datasets, pip install 'minigpt[data]') or a .txt file, a .jsonl/.json file with a 'text' field, a "
            ".parquet file with a 'text' column, or a folder of them. An interrupted prepare resumes when run "
            "again with the same SOURCE and tokenizer.", 100),
        epilog="example:\n  %(prog)s fineweb-edu --out corpora/web --max_tokens 300000000\n"
               "  %(prog)s my_texts/ --out corpora/mine --tokenizer char",
    )
    p.add_argument("source", metavar="SOURCE", help="fineweb-edu, openwebtext, or a file or folder")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write")
    p.add_argument("--tokenizer", default="gpt2", metavar="{gpt2,char}",
                   help="gpt2 (BPE, the full 50,257-id vocabulary; default) or char")
    p.add_argument("--max_tokens", type=int, default=None, metavar="N",
                   help="stop after N tokens (default: the whole source)")
    p.add_argument("--val_fraction", type=float, default=None, metavar="F",
                   help="share of the tokens (the last ones) that go to val.bin (default: 10%%, at most 5M tokens)")
    p.add_argument("--num_proc", type=int, default=None, metavar="N",
                   help="tokenizing processes (default: the CPU count, at most 8)")
    p.add_argument("--data_dir", default=None, metavar="DIR", help="folder with gpt2.tiktoken (default: built-in)")
    p.add_argument("--overwrite", action="store_true", help="replace a DIR that holds another corpus")
    p.add_argument("--progress", type=_bool, default=True, metavar="{true,false}",
                   help="show a progress bar (default true)")
    return p
