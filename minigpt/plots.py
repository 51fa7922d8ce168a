"""Figures for the experiments (minigpt/experiments/): one function per figure, each takes the experiment's result
and returns a matplotlib `Figure`.

The figures are built on `matplotlib.figure.Figure` directly, not through pyplot: no global state, no
display needed, and importing minigpt never changes a notebook's backend. In Jupyter a returned figure
displays as the cell's value (`%matplotlib inline`); in a script, `fig.savefig("x.png")`.

    from minigpt import experiments as E, plots
    fig = plots.plot_grad_norms(E.grad_norms_vs_depth("cpu-tiny", steps=100))

The block schematics are in plot_blocks.py, the nGPT figures in plot_sphere.py and what all figures share
(colours and names from the registry, scales, smoothing) in plot_style.py; every figure is importable from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from .plot_blocks import plot_block, plot_blocks
from .plot_sphere import plot_hypersphere_stats, plot_lerp_vs_slerp, plot_ngpt_scalars, plot_sphere_projection
from .plot_style import WEIGHT_NAMES, _color, _ema, _figure, _name, _yscale

if TYPE_CHECKING:  # the result types of the experiments this module draws (it never runs them)
    from .experiments.depth import DepthResult
    from .experiments.lr_stability import LRStabilityResult
    from .experiments.modern_block import ModernBlockResult
    from .experiments.race import ContextPoint, RaceResult
    from .experiments.stability_bounds import StabilityBoundsResult
    from .experiments.warmup import WarmupResult

__all__ = [
    "plot_block",
    "plot_blocks",
    "plot_val_curves",
    "plot_grad_norms",
    "plot_grad_ratio_history",
    "plot_residual_norms",
    "plot_warmup",
    "plot_lr_stability",
    "plot_race",
    "plot_speedup_vs_context",
    "plot_hypersphere_stats",
    "plot_ngpt_scalars",
    "plot_sphere_projection",
    "plot_lerp_vs_slerp",
    "plot_modern_block",
    "plot_stability_bounds",
]

# ------------------------------------------------------------------------------------------ training


def plot_val_curves(results: dict[str, Any], title: str = "Validation loss") -> Figure:
    """Train loss (smoothed) and validation loss per step of a few `train.TrainResult`s, keyed by label."""
    fig, axes = _figure(1, 2, 5.0, 3.6)
    for label, r in results.items():
        axes[0, 0].plot(np.arange(1, len(r.losses) + 1), _ema(r.losses), color=_color(label), label=_name(label))
        if r.val:
            s, v = zip(*r.val, strict=True)
            axes[0, 1].plot(s, v, marker="o", ms=3, color=_color(label), label=_name(label))
    for ax, what in zip(axes[0], ("train loss (smoothed)", "validation loss"), strict=True):
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"{what} (nats / token)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


# ----------------------------------------------------------------------------------- gradients vs depth


def plot_grad_norms(result: DepthResult, weights: Sequence[str] = ("ffn_in", "ffn_out"),
                    relative: bool = False) -> Figure:
    """Gradient norm per layer, one line per variant: a column per weight matrix, a row for "at init" and
    one for "after training" (Xiong et al. 2020, Fig. 3). The rows of a column share one y scale, so a
    profile's change with training reads straight down. `relative=True` divides each line by its layer-1
    value to compare shapes rather than magnitudes."""
    whens = list(result.grads)
    fig, axes = _figure(len(whens), len(weights), 4.6, 3.4, sharey="col")
    for j, w in enumerate(weights):
        shown: list[float] = []
        for i, when in enumerate(whens):
            ax = axes[i, j]
            for v, g in result.grads[when].items():
                vals = np.asarray(g[w])
                if relative:
                    vals = vals / vals[0]
                shown += vals.tolist()
                ax.plot(np.arange(1, len(vals) + 1), vals, marker="o", color=_color(v), label=_name(v))
        _yscale(axes[0, j], shown)  # shared down the column
        for i, when in enumerate(whens):
            ax = axes[i, j]
            ax.set_xticks(np.arange(1, result.n_layer + 1))
            stage = "at init" if when == "init" else f"after {result.steps} steps"
            ax.set_title(f"{WEIGHT_NAMES.get(w, w)}, {stage}", fontsize=10)
            ax.set_xlabel("layer (1 = next to the embedding)")
            ax.set_ylabel("relative to layer 1" if relative else r"$\|\partial L/\partial W\|_F$")
            ax.grid(alpha=0.3, which="both")
    # beside the panels, not on them: inside a panel the legend covered a profile's points
    fig.legend(*axes[0, -1].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    init = "Xavier init (Xiong et al.)" if result.init == "xavier" else "each model's own init"
    if len(result.seeds) > 1:
        init += f", mean over {len(result.seeds)} inits"
    fig.suptitle(f"Gradient norm of each layer's weights, preset {result.preset}, {init}", fontsize=11)
    return fig


def plot_grad_ratio_history(result: DepthResult, weight: str = "ffn_out", variants: Sequence[str] | None = None
                            ) -> Figure:
    """Early/late gradient ratio (mean of the first half of the layers over the last half) of every training
    step's gradients, smoothed; 1 = balanced (NormFormer's motivation: pre-LN's is > 1)."""
    fig, axes = _figure(1, 1, 6.4, 3.8)
    ax = axes[0, 0]
    for v in variants or list(result.ratio_history):
        r = result.ratio_history[v][weight]
        ax.plot(np.arange(1, len(r) + 1), _ema(r), color=_color(v), label=_name(v))
    ax.axhline(1.0, color="0.5", ls=":", lw=1)
    _yscale(ax, [x for v in (variants or list(result.ratio_history))
                 for x in _ema(result.ratio_history[v][weight]).tolist()] + [1.0])
    ax.set_xlabel("training step")
    ax.set_ylabel("early / late gradient norm (smoothed)")
    ax.set_title(f"{WEIGHT_NAMES.get(weight, weight)}: first-half over last-half layers' gradient norm",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def plot_residual_norms(result: DepthResult) -> Figure:
    """Mean norm of the residual stream after each block, at init and after training (pre-LN grows with
    depth, post-LN is pinned at sqrt(d) by its norms, nGPT is exactly 1)."""
    whens = list(result.residual)
    fig, axes = _figure(1, len(whens), 4.8, 3.6)
    for j, when in enumerate(whens):
        ax = axes[0, j]
        for v, r in result.residual[when].items():
            ax.plot(np.arange(len(r)), r, marker="o", color=_color(v), label=_name(v))
        _yscale(ax, [x for r in result.residual[when].values() for x in r])
        ax.set_xticks(np.arange(result.n_layer + 1))
        ax.set_xlabel("position in the stream (0 = embedding, l = after block l)")
        ax.set_ylabel(r"mean $\|x\|_2$ per token")
        ax.set_title("at init" if when == "init" else f"after {result.steps} steps", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0, -1].legend(fontsize=8)
    fig.suptitle(f"Residual-stream norm vs depth, preset {result.preset}", fontsize=11)
    return fig


# ---------------------------------------------------------------------------------- warmup, LR stability


def plot_warmup(result: WarmupResult) -> Figure:
    """Train loss (smoothed) and val loss per step: solid with warmup, dashed without; a cross marks a
    diverged run's last step."""
    fig, axes = _figure(1, 2, 5.0, 3.8)
    for c in result.runs:
        ls = "-" if c.warmup_steps else "--"
        axes[0, 0].plot(np.arange(1, len(c.losses) + 1), _ema(c.losses), ls=ls, color=_color(c.variant),
                        label=c.label)
        if c.val:
            s, v = zip(*c.val, strict=True)
            axes[0, 1].plot(s, v, ls=ls, marker="o", ms=3, color=_color(c.variant), label=c.label)
        if c.diverged:
            axes[0, 0].plot(len(c.losses), _ema(c.losses)[-1], "x", ms=10, color=_color(c.variant))
    for ax, what in zip(axes[0], ("train loss (smoothed)", "validation loss"), strict=True):
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"{what} (nats / token)")
        ax.grid(alpha=0.3)
    axes[0, 0].axvline(result.warmup_steps, color="0.6", ls=":", lw=1)
    axes[0, 1].legend(fontsize=8)
    init = ", Xavier init" if result.init == "xavier" else ""
    fig.suptitle(f"Warmup ablation: peak LR {result.lr:.3g}, {result.warmup_steps} warmup steps vs none "
                 f"(preset {result.preset}{init})", fontsize=11)
    return fig


def plot_lr_stability(result: LRStabilityResult) -> Figure:
    """Train loss against the LR of its step (log scale), one line per variant; a dotted line marks each
    variant's LR at divergence, a grey dashed line the unigram loss (the loss of predicting token frequencies
    only): a run that did not "diverge" but ends on that line has not blown up, and has not learned either."""
    fig, axes = _figure(1, 1, 7.0, 4.2)
    ax = axes[0, 0]
    top = 0.0
    for v, r in result.runs.items():
        loss = np.asarray(r.losses)
        ax.plot(r.lrs, loss, color=_color(v), alpha=0.25, lw=0.8)
        label = _name(v) + (f", diverges at {r.diverged_lr:.2g}" if r.diverged_lr is not None else
                            f", no divergence up to {result.lr_end:.2g}")
        ax.plot(r.lrs, _ema(r.losses, 0.8), color=_color(v), label=label)
        if r.diverged_lr is not None:
            ax.axvline(r.diverged_lr, color=_color(v), ls=":", lw=1.2)
        finite = loss[np.isfinite(loss)]
        top = max(top, float(finite[0]) if finite.size else 0.0)
    if math.isfinite(result.unigram):
        ax.axhline(result.unigram, color="0.45", ls="--", lw=1.1,
                   label=f"unigram loss {result.unigram:.2f} (token frequencies only)")
    ax.set_xscale("log")
    ax.set_ylim(top=top * 1.15 if top else None)
    ax.set_xlabel("learning rate (multiplied by a constant every step)")
    ax.set_ylabel("train loss (nats / token)")
    ax.set_title(f"LR stability test: LR from {result.lr_start:.0e}, x{result.growth:.3f} per step "
                 f"(preset {result.preset})\ndotted: LR at divergence (smoothed loss {100 * result.rise:.0f}% "
                 f"above its minimum, or a blow-up);\n\"no divergence\": neither, up to LR {result.lr_end:.2g} "
                 f"(not: still learning; see the unigram line)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


# ----------------------------------------------------------------------------------------------- race


def plot_race(result: RaceResult) -> Figure:
    """Val loss against optimizer step and against training wall-clock, one line per variant; the title
    gives nGPT's steps-to-target speedup over pre-LN, and a cross on each of the two curves marks the step
    at which it reaches the target (the two numbers of the ratio). A race over several seeds draws each
    variant's mean with a band from its lowest to its highest seed (per step), and gives the per-seed
    speedups' range: whether the gap between two curves is more than seed noise is read off the bands."""
    fig, axes = _figure(1, 2, 5.0, 3.8)
    for label, r in result.runs.items():
        if not r.val:
            continue
        s, v = zip(*r.val, strict=True)
        axes[0, 0].plot(s, v, marker="o", ms=3, color=_color(label), label=_name(label))
        if len(r.per_seed) >= 2:
            _, lo, hi = zip(*r.band, strict=True)
            axes[0, 0].fill_between(s, lo, hi, color=_color(label), alpha=0.2, lw=0)
        t, v2 = zip(*r.wall, strict=True) if r.wall else ((), ())
        axes[0, 1].plot(t, v2, marker="o", ms=3, color=_color(label),
                        label=f"{_name(label)} ({r.ms_per_step:.0f} ms/step)")
    sp = result.speedup
    if sp is not None:
        for ax in axes[0]:
            ax.axhline(sp.target, color="0.5", ls=":", lw=1)
        axes[0, 0].annotate(f"target {sp.target:.3f}", (0.02, sp.target), xycoords=("axes fraction", "data"),
                            ha="left", va="bottom", fontsize=8, color="0.4")
        for label, at in ((sp.baseline, sp.baseline_steps), (sp.challenger, sp.challenger_steps)):
            if math.isfinite(at):
                axes[0, 0].plot([at], [sp.target], marker="X", ms=11, color=_color(label), mec="k", mew=0.8,
                                ls="none", zorder=5)
                axes[0, 0].axvline(at, color=_color(label), ls=":", lw=1)
                axes[0, 0].annotate(f"{at:.0f}", (at, 0.98), xycoords=("data", "axes fraction"), ha="center",
                                    va="top", fontsize=8, color=_color(label),
                                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
    axes[0, 0].set_xlabel("optimizer step")
    axes[0, 1].set_xlabel("training wall-clock (s, evaluation excluded)")
    for ax in axes[0]:
        ax.set_ylabel("validation loss (nats / token)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    title = f"Race: {result.steps} steps, T={result.block_size}, batch {result.batch_size} (preset {result.preset})"
    if result.seeds > 1:
        title += f"; mean of {result.seeds} seeds, bands: lowest to highest seed"
    if sp is not None:
        title += (f"\nsteps-to-target speedup of {_name(sp.challenger)} over {_name(sp.baseline)}: "
                  f"{sp.baseline_steps:.0f} / {sp.challenger_steps:.0f} steps = {sp.factor:.2f}x")
        rng = result.speedup_range
        if rng is not None:
            title += f" (per seed {rng[0]:.2f}x to {rng[1]:.2f}x)"
    fig.suptitle(title, fontsize=10)
    return fig


def plot_speedup_vs_context(points: Sequence[ContextPoint]) -> Figure:
    """Steps-to-target speedup of nGPT over pre-LN at each context length (1 = no speedup)."""
    fig, axes = _figure(1, 1, 5.5, 3.8)
    ax = axes[0, 0]
    xs = [p.block_size for p in points if p.speedup is not None]
    ys = [p.speedup.factor for p in points if p.speedup is not None]
    ax.plot(xs, ys, marker="o", color=_color("ngpt"))
    for x, y in zip(xs, ys, strict=True):
        ax.annotate(f"{y:.2f}x", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.axhline(1.0, color="0.5", ls=":", lw=1)
    ax.set_ylim(0, max([1.2, *ys]) * 1.15)
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("context length T (tokens; tokens per step held fixed)")
    ax.set_ylabel("speedup (pre-LN steps / nGPT steps)")
    ax.set_title("nGPT's steps-to-target speedup over pre-LN vs context length", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------- modern block


def plot_modern_block(result: ModernBlockResult) -> Figure:
    """Two panels of horizontal bars, one per ablation: validation cross-entropy relative to the baseline
    (z-loss excluded) and ms per training step; the norm-time share in the title."""
    rows = result.rows
    base = rows[0]
    fig, axes = _figure(1, 2, 5.0, 0.45 * len(rows) + 1.6)
    y = np.arange(len(rows))[::-1]
    delta = [r.val_ce - base.val_ce for r in rows]
    axes[0, 0].barh(y, delta, color=["0.6" if d == 0 else ("tab:green" if d < 0 else "tab:red") for d in delta])
    axes[0, 0].axvline(0, color="0.3", lw=0.8)
    seeds = [abs(d) for r, d in zip(rows, delta, strict=True) if set(r.overrides) == {"seed"}]
    if seeds:  # a rerun of the baseline with another seed: differences inside this band are noise
        axes[0, 0].axvspan(-max(seeds), max(seeds), color="0.85", zorder=0, label="seed-to-seed difference")
        axes[0, 0].legend(fontsize=8, loc="lower right")
    axes[0, 0].set_xlabel(f"validation CE − baseline ({base.val_ce:.3f}) (nats / token; < 0 is better)")
    axes[0, 1].barh(y, [r.ms_per_step for r in rows], color="tab:blue")
    axes[0, 1].set_xlabel("ms per training step")
    for ax in axes[0]:
        ax.set_yticks(y, [r.label for r in rows])
        ax.grid(alpha=0.3, axis="x")
    title = f"Block ingredients, {result.variant} (preset {result.preset}, {result.steps} steps)"
    if result.norm_share:
        shares = ", ".join(f"{k}: {100 * v:.0f}%" for k, v in result.norm_share.items())
        title += f"\nshare of forward + backward time inside the norms: {shares}"
    fig.suptitle(title, fontsize=10)
    return fig


def plot_stability_bounds(result: StabilityBoundsResult) -> Figure:
    """The LR ramp of each ingredient: the train loss (smoothed; the unigram loss dashed), and what each
    ingredient bounds, measured along the ramp: the largest |attention logit| (QK-norm), the largest |output
    logit| (soft-cap) and the mean log Z (z-loss), all against the LR of the step (log scale)."""
    fig, axes = _figure(2, 2, 5.2, 3.5, sharex=True)
    panels = (("loss", "train loss (nats / token), smoothed"), ("max_attn_logit", "max |attention logit|"),
              ("max_logit", "max |output logit|"), ("mean_log_z", "mean log Z (z-loss pulls it to 0)"))
    colors = dict(zip(result.runs, ("0.2", "0.6", "tab:blue", "tab:green", "tab:purple", "tab:red",
                                    "tab:orange", "tab:brown"), strict=False))
    for ax, (key, ylabel) in zip(axes.ravel(), panels, strict=True):
        shown: list[float] = []
        for label, r in result.runs.items():
            ls = "--" if set(r.overrides) == {"seed"} else "-"
            if key == "loss":
                xs, ys = r.sweep.lrs, _ema(r.sweep.losses, 0.8)
            else:
                xs, ys = r.lrs, np.asarray(r.measured[key])
            div = result.divergence_lr(label)
            tag = f" (diverges at {div:.2g})" if key == "loss" and math.isfinite(div) else ""
            if key == "loss" and r.overrides.get("z_loss"):
                tag += ", CE + z-loss term"
            ax.plot(xs, ys, color=colors.get(label), ls=ls, lw=1.4, label=label + tag)
            shown += [abs(v) for v in ys]
        if key == "loss" and math.isfinite(result.unigram):
            ax.axhline(result.unigram, color="0.45", ls=":", lw=1.1, label=f"unigram loss {result.unigram:.2f}")
        if key in ("max_attn_logit", "max_logit"):
            _yscale(ax, shown)
        ax.set_xscale("log")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    for ax in axes[1]:
        ax.set_xlabel("learning rate (multiplied by a constant every step)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"What each ingredient bounds along the LR ramp (pre-LN, preset {result.preset}, "
                 f"{result.steps} steps)", fontsize=10)
    return fig
