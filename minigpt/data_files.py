"""The data files: where the corpus and the GPT-2 merge ranks are found (``data/``, ``minigpt/_data`` or
``$MINIGPT_DATA_DIR``), where the token cache goes, and `DataError`, the one error of the data path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


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
