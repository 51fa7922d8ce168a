"""Claim-vs-scale curves: where each paper's headline effect appears, measured as a curve with seed bands
instead of one point at one budget.

A claim measured at one short budget says nothing about where it crosses 1. Each experiment here runs the
same code at two tiers (`TIERS`): `ci` (seconds: the notebooks run it live and the tests run it) and `full`
(minutes per experiment on two CPU cores; its results are committed under docs/results/ with the command,
the code version and the machine, and drawn beside the live run).

    budget            nGPT's steps-to-target speedup over the same-ingredient pre-LN vs training budget
    context           the same speedup vs context length, tokens per step fixed (the paper: 4x/10x/20x at
                      1k/4k/8k tokens)
    normformer_recipe NormFormer vs pre-LN with GPT-2's init and with fairseq's (the paper's) recipe:
                      final val loss, steps-to-target speedup, and the best LR of a small sweep
    depth_law         Xiong et al. 2020, Thm 1 as a law: post-LN / pre-LN last-layer gradient at init
                      (Xavier) grows as sqrt(L); and post-LN without warmup failing as depth grows

Every training run goes through `race.race` (the same loop, data and preset LRs as `compare` and the
notebooks); each experiment returns a JSON-able dict. `python -m minigpt experiments --tier full` writes
docs/results/<name>.json and .png.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError
from ._common import SEEDS
from .depth_law import depth_law
from .normformer_recipe import normformer_recipe
from .speedup_curves import budget_curve, context_curve

_SHAPE = dict(n_embd=64, block_size=64, batch_size=8, eval_batches=4)
_TINY = dict(n_layer=2, n_embd=32, n_head=2, block_size=32, batch_size=4, eval_batches=2)

TIERS: dict[str, dict[str, dict[str, Any]]] = {
    "budget": {
        "ci": dict(preset="cpu-tiny", budgets=[20, 40], seeds=[1337, 1338], overrides=_TINY),
        "full": dict(preset="cpu-tiny", budgets=[150, 300, 600, 1200], seeds=list(SEEDS), overrides=_SHAPE),
    },
    "context": {
        "ci": dict(preset="cpu-tiny", context_lengths=[16, 32], tokens_per_step=128, steps=30,
                   seeds=[1337, 1338], overrides={k: v for k, v in _TINY.items() if k not in ("block_size",
                                                                                             "batch_size")}),
        "full": dict(preset="cpu-tiny", context_lengths=[32, 64, 128, 256], tokens_per_step=512, steps=400,
                     seeds=list(SEEDS), overrides=dict(n_embd=64, eval_batches=4)),
    },
    "normformer_recipe": {
        "ci": dict(preset="cpu-tiny", steps=30, seeds=[1337, 1338], lrs=[4e-3, 1.6e-2], overrides=_TINY),
        "full": dict(preset="cpu-tiny", steps=400, seeds=list(SEEDS), lrs=[2e-3, 4e-3, 8e-3, 1.6e-2],
                     overrides=_SHAPE),
    },
    "depth_law": {
        "ci": dict(preset="cpu-tiny", depths=[1, 2, 4], init_seeds=[0, 1], train_seeds=[1337], steps=20,
                   warmup=5, overrides={k: v for k, v in _TINY.items() if k != "n_layer"}),
        "full": dict(preset="cpu-tiny", depths=[2, 4, 8, 16], init_seeds=list(range(8)), train_seeds=[1337, 1338],
                     steps=200, warmup=50, overrides=_SHAPE),
    },
}


EXPERIMENTS: dict[str, Callable[..., dict[str, Any]]] = {
    "budget": budget_curve,
    "context": context_curve,
    "normformer_recipe": normformer_recipe,
    "depth_law": depth_law,
}


def run(name: str, tier: str = "ci", progress: bool = False) -> dict[str, Any]:
    """Run experiment `name` at `tier` with the parameters of `TIERS[name][tier]`."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"experiment {name!r} is not valid; choose one of {', '.join(EXPERIMENTS)}")
    if tier not in TIERS[name]:
        raise ConfigError(f"tier={tier!r} is not valid; choose one of {', '.join(TIERS[name])}")
    return EXPERIMENTS[name](**TIERS[name][tier], progress=progress)


def provenance(command: str) -> dict[str, Any]:
    """What produced a result: the command, the code version (git commit, + if the tree had changes), the
    machine and the torch build."""
    import datetime
    import os
    import platform
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                                  cwd=os.path.dirname(__file__)).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD") or "unknown"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return dict(command=command, commit=commit + ("+" if dirty else ""), date=datetime.datetime.now(
        datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), machine=dict(
        cpu=cpu, cores=os.cpu_count(), torch_threads=torch.get_num_threads(), device=device,
        torch=torch.__version__, python=platform.python_version()))


def write_result(name: str, tier: str, out_dir: str | Path, command: str, progress: bool = False) -> Path:
    """Run `name` at `tier` and write <out_dir>/<name>.json (provenance, the tier's parameters, the data, the
    wall-clock seconds) and <out_dir>/<name>.png. Returns the JSON's path."""
    record: dict[str, Any] = dict(name=name, tier=tier, **provenance(command), params=TIERS[name][tier])
    t0 = time.perf_counter()  # provenance first: the code version that starts the run
    record["data"] = run(name, tier, progress)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    write_figure(path)
    return path


def write_figure(json_path: Path) -> Path:
    """<name>.png beside a result's JSON, drawn from the JSON alone."""
    from ..plot_scale import plot_result

    png = json_path.with_suffix(".png")
    plot_result(json.loads(json_path.read_text(encoding="utf-8"))).savefig(png, dpi=100)
    return png


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """`python -m minigpt experiments`, as a subcommand of the CLI's parser (`sub`: its subparsers)."""
    p = sub.add_parser(
        "experiments", help="the claim-vs-scale curves with seed bands; writes docs/results/<name>.json + .png",
        description="nGPT's speedup vs budget and vs context, NormFormer's recipe, the depth law: each at a ci "
                    "tier (seconds) or a full tier (minutes; the committed curves in docs/results/).")
    add_arguments(p)
    p.set_defaults(run=command)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `python -m minigpt experiments`."""
    p.add_argument("--tier", choices=("ci", "full"), default="ci",
                   help="ci: seconds, checks the pipeline; full: minutes per experiment, the committed curves")
    p.add_argument("--only", nargs="+", choices=list(EXPERIMENTS), default=list(EXPERIMENTS), metavar="NAME",
                   help=f"experiments to run (default: all): {', '.join(EXPERIMENTS)}")
    p.add_argument("--out", default="docs/results", metavar="DIR", help="output folder (default docs/results)")
    p.add_argument("--replot", action="store_true", help="only redraw DIR/<name>.png from DIR/<name>.json")
    p.add_argument("--progress", action="store_true", help="a progress bar per training run")


def command(ns: argparse.Namespace, cmd: str) -> int:
    """Run (or `--replot`) the chosen experiments; prints one written path per line."""
    for name in ns.only:
        if ns.replot:
            print(write_figure(Path(ns.out) / f"{name}.json"), flush=True)
        else:
            print(write_result(name, ns.tier, ns.out, cmd, ns.progress), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="python -m minigpt experiments", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return command(p.parse_args(argv), "python -m minigpt experiments " + shlex.join(argv))


if __name__ == "__main__":
    raise SystemExit(main())
