"""The notebooks' progress bars send a bounded number of IOPub messages per run (see minigpt/progress.py)."""

from __future__ import annotations

import itertools
import time

import pytest
from tqdm.notebook import tqdm_notebook

from minigpt import progress


def counting_bar_class():
    """A notebook bar that counts its refreshes, on a clock that advances 1 s per reading: a machine so slow
    that tqdm's time-based refresh would redraw the bar at every step."""
    seconds = itertools.count(start=1)
    t0 = time.time()

    class Counting(tqdm_notebook):
        refreshes = 0

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._time = lambda: t0 + next(seconds)  # tqdm reads its clock through this attribute

        def display(self, *args, **kwargs):
            type(self).refreshes += 1
            return super().display(*args, **kwargs)

    return Counting


@pytest.mark.parametrize("total", [1, 7, 150, 1000, 20000])
def test_notebook_bar_refreshes_a_bounded_number_of_times(monkeypatch, total):
    bar_class = counting_bar_class()
    monkeypatch.setattr(progress, "tqdm", bar_class)
    bar = progress.progress_bar(total, desc="run")
    for _ in range(total):
        bar.set_postfix({"loss": "1.0"}, refresh=False)
        bar.update(1)
    bar.close()
    # the first draw, one per 1/NOTEBOOK_REFRESHES of the run, the final draw on close
    assert 2 <= bar_class.refreshes <= progress.NOTEBOOK_REFRESHES + 2
    assert bar.n == total


def test_plain_tqdm_on_the_same_clock_refreshes_every_step():
    """The control: without the bound, the slow clock makes the notebook bar redraw at each step, which is
    the message flood the bound prevents."""
    bar_class = counting_bar_class()
    bar = bar_class(total=1000, desc="run")
    for _ in range(1000):
        bar.update(1)
    bar.close()
    assert bar_class.refreshes > 900


def test_terminal_bar_keeps_tqdms_time_based_refresh():
    bar = progress.progress_bar(10, disable=True)
    assert not isinstance(bar, tqdm_notebook)
