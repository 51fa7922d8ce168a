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

Every training run goes through `experiments.race` (the same loop, data and preset LRs as `compare` and the
notebooks); each experiment returns a JSON-able dict. `python -m minigpt experiments --tier full` writes
docs/results/<name>.json and .png.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from . import diagnostics as D
from .config import ConfigError
from .experiments import (
    _build,
    _configs,
    _data,
    _probe_batches,
    _with_vocab,
    race,
    speedup,
    speedup_vs_context,
)

# The notebooks' CPU scale: cpu-tiny narrowed to d64/T64/B8 (experiments.CPU_SCALE). The full tier keeps it:
# at cpu-tiny's own width (d128, T128) one step costs ~4x more on two shared cores, and 3 seeds x 4 budgets
# would take over 30 minutes per experiment. For the same reason the context and recipe experiments train 400
# steps and the depth law's training runs 2 seeds (its gradient law averages 8 inits).
_SHAPE = dict(n_embd=64, block_size=64, batch_size=8, eval_batches=4)
_TINY = dict(n_layer=2, n_embd=32, n_head=2, block_size=32, batch_size=4, eval_batches=2)
SEEDS = (1337, 1338, 1339)  # 1337 is the presets' seed: the notebooks' live run is the first seed

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


def band(values: Sequence[float]) -> dict[str, Any]:
    """mean, sample std (0 for one value), min, max and the values themselves; inf/NaN values are kept in
    `values` and make the statistics NaN (a run that never reached the target is not averaged away)."""
    vals = [float(v) for v in values]
    finite = all(math.isfinite(v) for v in vals) and vals
    mean = statistics.fmean(vals) if finite else float("nan")
    std = statistics.stdev(vals) if finite and len(vals) > 1 else (0.0 if finite else float("nan"))
    return dict(mean=mean, std=std, min=min(vals) if vals else float("nan"), max=max(vals) if vals else float("nan"),
                values=vals)


def _pair(preset: str, steps: int, seed: int, baseline: str, challenger: str, progress: bool,
          overrides: dict[str, Any]) -> dict[str, Any]:
    """One race of two variants at one seed: both val curves and the steps-to-target speedup."""
    r = race(preset, (baseline, challenger), steps=steps, baseline=baseline, challenger=challenger,
             progress=progress, **{**overrides, "seed": seed})
    return _pair_record(r.runs[baseline], r.runs[challenger], seed)


def _pair_record(b: Any, c: Any, seed: int) -> dict[str, Any]:
    ok = not (b.diverged or c.diverged) and b.val and c.val
    s = speedup(b, c) if ok else None
    return dict(seed=seed, speedup=s.factor if s else float("nan"), target=s.target if s else float("nan"),
                baseline_val=b.val, challenger_val=c.val, baseline_final=b.final_val, challenger_final=c.final_val,
                baseline_lr=b.lr, challenger_lr=c.lr)


def budget_curve(preset: str = "cpu-tiny", budgets: Sequence[int] = (150, 300, 600, 1200),
                 seeds: Sequence[int] = SEEDS, baseline: str = "pre_ln", challenger: str = "ngpt",
                 overrides: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Steps-to-target speedup of `challenger` over `baseline` (`experiments.Speedup`) at each training
    budget, one race per (budget, seed), each variant at its preset LR with the cosine schedule of that
    budget. points[i] = {budget, speedup: band, runs: [per seed]}."""
    points = []
    for steps in budgets:
        runs = [_pair(preset, steps, sd, baseline, challenger, progress, overrides or {}) for sd in seeds]
        points.append(dict(budget=steps, speedup=band([r["speedup"] for r in runs]), runs=runs))
    return dict(baseline=baseline, challenger=challenger, points=points)


def context_curve(preset: str = "cpu-tiny", context_lengths: Sequence[int] = (32, 64, 128, 256),
                  tokens_per_step: int = 512, steps: int = 600, seeds: Sequence[int] = SEEDS,
                  baseline: str = "pre_ln", challenger: str = "ngpt", overrides: dict[str, Any] | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """The same speedup against context length T at a fixed number of tokens per step (batch = tokens / T),
    so every point trains on the same tokens (`experiments.speedup_vs_context`, once per seed)."""
    per_seed = {sd: speedup_vs_context(preset, context_lengths, steps, tokens_per_step, baseline, challenger,
                                       progress, **{**(overrides or {}), "seed": sd}) for sd in seeds}
    points = []
    for i, T in enumerate(context_lengths):
        runs = [_pair_record(p[i].runs[baseline], p[i].runs[challenger], sd) for sd, p in per_seed.items()]
        points.append(dict(block_size=T, batch_size=per_seed[seeds[0]][i].batch_size,
                           speedup=band([r["speedup"] for r in runs]), runs=runs))
    return dict(baseline=baseline, challenger=challenger, tokens_per_step=tokens_per_step, steps=steps,
                points=points)


def normformer_recipe(preset: str = "cpu-tiny", steps: int = 600, seeds: Sequence[int] = SEEDS,
                      lrs: Sequence[float] = (2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2),
                      variants: Sequence[str] = ("pre_ln", "normformer"), inits: Sequence[str] = ("gpt2", "fairseq"),
                      overrides: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """NormFormer and pre-LN under each init recipe (`ModelConfig.init`), equal budgets:
    - at each variant's preset LR, every seed: final val loss, and NormFormer's steps-to-target speedup over
      pre-LN with the same recipe and seed;
    - an LR sweep (first seed): final val loss at each LR and the best LR (the paper's higher-LR claim).
    The preset-LR run of the first seed is also the sweep's point at that LR when the LR is in `lrs`."""
    overrides = overrides or {}
    cache: dict[tuple, Any] = {}

    def run(variant: str, init: str, seed: int, lr: float | None) -> Any:
        key = (variant, init, seed, lr if lr is not None else _configs(preset, variant, overrides)[1].lr)
        if key not in cache:
            extra = {} if lr is None else {"lr": lr}
            r = race(preset, (variant,), steps=steps, progress=progress,
                     **{**overrides, "init": init, "seed": seed, **extra})
            cache[key] = r.runs[variant]
        return cache[key]

    out: dict[str, Any] = dict(steps=steps, final={}, speedup={}, sweep={}, best_lr={})
    for init in inits:
        for v in variants:
            rs = [run(v, init, sd, None) for sd in seeds]
            out["final"][f"{v}/{init}"] = dict(lr=rs[0].lr, val=band([r.final_val for r in rs]),
                                               curves=[r.val for r in rs])
        if len(variants) == 2:
            pairs = [_pair_record(run(variants[0], init, sd, None), run(variants[1], init, sd, None), sd)
                     for sd in seeds]
            out["speedup"][init] = dict(band=band([p["speedup"] for p in pairs]),
                                        values=[p["speedup"] for p in pairs])
    for init in inits:
        for v in variants:
            finals = [run(v, init, seeds[0], lr).final_val for lr in lrs]
            out["sweep"][f"{v}/{init}"] = dict(lrs=list(lrs), val=finals)
            ok = [(f, lr) for f, lr in zip(finals, lrs, strict=True) if math.isfinite(f)]
            out["best_lr"][f"{v}/{init}"] = min(ok)[1] if ok else float("nan")
    return out


def _grad_ratio(preset: str, n_layer: int, seed: int, overrides: dict[str, Any], n_batches: int = 2) -> dict:
    """||dL/dW_2|| of the last block's FFN output matrix (Xiong et al.'s W^{2,L}) at Xavier init, post-LN and
    pre-LN built from the same seed, averaged over `n_batches` fixed training batches."""
    grads = {}
    for variant in ("post_ln", "pre_ln"):
        model_cfg, train_cfg = _configs(preset, variant, overrides, n_layer=n_layer, init="xavier", seed=seed)
        tokenizer, batches = _data(train_cfg, model_cfg.block_size)
        model = _build(_with_vocab(model_cfg, tokenizer), train_cfg)
        probe = _probe_batches(batches, n_batches, train_cfg.batch_size, torch.device("cpu"))
        grads[variant] = D.gradient_norms(model, probe)["ffn_out"][-1]
    return dict(post_ln=grads["post_ln"], pre_ln=grads["pre_ln"], ratio=grads["post_ln"] / grads["pre_ln"])


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def depth_law(preset: str = "cpu-tiny", depths: Sequence[int] = (2, 4, 8, 16), init_seeds: Sequence[int] = range(8),
              train_seeds: Sequence[int] = SEEDS, steps: int = 200, warmup: int = 50,
              overrides: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Xiong et al. 2020, Theorem 1: with Xavier init the last FFN layer's gradient is O(d sqrt(ln d)) for
    post-LN and O(d sqrt(ln d / L)) for pre-LN, so their ratio grows as sqrt(L): a slope of 1/2 on log-log
    axes (`slope`, fitted to the ratio of the init-seed means). Then training with that init: post-LN
    without warmup, post-LN with `warmup` steps and pre-LN without warmup, each at its preset LR, final val
    loss per depth and seed (NaN = diverged)."""
    overrides = overrides or {}
    grad = []
    for L in depths:
        rs = [_grad_ratio(preset, L, sd, overrides) for sd in init_seeds]
        grad.append(dict(n_layer=L, post_ln=band([r["post_ln"] for r in rs]), pre_ln=band([r["pre_ln"] for r in rs]),
                         ratio=band([r["ratio"] for r in rs])))
    ratios = [g["post_ln"]["mean"] / g["pre_ln"]["mean"] for g in grad]
    arms = {"post_ln, no warmup": ("post_ln", 0), f"post_ln, warmup {warmup}": ("post_ln", warmup),
            "pre_ln, no warmup": ("pre_ln", 0)}
    train_pts: dict[str, list[dict[str, Any]]] = {k: [] for k in arms}
    for L in depths:
        for label, (variant, w) in arms.items():
            finals = []
            for sd in train_seeds:
                r = race(preset, (variant,), steps=steps, progress=progress,
                         **{**overrides, "n_layer": L, "init": "xavier", "seed": sd, "warmup_steps": w})
                finals.append(r.runs[variant].final_val)
            train_pts[label].append(dict(n_layer=L, val=band(finals)))
    return dict(grad=grad, ratio_of_means=ratios, slope=loglog_slope(depths, ratios), train=train_pts,
                steps=steps, warmup=warmup)


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
    from .scale_plots import plot_result

    png = json_path.with_suffix(".png")
    plot_result(json.loads(json_path.read_text(encoding="utf-8"))).savefig(png, dpi=100)
    return png


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
