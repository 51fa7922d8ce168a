"""Steps and wall-clock to a target validation loss: does nGPT's (or NormFormer's) faster learning per step
survive its slower steps?

    python benchmarks/steps_to_target.py [--preset cpu-tiny] [--steps N] [--target LOSS] [--threads N]

Each run (post_ln, pre_ln, normformer, ngpt-lerp, ngpt-slerp) is trained with `minigpt.train.train` at its
preset LR on the same data in the same order (one `load_data`, the preset's seed), evaluating every
`eval_interval` steps. The target is pre-LN's final val loss unless `--target` is given.

For each run the step where the val curve first reaches the target is *linearly interpolated* between the two
evals that straddle it (evals are every `eval_interval` steps, so this is a resolution choice, not a
measurement); a run that never reaches it reports null. Wall-clock to target is the run's own cumulative
training time (the per-step `ms` that `train` records, evaluation and checkpointing excluded) up to that
fractional step, so a variant with slower steps pays for them. Speedups are pre-LN's steps (or seconds) over
the variant's: > 1 means the variant gets there sooner. On a shared machine the wall-clock half is noisy;
the step half is not (same seed, same data, deterministic CPU kernels).

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from minigpt.config import get_preset
from minigpt.data import load_data
from minigpt.registry import RUNS
from minigpt.train import train


def crossing(val: list[tuple[int, float]], cum_s: list[float], target: float) -> tuple[float, float] | None:
    """(step, seconds) where the val curve first reaches `target`, linear between evals; None if never.
    `cum_s[s]` is the training time after step s (cum_s[0] = 0); before the first eval the curve is taken to
    start at step 0 with no value, so a first eval already at the target counts at its own step."""
    prev: tuple[int, float] | None = None
    for step, loss in val:
        if math.isfinite(loss) and loss <= target:
            if prev is None or not math.isfinite(prev[1]) or prev[1] == loss:
                s = float(step)
            else:  # straight line between (prev_step, prev_loss) and (step, loss)
                s = prev[0] + (prev[1] - target) / (prev[1] - loss) * (step - prev[0])
            lo = math.floor(s)
            frac = s - lo
            seconds = cum_s[lo] + frac * (cum_s[min(lo + 1, len(cum_s) - 1)] - cum_s[lo])
            return s, seconds
        prev = (step, loss)
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-tiny", choices=["cpu-tiny", "cpu-small"])
    ap.add_argument("--steps", type=int, default=None, help="training steps per run (default: the preset's)")
    ap.add_argument("--eval-interval", type=int, default=None, help="default: the preset's")
    ap.add_argument("--target", type=float, default=None, help="val loss to reach (default: pre-LN's final)")
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {', '.join(RUNS)}")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Train every run and return the JSON-ready result."""
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    labels = args.runs.split(",")
    if args.target is None and "pre_ln" not in labels:
        raise SystemExit("without --target the target is pre_ln's final val loss: include pre_ln in --runs")
    overrides: dict = {"progress": False, "checkpoint_interval": 0}
    if args.steps:
        overrides["steps"] = args.steps
    if args.eval_interval:
        overrides["eval_interval"] = args.eval_interval
    tokenizer, batches = load_data(preset.train, preset.model.block_size)

    t0 = time.perf_counter()
    curves: dict[str, dict] = {}
    for label in labels:
        run = RUNS[label]
        mcfg, tcfg = preset.configs(run.variant, **overrides, **run.overrides)
        r = train(mcfg, tcfg, batches=batches, tokenizer=tokenizer)
        records = r.records  # the trainer's per-step records (ms, val_loss, ...)
        cum = [0.0]
        for rec in records:
            cum.append(cum[-1] + rec.get("ms", 0.0) / 1e3)
        curves[label] = {"lr": tcfg.lr, "val": [[s, round(v, 4)] for s, v in r.val], "cum_s": cum,
                         "ms_per_step": round(r.ms_per_step, 2), "diverged": r.diverged}

    target = args.target if args.target is not None else curves["pre_ln"]["val"][-1][1]
    rows: dict[str, dict] = {}
    for label, c in curves.items():
        hit = crossing([(s, v) for s, v in c["val"]], c["cum_s"], target)
        rows[label] = {
            "lr": c["lr"], "ms_per_step": c["ms_per_step"], "final_val_loss": c["val"][-1][1] if c["val"] else None,
            "diverged": c["diverged"],
            "step_to_target": None if hit is None else round(hit[0], 1),
            "seconds_to_target": None if hit is None else round(hit[1], 2),
            "val": c["val"],
        }
    base = rows.get("pre_ln", {})
    for row in rows.values():
        for key, out in (("step_to_target", "speedup_steps"), ("seconds_to_target", "speedup_wall")):
            ok = base.get(key) and row[key]
            row[out] = round(base[key] / row[key], 3) if ok else None
    return {
        "benchmark": "steps_to_target",
        "preset": args.preset,
        "steps": args.steps or preset.train.steps,
        "eval_interval": args.eval_interval or preset.train.eval_interval,
        "threads": torch.get_num_threads(),
        "target_val_loss": round(target, 4),
        "target_source": "--target" if args.target is not None else "pre_ln final val loss",
        "interpolation": "linear between the two evals that straddle the target",
        "results": rows,
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    print(json.dumps(run(parse_args()), indent=2))


if __name__ == "__main__":
    main()
