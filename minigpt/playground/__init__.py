"""The norm-placement playground of notebook 04: tick where the norms sit, press Train, watch what happens.

    pg = Playground()          # a cpu-tiny model on a CPU, gpu-small on CUDA
    pg                         # shows the controls and the live figure in JupyterLab
    run = pg.run("pre_ln", lr=3e-3, warmup=0)     # what the Train button calls, here synchronously
    run.losses, run.diverged, run.label, run.grad_norms, run.residual_norms

Every run goes through `minigpt.train.train` (its `model=` argument takes the `PlacementGPT`, or the nGPT model
from the registry) with one hook, `runner._LiveHook`: after each backward it reads the per-layer gradient norms
(`diagnostics.layer_grad_norms`) and the residual-stream norms (`diagnostics.residual_norms`) and honours Stop
(`train.StopTraining`); the trainer's published step records and evaluations (`on_step`, `on_eval`) give it the
losses, the speed, the val curve and the divergence decision, and it moves the progress bar and redraws the
figure. The divergence rule is the trainer's own (a non-finite loss or gradient, or a loss above twice the
uniform-guess loss ln V, `train.divergence_threshold`): the run stops before the bad update and the figure marks
the step instead of the cell raising. That a placement with no norm at all diverges at a high LR is one of the lessons.

The figure is one matplotlib `Figure` on the Agg canvas, rendered to PNG into an `ipywidgets.Image`: swapping
the image is flicker-free, works from the training thread, and needs no ipympl. Between runs the axes are rebuilt
(a new run adds a colour and a group of bars); during a run only the current run's artists are updated in place.
Each run gets a number, a label that tells it from every run shown (`Runner._relabel`: the LR to as many digits as
that takes, and the steps, seed, depth or norm where they differ from the defaults) and a colour that no run shown
has (`Runner._free_color`); the legend sits below the plots, which it never covers. Choosing a placement sets the
LR and warmup of the preset's recipe for it (`Controls.recipe`).

nGPT is its own model (no norm layers at all, every vector on the unit sphere; see ngpt.py), so the `ngpt-lerp`
and `ngpt-slerp` runs of the registry build it through `build_model` and grey out the norm checkboxes; so does
any registered run of a variant that is not a placement (`controls.model_runs`).

Three modules, one per seam: controls.py (widgets and buttons), runner.py (training), figure.py (drawing);
`Playground` puts them together. `minigpt.widgets` re-exports it (notebook 04 imports it from there).
"""

from __future__ import annotations

import threading
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..config import Preset, default_preset_name, get_preset
from .controls import CPU_DEFAULTS, DEFAULT_STEPS, FLAG_HELP, Controls, dropdown_choices, model_runs
from .figure import LiveFigure
from .runner import PlaygroundRun, Runner

__all__ = ["Playground", "PlaygroundRun", "dropdown_choices", "model_runs", "FLAG_HELP", "DEFAULT_STEPS",
           "CPU_DEFAULTS"]


class Playground(Controls, Runner, LiveFigure):
    """Controls + live figure for training small GPTs with the norms wherever you tick them.

    `Playground(preset=None, background=True, live=None, **overrides)`:
    - `preset`: a `config.PRESETS` name for the model shape, data and batch (default `gpu-small` on CUDA,
      else `cpu-tiny` with `CPU_DEFAULTS`: batch 4); `overrides` are ModelConfig/TrainConfig fields on top of
      it (e.g. `block_size=32`). A preset named explicitly is used as is.
    - `background`: the Train button trains in a thread so the notebook stays responsive (Stop works);
      `background=False` makes the button train synchronously (tests). `run()` is always synchronous.
    - `live`: redraw the figure during a run (at most every `draw_interval` seconds, and never more than ~1/6
      of the time); None (default) = once the playground has been displayed, so a headless script or test
      does not pay for frames nobody sees. The figure is always redrawn when a run ends.

    `runs` keeps every run (`PlaygroundRun`); `figure` is the matplotlib Figure the widget shows;
    `widget` is the ipywidgets box (displaying the Playground displays it).
    """

    def __init__(self, preset: str | None = None, *, background: bool = True, live: bool | None = None,
                 **overrides: Any) -> None:
        self.preset_name = preset if preset is not None else default_preset_name()
        self.preset: Preset = get_preset(self.preset_name)
        if preset is None and self.preset_name in CPU_DEFAULTS:
            overrides = {**CPU_DEFAULTS[self.preset_name], **overrides}
        self.overrides = dict(overrides)
        base_model, base_train = self.preset.configs("pre_ln", **self.overrides)  # validates the overrides
        self.base_n_layer, self.base_seed = base_model.n_layer, base_train.seed
        self.run_count = 0  # runs started: "#n" in the labels
        self.background = background
        self.live = live
        self._displayed = False
        self.draw_interval = 1.5  # seconds between figure redraws during a run (at least)
        self.ui_interval = 0.2  # seconds between progress-bar / status updates
        self.diag_every = 10  # steps between gradient / residual-norm snapshots
        self.eval_batches = 4  # validation batches per evaluation (the trainer's default is 8: too slow live)
        self.runs: list[PlaygroundRun] = []
        self.current: PlaygroundRun | None = None
        self._final_status: tuple[str, str] | None = None  # set by _finish, shown after the run's last frame
        self.last_error: BaseException | None = None
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._draw_lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._data: tuple[Any, Any] | None = None
        self._unigram: float | None = None
        self._syncing = False
        self._live_artists: dict[str, Any] = {}
        # Fixed margins, not constrained layout: it would lay the figure out twice per frame (3x the cost).
        self.figure = Figure(figsize=(12, 4.8), dpi=80)
        FigureCanvasAgg(self.figure)
        self._build_controls(base_train)
        self._draw(full=True)

    # -- display

    @property
    def is_live(self) -> bool:
        return self._displayed if self.live is None else self.live

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self._displayed = True
        return self.widget._repr_mimebundle_(**kwargs)

    def describe(self) -> str:
        """What the playground trains, as configured (the preset's description names the preset's own batch,
        which `CPU_DEFAULTS` may have changed): "cpu-tiny: L4 d128 h4 T128, char tokens, batch 4"."""
        m, t = self.preset.configs("pre_ln", **self.overrides)
        return (f"{self.preset_name}: L{m.n_layer} d{m.n_embd} h{m.n_head} T{m.block_size}, {t.tokenizer} tokens, "
                f"batch {t.batch_size}")

    def __repr__(self) -> str:
        return f"Playground(preset={self.preset_name!r}, runs={len(self.runs)})"
