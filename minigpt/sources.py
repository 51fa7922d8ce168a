"""Where ``prepare`` reads text from: local files, or a named web-text dataset through Hugging Face ``datasets``.

A source is a stream of *pieces* ``(text, last)``: ``last`` marks the end of a document, after which
``prepare`` writes the end-of-text token. Most documents are one piece; a large .txt file (one document) is
cut into pieces of about ``PIECE_CHARS`` characters so that it can be encoded in parallel and in bounded
memory. The cuts fall at a line start between two printable ASCII characters (``x\\nY``): GPT-2's pre-tokenizer
always ends a token before and after such a newline, so the pieces encode to exactly the ids of the whole file
(tests/test_prepare.py checks it on the corpus).

Local files: ``.txt`` (a file is a document), ``.jsonl`` (one JSON object per line with a ``text`` field),
``.json`` (a list of such objects, or one), ``.parquet`` (a ``text`` column; needs pyarrow), or a folder of
them (searched recursively, in sorted order; other files are ignored). Empty documents are skipped; a file
with none is an error. Named datasets (``NAMED_DATASETS``) are streamed, never downloaded whole.
"""

from __future__ import annotations

import codecs
import json
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .data_files import DataError

__all__ = ["NAMED_DATASETS", "SUFFIXES", "TEXT_FIELD", "Source", "open_source"]

TEXT_FIELD = "text"
SUFFIXES = (".txt", ".jsonl", ".json", ".parquet")
PIECE_CHARS = 1 << 20
_READ_BYTES = 1 << 20

# load_dataset arguments of each named dataset (streamed: the rows arrive as training text is needed).
NAMED_DATASETS: dict[str, dict[str, Any]] = {
    # FineWeb-Edu: educational web pages filtered from FineWeb (Penedo et al. 2024); a 10B-token sample.
    "fineweb-edu": {"path": "HuggingFaceFW/fineweb-edu", "name": "sample-10BT", "split": "train"},
    # OpenWebText: the open reproduction of GPT-2's WebText (Gokaslan & Cohen 2019), ~9B GPT-2 tokens.
    "openwebtext": {"path": "Skylion007/openwebtext", "split": "train"},
}
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_LOCAL_HINT = ("to use local files instead: python -m minigpt prepare my_texts/ --out DIR "
               "(.txt, .jsonl/.json with a 'text' field, .parquet, or a folder of them)")

Piece = tuple[str, bool]


@dataclass
class Source:
    """A resolved SOURCE: ``description`` (for meta.json), ``fingerprint`` (what must be unchanged for an
    interrupted prepare to resume: the files' names, sizes and modification times, or the dataset's
    arguments) and ``pieces()``, the stream of (text, last-piece-of-its-document)."""

    description: str
    fingerprint: Any
    files: list[Path] = field(default_factory=list)
    dataset: dict[str, Any] | None = None

    def pieces(self) -> Iterator[Piece]:
        if self.dataset is not None:
            yield from _dataset_pieces(self.description, self.dataset)
            return
        for path in self.files:
            yield from _file_pieces(path)


def open_source(spec: str) -> Source:
    """The Source for SOURCE as typed on the command line: an existing path, else a name of NAMED_DATASETS."""
    path = Path(spec).expanduser()
    if path.exists():
        files = _local_files(path)
        stats = [(str(f.relative_to(path)) if path.is_dir() else f.name, *_stat(f)) for f in files]
        return Source(str(path.resolve()), stats, files=files)
    if spec in NAMED_DATASETS:
        kwargs = NAMED_DATASETS[spec]
        return Source(spec, dict(kwargs), dataset=dict(kwargs))
    if path.suffix or os.sep in spec or "/" in spec:
        raise DataError(f"source {spec!r} does not exist (no such file or folder)")
    raise DataError(f"unknown dataset name {spec!r}; choose one of {', '.join(NAMED_DATASETS)}, or give a "
                    f"file or folder ({', '.join(SUFFIXES)})")


# ------------------------------------------------------------------------------------------ local files


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    return st.st_size, st.st_mtime_ns


def _local_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise DataError(f"folder {path} holds no {', '.join(SUFFIXES)} files")
        return files
    if path.suffix not in SUFFIXES:
        raise DataError(f"source {path} has suffix {path.suffix or '(none)'!r}; prepare reads "
                        f"{', '.join(SUFFIXES)} files or a folder of them")
    return [path]


def _file_pieces(path: Path) -> Iterator[Piece]:
    readers = {".txt": _txt_pieces, ".jsonl": _jsonl_texts, ".json": _json_texts, ".parquet": _parquet_texts}
    reader = readers[path.suffix]
    empty = True
    try:
        for item in reader(path):
            piece = item if isinstance(item, tuple) else (item, True)
            if piece[0]:
                empty = False
                yield piece
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not valid UTF-8 text ({e.reason} at byte {e.start} of a chunk)") from e
    if empty:
        raise DataError(f"{path} is empty: it holds no text to prepare")


def safe_cut(text: str) -> int:
    """The last position ``p`` at which ``text`` may be cut without changing its GPT-2 ids: just after a
    newline that sits between two printable ASCII characters (0 if there is none). See the module doc."""
    p = len(text) - 1
    while (p := text.rfind("\n", 0, p)) > 0:
        if "!" <= text[p - 1] <= "~" and "!" <= text[p + 1] <= "~":
            return p + 1
    return 0


def _txt_pieces(path: Path) -> Iterator[Piece]:
    """A .txt file is one document, read and yielded in pieces of about PIECE_CHARS characters."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    buf = ""
    with open(path, "rb") as f:
        while chunk := f.read(_READ_BYTES):
            buf += decoder.decode(chunk)
            if len(buf) >= PIECE_CHARS and (cut := safe_cut(buf)):
                yield buf[:cut], False
                buf = buf[cut:]
    buf += decoder.decode(b"", final=True)
    yield buf, True


def _document_text(row: Any, where: str) -> str:
    """The ``text`` field of one record; anything else is an error that names the fields the record has."""
    if not isinstance(row, dict):
        raise DataError(f"{where} is a JSON {type(row).__name__}, not an object with a {TEXT_FIELD!r} field")
    if TEXT_FIELD not in row:
        fields = ", ".join(map(str, row)) or "none"
        raise DataError(f"{where} has no {TEXT_FIELD!r} field (its fields: {fields}); prepare reads each "
                        f"document from a {TEXT_FIELD!r} field")
    text = row[TEXT_FIELD]
    if text is None:
        return ""
    if not isinstance(text, str):
        raise DataError(f"{where}: field {TEXT_FIELD!r} is a {type(text).__name__}, not a string")
    return text


def _jsonl_texts(path: Path) -> Iterator[str]:
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            line = raw.decode("utf-8").strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path} line {n} is not valid JSON: {e.msg}") from e
            yield _document_text(row, f"{path} line {n}")


def _json_texts(path: Path) -> Iterator[str]:
    """A .json file is parsed whole (JSON has no streaming form); use .jsonl for large corpora."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON: {e.msg} (line {e.lineno})") from e
    rows = data if isinstance(data, list) else [data]
    for i, row in enumerate(rows):
        yield _document_text(row, f"{path} item {i}" if isinstance(data, list) else str(path))


def _parquet_texts(path: Path) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise DataError(f"reading {path} needs pyarrow: pip install 'minigpt[data]'") from e
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises its own ArrowInvalid for a damaged or non-parquet file
        raise DataError(f"cannot read {path} as parquet: {e}") from e
    names = pf.schema_arrow.names
    if TEXT_FIELD not in names:
        raise DataError(f"{path} has no {TEXT_FIELD!r} column (its columns: {', '.join(names) or 'none'}); "
                        f"prepare reads each document from a {TEXT_FIELD!r} column")
    for batch in pf.iter_batches(columns=[TEXT_FIELD], batch_size=1024):
        for text in batch.column(0).to_pylist():
            yield _document_text({TEXT_FIELD: text}, str(path))


# ------------------------------------------------------------------------------------- named datasets


def _offline_reason(kwargs: dict[str, Any]) -> str | None:
    """Why the Hub cannot be reached, found cheaply (an offline switch, or no TCP connection within 3 s),
    instead of letting ``datasets`` retry for half a minute; None if it may be reachable. Local builders
    (``path`` not of the form owner/name) need no network."""
    repo = str(kwargs.get("path", ""))
    if "/" not in repo or Path(repo).exists():
        return None
    for var in _OFFLINE_ENV:
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"${var} is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # through a proxy a direct connection says nothing; let datasets try
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as e:
        return f"cannot connect to {host}:{port} ({e.strerror or e})"
    return None


def _dataset_rows(name: str, kwargs: dict[str, Any]) -> Iterable[Any]:
    try:
        import datasets
    except ImportError as e:
        raise DataError(f"the named dataset {name!r} needs the datasets package: pip install 'minigpt[data]'; "
                        f"{_LOCAL_HINT}") from e
    reason = _offline_reason(kwargs)
    if reason is not None:
        raise DataError(f"no network for the named dataset {name!r} ({kwargs['path']}): {reason}; {_LOCAL_HINT}")
    try:
        return datasets.load_dataset(**kwargs, streaming=True)
    except ConnectionError as e:  # also what datasets raises when offline
        raise DataError(f"no network for the named dataset {name!r} ({kwargs['path']}): {e}; {_LOCAL_HINT}") from e


def _dataset_pieces(name: str, kwargs: dict[str, Any]) -> Iterator[Piece]:
    try:
        for i, row in enumerate(_dataset_rows(name, kwargs)):
            text = _document_text(row, f"{name} row {i}")
            if text:
                yield text, True
    except ConnectionError as e:
        raise DataError(f"lost the network while streaming {name!r}: {e}; run the same prepare again to resume "
                        f"where it stopped") from e
