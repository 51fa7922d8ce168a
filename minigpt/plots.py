"""Figures for the experiments in experiments.py: one function per figure, each takes the experiment's result
and returns a matplotlib `Figure`.

The figures are built on `matplotlib.figure.Figure` directly, not through pyplot: no global state, no
display needed, and importing minigpt never changes a notebook's backend. In Jupyter a returned figure
displays as the cell's value (`%matplotlib inline`); in a script, `fig.savefig("x.png")`.

    from minigpt import experiments as E, plots
    fig = plots.plot_grad_norms(E.grad_norms_vs_depth("cpu-tiny", steps=100))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch
from matplotlib.ticker import FuncFormatter, NullFormatter

from .registry import SCHEMATICS, color, display_name, line_style

if TYPE_CHECKING:  # the result types of the experiments this module draws (it never runs them)
    from .experiments.depth import DepthResult
    from .experiments.hypersphere import HypersphereResult
    from .experiments.lr_stability import LRStabilityResult
    from .experiments.modern_block import ModernBlockResult
    from .experiments.race import ContextPoint, RaceResult
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
]

# Colours and display names: one per variant / run label, the same in every figure (registry.STYLES).
WEIGHT_NAMES = {"attn_qkv": "attention $W_{qkv}$", "attn_out": "attention $W_o$", "ffn_in": "FFN $W_1$",
                "ffn_out": "FFN $W_2$"}


def _figure(nrows: int = 1, ncols: int = 1, width: float = 6.0, height: float = 4.0, **kw: Any
            ) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


_name = display_name
_color = color


def _yscale(ax: Any, values: Sequence[float]) -> None:
    """Log scale when the values span more than a factor of 20 (gradients, pre-LN's stream), else linear;
    plain numbers on the ticks either way."""
    vals = [v for v in values if math.isfinite(v) and v > 0]
    if vals and max(vals) / min(vals) > 20:
        ax.set_yscale("log")
    else:
        ax.set_yscale("linear")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _ema(xs: Sequence[float], beta: float = 0.9) -> np.ndarray:
    """Bias-corrected exponential moving average for noisy per-step losses (NaNs are carried over)."""
    out, avg, n = [], 0.0, 0
    for x in xs:
        if math.isfinite(x):
            n += 1
            avg = beta * avg + (1 - beta) * x
        out.append(avg / (1 - beta**n) if n else float("nan"))
    return np.asarray(out)


# ------------------------------------------------------------------------------------------- the blocks

def _draw_block(ax: Any, variant: str) -> float:
    """Draw one block of `variant` on `ax` (data coordinates, x in [-1.6, 3.6]); returns the top y used."""
    if variant not in SCHEMATICS:
        raise ValueError(f"variant={variant!r} is not valid; choose one of {', '.join(SCHEMATICS)}")
    spec = SCHEMATICS[variant]  # registered with the variant (variants.py)
    stream = spec.get("stream", "x")
    ax.set_axis_off()
    stream_x, branch_x, box_w, box_h, gap = 0.0, 2.2, 2.0, 0.55, 0.35
    y = 0.0

    def box(x: float, yc: float, text: str) -> None:
        is_norm = text.split()[0] in ("N", "Norm")
        face = "#fde9c8" if is_norm else "#dbe9f6"
        ax.add_patch(FancyBboxPatch((x - box_w / 2, yc - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0.04", fc=face, ec="0.3", lw=1.0))
        ax.text(x, yc, text, ha="center", va="center", fontsize=9)

    def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", lw=1.1, color="0.25"))

    ax.text(stream_x, y - 0.35, f"${stream}_l$", ha="center", va="top", fontsize=11)
    for branch, merge, after in spec["subs"]:
        split = y + 0.25
        by = split + gap + box_h / 2
        arrow(stream_x, split, branch_x, split)
        ax.plot([stream_x, stream_x], [y, split], color="0.25", lw=1.1)
        prev_top = split
        for op in branch:
            arrow(branch_x, prev_top, branch_x, by - box_h / 2)
            box(branch_x, by, op)
            prev_top = by + box_h / 2
            by += box_h + gap
        merge_y = by
        ax.plot([branch_x, branch_x], [prev_top, merge_y], color="0.25", lw=1.1)
        arrow(branch_x, merge_y, stream_x + 0.22, merge_y)
        arrow(stream_x, split, stream_x, merge_y - 0.22)
        ax.add_patch(Circle((stream_x, merge_y), 0.2, fc="white", ec="0.25"))
        ax.text(stream_x, merge_y, merge, ha="center", va="center", fontsize=11)
        y = merge_y + 0.2
        for op in after:
            arrow(stream_x, y, stream_x, y + gap)
            box(stream_x, y + gap + box_h / 2, op)
            y += gap + box_h
    arrow(stream_x, y, stream_x, y + 0.45)
    ax.text(stream_x, y + 0.5, f"${stream}_{{l+1}}$", ha="center", va="bottom",
            fontsize=11)
    if spec["final"]:
        ax.text(stream_x + 0.9, y + 0.6, f"after the last block:\n{spec['final']}", fontsize=8, color="0.35")
    ax.text(stream_x - 0.45, 0.6, "residual stream", rotation=90, fontsize=8, color="0.4", va="bottom")
    ax.set_title(spec["title"], fontsize=9)
    return y


def plot_blocks(variants: Sequence[str] | None = None) -> Figure:
    """Schematics of one block of each variant, side by side: the residual stream runs up the left, each
    sublayer's branch up the right, norms are shaded orange. nGPT's merge "α" is the LERP (or SLERP) step
    toward the branch's unit output. Default: every registered variant with a schematic."""
    variants = list(SCHEMATICS) if variants is None else list(variants)
    fig = Figure(figsize=(4.6 * len(variants), 7.0), layout="constrained")
    axes = fig.subplots(1, len(variants), squeeze=False)[0]
    tops = [_draw_block(ax, v) for ax, v in zip(axes, variants, strict=True)]
    height = max(tops) + 2.0
    for ax in axes:
        ax.set_xlim(-1.6, 3.6)
        ax.set_ylim(-0.8, height - 0.8)
        ax.set_aspect("equal")
    fig.set_size_inches(4.6 * len(variants), 0.6 + 4.6 * height / 5.2)
    return fig


def plot_block(variant: str) -> Figure:
    """The schematic of one block (see plot_blocks)."""
    return plot_blocks([variant])


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
    one for "after training" (Xiong et al. 2020, Fig. 3). `relative=True` divides each line by its layer-1
    value to compare shapes rather than magnitudes."""
    whens = list(result.grads)
    fig, axes = _figure(len(whens), len(weights), 4.6, 3.4)
    for i, when in enumerate(whens):
        for j, w in enumerate(weights):
            ax = axes[i, j]
            shown: list[float] = []
            for v, g in result.grads[when].items():
                vals = np.asarray(g[w])
                if relative:
                    vals = vals / vals[0]
                shown += vals.tolist()
                ax.plot(np.arange(1, len(vals) + 1), vals, marker="o", color=_color(v), label=_name(v))
            _yscale(ax, shown)
            ax.set_xticks(np.arange(1, result.n_layer + 1))
            stage = "at init" if when == "init" else f"after {result.steps} steps"
            ax.set_title(f"{WEIGHT_NAMES.get(w, w)}, {stage}", fontsize=10)
            ax.set_xlabel("layer (1 = next to the embedding)")
            ax.set_ylabel("relative to layer 1" if relative else r"$\|\partial L/\partial W\|_F$")
            ax.grid(alpha=0.3, which="both")
    axes[0, -1].legend(fontsize=8)
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
    variant's LR at divergence."""
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
    ax.set_xscale("log")
    ax.set_ylim(top=top * 1.15 if top else None)
    ax.set_xlabel("learning rate (multiplied by a constant every step)")
    ax.set_ylabel("train loss (nats / token)")
    ax.set_title(f"LR stability test: LR from {result.lr_start:.0e}, x{result.growth:.3f} per step "
                 f"(preset {result.preset})\ndotted: LR at divergence (smoothed loss {100 * result.rise:.0f}% "
                 f"above its minimum, or a blow-up)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


# ----------------------------------------------------------------------------------------------- race


def plot_race(result: RaceResult) -> Figure:
    """Val loss against optimizer step and against training wall-clock, one line per variant; the title
    gives nGPT's steps-to-target speedup over pre-LN."""
    fig, axes = _figure(1, 2, 5.0, 3.8)
    for label, r in result.runs.items():
        if not r.val:
            continue
        s, v = zip(*r.val, strict=True)
        axes[0, 0].plot(s, v, marker="o", ms=3, color=_color(label), label=_name(label))
        t, v2 = zip(*r.wall, strict=True) if r.wall else ((), ())
        axes[0, 1].plot(t, v2, marker="o", ms=3, color=_color(label),
                        label=f"{_name(label)} ({r.ms_per_step:.0f} ms/step)")
    sp = result.speedup
    if sp is not None:
        for ax in axes[0]:
            ax.axhline(sp.target, color="0.5", ls=":", lw=1)
        axes[0, 0].annotate(f"target {sp.target:.3f}", (0.98, sp.target), xycoords=("axes fraction", "data"),
                            ha="right", va="bottom", fontsize=8, color="0.4")
    axes[0, 0].set_xlabel("optimizer step")
    axes[0, 1].set_xlabel("training wall-clock (s, evaluation excluded)")
    for ax in axes[0]:
        ax.set_ylabel("validation loss (nats / token)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    title = f"Race: {result.steps} steps, T={result.block_size}, batch {result.batch_size} (preset {result.preset})"
    if sp is not None:
        title += (f"\nsteps-to-target speedup of {_name(sp.challenger)} over {_name(sp.baseline)}: "
                  f"{sp.baseline_steps:.0f} / {sp.challenger_steps:.0f} steps = {sp.factor:.2f}x")
    fig.suptitle(title, fontsize=10)
    return fig


def plot_speedup_vs_context(points: Sequence[ContextPoint]) -> Figure:
    """Steps-to-target speedup of nGPT over pre-LN at each context length (1 = no speedup)."""
    fig, axes = _figure(1, 1, 5.5, 3.8)
    ax = axes[0, 0]
    xs = [p.block_size for p in points if p.speedup is not None]
    ys = [p.speedup.factor for p in points if p.speedup is not None]
    ax.plot(xs, ys, marker="o", color=color("ngpt"))
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


# ---------------------------------------------------------------------------------------- hypersphere


def plot_hypersphere_stats(result: HypersphereResult) -> Figure:
    """Four panels: embedding-norm histogram, pairwise-cosine histogram of the embeddings, hidden-state norm
    per layer, and the attention matrices' condition numbers per layer (mean over heads)."""
    fig, axes = _figure(2, 2, 4.8, 3.4)
    labels = result.labels
    ax = axes[0, 0]
    top = max(max(result.embedding_norms[k]) for k in labels)
    bins = np.linspace(0.0, 1.05 * top, 60)  # shared bins: nGPT's norms all sit in the bin at 1
    for k in labels:
        ax.hist(result.embedding_norms[k], bins=bins, alpha=0.6, color=_color(k), label=_name(k))
    ax.set_xlabel("norm of an input-embedding row")
    ax.set_ylabel("tokens")
    ax.set_title("embedding norms", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    for k in labels:
        ax.hist(np.asarray(result.cosines[k]), bins=50, alpha=0.5, density=True, color=_color(k),
                label=f"{_name(k)} (cond {result.embedding_cond[k]:.3g})")
    ax.set_xlabel("cosine similarity of two embedding rows")
    ax.set_ylabel("density")
    ax.set_title("pairwise cosines (cond = embedding-covariance condition number)", fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    for k in labels:
        ax.plot(np.arange(len(result.hidden_norms[k])), result.hidden_norms[k], marker="o", color=_color(k),
                ls=line_style(k), label=_name(k))
    _yscale(ax, [x for k in labels for x in result.hidden_norms[k]])
    ax.set_xticks(np.arange(len(result.hidden_norms[labels[0]])))
    ax.set_xlabel("position in the stream (0 = embedding)")
    ax.set_ylabel(r"mean $\|h\|_2$")
    ax.set_title("hidden-state norm per layer", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    for k in labels:
        cond = np.asarray(result.attention_cond[k])
        ax.plot(np.arange(1, cond.shape[0] + 1), cond.mean(axis=1), marker="o", color=_color(k), label=_name(k))
    _yscale(ax, [float(np.mean(r)) for k in labels for r in result.attention_cond[k]])
    ax.set_xticks(np.arange(1, len(result.attention_cond[labels[0]]) + 1))
    ax.set_xlabel("layer")
    ax.set_ylabel(r"condition number of $W_q W_k^T$")
    ax.set_title("attention matrices' conditioning (mean over heads)", fontsize=10)
    ax.legend(fontsize=8)
    for a in axes.flat:
        a.grid(alpha=0.3)
    fig.suptitle(f"Geometry after {result.steps} steps (preset {result.preset})", fontsize=11)
    return fig


def plot_ngpt_scalars(result: HypersphereResult) -> Figure:
    """The learned nGPT scales per layer (mean |value| over their dimensions): the eigen learning rates
    α_A, α_M and the scalings s_qk, s_u, s_ν; s_z in the title."""
    fig, axes = _figure(1, 2, 4.8, 3.6)
    names = {"alpha_attn": r"$\alpha_A$", "alpha_mlp": r"$\alpha_M$", "s_qk": r"$s_{qk}$", "s_u": r"$s_u$",
             "s_nu": r"$s_\nu$"}
    for j, keys in enumerate((("alpha_attn", "alpha_mlp"), ("s_qk", "s_u", "s_nu"))):
        ax = axes[0, j]
        for k in keys:
            vals = result.scalars[k]
            ax.plot(np.arange(1, len(vals) + 1), vals, marker="o", label=names[k])
        ax.axhline(0.05 if j == 0 else 1.0, color="0.5", ls=":", lw=1, label="init")
        ax.set_xticks(np.arange(1, len(result.scalars[keys[0]]) + 1))
        ax.set_xlabel("layer")
        ax.set_ylabel("mean |value| over dimensions")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0, 0].set_title("eigen learning rates (init 0.05)", fontsize=10)
    axes[0, 1].set_title("scaling factors (init 1)", fontsize=10)
    s_z = result.scalars.get("s_z", [float("nan")])[0]
    fig.suptitle(f"nGPT's learned scales after {result.steps} steps; mean |s_z| = {s_z:.3g}", fontsize=11)
    return fig


def plot_sphere_projection(result: HypersphereResult) -> Figure:
    """A few tokens' hidden states layer by layer, projected on their 3 principal directions and drawn on
    the unit sphere: each path starts at the token embedding (circle) and ends after the last block (star)."""
    proj = result.projection
    if proj is None:
        raise ValueError("this HypersphereResult has no projection (no nGPT LERP run)")
    fig = Figure(figsize=(6.4, 6.0), layout="constrained")
    ax = fig.add_subplot(1, 1, 1, projection="3d")
    u, v = np.mgrid[0 : 2 * np.pi : 30j, 0 : np.pi : 16j]
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", lw=0.4)
    pts = proj.points.numpy()  # (L + 1, n, 3)
    for i in range(pts.shape[1]):
        path = pts[:, i]
        tok = repr(result.projection_tokens[i]) if i < len(result.projection_tokens) else str(i)
        if i < len(result.projection_positions):
            tok += f" at {result.projection_positions[i]}"
        line = ax.plot(path[:, 0], path[:, 1], path[:, 2], marker=".", lw=1.6, label=tok)[0]
        ax.scatter(*path[0], marker="o", s=40, color=line.get_color())
        ax.scatter(*path[-1], marker="*", s=90, color=line.get_color())
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_zlabel("PC 3")
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_ticks([-1.0, 0.0, 1.0])
    ax.set_box_aspect((1, 1, 1))
    ax.legend(title="token at position", fontsize=8, loc="upper left")
    ax.set_title(f"nGPT hidden states moving across {pts.shape[0] - 1} layers on the sphere\n(3 principal "
                 f"directions keep {100 * proj.explained:.0f}% of the variance; o embedding, * last block)",
                 fontsize=10)
    return fig


def plot_lerp_vs_slerp(result: HypersphereResult) -> Figure:
    """LERP vs SLERP: train loss (smoothed) per step, val loss, and per layer the angle between the two
    updates computed from the same h next to the angle the update moves h."""
    fig, axes = _figure(1, 3, 4.4, 3.6)
    for k in ("ngpt-lerp", "ngpt-slerp"):
        if k not in result.losses:
            continue
        ms = result.ms_per_step.get(k, float("nan"))
        axes[0, 0].plot(np.arange(1, len(result.losses[k]) + 1), _ema(result.losses[k]), color=_color(k),
                        label=f"{_name(k)}, {ms:.0f} ms/step")
        if result.val.get(k):
            s, v = zip(*result.val[k], strict=True)
            axes[0, 1].plot(s, v, marker="o", ms=3, color=_color(k), label=_name(k))
    axes[0, 0].set_ylabel("train loss, smoothed (nats / token)")
    axes[0, 1].set_ylabel("validation loss (nats / token)")
    for ax in axes[0, :2]:
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[0, 2]
    g = result.gap
    if g:
        layers = np.arange(1, len(g["attn_gap"]) + 1)
        w = 0.2
        deg = 180 / math.pi
        ax.bar(layers - 1.5 * w, np.asarray(g["attn_step"]) * deg, w, label="attn: step of h", color="tab:blue")
        ax.bar(layers - 0.5 * w, np.asarray(g["attn_gap"]) * deg, w, label="attn: LERP vs SLERP",
               color="tab:cyan")
        ax.bar(layers + 0.5 * w, np.asarray(g["mlp_step"]) * deg, w, label="MLP: step of h", color="tab:green")
        ax.bar(layers + 1.5 * w, np.asarray(g["mlp_gap"]) * deg, w, label="MLP: LERP vs SLERP",
               color="tab:olive")
        ax.set_xticks(layers)
        top = max(max(g["attn_step"]), max(g["mlp_step"])) * deg
        ax.set_ylim(0, 1.6 * top)  # room for the legend above the bars
    ax.set_xlabel("layer")
    ax.set_ylabel("mean angle (degrees)")
    ax.set_title("update size and LERP-SLERP gap", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, ncol=2, loc="upper center")
    fig.suptitle(f"nGPT: LERP vs SLERP residual update, {result.steps} steps (preset {result.preset})",
                 fontsize=11)
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
