"""The command line: help, compare, train/resume/sample round trip, Ctrl-C, and one-line errors (exit 2).

Subprocess tests run `python -m minigpt` as a user would (with one torch thread: fast and steady on a shared
2-core machine); the rest call `main(argv)` in-process to save the interpreter start-up.
"""

from __future__ import annotations

import dataclasses
import io
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
    p = cli("compare", "--steps", "20", *TINY, "--eval_interval", "10", "--seeds", "1", cwd=tmp_path)
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


def test_exact_resume_via_the_cli_is_bitwise(tmp_path, capsys):
    """`train --steps 40 --out A` vs `train --steps 40 --stop_at 20 --out B` then the same command with
    `--resume`: the same losses, weights and optimizer state, bit for bit (dropout, grad accumulation,
    warmup and a checkpoint interval that does not divide 20 exercise every restored state)."""
    common = ["train", "--steps", "40", *TINY, *QUIET, "--dropout", "0.1", "--grad_accum", "2",
              "--warmup_steps", "5", "--eval_interval", "10", "--checkpoint_interval", "15"]
    a, b = tmp_path / "straight", tmp_path / "halves"
    assert run_main(capsys, *common, "--out", str(a))[0] == 0
    rc, stdout, _ = run_main(capsys, *common, "--out", str(b), "--stop_at", "20")
    assert rc == 0 and "step 20/40" in stdout and load_checkpoint(b / CHECKPOINT_FILE)["step"] == 20
    rc, stdout, _ = run_main(capsys, *common, "--out", str(b), "--resume")
    assert rc == 0 and "step 40/40" in stdout

    def metrics(run_dir: Path) -> list[dict]:
        return [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]

    ma, mb = metrics(a), metrics(b)
    assert [r["step"] for r in mb] == list(range(1, 41))
    assert [r["loss"] for r in ma] == [r["loss"] for r in mb]  # JSON floats round-trip exactly
    assert [r.get("val_loss") for r in ma] == [r.get("val_loss") for r in mb]
    ca, cb = load_checkpoint(a / CHECKPOINT_FILE), load_checkpoint(b / CHECKPOINT_FILE)
    assert ca["step"] == cb["step"] == 40
    assert ca["model"].keys() == cb["model"].keys()
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    sa, sb = ca["optimizer"]["state"], cb["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    assert torch.equal(ca["rng"]["torch"], cb["rng"]["torch"]) and torch.equal(ca["rng"]["batch"], cb["rng"]["batch"])


def test_diverged_run_exits_1_with_the_step(tmp_path, capsys):
    rc, _, err = run_main(capsys, "train", "--steps", "30", *TINY, *QUIET, "--lr", "50", "--grad_clip", "0",
                          "--out", str(tmp_path / "run"))
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "diverged at step" in err and ": loss " in err and " at lr " in err and "checkpoint" in err


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
        (["train", "--n_layers", "3"], "unknown option --n_layers; did you mean --n_layer?"),
        (["train", "--lerning_rate", "1e-3"], "unknown option --lerning_rate"),
        (["train", "--mlp", "relu"], "mlp='relu' is not valid; choose one of gelu, swiglu"),
        (["train", "--tokenizer", "bpe"], "tokenizer='bpe' is not valid; choose one of char, gpt2"),
        (["train", "--on-nan", "ignore"], "on_nan='ignore' is not valid; choose one of stop, skip"),
        (["train", "--n_head", "4", "--n_kv_head", "3"], "n_head=4 is not divisible by n_kv_head=3"),
        (["train", "--n_embd", "12", "--n_head", "4"], "head dimension n_embd/n_head = 3 is odd"),
        (["train", "--steps", "0"], "steps=0 is not valid"),
        (["train", "--batch_size", "-2"], "batch_size=-2 is not valid"),
        (["train", "--lr", "-1e-3"], "lr=-0.001 is not valid"),
        (["train", "--lr", "nan"], "lr=nan is not valid"),
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


def _damaged_ranks() -> bytes:
    ranks = bytearray((REPO / "data" / "gpt2.tiktoken").read_bytes())
    ranks[1000] ^= 1
    return bytes(ranks)


@pytest.mark.parametrize(
    "files, args, expected",
    [
        ({}, [], "could not find shakespeare.txt; looked in: {data}"),
        ({"shakespeare.txt": b""}, [], "corpus {data}/shakespeare.txt is empty"),
        ({"shakespeare.txt": b"to be or not\n" * 4}, [],
         "the val split has 6 tokens (of 52 in the corpus, val_fraction=0.1) but block_size=32 needs at least 33"),
        ({"shakespeare.txt": b"to be or not\n"}, ["--tokenizer", "gpt2"], "could not find gpt2.tiktoken"),
        ({"shakespeare.txt": b"to be or not\n", "gpt2.tiktoken": "damaged"}, ["--tokenizer", "gpt2"],
         "GPT-2 BPE ranks {data}/gpt2.tiktoken have the wrong sha256"),
    ],
)
def test_bad_data_is_one_line_and_exit_2(files, args, expected, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for name, content in files.items():
        (data / name).write_bytes(_damaged_ranks() if content == "damaged" else content)
    rc, _, err = run_main(capsys, "train", "--steps", "2", *TINY, *QUIET, *args, "--data_dir", str(data),
                          "--out", str(tmp_path / "run"))
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert expected.format(data=data) in err
    assert not (tmp_path / "run").exists()  # bad input is found before anything is written


def test_bad_checkpoints_are_one_line_and_exit_2(tmp_path, capsys):
    """Resume or sample a checkpoint that is corrupt, does not fit, or carries a malicious pickle: exit 2,
    one line naming the file and the problem, and the pickle's code never runs."""
    out = tmp_path / "run"
    args = ["train", "--steps", "2", *TINY, *QUIET, "--out", str(out)]
    assert run_main(capsys, *args)[0] == 0
    ckpt_path = out / CHECKPOINT_FILE
    good = ckpt_path.read_bytes()

    ckpt_path.write_bytes(good[: len(good) // 3])
    rc, _, err = run_main(capsys, *args, "--resume")
    assert rc == 2 and err.count("\n") == 1 and f"checkpoint {ckpt_path} is truncated or corrupt" in err

    ckpt = torch.load(io.BytesIO(good), weights_only=True)
    ckpt["model"]["lm_head.weight"] = ckpt["model"]["lm_head.weight"][:, :8].clone()
    torch.save(ckpt, ckpt_path)
    rc, _, err = run_main(capsys, "sample", "--checkpoint", str(ckpt_path))
    assert rc == 2 and err.count("\n") == 1 and "does not fit this model: shape mismatch: lm_head.weight" in err

    marker = tmp_path / "pwned.txt"
    torch.save({**ckpt, "payload": _Evil(str(marker))}, ckpt_path)
    for argv in (["sample", "--checkpoint", str(ckpt_path)], [*args, "--resume"]):
        rc, _, err = run_main(capsys, *argv)
        assert rc == 2 and err.count("\n") == 1 and "refused by the safe loader" in err
    assert not marker.exists()


class _Evil:
    """Unpickling this would run code: write a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


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
