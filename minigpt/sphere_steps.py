"""LERP and SLERP drawn on a sphere: one nGPT update step, and a few in a row, with α and θ as sliders.

An nGPT block moves its hidden state h toward a unit target b (the normalized sublayer output). LERP takes the
point h + α(b − h) on the chord and normalizes it back onto the sphere; SLERP walks the great circle by exactly
αθ, θ = ∠(h, b). Both land on the same arc; LERP turns h by atan2(α sin θ, 1 − α + α cos θ) ≤ αθ. The picture
computes every point with `minigpt.ngpt.lerp_update` and `minigpt.ngpt.slerp`, the functions the model runs.

    from minigpt.sphere_steps import plot_steps, steps_widget
    plot_steps(alpha=0.3, theta_deg=120)      # a Figure
    steps_widget()                            # in Jupyter: sliders for alpha, theta and the number of steps
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from .ngpt import lerp_update, slerp

LERP_COLOR, SLERP_COLOR = "tab:orange", "tab:purple"  # nGPT (LERP) / nGPT (SLERP), as in the other figures


@dataclass
class Steps:
    """The points of `n_steps` updates of h toward a fixed target b, by LERP and by SLERP (rows: steps 0..n)."""

    alpha: float
    theta: float  # radians, the angle between h and b
    h: np.ndarray  # (3,)
    b: np.ndarray  # (3,)
    chord: np.ndarray  # (3,) h + α(b − h): LERP's first point before normalizing (inside the ball)
    lerp: np.ndarray  # (n_steps + 1, 3)
    slerp: np.ndarray  # (n_steps + 1, 3)

    def turned(self, which: str, step: int = 1) -> float:
        """Degrees the first `step` updates turned h, by "lerp" or "slerp"."""
        p = self.lerp[step] if which == "lerp" else self.slerp[step]
        return math.degrees(math.atan2(float(np.linalg.norm(np.cross(self.h, p))), float(np.dot(self.h, p))))


def steps(alpha: float, theta_deg: float, n_steps: int = 1) -> Steps:
    """h = (1, 0, 0) and b at `theta_deg` from it in the x-y plane; apply each update `n_steps` times."""
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha={alpha} must be in (0, 1]")
    if not 0.0 < theta_deg < 180.0:
        raise ValueError(f"theta_deg={theta_deg} must be in (0, 180) degrees")
    if n_steps < 1:
        raise ValueError(f"n_steps={n_steps} must be >= 1")
    th = math.radians(theta_deg)
    h = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    b = torch.tensor([math.cos(th), math.sin(th), 0.0], dtype=torch.float64)
    a = torch.tensor(alpha, dtype=torch.float64)
    path_l, path_s = [h], [h]
    for _ in range(n_steps):
        path_l.append(lerp_update(path_l[-1], b, a))
        path_s.append(slerp(path_s[-1], b, alpha).to(torch.float64))
    return Steps(
        alpha,
        th,
        h.numpy(),
        b.numpy(),
        (h + a * (b - h)).numpy(),
        torch.stack(path_l).numpy(),
        torch.stack(path_s).numpy(),
    )


def _arc(u: np.ndarray, v: np.ndarray, n: int = 64) -> np.ndarray:
    """Points of the shorter great-circle arc from unit u to unit v."""
    ang = math.acos(max(-1.0, min(1.0, float(np.dot(u, v)))))
    if ang < 1e-9:
        return np.stack([u, v])
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (np.sin((1 - t) * ang) * u + np.sin(t * ang) * v) / math.sin(ang)


def _along(path: np.ndarray) -> np.ndarray:
    """A path of points on one great circle, drawn along the circle between consecutive points."""
    return np.concatenate([_arc(p, q, 16) for p, q in zip(path[:-1], path[1:], strict=True)])


def plot_steps(alpha: float = 0.3, theta_deg: float = 120.0, n_steps: int = 1) -> Figure:
    """Left, on the unit sphere: h, the target b, the chord from h to b with LERP's point on it, the ray
    that normalizes it, and LERP's and SLERP's points after `n_steps` updates. Right, the same great circle
    seen flat, with the angle each update has turned h."""
    s = steps(alpha, theta_deg, n_steps)
    fig = Figure(figsize=(10.5, 4.6), layout="constrained")
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    u, v = np.mgrid[0 : 2 * np.pi : 28j, 0 : np.pi : 15j]
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", lw=0.4)
    ax.plot(*_arc(s.h, s.b).T, color="0.4", lw=1.2, label="great circle h → b")
    ax.plot(*np.stack([s.h, s.b]).T, color="0.4", ls=":", lw=1.2, label="chord h → b")
    ax.plot(*np.stack([np.zeros(3), s.lerp[1]]).T, color=LERP_COLOR, ls="--", lw=0.9)
    ax.scatter(*s.chord, color=LERP_COLOR, marker="x", s=40, label="h + α(b − h), on the chord")
    for path, color, marker, ls, name in (
        (s.lerp, LERP_COLOR, "o", "-", "LERP"),
        (s.slerp, SLERP_COLOR, "s", "--", "SLERP"),
    ):
        ax.plot(*_along(path).T, color=color, lw=1.8, ls=ls)
        ax.plot(*path[1:].T, color=color, marker=marker, ms=4, ls="none", label=f"{name}, {n_steps} step(s)")
    for p, name in ((s.h, "h"), (s.b, "b")):
        ax.scatter(*p, color="k", s=30)
        ax.text(*(1.12 * p), name, fontsize=11)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlim(-1, 1), ax.set_ylim(-1, 1), ax.set_zlim(-1, 1)
    ax.view_init(elev=28, azim=-60)
    ax.set_axis_off()
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(
        f"α = {alpha:.2f}, θ = {theta_deg:.0f}°: one step turns h by\n"
        f"LERP {s.turned('lerp'):.1f}°, SLERP {s.turned('slerp'):.1f}° (= αθ)",
        fontsize=10,
    )

    ax2 = fig.add_subplot(1, 2, 2)
    t = np.linspace(0, 2 * np.pi, 200)
    ax2.plot(np.cos(t), np.sin(t), color="0.85", lw=1)
    ax2.plot([s.h[0], s.b[0]], [s.h[1], s.b[1]], color="0.4", ls=":", lw=1.2)
    ax2.plot([0, s.lerp[1][0]], [0, s.lerp[1][1]], color=LERP_COLOR, ls="--", lw=0.9)
    ax2.plot(s.chord[0], s.chord[1], color=LERP_COLOR, marker="x", ms=8)
    for path, color, marker, ls, name in (
        (s.lerp, LERP_COLOR, "o", "-", "LERP"),
        (s.slerp, SLERP_COLOR, "s", "--", "SLERP"),
    ):
        arc = _along(path)
        ax2.plot(arc[:, 0], arc[:, 1], color=color, lw=1.8, ls=ls)
        ax2.plot(path[1:, 0], path[1:, 1], color=color, marker=marker, ms=5, ls="none", label=name)
    for p, name in ((s.h, "h"), (s.b, "b")):
        ax2.plot(*p[:2], "ko", ms=5)
        ax2.annotate(name, 1.1 * p[:2], fontsize=11, ha="center", va="center")
    ax2.set_aspect("equal")
    ax2.set_xlim(-1.25, 1.25), ax2.set_ylim(-1.25, 1.25)
    ax2.set_xlabel("component along h")
    ax2.set_ylabel("component toward b, orthogonal to h")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8, loc="lower left")
    ax2.set_title(
        f"the plane of h and b: after {n_steps} step(s)\nLERP has turned h by "
        f"{s.turned('lerp', n_steps):.1f}°, SLERP by {s.turned('slerp', n_steps):.1f}°",
        fontsize=10,
    )
    return fig


def steps_widget(alpha: float = 0.3, theta_deg: float = 120.0, n_steps: int = 1):  # -> ipywidgets.VBox
    """Sliders for α, θ and the number of steps above `plot_steps`' figure, redrawn on every change.
    The returned box has `.sliders` (dict), `.redraw()` and `.figure` (the last drawn) for scripts and tests."""
    import ipywidgets as W
    from IPython.display import display

    sliders = {
        "alpha": W.FloatSlider(value=alpha, min=0.01, max=1.0, step=0.01, description="α", continuous_update=False),
        "theta_deg": W.FloatSlider(
            value=theta_deg,
            min=1.0,
            max=179.0,
            step=1.0,
            description="θ (degrees)",
            continuous_update=False,
            style={"description_width": "initial"},
        ),
        "n_steps": W.IntSlider(value=n_steps, min=1, max=12, description="steps", continuous_update=False),
    }
    out = W.Output()
    box = W.VBox([W.HBox(list(sliders.values())), out])

    def redraw(_: object = None) -> None:
        fig = box.figure = plot_steps(**{k: w.value for k, w in sliders.items()})
        out.clear_output(wait=True)
        with out:
            display(fig)

    for w in sliders.values():
        w.observe(redraw, names="value")
    box.sliders, box.redraw = sliders, redraw
    redraw()
    return box
