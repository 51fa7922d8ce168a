"""What every figure shares: figure construction, one colour and display name per label (from the registry),
y scales, smoothing, and the names of a block's four weight matrices."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from .registry import color, display_name

# Display names of the four weight matrices of a block (the keys of diagnostics.WEIGHTS)
WEIGHT_NAMES = {"attn_qkv": "attention $W_{qkv}$", "attn_out": "attention $W_o$", "ffn_in": "FFN $W_1$",
                "ffn_out": "FFN $W_2$"}


def _figure(nrows: int = 1, ncols: int = 1, width: float = 6.0, height: float = 4.0, **kw: Any
            ) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


_name = display_name
# Colours no registered variant uses, for labels the registry does not know (a learner's own block in notebook 00)
EXTRA_COLORS = ("black", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
_extra_colors: dict[str, str] = {}


def _color(label: str) -> str:
    """The registry's colour of a label. A label it does not know gets one of EXTRA_COLORS, the same one every
    time it is drawn: left to matplotlib's cycle it would start at blue again, pre-LN's colour."""
    known = color(label)
    if known is not None:
        return known
    return _extra_colors.setdefault(label, EXTRA_COLORS[len(_extra_colors) % len(EXTRA_COLORS)])


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
