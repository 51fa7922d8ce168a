"""Learning-rate sweep per variant at a preset: where each preset's `lr` table comes from (docs/design.md §5).

    python benchmarks/lr_sweep.py --preset cpu-tiny [--lrs 1e-3,2e-3,4e-3,8e-3,1.6e-2] [--steps N] [--seeds 1]

Every variant (nGPT with LERP) is trained at each LR with the preset's budget, seed and data order; the
final validation loss is printed as JSON and as a Markdown table (best LR per variant in bold). Copy the best
LRs into `PRESETS[preset].lr` in minigpt/config.py and the table into benchmarks/lr_sweep.md.
A run that diverges scores +inf.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from minigpt.config import VARIANT_NAMES, get_preset
from minigpt.data import load_data
from minigpt.train import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-tiny")
    ap.add_argument("--lrs", default="1e-3,2e-3,4e-3,8e-3,1.6e-2")
    ap.add_argument("--variants", default=",".join(VARIANT_NAMES))
    ap.add_argument("--steps", type=int, default=None, help="default: the preset's")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per (variant, lr); the mean is scored")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    preset = get_preset(args.preset)
    lrs = [float(x) for x in args.lrs.split(",")]
    variants = args.variants.split(",")
    tokenizer, batches = load_data(preset.train, preset.model.block_size)
    results: dict[str, dict[str, float]] = {}
    t0 = time.perf_counter()
    for variant in variants:
        results[variant] = {}
        for lr in lrs:
            losses = []
            for seed in range(args.seeds):
                overrides = {"lr": lr, "progress": False, "seed": 1337 + seed}
                if args.steps:
                    overrides["steps"] = args.steps
                mcfg, tcfg = preset.configs(variant, **overrides)
                r = train(mcfg, tcfg, batches=batches, tokenizer=tokenizer)
                losses.append(math.inf if r.diverged else r.final_val_loss)
                print(f"{variant} lr {lr:g} seed {seed}: {losses[-1]:.4f} ({time.perf_counter() - t0:.0f} s)",
                      file=sys.stderr, flush=True)
            results[variant][f"{lr:g}"] = sum(losses) / len(losses)
    best = {v: min(r, key=r.get) for v, r in results.items()}
    print(json.dumps({"preset": args.preset, "steps": args.steps or preset.train.steps, "seeds": args.seeds,
                      "final_val_loss": results, "best_lr": best,
                      "wall_s": round(time.perf_counter() - t0, 1)}, indent=2))
    print()
    print("| variant | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |")
    print("|---|" + "---|" * len(lrs))
    for v, r in results.items():
        cells = [(f"**{x:.3f}**" if k == best[v] else f"{x:.3f}") for k, x in r.items()]
        print(f"| {v} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
