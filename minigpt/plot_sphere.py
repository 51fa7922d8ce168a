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


def _draw_projection(ax, proj, result: HypersphereResult, title: str) -> None:  # noqa: ANN001
    """One model's tracked tokens in 3-D: the projected directions, not re-normalized, inside a unit sphere."""
    u, v = np.mgrid[0 : 2 * np.pi : 30j, 0 : np.pi : 16j]
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.88", lw=0.4)
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
    ax.set_xlim(-1, 1), ax.set_ylim(-1, 1), ax.set_zlim(-1, 1)
    ax.set_box_aspect((1, 1, 1))
    kept = proj.kept.numpy()
    ax.set_title(f"{title}\n3 principal directions keep {100 * proj.explained:.0f}% of the variance; "
                 f"a point's distance\nfrom the centre is the share of its direction they keep "
                 f"({kept.min():.2f}-{kept.max():.2f})", fontsize=9)


def plot_sphere_projection(result: HypersphereResult) -> Figure:
    """A few tokens' hidden states layer by layer (circle: the embedding, star: after the last block).

    Top: each state's direction h / ||h|| projected on the 3 principal directions of all of them, **not**
    re-normalized: the unit sphere is drawn, and a point lies on it only if the 3 directions describe that
    state fully (re-normalizing would put any model's states on the sphere). nGPT (LERP), and pre-LN beside
    it when the result has it (divided by its norm: a sphere cannot show a norm). Bottom: the norm ||h|| per
    layer on its own axis, and the angle each block turns each token (mean over the probe's positions, the
    band from the smallest to the largest)."""
    if result.projection is None:
        raise ValueError("this HypersphereResult has no projection (no nGPT LERP run)")
    shown = [k for k in ("ngpt-lerp", "pre_ln") if k in result.projections] or ["ngpt-lerp"]
    projections = {k: result.projections.get(k, result.projection) for k in shown}
    fig = Figure(figsize=(5.4 * len(shown) if len(shown) > 1 else 10.8, 9.4), layout="constrained")
    top = fig.add_gridspec(2, len(shown) if len(shown) > 1 else 2, height_ratios=(1.25, 1))
    titles = {"ngpt-lerp": "nGPT (LERP): h, norm 1 throughout", "pre_ln": "pre-LN: h / ||h|| (its norm: below)"}
    ax3 = None
    for j, (label, proj) in enumerate(projections.items()):
        ax3 = fig.add_subplot(top[0, j] if len(shown) > 1 else top[0, :], projection="3d")
        _draw_projection(ax3, proj, result, titles.get(label, _name(label)))
    if ax3 is not None:
        ax3.legend(title="token at position", fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax_n = fig.add_subplot(top[1, 0])
    ax_a = fig.add_subplot(top[1, 1])
    norm_vals: list[float] = []
    for label in result.labels:
        proj = result.projections.get(label)
        if proj is None or proj.norms is None:
            continue
        norms = proj.norms.numpy()  # (L + 1, n)
        layers = np.arange(norms.shape[0])
        ax_n.plot(layers, norms, color=_color(label), lw=1, alpha=0.6, ls=line_style(label))
        ax_n.plot([], [], color=_color(label), ls=line_style(label), label=_name(label))
        norm_vals += norms.ravel().tolist()
    _yscale(ax_n, norm_vals)
    ax_n.set_xticks(np.arange(projections[shown[0]].points.shape[0]))
    ax_n.set_xlabel("layer (0 = embedding)")
    ax_n.set_ylabel("||h|| of each tracked token")
    ax_n.set_title("the norm, which a sphere cannot show", fontsize=10)
    ax_n.grid(alpha=0.3, which="both")
    ax_n.legend(fontsize=8)
    for label, ang in result.step_angles.items():
        deg = np.degrees(np.asarray(ang))  # (L, T)
        blocks = np.arange(1, deg.shape[0] + 1)
        ax_a.plot(blocks, deg.mean(1), marker="o", color=_color(label), ls=line_style(label), label=_name(label))
        ax_a.fill_between(blocks, deg.min(1), deg.max(1), color=_color(label), alpha=0.12)
    ax_a.set_xticks(np.arange(1, len(next(iter(result.step_angles.values()), [])) + 1))
    ax_a.set_xlabel("block")
    ax_a.set_ylabel("angle the block turns h (degrees)")
    ax_a.set_title("how far each block moves a token: mean over positions, band min-max", fontsize=10)
    ax_a.grid(alpha=0.3)
    ax_a.legend(fontsize=8)
    n_layers = projections[shown[0]].points.shape[0] - 1
    fig.suptitle(f"Hidden states across {n_layers} layers (preset {result.preset}, {result.steps} steps)",
                 fontsize=11)
    return fig


def plot_lerp_vs_slerp(result: HypersphereResult) -> Figure:
    """LERP vs SLERP: train loss (smoothed) per step, val loss, and per layer the angle between the two
    updates computed from the same h next to the angle the update moves h. Drawn about as wide as a notebook
    shows it (10.5 in), so that the legends are read at their size."""
    fig, axes = _figure(1, 3, 3.5, 3.9)
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
        ax.legend(fontsize=9.5)
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
        ax.set_ylim(0, 1.15 * top)
    ax.set_xlabel("layer")
    ax.set_ylabel("mean angle (degrees)")
    ax.set_title("update size and LERP-SLERP gap", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    if g:  # below the figure, under its panel: four entries do not fit above the bars
        fig.legend(handles=ax.get_legend_handles_labels()[0], loc="outside lower right", ncol=4, fontsize=9.5,
                   frameon=False, handlelength=1.2)
    fig.suptitle(f"nGPT: LERP vs SLERP residual update, {result.steps} steps (preset {result.preset})",
                 fontsize=11)
    return fig
