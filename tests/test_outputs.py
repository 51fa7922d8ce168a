"""Output folders and file-system failures: a path that is a file, a folder that cannot be written and a disk
that fills up mid-run each end in one line on stderr and exit 2; a run stopped by a full disk names the last
good checkpoint, which resumes."""

from __future__ import annotations

import errno
import json
import os

import pytest

from minigpt import outputs
from minigpt.__main__ import main
from minigpt.outputs import OutputDirError, check_output_dir, describe_os_error
from minigpt.train import CHECKPOINT_FILE, METRICS_FILE, load_checkpoint
from tests.test_cli import QUIET, TINY, run_main


@pytest.mark.parametrize("command", ["train", "compare"])
def test_out_naming_an_existing_file_exits_2_in_one_line(tmp_path, capsys, command):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    extra = ["--variants", "pre_ln"] if command == "compare" else []
    rc, _, err = run_main(capsys, command, "--steps", "2", *TINY, *QUIET, *extra, "--out", str(f))
    assert rc == 2 and err == f"error: the output folder {f} is a file; choose a folder (it is created if missing)\n"
    assert f.read_text() == "keep me"


def test_out_under_a_file_exits_2(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    rc, _, err = run_main(capsys, "train", "--steps", "2", *TINY, *QUIET, "--out", str(tmp_path / "f" / "run"))
    assert rc == 2 and err.count("\n") == 1 and f"{tmp_path / 'f'} is a file, not a folder" in err


def test_unwritable_folder_exits_2_before_any_work(tmp_path, capsys, monkeypatch):
    """Permission bits do not bind root (these tests may run as root), so the check is made to see a
    read-only folder through os.access; the real-permission version follows, for non-root runs."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(locked) else real_access(p, mode))
    rc, _, err = run_main(capsys, "train", "--steps", "2", *TINY, *QUIET, "--out", str(locked / "run"))
    assert rc == 2 and err == f"error: cannot create {locked / 'run'}: its parent {locked} is not writable; " \
                              f"choose another folder\n"
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permission bits")
def test_really_unwritable_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputDirError, match="not writable"):
        check_output_dir(locked)


def test_os_errors_in_words():
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device", "runs/x/ckpt.pt")) == \
        "the disk is full: runs/x/ckpt.pt"
    assert describe_os_error(OSError(errno.EROFS, "Read-only file system")) == "the file system is read-only"
    assert describe_os_error(OSError(errno.EACCES, "Permission denied", "a", None)) == "permission denied: a"
    assert describe_os_error(OSError("something odd")) == "something odd"


class _FillingFile:
    """A file whose writes fail with ENOSPC once `room` writes have been made (a disk filling up)."""

    def __init__(self, f, room: list[int]) -> None:
        self.f, self.room = f, room

    def write(self, text: str) -> int:
        if self.room[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room[0] -= 1
        return self.f.write(text)

    def __getattr__(self, name: str):
        return getattr(self.f, name)


def test_disk_full_while_writing_metrics_stops_and_names_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    from minigpt import train as train_module

    run_dir = tmp_path / "run"
    room = [5]  # metrics lines 1-5 fit, step 6's does not (its update is applied, its line is lost)
    monkeypatch.setattr(train_module, "open",
                        lambda path, mode="r", **kw: _FillingFile(open(path, mode, **kw), room), raising=False)
    rc, _, err = run_main(capsys, "train", "--steps", "20", *TINY, *QUIET, "--checkpoint_interval", "4",
                          "--out", str(run_dir))
    ckpt = run_dir / CHECKPOINT_FILE
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err == (f"error: training stopped after step 6: the disk is full while writing to {run_dir}; the last "
                   f"good checkpoint is {ckpt} (step 4); make room and continue with --resume\n")
    assert load_checkpoint(ckpt)["step"] == 4
    assert [json.loads(line)["step"] for line in (run_dir / METRICS_FILE).read_text().splitlines()] == [1, 2, 3, 4, 5]
    monkeypatch.undo()  # space again: the run resumes from step 4 and finishes
    rc, out, _ = run_main(capsys, "train", "--steps", "20", *TINY, *QUIET, "--checkpoint_interval", "4",
                          "--out", str(run_dir), "--resume")
    assert rc == 0 and "step 20/20" in out


def test_disk_full_before_any_checkpoint_says_so(tmp_path, monkeypatch):
    from minigpt import train as train_module

    monkeypatch.setattr(train_module, "open",
                        lambda path, mode="r", **kw: _FillingFile(open(path, mode, **kw), [0]), raising=False)
    monkeypatch.setenv("MINIGPT_DEBUG", "1")  # raise instead of printing, to check the exception's type
    with pytest.raises(outputs.TrainingWriteError, match="after step 1: the disk is full .*no checkpoint was"):
        main(["train", "--steps", "3", *TINY, *QUIET, "--out", str(tmp_path / "r")])
