"""Where runs write, and what the user reads when that fails: an output folder checked before a run starts
(a path that is a file, or a folder that cannot be created or written, is bad input: one line, exit 2), and
file-system errors (full disk, permissions, read-only file systems) told in the project's words instead of
`[Errno 28] No space left on device`.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Any

from .config import ConfigError


class OutputDirError(ConfigError):
    """An output folder that cannot be used (the CLI prints it in one line and exits 2)."""


def check_output_dir(path: str | Path) -> None:
    """Refuse, before any work, an output folder that is a file, lies under a file, or cannot be created or
    written. Creates nothing: a run refused later (a bad config, too little memory) leaves no empty folder.
    (Permission bits do not bind root; a write that still fails ends in `describe_os_error`'s line.)"""
    path = Path(path)
    if "\0" in str(path):
        raise OutputDirError(f"the output folder {str(path)!r} contains a NUL character; no path can")
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"the output folder {path} is a file; choose a folder (it is created if missing)")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputDirError(f"cannot create the output folder {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the output folder" if existing == path else f"cannot create {path}: its parent"
        raise OutputDirError(f"{what} {existing} is not writable; choose another folder")


def check_arguments(argv: list[str]) -> None:
    """Refuse a command-line argument no path or value can hold: a NUL character or a lone surrogate. Only an
    in-process caller of `main(argv)` can pass one (a shell cannot); pathlib would raise ValueError on it."""
    for tok in argv:
        try:
            if "\0" in tok:
                raise ValueError(tok)
            os.fsencode(tok)
        except ValueError:  # UnicodeEncodeError is one
            raise ConfigError(f"argument {tok!r} contains a NUL character or a lone surrogate, which no path "
                              f"or value can hold") from None


_WORDS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EEXIST: "a file is in the way of a folder",
    errno.ENOTDIR: "a file is in the way of a folder",
    errno.EISDIR: "a folder is in the way of a file",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EMFILE: "too many open files",
}


def describe_os_error(e: OSError) -> str:
    """One line for an OSError: what happened in words, and the file when the error names one."""
    if isinstance(e, TrainingWriteError):
        return str(e)
    words = _WORDS.get(e.errno) or " ".join(str(e.strerror or e).split()) or type(e).__name__
    if e.filename is not None:
        words += f": {e.filename}" + (f" -> {e.filename2}" if e.filename2 is not None else "")
    return words


class TrainingWriteError(OSError):
    """A write failing in the middle of training (full disk, a folder removed under the run): training stops
    at once, and the message names the last good checkpoint to resume from."""

    def __init__(self, cause: OSError, step: int, out: Path | None, checkpoint: Path | None,
                 checkpoint_step: int | None) -> None:
        super().__init__(cause.errno, cause.strerror)
        where = f" while writing to {out}" if out is not None else ""
        if checkpoint is not None:
            kept = (f"the last good checkpoint is {checkpoint} (step {checkpoint_step}); make room and continue "
                    f"with --resume")
        else:
            kept = "no checkpoint was written before it"
        self.message = f"training stopped after step {step}: {describe_os_error(cause)}{where}; {kept}"

    @classmethod
    def stop(cls, cause: OSError, step: int, out: Path | None, result: Any, bar: Any, metrics_file: Any
             ) -> TrainingWriteError:
        """Close the progress bar and the metrics file (whose flush fails again on a full disk) and return the
        error to raise, naming `result`'s last checkpoint."""
        bar.close()
        with contextlib.suppress(OSError):
            if metrics_file is not None:
                metrics_file.close()
        return cls(cause, step, out, result.checkpoint, result.checkpoint_step)

    def __str__(self) -> str:
        return self.message
