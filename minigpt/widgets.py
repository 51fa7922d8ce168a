"""The norm-placement playground of notebook 04: tick where the norms sit, press Train, watch what happens.

    pg = Playground()          # a cpu-tiny model on a CPU, gpu-small on CUDA
    pg                         # shows the controls and the live figure in JupyterLab
    run = pg.run("pre_ln", lr=3e-3, warmup=0)     # what the Train button calls, here synchronously
    run.losses, run.diverged, run.label, run.grad_norms, run.residual_norms

Every run goes through `minigpt.train.train` (its `model=` argument takes the `PlacementGPT`, or the nGPT model
from the registry) with one hook, `_LiveHook`, called after each backward: it reads the per-layer gradient norms
(`diagnostics.layer_grad_norms`), the residual-stream norms (`diagnostics.residual_norms`), evaluates the
validation loss every few steps, moves the progress bar, redraws the figure and honours Stop. The divergence rule
is the trainer's own (a non-finite loss or gradient, or a loss above twice the uniform-guess loss ln V,
`train.divergence_threshold`): the run stops before the bad update and the figure marks the step instead of the
cell raising. That a placement with no norm at all diverges at a high LR is one of the lessons.

The figure is one matplotlib `Figure` on the Agg canvas, rendered to PNG into an `ipywidgets.Image`: swapping
the image is flicker-free, works from the training thread, and needs no ipympl. Between runs the axes are rebuilt
(a new run adds a colour and a group of bars); during a run only the current run's artists are updated in place.

nGPT is its own model (no norm layers at all, every vector on the unit sphere; see ngpt.py), so the `ngpt-lerp`
and `ngpt-slerp` presets build it through `build_model` and grey out the norm checkboxes.
"""

from __future__ import annotations

import dataclasses
import io
import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator, NullLocator
from torch import nn

from . import build_model
from .config import NORMS, ConfigError, Preset, default_preset_name, get_preset
from .diagnostics import layer_grad_norms, residual_norms
from .placement import PLACEMENT_PRESETS, Placement, PlacementGPT
from .registry import RUNS, Run
from .train import (
    TrainingInterrupted,
    TrainResult,
    divergence_threshold,
    evaluate,
    resolve_device,
    resolve_dtype,
    train,
)

__all__ = ["Playground", "PlaygroundRun", "dropdown_choices", "model_runs", "FLAG_HELP"]



def model_runs() -> dict[str, Run]:
    """The registered runs the playground trains as whole models: those of a variant with no placement preset
    (nGPT: it has no norm layers to tick). The other variants are placements of `PlacementGPT`."""
    return {label: run for label, run in RUNS.items() if run.variant not in PLACEMENT_PRESETS}


def dropdown_choices() -> tuple[str, ...]:
    """The placement dropdown: the named placements (not `none`), the whole-model runs, then `custom`."""
    return (*(p for p in PLACEMENT_PRESETS if p != "none"), *model_runs(), "custom")


# What each checkbox does, in the block's data-flow order (the table in placement.py's docstring).
FLAG_HELP = {
    "pre_attn": "N before attention (pre-LN)",
    "attn_out": "N on attention output (NormFormer, sandwich)",
    "post_attn_resid": "N after attention residual add (post-LN)",
    "pre_ffn": "N before FFN (pre-LN)",
    "ffn_mid": "N after FFN activation (NormFormer)",
    "ffn_out": "N on FFN output (sandwich)",
    "post_ffn_resid": "N after FFN residual add (post-LN)",
    "head_scale": "learnable scale per head (NormFormer)",
    "final_norm": "N before LM head (pre-LN)",
}

DEFAULT_STEPS = 150
# What `Playground()` adds to the CPU preset it picks: half of cpu-tiny's batch, so that a default run (150 steps,
# cpu-tiny's shape L4 / d128 / T128) takes 16-18 s on 2 idle cores instead of 28 s, and every lesson of notebook
# 04 still shows (measured with seeds 1337, 1, 2: post-LN without warmup still stalls at the unigram entropy).
CPU_DEFAULTS: dict[str, dict[str, Any]] = {"cpu-tiny": {"batch_size": 4}}


class _StopRequested(KeyboardInterrupt):
    """Raised by the hook when Stop was pressed. `train` treats a KeyboardInterrupt from a hook like Ctrl-C: it
    finishes cleanly (the update of that step is not applied) and raises TrainingInterrupted with the result."""


# ------------------------------------------------------------------------------------------------ a run


@dataclass(eq=False)  # a run is equal only to itself (it holds a model)
class PlaygroundRun:
    """One training run of the playground, kept so that runs can be compared on the same figure.

    `losses[i]` is the train loss of step i + 1 (applied updates only); `val` holds (step, val_loss) pairs,
    step 0 being the model at init. `grad_norms` are ||dL/dW||_F of each block's four weight matrices at the
    latest recorded step (`grad_norms_step`), `grad_norms_init` the same at step 1; `residual_norms` the mean
    ||x_l|| of the residual stream entering block 0 and leaving each block (L + 1 numbers, latest).
    """

    label: str
    placement: Placement | None  # None for a whole-model run (nGPT: its own model, no norm layers)
    model_run: str | None  # that run's label in the registry (e.g. ngpt-lerp), None for a placement
    lr: float
    warmup: int
    steps: int
    seed: int
    n_layer: int
    losses: list[float] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)
    grad_norms: dict[str, list[float]] = field(default_factory=dict)
    grad_norms_step: int = 0
    grad_norms_init: dict[str, list[float]] = field(default_factory=dict)
    residual_norms: list[float] = field(default_factory=list)
    diverged: bool = False
    diverged_step: int | None = None
    diverged_loss: float | None = None  # the loss that tripped the guard (not in `losses`: never applied)
    stopped: bool = False
    message: str = ""
    tokens_per_s: float = float("nan")
    seconds: float = 0.0
    result: TrainResult | None = field(default=None, repr=False)

    @property
    def step(self) -> int:
        return len(self.losses)

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def model(self) -> nn.Module | None:
        return None if self.result is None else self.result.model

    @property
    def initial_loss(self) -> float:
        return self.losses[0] if self.losses else float("nan")

    @property
    def final_loss(self) -> float:
        """Mean of the last (up to) 10 finite train losses (one batch is too noisy to compare runs on)."""
        finite = [x for x in self.losses if math.isfinite(x)][-10:]
        return sum(finite) / len(finite) if finite else float("nan")

    @property
    def final_val_loss(self) -> float:
        return self.val[-1][1] if self.val else float("nan")

    @property
    def block_grad_norms(self) -> list[float]:
        """Per layer, the gradient norm of the block's four weight matrices together: sqrt(sum of squares)."""
        return _block_total(self.grad_norms)

    def summary(self) -> str:
        if self.diverged:
            end = f"DIVERGED at step {self.diverged_step}"
        elif self.stopped:
            end = f"stopped at step {self.step}"
        else:
            end = f"{self.step} steps"
        return (f"{self.label}: {end}, loss {self.initial_loss:.3f} -> {self.final_loss:.3f}, "
                f"val {self.final_val_loss:.3f}, {self.tokens_per_s:,.0f} tok/s, {self.seconds:.1f} s")


def _block_total(norms: dict[str, list[float]]) -> list[float]:
    if not norms:
        return []
    per_layer = zip(*norms.values(), strict=True)
    return [math.sqrt(sum(g * g for g in gs)) for gs in per_layer]


# ------------------------------------------------------------------------------------------- the hook


class _LiveHook:
    """The trainer's on_step hook: records diagnostics into the run and drives the UI. Called after backward
    and before the optimizer step, so at step s the weights are those after s - 1 updates."""

    def __init__(self, pg: Playground, run: PlaygroundRun, val_batches: list, probe: torch.Tensor,
                 device: torch.device, dtype: torch.dtype, tokens_per_step: int, eval_every: int,
                 vocab_size: int) -> None:
        self.pg, self.run = pg, run
        self.val_batches, self.probe = val_batches, probe
        self.device, self.dtype = device, dtype
        self.tokens_per_step, self.eval_every, self.vocab_size = tokens_per_step, eval_every, vocab_size
        self.initial_loss: float | None = None
        self.live_losses: list[float] = []
        self.step_s: list[float] = []  # wall time of each step's training work (hook time excluded)
        self._mark = time.perf_counter()
        self._last_ui = 0.0
        self._last_draw = time.perf_counter()  # the figure was just drawn by `run`
        self._draw_s = 0.0  # how long the last redraw took

    def on_step(self, model: nn.Module, step: int, loss: float) -> None:
        start = time.perf_counter()
        self.step_s.append(start - self._mark)
        if self.pg._stop.is_set():
            raise _StopRequested
        run = self.run
        self.live_losses.append(loss)  # every loss seen, the refused one included
        if self.initial_loss is None and math.isfinite(loss):
            self.initial_loss = loss
        # the trainer's rule (train.divergence_reason); the trainer decides, this only marks the figure early
        bad = not math.isfinite(loss) or loss > divergence_threshold(self.vocab_size, self.initial_loss)
        if bad:  # the trainer will refuse this update; the figure shows where
            run.diverged_step, run.diverged_loss = step, loss
        else:
            run.losses.append(loss)
        if step == 1 or step % self.pg.diag_every == 0 or step == run.steps or bad:
            norms = layer_grad_norms(model)
            if step == 1:
                run.grad_norms_init = norms
            if all(math.isfinite(g) for gs in norms.values() for g in gs):
                run.grad_norms, run.grad_norms_step = norms, step
            run.residual_norms = residual_norms(model, self.probe)  # at a bad step: the stream that blew up
        if (step - 1) % self.eval_every == 0 and step - 1 < run.steps and not bad:
            run.val.append((step - 1, evaluate(model, self.val_batches, self.device, self.dtype)))
        timed = self.step_s[1:] or self.step_s
        run.tokens_per_s = self.tokens_per_step / (sum(timed[-20:]) / len(timed[-20:]))
        now = time.perf_counter()
        if now - self._last_ui >= self.pg.ui_interval or bad:
            self.pg._show_progress(run, step, loss)
            self._last_ui = now
        # redraw at most every draw_interval seconds, and never spend more than ~1/6 of the time drawing
        if self.pg.is_live and (now - self._last_draw >= max(self.pg.draw_interval, 5 * self._draw_s) or bad):
            self.pg._draw(full=False)
            self._last_draw = time.perf_counter()
            self._draw_s = self._last_draw - now
        self._mark = time.perf_counter()


# --------------------------------------------------------------------------------------------- widget


class Playground:
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
        self.base_n_layer = base_model.n_layer
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

    # -- controls

    def _build_controls(self, base_train: Any) -> None:
        import ipywidgets as W

        short = W.Layout(width="260px")
        self.preset_dropdown = W.Dropdown(options=list(dropdown_choices()), value="pre_ln", description="placement",
                                          layout=short)
        self.checkboxes = {
            name: W.Checkbox(value=False, description=f"{name}: {FLAG_HELP[name]}", indent=False,
                             layout=W.Layout(width="400px"))
            for name in FLAG_HELP
        }
        self.norm_dropdown = W.Dropdown(options=list(NORMS), value="layernorm", description="norm", layout=short)
        self.depth = W.IntSlider(value=self.base_n_layer, min=1, max=12, description="layers", layout=short)
        lr = self.preset.lr.get("pre_ln", base_train.lr)  # the sweep's best for the default placement
        self.lr_slider = W.FloatLogSlider(value=lr, base=10, min=-4, max=-0.5, step=0.05,
                                          description="peak LR", readout_format=".1e", layout=short)
        self.warmup = W.BoundedIntText(value=0, min=0, max=100_000, description="warmup", layout=short)
        self.steps = W.BoundedIntText(value=DEFAULT_STEPS, min=1, max=100_000, description="steps", layout=short)
        self.seed = W.BoundedIntText(value=base_train.seed, min=0, max=2**31 - 1, description="seed", layout=short)
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.clear_button = W.Button(description="Clear", icon="trash")
        self.progress = W.IntProgress(value=0, min=0, max=DEFAULT_STEPS, description="step",
                                      layout=W.Layout(width="400px"))
        self.status = W.HTML(value="ready: choose a placement and press Train")
        self.image = W.Image(format="png", layout=W.Layout(width="100%", max_width="960px"))
        self.log = W.Output()
        self.status.add_class("minigpt-status")  # stable hooks for the browser test (tests/test_browser.py)
        self.image.add_class("minigpt-figure")

        self.preset_dropdown.observe(self._on_preset, names="value")
        for box in self.checkboxes.values():
            box.observe(self._on_flag, names="value")
        self.train_button.on_click(self._on_train)
        self.stop_button.on_click(self._on_stop)
        self.clear_button.on_click(self._on_clear)
        self._apply_preset("pre_ln")

        boxes = list(self.checkboxes.values())
        flags = W.VBox([W.HTML("<b>norm positions</b> (N = the chosen norm)"), *boxes])
        settings = W.VBox([self.preset_dropdown, self.norm_dropdown, self.depth, self.lr_slider, self.warmup,
                           self.steps, self.seed])
        buttons = W.HBox([self.train_button, self.stop_button, self.clear_button])
        self.widget = W.VBox([W.HBox([settings, flags]), buttons, W.HBox([self.progress]), self.status,
                              self.image, self.log])

    def _apply_preset(self, name: str) -> None:
        """Set the boxes from a named placement (or grey them out for nGPT, which has no norm layers)."""
        is_ngpt = name in model_runs()
        self._syncing = True
        try:
            if name in PLACEMENT_PRESETS:
                for flag, value in PLACEMENT_PRESETS[name].flags().items():
                    self.checkboxes[flag].value = value
            for box in self.checkboxes.values():
                box.disabled = is_ngpt
            self.norm_dropdown.disabled = is_ngpt
        finally:
            self._syncing = False

    def _on_preset(self, change: dict) -> None:
        self._apply_preset(change["new"])

    def _on_flag(self, change: dict) -> None:
        if not self._syncing and self.preset_dropdown.value != "custom":
            self.preset_dropdown.value = "custom"

    def placement_from_controls(self) -> Placement | str:
        """What Train will run: an nGPT preset name, or the Placement the checkboxes describe."""
        if self.preset_dropdown.value in model_runs():
            return self.preset_dropdown.value
        flags = {name: box.value for name, box in self.checkboxes.items()}
        return Placement(**flags, norm=self.norm_dropdown.value)

    # -- buttons

    def _on_train(self, _button: Any = None) -> None:
        kwargs = dict(placement=self.placement_from_controls(), steps=self.steps.value, lr=self.lr_slider.value,
                      warmup=self.warmup.value, seed=self.seed.value, n_layer=self.depth.value)
        if not self.background:
            self.run(**kwargs)
            return
        if self._thread is not None and self._thread.is_alive():
            self._set_status("a run is in progress: press Stop first", "orange")
            return

        def work() -> None:
            try:
                self.run(**kwargs)
            except BaseException as e:  # a thread has nobody to raise to: show it
                self.last_error = e
                self._set_status(f"error: {type(e).__name__}: {e}", "red")
                self.log.append_stderr("".join(traceback.format_exception(e)))

        self._thread = threading.Thread(target=work, name="minigpt-playground", daemon=True)
        self._thread.start()

    def _on_stop(self, _button: Any = None) -> None:
        self._stop.set()

    def _on_clear(self, _button: Any = None) -> None:
        if self._busy.locked():
            self._set_status("cannot clear during a run: press Stop first", "orange")
            return
        self.runs.clear()
        self.current = None
        self.progress.value = 0
        self.progress.bar_style = ""
        self._set_status("cleared", "black")
        self._draw(full=True)

    def wait(self, timeout: float | None = None) -> None:
        """Block until a background run (started by the Train button) has finished."""
        if self._thread is not None:
            self._thread.join(timeout)

    # -- training

    def data(self) -> tuple[Any, Any]:
        """(tokenizer, batches) every run of this playground trains on (loaded once, on first use)."""
        if self._data is None:
            from .data import load_data

            model_cfg, train_cfg = self.preset.configs("pre_ln", **self.overrides)
            self._data = load_data(train_cfg, model_cfg.block_size)
        return self._data

    def unigram_entropy(self) -> float:
        """Entropy (nats) of the token frequencies of the training split: the loss of a model that has learned
        which tokens are common and nothing about context. A run stuck there has stalled."""
        if self._unigram is None:
            tokenizer, batches = self.data()
            counts = np.bincount(np.asarray(batches.train), minlength=tokenizer.vocab_size)
            p = counts[counts > 0] / counts.sum()
            self._unigram = float(-(p * np.log(p)).sum())
        return self._unigram

    def run(self, placement: Placement | str | None = None, *, steps: int | None = None, lr: float | None = None,
            warmup: int | None = None, seed: int | None = None, n_layer: int | None = None,
            norm: str | None = None) -> PlaygroundRun:
        """Train one model synchronously (what the Train button calls) and return the run, also appended to
        `runs`. Every argument left out takes its control's current value.

        `placement`: a Placement, a placement preset name (`post_ln`, `pre_ln`, `normformer`, `sandwich`,
        `none`) or `ngpt-lerp` / `ngpt-slerp`. `norm` applies to a preset name (a Placement carries its own).
        A diverging run stops and is returned with `diverged=True`; Stop returns the partial run, `stopped=True`
        (Stop can only act on a run the Train button started in the background: while a cell is busy in `run`,
        the kernel processes no button clicks).
        """
        placement = self.placement_from_controls() if placement is None else placement
        steps = self.steps.value if steps is None else steps
        lr = self.lr_slider.value if lr is None else lr
        warmup = self.warmup.value if warmup is None else warmup
        seed = self.seed.value if seed is None else seed
        n_layer = self.depth.value if n_layer is None else n_layer
        norm = self.norm_dropdown.value if norm is None else norm

        model_run = None
        if isinstance(placement, str):
            if placement in model_runs():
                model_run, placement = placement, None
            elif placement in PLACEMENT_PRESETS:
                placement = Placement.preset(placement, norm=norm)
            else:
                valid = ", ".join([*PLACEMENT_PRESETS, *model_runs()])
                raise ConfigError(f"placement {placement!r} is not valid; choose one of {valid} or pass a Placement")
        elif not isinstance(placement, Placement):
            raise ConfigError(f"placement must be a Placement or a name, got {type(placement).__name__}")

        # for a Placement the variant is only the record's name
        variant, extra = (RUNS[model_run].variant, dict(RUNS[model_run].overrides)) if model_run else ("pre_ln", {})
        model_cfg, train_cfg = self.preset.configs(
            variant, **{**self.overrides, "steps": steps, "lr": lr, "warmup_steps": warmup, "seed": seed,
                        "n_layer": n_layer, "eval_interval": steps, "eval_batches": self.eval_batches,
                        "progress": False, "compile": False, **extra})
        tokenizer, batches = self.data()
        model_cfg = dataclasses.replace(model_cfg, vocab_size=tokenizer.vocab_size)
        label = self._label(placement, model_run, lr, warmup, n_layer)
        run = PlaygroundRun(label=label, placement=placement, model_run=model_run, lr=lr, warmup=warmup,
                            steps=steps, seed=seed, n_layer=n_layer)

        if not self._busy.acquire(blocking=False):
            raise RuntimeError("the playground is already training; press Stop or wait for the run to end")
        try:
            self._stop.clear()
            self.current = run
            self._set_buttons(running=True)
            self.progress.max, self.progress.value, self.progress.bar_style = steps, 0, "info"
            self._set_status(f"building {label} ...", "black")
            if self.is_live:
                self._draw(full=True)

            device = resolve_device(train_cfg.device)
            torch.manual_seed(seed)  # `train` seeds again, but the model is built here
            model = PlacementGPT(model_cfg, placement) if placement is not None else build_model(model_cfg)
            val_batches = [(x.to(device), y.to(device))
                           for x, y in batches.val_batches(train_cfg.eval_batches, train_cfg.batch_size)]
            probe = val_batches[0][0][:4]
            tokens_per_step = train_cfg.batch_size * train_cfg.grad_accum * model_cfg.block_size
            hook = _LiveHook(self, run, val_batches, probe, device, resolve_dtype(train_cfg.dtype, device),
                             tokens_per_step, eval_every=max(steps // 6, 1), vocab_size=model_cfg.vocab_size)
            t0 = time.perf_counter()
            try:
                result = train(model_cfg, train_cfg, hooks=[hook], batches=batches, tokenizer=tokenizer,
                               model=model, label=label)
            except TrainingInterrupted as e:  # Stop (our hook) or Ctrl-C: keep what was trained
                result = e.result
                run.stopped = True
                if not isinstance(e.__cause__, _StopRequested):
                    self._finish(run, result, hook, t0)
                    raise
            self._finish(run, result, hook, t0)
            return run
        finally:
            # The last frame first, then the final status and the buttons: whoever waits for "done" (a
            # student, the browser test) sees the finished figure, not the last live frame "(running)".
            self.current = None
            try:
                self._draw(full=True)
                if self._final_status is not None:
                    self._set_status(*self._final_status)
            finally:
                self._final_status = None
                self._set_buttons(running=False)
                self._busy.release()

    def _finish(self, run: PlaygroundRun, result: TrainResult, hook: _LiveHook, t0: float) -> None:
        run.seconds = time.perf_counter() - t0
        run.result = result
        run.losses = list(result.losses)
        if result.val and (not run.val or result.val[-1][0] > run.val[-1][0]):
            run.val.append(result.val[-1])  # the trainer's evaluation after the last step
        run.diverged, run.diverged_step = result.diverged, result.diverged_step
        if run.diverged and len(hook.live_losses) >= run.diverged_step:
            run.diverged_loss = hook.live_losses[run.diverged_step - 1]  # e.g. a non-finite gradient, finite loss
        elif not run.diverged:
            run.diverged_loss, run.diverged_step = None, None
        if not math.isfinite(run.tokens_per_s):
            run.tokens_per_s = result.tokens_per_s
        run.message = result.message or ("stopped by the user" if run.stopped else "")
        self.runs.append(run)
        self.progress.value = run.step
        self.progress.bar_style = "danger" if run.diverged else ("warning" if run.stopped else "success")
        color = "red" if run.diverged else ("darkorange" if run.stopped else "green")
        self._final_status = (run.summary() + (f" — {run.message}" if run.diverged else ""), color)

    @staticmethod
    def _label(placement: Placement | None, model_run: str | None, lr: float, warmup: int, n_layer: int) -> str:
        """The legend entry: placement (preset name or the flags that are on), LR, warmup, norm, depth."""
        name = model_run if placement is None else placement.describe()
        parts = [name, f"lr {lr:.0e}", f"warmup {warmup}" if warmup else "no warmup"]
        if placement is not None and placement.norm != "layernorm":
            parts.append(placement.norm)
        parts.append(f"L{n_layer}")
        return ", ".join(parts)

    # -- status line and buttons

    def _set_buttons(self, running: bool) -> None:
        self.train_button.disabled = running
        self.clear_button.disabled = running
        self.stop_button.disabled = not running

    def _set_status(self, text: str, color: str = "black") -> None:
        import html

        self.status.value = f"<span style='color:{color}; font-family:monospace'>{html.escape(text)}</span>"

    def _show_progress(self, run: PlaygroundRun, step: int, loss: float) -> None:
        self.progress.value = step
        diverged = run.diverged_step is not None
        val = f" · val {run.val[-1][1]:.3f}" if run.val else ""
        self._set_status(
            f"{run.label} · step {step}/{run.steps} · loss {loss:.3f}{val} · {run.tokens_per_s:,.0f} tok/s · "
            f"diverged: {'YES at step ' + str(run.diverged_step) if diverged else 'no'}",
            "red" if diverged else "black",
        )

    # -- the figure

    def _runs_to_draw(self) -> list[PlaygroundRun]:
        return self.runs + ([self.current] if self.current is not None and self.current not in self.runs else [])

    def _draw(self, full: bool = True) -> None:
        """Redraw the figure and push it to the widget: everything (`full`), or the current run's artists."""
        with self._draw_lock:
            if full or not self._live_artists:
                self._draw_all()
            else:
                self._update_current()
            self.image.value = self._png()

    def _png(self) -> bytes:
        buf = io.BytesIO()
        self.figure.canvas.print_png(buf)
        return buf.getvalue()

    def save_figure(self, path: str | Path, dpi: int = 110) -> Path:
        """Save the figure as the widget shows it (e.g. for a README or to look at it headless)."""
        with self._draw_lock:
            self._draw_all()
            self.figure.savefig(path, dpi=dpi)
        return Path(path)

    def _draw_all(self) -> None:
        fig = self.figure
        fig.clear()
        gs = fig.add_gridspec(2, 2, width_ratios=[1.45, 1], left=0.06, right=0.985, bottom=0.1, top=0.93,
                              wspace=0.17, hspace=0.5)
        ax_loss = fig.add_subplot(gs[:, 0])
        ax_grad = fig.add_subplot(gs[0, 1])
        ax_res = fig.add_subplot(gs[1, 1])
        self._axes = (ax_loss, ax_grad, ax_res)
        runs = self._runs_to_draw()
        colors = [f"C{i % 10}" for i in range(len(runs))]
        self._live_artists = {}

        ax_loss.set_title("loss vs step (line: train, dots: validation)")
        ax_loss.set_xlabel("optimizer step")
        ax_loss.set_ylabel("cross-entropy (nats/token)")
        ax_loss.grid(alpha=0.3)
        ax_loss.set_xlim(0, max([r.steps for r in runs], default=DEFAULT_STEPS))
        self._loss_ylim(runs)
        handles = []
        if self._data is not None:  # once data is loaded: the loss of a model that learned only token frequencies
            ax_loss.axhline(self.unigram_entropy(), color="gray", ls=":", lw=1.2)
            handles.append(Line2D([], [], color="gray", ls=":", label="unigram entropy (token frequencies only)"))
        for run, color in zip(runs, colors, strict=True):
            current = run is self.current
            (train_line,) = ax_loss.plot([], [], color=color, lw=1.6 if current else 1.2, alpha=0.9)
            (val_line,) = ax_loss.plot([], [], color=color, ls="none", marker="o", ms=6, mec="white", mew=0.8)
            # The divergence mark and its (short, so it ends left of the legend) label sit in front of the curves.
            (div_mark,) = ax_loss.plot([], [], color=color, marker="X", ms=14, mec="black", ls="none", zorder=6)
            div_text = ax_loss.annotate("", (0, 0), xytext=(-8, -18), textcoords="offset points", ha="right",
                                        color=color, fontsize=10, fontweight="bold", zorder=6)
            artists = dict(train=train_line, val=val_line, div=div_mark, div_text=div_text, run=run)
            self._set_loss_artists(artists)
            state = " (running)" if current else (f" — DIVERGED at {run.diverged_step}" if run.diverged else "")
            handles.append(Line2D([], [], color=color, lw=2, label=run.label + state))
            if current:
                self._live_artists.update(artists)
        if handles:
            ax_loss.legend(handles=handles, loc="upper right", fontsize=9, framealpha=0.9)
        if not runs:
            ax_loss.text(0.5, 0.5, "no runs yet: press Train", transform=ax_loss.transAxes, ha="center",
                         va="center", color="gray", fontsize=12)

        ax_grad.set_title("gradient norm per block (latest step)")
        ax_grad.set_ylabel("‖∂L/∂W‖_F  (4 matrices)")
        ax_res.set_title("residual-stream norm per layer (latest)")
        ax_res.set_ylabel("mean ‖x_l‖₂")
        for ax in (ax_grad, ax_res):  # log: the norms of different placements differ by orders of magnitude
            ax.set_yscale("log")
            ax.grid(alpha=0.3, axis="y")
        n = max(len(runs), 1)
        width = 0.8 / n
        max_layers = max([r.n_layer for r in runs], default=self.base_n_layer)
        for i, (run, color) in enumerate(zip(runs, colors, strict=True)):
            offset = (i - (n - 1) / 2) * width
            grad_bars = ax_grad.bar([layer + 1 + offset for layer in range(run.n_layer)], [1.0] * run.n_layer,
                                    width=width, color=color, edgecolor="black", lw=0.4)
            res_bars = ax_res.bar([layer + offset for layer in range(run.n_layer + 1)], [1.0] * (run.n_layer + 1),
                                  width=width, color=color, edgecolor="black", lw=0.4)
            self._set_bars(grad_bars, run.block_grad_norms)
            self._set_bars(res_bars, run.residual_norms)
            if run is self.current:
                self._live_artists.update(grad=grad_bars, res=res_bars)
        ax_grad.set_xticks(range(1, max_layers + 1))
        ax_grad.set_xlabel("block")
        ax_res.set_xticks(range(max_layers + 1), ["emb", *[str(i) for i in range(1, max_layers + 1)]])
        ax_res.set_xlabel("after block (emb = input of block 1)")
        self._bar_ylim(ax_grad, [r.block_grad_norms for r in runs])
        self._bar_ylim(ax_res, [r.residual_norms for r in runs])

    def _update_current(self) -> None:
        a = self._live_artists
        runs = self._runs_to_draw()
        ax_loss, ax_grad, ax_res = self._axes
        self._loss_ylim(runs)
        self._set_loss_artists(a)
        self._set_bars(a["grad"], a["run"].block_grad_norms)
        self._set_bars(a["res"], a["run"].residual_norms)
        self._bar_ylim(ax_grad, [r.block_grad_norms for r in runs])
        self._bar_ylim(ax_res, [r.residual_norms for r in runs])

    def _set_loss_artists(self, a: dict[str, Any]) -> None:
        run: PlaygroundRun = a["run"]
        a["train"].set_data(range(1, len(run.losses) + 1), run.losses)
        a["val"].set_data([s for s, _ in run.val], [v for _, v in run.val])
        if run.diverged_step is not None:
            ax = a["train"].axes
            bottom, top = ax.get_ylim()
            top -= 0.04 * (top - bottom)  # an exploded loss is off the scale: pin the mark inside the top edge
            shown = run.diverged_loss if run.diverged_loss is not None and math.isfinite(run.diverged_loss) else top
            y = min(shown, top)
            a["div"].set_data([run.diverged_step], [y])
            left = run.diverged_step < 0.5 * ax.get_xlim()[1]  # keep the text inside the axes
            a["div_text"].set_text(f"diverged at step {run.diverged_step}")  # the loss is in the status line
            a["div_text"].xy = (run.diverged_step, y)
            a["div_text"].set_ha("left" if left else "right")
            a["div_text"].set_position((10 if left else -10, -16))

    @staticmethod
    def _loss_top(runs: list[PlaygroundRun]) -> float:
        starts = [r.losses[0] for r in runs if r.losses and math.isfinite(r.losses[0])]
        return (max(starts) if starts else 4.5) + 0.3

    def _loss_ylim(self, runs: list[PlaygroundRun]) -> None:
        ax = self._axes[0]
        finite = [x for r in runs for x in r.losses if math.isfinite(x)]
        finite += [v for r in runs for _, v in r.val if math.isfinite(v)]
        top = self._loss_top(runs)
        bottom = min(finite) - 0.15 if finite else 0.0
        ax.set_ylim(max(bottom, 0.0), top)

    @staticmethod
    def _set_bars(bars: Any, values: list[float]) -> None:
        for i, bar in enumerate(bars):
            v = values[i] if i < len(values) else float("nan")
            ok = math.isfinite(v) and v > 0
            bar.set_height(v if ok else 1.0)
            bar.set_visible(ok)

    @staticmethod
    def _bar_ylim(ax: Any, series: list[list[float]]) -> None:
        """Log axis around the values; ticks at 1-2-5 within two decades, else at powers of ten only (minor log
        ticks are off: they cost more to draw than everything else)."""
        vals = [v for s in series for v in s if math.isfinite(v) and v > 0]
        lo, hi = (min(vals) / 2, max(vals) * 2) if vals else (0.1, 10.0)
        ax.set_ylim(lo, hi)
        if math.log10(hi / lo) <= 2.5:
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        else:
            ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
            ax.yaxis.set_major_formatter(LogFormatterSciNotation())
        ax.yaxis.set_minor_locator(NullLocator())

    # -- display

    @property
    def is_live(self) -> bool:
        return self._displayed if self.live is None else self.live

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self._displayed = True
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"Playground(preset={self.preset_name!r}, runs={len(self.runs)})"
