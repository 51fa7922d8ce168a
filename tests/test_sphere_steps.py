"""minigpt.sphere_steps: the LERP / SLERP picture computes the closed forms, and its widget redraws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minigpt.sphere_steps import plot_steps, steps, steps_widget


@pytest.mark.parametrize(("alpha", "theta"), [(0.05, 90.0), (0.3, 120.0), (0.5, 90.0), (0.9, 170.0)])
def test_one_step_matches_the_closed_forms(alpha: float, theta: float) -> None:
    s = steps(alpha, theta)
    th = math.radians(theta)
    assert s.turned("slerp") == pytest.approx(alpha * theta, abs=1e-3)  # slerp computes in float32
    lerp_turn = math.degrees(math.atan2(alpha * math.sin(th), 1 - alpha + alpha * math.cos(th)))
    assert s.turned("lerp") == pytest.approx(lerp_turn, abs=1e-6)
    assert np.allclose(s.lerp[1], s.chord / np.linalg.norm(s.chord))  # LERP = the chord point, normalized
    assert np.linalg.norm(s.chord) < 1  # ... which lies inside the ball


def test_repeated_steps_stay_on_the_sphere_and_approach_b() -> None:
    s = steps(0.2, 160.0, n_steps=12)
    for path in (s.lerp, s.slerp):
        assert np.allclose(np.linalg.norm(path, axis=1), 1.0)
        dist = [math.acos(min(1.0, float(np.dot(p, s.b)))) for p in path]
        assert all(b < a for a, b in zip(dist, dist[1:], strict=False))  # every step gets closer to b
    # SLERP after k steps: the remaining angle shrinks by (1 - alpha) per step
    assert s.turned("slerp", 12) == pytest.approx(160.0 * (1 - 0.8**12), abs=1e-3)


@pytest.mark.parametrize(
    "bad", [dict(alpha=0.0), dict(alpha=1.5), dict(theta_deg=0.0), dict(theta_deg=180.0), dict(n_steps=0)]
)
def test_bad_input_is_refused(bad: dict) -> None:
    kw = dict(alpha=0.3, theta_deg=90.0, n_steps=1) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        steps(**kw)


def test_figure_titles_state_the_angles() -> None:
    fig = plot_steps(0.5, 90.0, 2)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "LERP 45.0°" in titles and "SLERP 45.0°" in titles


def test_widget_redraws_on_a_slider_change() -> None:
    box = steps_widget(alpha=0.3, theta_deg=120.0)
    first = box.figure
    box.sliders["theta_deg"].value = 60.0
    assert box.figure is not first
    assert "θ = 60°" in box.figure.axes[0].get_title()
