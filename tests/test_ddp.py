"""Multi-process training (issue 7): two DDP ranks train exactly what one process trains on the same global batch.

Runs the command users run, ``python -m torch.distributed.run --standalone --nproc_per_node=2 -m minigpt train``,
with the gloo backend on the CPU (2 ranks x batch 4), next to a single process with batch 8 — the same examples,
because every rank draws the global batch from one seeded generator and keeps its half (distributed.Dist.shard).

What a pass means:
- exit status 0: the trainer's own end-of-run check found rank 1's weights bitwise equal to rank 0's
  (`distributed.Dist.check_in_sync`), so the checkpoint is the model the whole job trained;
- the per-step losses and val losses equal the single process's within LOSS_TOL, and so do the final weights:
  without DDP's gradient averaging each rank would follow its own half batch and both would fail (and the
  in-sync check would exit 1);
- only rank 0 wrote: every worker runs under a Python audit hook (PEP 578, installed by a ``sitecustomize`` on
  PYTHONPATH, the way tests/test_file_access.py audits one process) that logs each file it opens for writing,
  creates, renames or removes; rank 1's log must be empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minigpt.__main__ import main
from minigpt.train import CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, load_checkpoint

pytestmark = pytest.mark.slow  # ~12 s per variant: two torchrun workers start torch and gloo

REPO = Path(__file__).resolve().parents[1]
STEPS = 10
ARGS = ["train", "--preset", "cpu-tiny", "--n_layer", "2", "--n_embd", "32", "--n_head", "2", "--block_size", "32",
        "--steps", str(STEPS), "--eval_interval", "5", "--eval_batches", "2", "--grad_accum", "2",
        "--device", "cpu", "--progress", "false", "--checkpoint_interval", "0"]
# Not bitwise: DDP averages the two ranks' gradients (a sum of two half-batch means, then / 2) where one process
# reduces over all 8 sequences at once; float32 rounds the two summation orders differently (measured: losses
# within 1e-6, weights within 5e-7 after 10 steps). Without DDP (each rank on its own half batch) the losses
# move by ~1e-3 at step 2 and by 2e-2 at step 10.
LOSS_TOL = 1e-5
WEIGHT_TOL = 1e-5

# Logs, per torchrun worker (RANK is set), every file written, created, renamed or removed; the agent is left alone.
# The null device is not logged, and $TMPDIR points into the test's folder: torch imports dill when the data extra
# installs it, and dill opens os.devnull and probes the temp folder at import (see tests/test_file_access.py).
SITECUSTOMIZE = r"""
import atexit, json, os, sys

if "RANK" in os.environ and "AUDIT_DIR" in os.environ:
    log, recording = [], [True]
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event, args):
        if not recording[0]:
            return
        if event == "open":
            path, mode, flags = args
            if path is None or isinstance(path, int) or path == os.devnull:
                return
            if (mode is not None and any(c in mode for c in "wax+")) or (flags or 0) & WRITE_FLAGS:
                log.append(os.path.abspath(os.fsdecode(path)))
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "os.rename", "shutil.rmtree"):
            log.append(os.path.abspath(os.fsdecode(args[1] if event == "os.rename" else args[0])))

    def dump():
        recording[0] = False
        with open(os.path.join(os.environ["AUDIT_DIR"], f"rank{os.environ['RANK']}.json"), "w") as f:
            json.dump(log, f)

    sys.addaudithook(hook)
    atexit.register(dump)
"""


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]


@pytest.mark.parametrize("variant", ["pre_ln", "ngpt"])
def test_two_ranks_match_one_process_and_only_rank_0_writes(variant, tmp_path, monkeypatch, capsys):
    dirs = {name: tmp_path / name for name in ("audit", "site", "cache", "inductor", "cwd", "tmp")}
    for d in dirs.values():
        d.mkdir()
    (dirs["site"] / "sitecustomize.py").write_text(SITECUSTOMIZE)
    ddp_out, single_out = tmp_path / "ddp", tmp_path / "single"

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MINIGPT_CACHE_DIR": str(dirs["cache"]),
           "TORCHINDUCTOR_CACHE_DIR": str(dirs["inductor"]), "AUDIT_DIR": str(dirs["audit"]),
           "TMPDIR": str(dirs["tmp"]),
           "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join([str(dirs["site"]), str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "minigpt", *ARGS, "--variant", variant, "--batch_size", "4", "--out", str(ddp_out)]
    p = subprocess.run(cmd, cwd=dirs["cwd"], env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert p.stdout.count(f"{variant}: step {STEPS}/{STEPS}") == 1, "only rank 0 reports"

    monkeypatch.setenv("MINIGPT_CACHE_DIR", str(dirs["cache"]))
    assert main([*ARGS, "--variant", variant, "--batch_size", "8", "--out", str(single_out)]) == 0
    capsys.readouterr()

    # the same run: per-step train loss, val loss, final weights
    ddp, single = _metrics(ddp_out), _metrics(single_out)
    assert [r["step"] for r in ddp] == list(range(1, STEPS + 1))
    for key in ("loss", "val_loss"):
        a = [r[key] for r in ddp if key in r]
        b = [r[key] for r in single if key in r]
        assert len(a) == len(b) > 0
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < LOSS_TOL, (key, a, b)
    ddp_ckpt, single_ckpt = load_checkpoint(ddp_out / CHECKPOINT_FILE), load_checkpoint(single_out / CHECKPOINT_FILE)
    assert ddp_ckpt["world_size"] == 2 and ddp_ckpt["step"] == STEPS
    for name, w in single_ckpt["model"].items():
        torch.testing.assert_close(ddp_ckpt["model"][name], w, rtol=0, atol=WEIGHT_TOL, msg=name)
    assert json.loads((ddp_out / CONFIG_FILE).read_text())["world_size"] == 2

    # only rank 0 wrote (its run folder and the token cache); rank 1 wrote nothing at all
    logs = {r: json.loads((dirs["audit"] / f"rank{r}.json").read_text()) for r in (0, 1)}
    allowed = (str(ddp_out), str(dirs["cache"]), str(dirs["inductor"]), str(dirs["tmp"]))
    assert [f for f in logs[0] if not f.startswith(allowed)] == []
    assert any(f.startswith(str(ddp_out)) for f in logs[0]), "the audit hook saw rank 0's writes"
    assert [f for f in logs[1] if not f.startswith((str(dirs["inductor"]), str(dirs["tmp"])))] == [], \
        "rank 1 must write nothing"
    assert sorted(f.name for f in ddp_out.iterdir()) == sorted([CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE])
    assert list(dirs["cwd"].iterdir()) == []
