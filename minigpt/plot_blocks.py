"""Schematics of one block of each variant, drawn from the schematic each variant registers (variants.py).
Re-exported by plots.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch

from .registry import SCHEMATICS


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
    toward the branch's unit output. Default: every registered variant with a schematic.

    At most two per row, each row as tall as its tallest block: a notebook shows a figure about 9-10 inches
    wide at full size, so four in a row would be shrunk to half (unreadable titles, half-empty short panels)."""
    variants = list(SCHEMATICS) if variants is None else list(variants)
    ncols = min(len(variants), 2)
    rows = [variants[i:i + ncols] for i in range(0, len(variants), ncols)]
    fig = Figure(figsize=(4.6 * ncols, 7.0 * len(rows)), layout="constrained")
    # draw once to learn each row's height, then size the rows to it (equal aspect: x and y in the same units)
    probe = Figure()
    heights = [max(_draw_block(probe.add_subplot(), v) for v in row) + 2.0 for row in rows]
    axes = fig.subplots(len(rows), ncols, squeeze=False, gridspec_kw=dict(height_ratios=heights))
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            if c >= len(row):  # an odd count: no empty panel
                fig.delaxes(ax)
                continue
            _draw_block(ax, row[c])
            ax.set_xlim(-1.6, 3.6)
            ax.set_ylim(-0.8, heights[r] - 0.8)
            ax.set_aspect("equal")
    fig.set_size_inches(4.6 * ncols, 0.6 * len(rows) + 4.6 * sum(heights) / 5.2)
    return fig


def plot_block(variant: str) -> Figure:
    """The schematic of one block (see plot_blocks)."""
    return plot_blocks([variant])
