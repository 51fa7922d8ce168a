"""Nothing reads or writes outside the run folder and the data folder (issue #6, "Security").

The CLI runs in a subprocess under a Python audit hook (PEP 578) that records every file opened, created,
renamed or removed. The run's working directory, HOME and the package's own data/ folder are fresh or
watched, so a stray log file in the cwd, a write into ~/.something or a silent fallback to the shipped corpus
fails the test. What is allowed, and why:

- the run folder given with `--out` (checkpoints, metrics, report, figure);
- the token cache `$MINIGPT_CACHE_DIR` (documented in data.py; a user can point it anywhere);
- two third-party caches, each pointed into the sandbox by its documented variable: matplotlib's font cache
  (`$MPLCONFIGDIR`, when a figure is drawn) and the folder torch creates for its compiler when `torch.optim`
  imports `torch._dynamo` (`$TORCHINDUCTOR_CACHE_DIR`; torch 2.13 makes it at import, even without compile);
- the temp folder (`$TMPDIR`, pointed into the sandbox) and the null device: torch imports `dill` when it is
  installed (the `data` extra's `datasets` needs it), and dill opens `os.devnull` and has `tempfile` probe
  the temp folder with a file it creates and removes, at import.

Reads of the corpus and the BPE ranks must come from the `--data_dir` given, never from the repository's data/.
torch.save/torch.load open their files in C++ (no audit event); the checkpoint's temp file and rename are
made in Python (train.save_checkpoint) and are seen.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minigpt.compare import _safe_label

REPO = Path(__file__).resolve().parents[1]
TINY = ["--n_layer", "1", "--n_embd", "32", "--n_head", "2", "--block_size", "16", "--batch_size", "2",
        "--eval_batches", "1", "--eval_interval", "2", "--progress", "false"]

# Runs `python -m minigpt <argv>` with an audit hook that logs file access to $AUDIT_LOG (written once, at exit).
AUDITED_MAIN = r"""
import atexit, json, os, sys

log = {"write": [], "read": [], "mkdir": [], "remove": [], "rename": []}
recording = True
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def hook(event, args):
    if not recording:
        return
    if event == "open":
        path, mode, flags = args
        if path is None or isinstance(path, int):
            return
        writes = (mode is not None and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
        log["write" if writes else "read"].append(os.path.abspath(os.fsdecode(path)))
    elif event == "os.mkdir":
        log["mkdir"].append(os.path.abspath(os.fsdecode(args[0])))
    elif event in ("os.remove", "os.rmdir", "shutil.rmtree"):
        log["remove"].append(os.path.abspath(os.fsdecode(args[0])))
    elif event == "os.rename":  # os.rename and os.replace
        log["rename"].append(os.path.abspath(os.fsdecode(args[1])))

def dump():
    global recording
    recording = False
    with open(os.environ["AUDIT_LOG"], "w") as f:
        json.dump(log, f)

sys.addaudithook(hook)
atexit.register(dump)
from minigpt.__main__ import main
code = main(sys.argv[1:])
dump()
sys.exit(code)
"""


@pytest.fixture
def sandbox(tmp_path):
    """Fresh cwd, HOME, data, cache and matplotlib folders; returns a function that runs the audited CLI."""
    dirs = {name: tmp_path / name for name in ("cwd", "home", "data", "cache", "mpl", "inductor", "tmp")}
    for d in dirs.values():
        d.mkdir()
    for name in ("shakespeare.txt", "gpt2.tiktoken"):
        shutil.copy(REPO / "data" / name, dirs["data"] / name)
    script = tmp_path / "audited_main.py"
    script.write_text(AUDITED_MAIN)

    def run(*argv: str) -> dict[str, list[str]]:
        log_file = tmp_path / "audit.json"
        env = {**os.environ, "HOME": str(dirs["home"]), "XDG_CACHE_HOME": str(dirs["home"] / ".cache"),
               "MINIGPT_CACHE_DIR": str(dirs["cache"]), "MPLCONFIGDIR": str(dirs["mpl"]),
               "TORCHINDUCTOR_CACHE_DIR": str(dirs["inductor"]), "TMPDIR": str(dirs["tmp"]),
               "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "AUDIT_LOG": str(log_file),
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        env.pop("MINIGPT_DATA_DIR", None)
        p = subprocess.run([sys.executable, str(script), *argv], cwd=dirs["cwd"], env=env, capture_output=True,
                           text=True, timeout=180)
        assert p.returncode == 0, p.stderr
        return json.loads(log_file.read_text())

    return dirs, run


def _changed(log: dict[str, list[str]]) -> list[str]:
    """Every path written, made, removed or renamed onto; writing to the null device changes nothing."""
    return [p for p in log["write"] + log["mkdir"] + log["remove"] + log["rename"] if p != os.devnull]


def _outside(paths: list[str], *allowed: Path) -> list[str]:
    roots = [os.path.realpath(a) for a in allowed]
    return [p for p in paths if not any(os.path.realpath(p).startswith(r + os.sep) or os.path.realpath(p) == r
                                        for r in roots)]


def _data_reads(log: dict[str, list[str]]) -> list[str]:
    return [p for p in log["read"] if Path(p).name in ("shakespeare.txt", "gpt2.tiktoken")]


def test_train_and_sample_touch_only_the_run_and_data_folders(sandbox):
    dirs, run = sandbox
    out = dirs["cwd"].parent / "run"
    repo_data_before = sorted(p.name for p in (REPO / "data").iterdir())

    log = run("train", "--variant", "pre_ln", "--preset", "cpu-tiny", "--steps", "4", *TINY,
              "--tokenizer", "gpt2", "--out", str(out), "--data_dir", str(dirs["data"]))
    changed = _changed(log)
    assert (out / "ckpt.pt").is_file() and (out / "metrics.jsonl").is_file()
    assert any(p.startswith(str(out)) for p in log["rename"]), "the checkpoint's atomic rename was not seen"
    assert _outside(changed, out, dirs["cache"], dirs["inductor"], dirs["tmp"]) == []
    assert _outside(_data_reads(log), dirs["data"]) == [], "data must be read from --data_dir only"
    assert str(dirs["data"] / "shakespeare.txt") in _data_reads(log)
    assert str(dirs["data"] / "gpt2.tiktoken") in _data_reads(log)

    log = run("sample", "--checkpoint", str(out / "ckpt.pt"), "--prompt", "ROMEO:", "--max_new_tokens", "5",
              "--data_dir", str(dirs["data"]))
    changed = _changed(log)
    assert _outside(changed, dirs["cache"], dirs["inductor"], dirs["tmp"]) == [], "sample writes only the token cache"
    assert _outside(_data_reads(log), dirs["data"]) == []

    assert list(dirs["cwd"].iterdir()) == [], "nothing may be written in the working directory"
    assert list(dirs["home"].iterdir()) == [], "nothing may be written in HOME"
    assert sorted(p.name for p in (REPO / "data").iterdir()) == repo_data_before


def test_compare_touches_only_its_folder(sandbox):
    dirs, run = sandbox
    out = dirs["cwd"].parent / "cmp"
    log = run("compare", "--preset", "cpu-tiny", "--steps", "2", *TINY, "--variants", "pre_ln", "ngpt-lerp",
              "--out", str(out), "--data_dir", str(dirs["data"]))
    changed = _changed(log)
    assert (out / "report.md").is_file() and (out / "ngpt-lerp" / "metrics.jsonl").is_file()
    assert _outside(changed, out, dirs["cache"], dirs["mpl"], dirs["inductor"], dirs["tmp"]) == []
    assert _outside(_data_reads(log), dirs["data"]) == []
    assert list(dirs["cwd"].iterdir()) == [] and list(dirs["home"].iterdir()) == []


@pytest.mark.parametrize("label", ["../../etc/passwd", "/abs/path", "..", "a/b\\c", "x\x00y", ".hidden", ""])
def test_run_names_are_sanitized(label):
    """Run folders are named after labels: a label can never climb out of the output folder or hide."""
    safe = _safe_label(label)
    assert safe and "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert not safe.startswith(".")
    root = Path("/tmp/out")
    assert (root / safe).resolve().parent == root.resolve()
