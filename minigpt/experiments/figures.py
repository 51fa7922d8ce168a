"""The README figures: `python -m minigpt figures` / `python -m minigpt.experiments` run the experiments at the
notebooks' scale (scale.py) and write the PNGs and the numbers their captions quote.

Part of the experiments package; the overview is in minigpt/experiments/__init__.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import plots
from ._common import _preset_name
from .depth import grad_norms_vs_depth
from .hypersphere import hypersphere
from .lr_stability import lr_stability
from .race import race
from .scale import notebook_scale, notebook_steps, use_notebook_threads

# Seeds of the README's race: its speedup is quoted with the spread across seeds, since at this scale one
# seed's speedup is partly luck (the notebooks race one seed, to stay fast).
RACE_SEEDS = 3


def _budgets(preset: str, quick: bool) -> dict[str, dict[str, Any]]:
    """Budgets for the README figures: the notebooks' (a few minutes in all on a laptop CPU with a cpu-*
    preset, the race over RACE_SEEDS seeds; a few minutes on one GPU with gpu-*); `quick` is a smoke test."""
    if quick:
        tiny = dict(n_layer=2, n_embd=32, n_head=2, block_size=32, batch_size=4, eval_batches=2)
        return {"depth": dict(steps=5, **tiny), "race": dict(steps=6, seeds=2, **tiny),
                "lr": dict(steps=12, **tiny), "sphere": dict(steps=5, **tiny)}
    scale = notebook_scale(preset)  # the notebooks' overrides and budgets (scale.py)
    budgets = {key: dict(steps=notebook_steps(experiment, preset), **scale) for key, experiment in
               (("depth", "depth"), ("race", "race"), ("lr", "lr_stability"), ("sphere", "hypersphere"))}
    budgets["race"]["seeds"] = RACE_SEEDS
    return budgets


def make_figures(out_dir: str | Path = "docs/figures", preset: str | None = None, progress: bool = True,
                 quick: bool = False) -> dict[str, Path]:
    """Run the experiments behind the README figures and write them as PNGs into `out_dir`:
    grad_norms.png (gradient vs depth, all variants, at init and after training), race.png (val loss vs
    step and wall-clock, mean and band over RACE_SEEDS seeds, nGPT's speedup and its seed spread),
    lr_stability.png (loss vs LR, LR at divergence) and hypersphere.png (nGPT hidden states moving on the
    sphere), plus numbers.md with the tables the README's captions quote. Returns {name: path}.

    On a CPU preset it trains on CPU_THREADS torch threads, as the notebooks do: the top of the LR ramp is
    chaotic, and a different thread count sums in another order (with two threads NormFormer's run diverged
    below LR 1, where on one it does not), so the same thread count is what makes numbers.md reproducible."""
    import torch

    name = _preset_name(preset)
    threads = use_notebook_threads(name)
    try:
        return _make_figures(out_dir, name, progress, quick)
    finally:
        torch.set_num_threads(threads)


def _make_figures(out_dir: str | Path, name: str, progress: bool, quick: bool) -> dict[str, Path]:
    budget = _budgets(name, quick)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def save(fig: Any, file: str) -> None:
        path = out / file
        fig.savefig(path, dpi=110)
        paths[file.removesuffix(".png")] = path

    depth = grad_norms_vs_depth(name, progress=progress, **budget["depth"])
    save(plots.plot_grad_norms(depth), "grad_norms.png")
    race_result = race(name, progress=progress, **budget["race"])
    save(plots.plot_race(race_result), "race.png")
    stability = lr_stability(name, progress=progress, **budget["lr"])
    save(plots.plot_lr_stability(stability), "lr_stability.png")
    sphere = hypersphere(name, progress=progress, **budget["sphere"])  # pre-LN beside nGPT
    save(plots.plot_sphere_projection(sphere), "hypersphere.png")

    # The numbers the README's captions quote, written next to the figures so that every one has a source.
    numbers = out / "numbers.md"
    numbers.write_text("\n".join([
        f"# Numbers behind the figures (`python -m minigpt figures`, preset {name})", "",
        f"## grad_norms.png: gradient norms vs depth, after {depth.steps} steps", "```", depth.table("trained"),
        "```", "", "At init:", "```", depth.table("init"), "```", "",
        "## lr_stability.png: LR multiplied every step until the loss explodes", "```", stability.table(), "```",
        "", f"## race.png: same budget, same ingredients, {race_result.seeds} seeds", "```", race_result.table(),
        "```", "",
        "## hypersphere.png: hidden states, nGPT and pre-LN", "```",
        *(f"{k}: max | ||h|| - 1 | = {v:.2e}" for k, v in sphere.max_norm_error.items()),
        *(f"{k}: mean angle each block turns a token (degrees): "
          + ", ".join(f"{math.degrees(sum(a) / len(a)):.1f}" for a in ang) for k, ang in sphere.step_angles.items()),
        "```", ""]))
    paths["numbers"] = numbers
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m minigpt.experiments", description=make_figures.__doc__)
    p.add_argument("--out", default="docs/figures", help="output folder (default docs/figures)")
    p.add_argument("--preset", default=None, help="preset name (default: gpu-small on CUDA, else cpu-tiny)")
    p.add_argument("--quick", action="store_true", help="minuscule budgets: a smoke test, not the figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    for key, path in make_figures(args.out, args.preset, progress=not args.no_progress, quick=args.quick).items():
        print(f"{key}: {path}")
    return 0

