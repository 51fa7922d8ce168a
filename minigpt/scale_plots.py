"""Figures of the claim-vs-scale curves (`scale_curves`), drawn from the JSON records that
`python -m minigpt experiments` writes, so a notebook draws the committed full-tier curve with the same
function as its live CI-tier run:

    from minigpt.scale_plots import load_result, plot_result
    plot_result(load_result("budget"))                       # docs/results/budget.json
    plot_result({"name": "budget", "data": scale_curves.run("budget", "ci")})   # a live run

Each point is the mean over seeds; the band spans min to max and the dots are the seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from .plots import COLORS, NAMES, _figure

RESULTS_DIR = Path(__file__).resolve().parent.parent / "docs" / "results"
INIT_STYLES = {"gpt2": ":", "fairseq": "-"}


def load_result(name: str, folder: str | Path | None = None) -> dict[str, Any]:
    """The committed record docs/results/<name>.json (or <folder>/<name>.json)."""
    path = Path(folder or RESULTS_DIR) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no result {path}; run `python -m minigpt experiments --tier full --only {name}`")
    return json.loads(path.read_text(encoding="utf-8"))


def _plain_ticks(ax: Any, axis: str = "x") -> None:
    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    a.set_minor_formatter(NullFormatter())


def _band(ax: Any, xs: Sequence[float], bands: Sequence[dict[str, Any]], color: str | None, label: str,
          ls: str = "-") -> None:
    """Mean line, min-max band and one dot per seed; infinite/NaN seeds (never reached, diverged) skipped."""
    means = [b["mean"] for b in bands]
    lo = [min((v for v in b["values"] if math.isfinite(v)), default=math.nan) for b in bands]
    hi = [max((v for v in b["values"] if math.isfinite(v)), default=math.nan) for b in bands]
    (line,) = ax.plot(xs, means, marker="o", color=color, ls=ls, label=label)
    ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    for x, b in zip(xs, bands, strict=True):
        vals = [v for v in b["values"] if math.isfinite(v)]
        ax.plot([x] * len(vals), vals, ls="none", marker=".", color=line.get_color(), alpha=0.6)


def _speedup_axes(ax: Any, data: dict[str, Any], xlabel: str) -> None:
    ax.axhline(1.0, color="gray", lw=1, ls="--")
    ax.set_xscale("log", base=2)
    _plain_ticks(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"steps-to-target speedup of {NAMES[data['challenger']]}\nover {NAMES[data['baseline']]} (x)")


def _subtitle(record: dict[str, Any]) -> str:
    params = record.get("params", {})
    seeds = params.get("seeds") or params.get("train_seeds") or []
    return f"{record.get('tier', 'live')} tier, {len(seeds)} seeds" if seeds else record.get("tier", "live")


def plot_budget(record: dict[str, Any]) -> Figure:
    data = record["data"]
    fig, axes = _figure(width=6.5)
    ax = axes[0, 0]
    xs = [p["budget"] for p in data["points"]]
    _band(ax, xs, [p["speedup"] for p in data["points"]], COLORS[data["challenger"]], "mean (band: min-max)")
    _speedup_axes(ax, data, "training budget (optimizer steps; cosine schedule to that step)")
    ax.set_xticks(xs)
    ax.set_title(f"Speedup vs training budget ({_subtitle(record)})")
    ax.legend(loc="best")
    return fig


def plot_context(record: dict[str, Any]) -> Figure:
    data = record["data"]
    fig, axes = _figure(width=6.5)
    ax = axes[0, 0]
    xs = [p["block_size"] for p in data["points"]]
    _band(ax, xs, [p["speedup"] for p in data["points"]], COLORS[data["challenger"]], "mean (band: min-max)")
    _speedup_axes(ax, data, f"context length T ({data['tokens_per_step']} tokens per step)")
    ax.set_xticks(xs)
    ax.set_title(f"Speedup vs context, {data['steps']} steps ({_subtitle(record)})")
    ax.legend(loc="best")
    return fig


def plot_normformer_recipe(record: dict[str, Any]) -> Figure:
    data = record["data"]
    fig, axes = _figure(1, 2, width=6.0)
    ax, ax_lr = axes[0]
    for key, f in data["final"].items():
        variant, init = key.split("/")
        curves = f["curves"]
        steps = [s for s, _ in curves[0]]
        mean = [sum(c[i][1] for c in curves) / len(curves) for i in range(len(steps))]
        lo = [min(c[i][1] for c in curves) for i in range(len(steps))]
        hi = [max(c[i][1] for c in curves) for i in range(len(steps))]
        (line,) = ax.plot(steps, mean, color=COLORS[variant], ls=INIT_STYLES.get(init, "-"),
                          label=f"{NAMES[variant]}, {init} init: {f['val']['mean']:.3f} ± {f['val']['std']:.3f}")
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("step")
    ax.set_ylabel("val loss (nats/char)")
    ax.set_ylim(top=min(3.4, ax.get_ylim()[1]))
    ax.set_title(f"At the preset LR ({_subtitle(record)}; mean ± std)")
    ax.legend(fontsize=8)
    for key, sw in data["sweep"].items():
        variant, init = key.split("/")
        ax_lr.plot(sw["lrs"], sw["val"], marker="o", color=COLORS[variant], ls=INIT_STYLES.get(init, "-"),
                   label=f"{NAMES[variant]}, {init}: best {data['best_lr'][key]:g}")
    ax_lr.set_xscale("log")
    _plain_ticks(ax_lr)
    ax_lr.set_xlabel("peak learning rate")
    ax_lr.set_ylabel(f"final val loss after {data['steps']} steps")
    ax_lr.set_title("LR sweep (first seed)")
    ax_lr.legend(fontsize=8)
    return fig


def plot_depth_law(record: dict[str, Any]) -> Figure:
    data = record["data"]
    fig, axes = _figure(1, 2, width=6.0)
    ax, ax_tr = axes[0]
    Ls = [g["n_layer"] for g in data["grad"]]
    _band(ax, Ls, [g["ratio"] for g in data["grad"]], COLORS["post_ln"], "post-LN / pre-LN, per init")
    ref = data["ratio_of_means"][0]
    ax.plot(Ls, [ref * (L / Ls[0]) ** 0.5 for L in Ls], color="gray", ls="--", label="slope 1/2 (Xiong et al. Thm 1)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _plain_ticks(ax)
    _plain_ticks(ax, "y")
    ax.set_xticks(Ls)
    ax.set_xlabel("depth L (blocks)")
    ax.set_ylabel("last block's FFN $W_2$ gradient ratio at init")
    ax.set_title(f"Gradient ratio at Xavier init: fitted slope {data['slope']:.2f}")
    ax.legend(loc="upper left")
    arms = {"post_ln, no warmup": ("post_ln", "-"), "pre_ln, no warmup": ("pre_ln", "-")}
    for label, pts in data["train"].items():
        variant, ls = arms.get(label, ("post_ln", "--"))
        _band(ax_tr, [p["n_layer"] for p in pts], [p["val"] for p in pts], COLORS[variant], label, ls)
    ax_tr.set_xscale("log", base=2)
    _plain_ticks(ax_tr)
    ax_tr.set_xticks(Ls)
    ax_tr.set_xlabel("depth L (blocks)")
    ax_tr.set_ylabel(f"final val loss after {data['steps']} steps")
    ax_tr.set_title(f"Training from Xavier init ({_subtitle(record)})")
    ax_tr.legend(fontsize=8)
    return fig


PLOTS = {"budget": plot_budget, "context": plot_context, "normformer_recipe": plot_normformer_recipe,
         "depth_law": plot_depth_law}


def plot_result(record: dict[str, Any]) -> Figure:
    """The figure of a record (`load_result` or {"name": ..., "data": scale_curves.run(...)})."""
    return PLOTS[record["name"]](record)
