"""The nGPT figures of notebook 03: hidden-state and embedding geometry, the learned scales, a 3-D projection of
hidden states moving on the sphere, and LERP vs SLERP. Re-exported by plots.py."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from .registry import line_style

if TYPE_CHECKING:
    from .experiments.hypersphere import HypersphereResult

from .plot_style import _color, _ema, _figure, _name, _yscale


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
