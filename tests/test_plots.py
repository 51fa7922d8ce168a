"""Figures tell their lines apart: every label gets its own colour, registered or not."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.colors as mcolors

from minigpt import plots
from minigpt.registry import STYLES


def _run(offset: float) -> SimpleNamespace:
    return SimpleNamespace(losses=[4.0 - offset, 3.0 - offset], val=[(1, 3.5 - offset), (2, 3.0 - offset)])


def test_a_label_the_registry_does_not_know_gets_its_own_colour() -> None:
    """Notebook 00 draws pre-LN beside the learner's own block: the two lines must differ in colour (left to
    matplotlib's cycle, the unknown label was blue, as pre-LN), and a second unknown label differs again."""
    fig = plots.plot_val_curves({"pre_ln": _run(0), "my block": _run(0.1), "my other block": _run(0.2)})
    for ax in fig.axes:
        colours = [mcolors.to_hex(line.get_color()) for line in ax.get_lines()]
        assert len(colours) == 3 and len(set(colours)) == 3, colours
        registered = {mcolors.to_hex(s.color) for s in STYLES.values() if s.color}
        assert not set(colours[1:]) & registered, colours  # no variant's colour either
    again = plots.plot_val_curves({"my block": _run(0)})
    assert mcolors.to_hex(again.axes[0].get_lines()[0].get_color()) == \
        mcolors.to_hex(fig.axes[0].get_lines()[1].get_color())  # the same label keeps its colour
