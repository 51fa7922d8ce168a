"""The command line: help, compare, train/resume/sample round trip, Ctrl-C, and one-line errors (exit 2).

Subprocess tests run `python -m minigpt` as a user would (with one torch thread: fast and steady on a shared
2-core machine); the rest call `main(argv)` in-process to save the interpreter start-up.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from minigpt import ModelConfig, TrainConfig
from minigpt.__main__ import FIELD_HELP, main
from minigpt.train import CHECKPOINT_FILE, METRICS_FILE, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = ["--n_layer", "1", "--n_embd", "32", "--n_head", "2", "--block_size", "32", "--batch_size", "4",
        "--eval_batches", "2"]
QUIET = ["--progress", "false"]
FIELDS = [f.name for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # conftest restores the previous count


def cli(*args: str, cwd: Path, timeout: float = 120, **popen) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("MINIGPT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "minigpt", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **popen)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


# -------------------------------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", ["train", "compare"])
def test_help_explains_every_field(command, capsys):
    assert set(FIELD_HELP) == set(FIELDS), "every config field needs a line in __main__.FIELD_HELP"
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    reserved = {"variant", "ngpt_update"} if command == "compare" else set()
    for name in FIELDS:
        assert (f"--{name} " in text) != (name in reserved), name
    for option in (["--preset", "--out", "--resume", "--stop_at"] if command == "train"
                   else ["--preset", "--variants", "--out"]):
        assert option in text


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(c in text for c in ("train", "compare", "sample", "presets"))
    assert run_main(capsys, "presets")[1].count("peak lr") >= 4


# ----------------------------------------------------------------------------------------------- compare


def test_compare_writes_table_metrics_figure_and_report(tmp_path):
    p = cli("compare", "--steps", "20", *TINY, "--eval_interval", "10", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    labels = ["post_ln", "pre_ln", "normformer", "ngpt-lerp", "ngpt-slerp"]
    rows = [line for line in p.stdout.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:]] == labels
    assert "params" in rows[0] and "val loss" in rows[0] and "tokens/s" in rows[0]
    (out,) = list((tmp_path / "runs").iterdir())  # runs/<timestamp> by default
    assert {"config.json", "val_loss.png", "report.md"} <= {f.name for f in out.iterdir()}
    for label in labels:
        lines = (out / label / METRICS_FILE).read_text().splitlines()
        assert [json.loads(x)["step"] for x in lines] == list(range(1, 21))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["runs"]["ngpt-slerp"]["model"]["ngpt_update"] == "slerp"
    assert cfg["runs"]["ngpt-lerp"]["model"]["ngpt_update"] == "lerp"
    assert {r["train"]["seed"] for r in cfg["runs"].values()} == {cfg["runs"]["pre_ln"]["train"]["seed"]}
    report = (out / "report.md").read_text()
    assert "python -m minigpt compare --steps 20" in report and "](val_loss.png)" in report
    assert (out / "val_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------- train, resume, sample


def test_train_then_sample(tmp_path):
    run_dir = tmp_path / "run"
    p = cli("train", "--variant", "ngpt", "--steps", "10", *TINY, "--out", str(run_dir), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (run_dir / CHECKPOINT_FILE).is_file()
    assert len((run_dir / METRICS_FILE).read_text().splitlines()) == 10
    p = cli("sample", "--checkpoint", str(run_dir / CHECKPOINT_FILE), "--prompt", "ROMEO:",
            "--max_new_tokens", "30", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith("ROMEO:") and len(p.stdout.rstrip("\n")) >= len("ROMEO:") + 20


def test_stop_resume_and_refuse_overwrite(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["train", "--steps", "6", *TINY, *QUIET, "--on-nan", "skip", "--out", out]  # --on-nan == --on_nan
    rc, stdout, _ = run_main(capsys, *args, "--stop_at", "3")
    assert rc == 0 and "step 3/6" in stdout
    rc, _, err = run_main(capsys, *args)
    assert rc == 2 and "already exists" in err and "--resume" in err
    rc, stdout, _ = run_main(capsys, *args, "--resume")
    assert rc == 0 and "step 6/6" in stdout
    ckpt = load_checkpoint(Path(out) / CHECKPOINT_FILE)
    assert ckpt["step"] == 6 and ckpt["train_config"]["on_nan"] == "skip"
    assert len((Path(out) / METRICS_FILE).read_text().splitlines()) == 6
    ckpt_path = str(Path(out) / CHECKPOINT_FILE)
    rc, _, err = run_main(capsys, "sample", "--checkpoint", ckpt_path, "--prompt", "\u20ac")
    assert rc == 2 and "is not in the" in err and err.count("\n") == 1  # DataError: not in the vocabulary
    rc, _, err = run_main(capsys, "sample", "--checkpoint", ckpt_path, "--temperature", "0")
    assert rc == 2 and "temperature=0.0 must be > 0" in err  # ModelInputError
    rc, _, err = run_main(capsys, "train", "--steps", "6", *TINY, *QUIET, "--n_layer", "2", "--out", out,
                          "--resume")
    assert rc == 2 and "n_layer: 1 in checkpoint vs 2 now" in err  # CheckpointError


def test_diverged_run_exits_1_with_the_step(tmp_path, capsys):
    rc, _, err = run_main(capsys, "train", "--steps", "30", *TINY, *QUIET, "--lr", "50", "--grad_clip", "0",
                          "--out", str(tmp_path / "run"))
    assert rc == 1 and "diverged at step" in err and "lr" in err


def test_ctrl_c_saves_and_exits_130(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "minigpt", "train", "--steps", "100000", *TINY, *QUIET,
                             "--out", str(run_dir)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        metrics = run_dir / METRICS_FILE
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "checkpoint saved" in err and "--resume" in err and "Traceback" not in err
    assert load_checkpoint(run_dir / CHECKPOINT_FILE)["step"] >= 3


# --------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--n_layr", "3"], "unknown option --n_layr; did you mean --n_layer?"),
        (["compare", "--variant", "ngpt"], "did you mean --variants?"),
        (["train", "--variant", "bogus"], "choose one of post_ln, pre_ln, normformer, ngpt"),
        (["train", "--norm", "rmsnrom"], "did you mean 'rmsnorm'?"),
        (["train", "--n_layer", "abc"], "--n_layer: expected an integer, got 'abc'"),
        (["train", "--bias", "maybe"], "expected true or false"),
        (["train", "--dropout", "1.5"], "dropout=1.5"),
        (["train", "--n_embd", "30", "--n_head", "4"], "n_embd=30 is not divisible by n_head=4"),
        (["train", "--preset", "cpu-huge"], "preset='cpu-huge'"),
        (["compare", "--variants", "pre_ln", "gpt5"], "unknown compare run(s) gpt5"),
        (["train", "--resume"], "--resume needs --out"),
        (["sample", "--checkpoint", "no/such/ckpt.pt"], "checkpoint no/such/ckpt.pt does not exist"),
        ([], "required: COMMAND"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_main(capsys, *args)
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    p = cli("train", "--n_layr", "3", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr == "error: unknown option --n_layr; did you mean --n_layer?\n"
    corrupt = tmp_path / "ckpt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip file")
    p = cli("sample", "--checkpoint", str(corrupt), cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith(f"error: checkpoint {corrupt} is truncated or corrupt")
    assert p.stderr.count("\n") == 1
