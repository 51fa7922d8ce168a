"""Progress bars whose message count in a notebook is bounded, whatever the machine's speed.

In JupyterLab `tqdm.auto` draws an ipywidgets bar, and every refresh is two or three messages on the
kernel's IOPub channel. tqdm refreshes by time (every 0.1 s), so a cell that trains ten models sends a few
thousand messages, more on a slower machine. nbval (the notebooks' CI) reads IOPub only after the cell's
execute reply, and ZeroMQ's PUB socket drops what does not fit its high-water mark meanwhile: past a few
thousand messages it drops the tail, including the kernel's final "idle" status, and nbval fails the cell
with "Timeout of 5 seconds exceeded waiting for output" although the cell finished (measured: a cell that
sends 20,000 small display messages delivers about 9,000 and never its idle status; one that sends 6,000
widget updates, about 5,900). What is always delivered is what fits the two queues, 1,000 messages each
(ZeroMQ's default high-water marks); the kernel's TCP buffer adds a varying amount on top.

So in a notebook a bar refreshes every `ceil(total / NOTEBOOK_REFRESHES)` steps instead of by time: about
`NOTEBOOK_REFRESHES` refreshes per run, a fixed number, still a live bar to a person watching. A bar then
costs about 50 messages (11 to open the widgets, 3 per refresh), so a cell stays well inside the 2,000 that
are always delivered as long as it trains no more than about 30 models. In a terminal messages cost nothing
and the bar keeps tqdm's time-based refresh.
"""

from __future__ import annotations

import math
from typing import Any

from tqdm.auto import tqdm
from tqdm.notebook import tqdm_notebook

NOTEBOOK_REFRESHES = 12  # refreshes per bar in a notebook: one every ~8% of the run


def progress_bar(total: int, **kwargs: Any) -> tqdm:
    """A `tqdm.auto` bar over `total` steps; in a notebook it refreshes every `total / NOTEBOOK_REFRESHES`
    steps (see the module docstring for why), in a terminal by time as tqdm does."""
    if issubclass(tqdm, tqdm_notebook):
        # miniters given explicitly turns off tqdm's dynamic miniters; maxinterval=inf keeps tqdm's monitor
        # thread from resetting miniters to 1 when a refresh is more than 10 s away.
        kwargs.update(miniters=max(1, math.ceil(total / NOTEBOOK_REFRESHES)), mininterval=0.0,
                      maxinterval=float("inf"))
    return tqdm(total=total, **kwargs)
