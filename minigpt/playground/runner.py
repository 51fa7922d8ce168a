"""The playground's runner: one training run (`PlaygroundRun`), the hook that follows the trainer, and `run()`,
what the Train button calls. Part of minigpt/playground (overview in its __init__.py)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import hsv_to_rgb, to_hex
from torch import nn

from .. import build_model
from ..config import NORMS, ConfigError
from ..diagnostics import layer_grad_norms, residual_norms
from ..placement import PLACEMENT_PRESETS, Placement, PlacementGPT
from ..registry import RUNS
from ..registry import color as registry_color
from ..train import (
    StopTraining,
    TrainingInterrupted,
    TrainResult,
    evaluate,
    resolve_device,
    resolve_dtype,
    train,
)
from ..train_parts import final_train_loss
from .controls import DEFAULT_STEPS, lr_digits, lr_text, model_runs


@dataclass(eq=False)  # a run is equal only to itself (it holds a model)
class PlaygroundRun:
    """One training run of the playground, kept so that runs can be compared on the same figure.

    `losses[i]` is the train loss of step i + 1 (applied updates only); `val` holds (step, val_loss) pairs,
    step 0 being the model at init. `grad_norms` are ||dL/dW||_F of each block's four weight matrices at the
    latest recorded step (`grad_norms_step`), `grad_norms_init` the same at step 1; `residual_norms` the mean
    ||x_l|| of the residual stream entering block 0 and leaving each block (L + 1 numbers, latest).
    """

    label: str  # "#3 pre_ln, lr 4.5e-3, warmup 20" (`Runner._relabel`): unique among the runs shown
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
    number: int = 0  # the playground's run counter: "#3" in the legend and the status line
    color: str = "C0"  # never the colour of another run on the figure (`Runner._free_color`)
    lr_digits: int = 2  # significant digits of the LR in the label: enough to tell it from every other run's
    residual_norms_step: int = 0  # the step `residual_norms` was measured at

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
        return final_train_loss(self.losses)

    @property
    def final_val_loss(self) -> float:
        return self.val[-1][1] if self.val else float("nan")

    @property
    def block_grad_norms(self) -> list[float]:
        """Per layer, the gradient norm of the block's four weight matrices together: sqrt(sum of squares)."""
        return _block_total(self.grad_norms)

    def summary(self) -> str:
        """One line: how the run ended and its numbers (those it has: a run stopped before its first step has
        none to show)."""
        if self.diverged:
            end = f"DIVERGED at step {self.diverged_step}"
        elif self.stopped:  # the label of a stopped run says where ("..., stopped at 37")
            end = "" if self.step else "stopped before the first step, nothing trained"
        else:  # the label names the steps unless they are the default
            end = _plural(self.step, "step") if self.steps == DEFAULT_STEPS else "done"
        parts = [end] if end else []
        if self.losses:
            parts.append(f"loss {self.initial_loss:.3f} -> {self.final_loss:.3f}")
        if self.step and self.val:
            parts.append(f"val {self.final_val_loss:.3f}")
        if math.isfinite(self.tokens_per_s):
            parts.append(f"{self.tokens_per_s:,.0f} tok/s")
        parts.append(f"{self.seconds:.1f} s")
        return f"{self.label}: {', '.join(parts)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class PlaygroundBusy(RuntimeError):
    """`run()` while the Train button's run is in progress. Notebooks show it as one line, not a traceback:
    it is a refusal with a remedy, like every input error of the project (IPython's `_render_traceback_`)."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31merror: {self}\x1b[0m"]


def _block_total(norms: dict[str, list[float]]) -> list[float]:
    if not norms:
        return []
    per_layer = zip(*norms.values(), strict=True)
    return [math.sqrt(sum(g * g for g in gs)) for gs in per_layer]


class _LiveHook:
    """Follows the trainer. As a gradient hook (`on_step`, after backward, before clipping and the update, so at
    step s the weights are those after s - 1 updates) it reads what the trainer does not compute: per-layer
    gradient norms and residual-stream norms, every `diag_every` steps, and raises StopTraining when Stop was
    pressed. The trainer's published step records (`on_record`) and evaluations (`on_eval`) give the losses,
    its divergence decision, the speed and the val curve; this moves the progress bar and redraws the figure."""

    def __init__(self, pg: Any, run: PlaygroundRun, model: nn.Module, probe: torch.Tensor) -> None:
        self.pg, self.run, self.model, self.probe = pg, run, model, probe
        self.records: list[dict[str, Any]] = []
        self._last_ui = 0.0
        self._last_draw = time.perf_counter()  # the figure was just drawn by `run`
        self._draw_s = 0.0  # how long the last redraw took

    def on_step(self, model: nn.Module, step: int, loss: float) -> None:
        if self.pg._stop.is_set():
            raise StopTraining  # the trainer keeps the steps done and returns; this step is not applied
        run = self.run
        # The gradient norms every step (a few microseconds a matrix), so that a diverged run shows its last
        # finite step, not the last snapshot; the residual norms (a forward pass) every `diag_every` steps.
        norms = layer_grad_norms(model)
        if step == 1:
            run.grad_norms_init = norms
        if all(math.isfinite(g) for gs in norms.values() for g in gs):
            run.grad_norms, run.grad_norms_step = norms, step
        if step == 1 or step % self.pg.diag_every == 0 or step == run.steps:
            run.residual_norms, run.residual_norms_step = residual_norms(model, self.probe), step

    def on_record(self, record: dict[str, Any]) -> None:
        run, step = self.run, record["step"]
        loss = record["loss"] if record["loss"] is not None else float("nan")
        bad = bool(record.get("diverged"))
        if bad:  # the trainer refused this update and stops; the figure shows where, and the stream that blew up
            run.diverged_step, run.diverged_loss = step, loss
            run.residual_norms, run.residual_norms_step = residual_norms(self.model, self.probe), step
        else:
            self.records.append(record)
            run.losses.append(loss)
            timed = self.records[1:] or self.records  # the first step pays one-off costs, as in TrainResult
            rates = [r["tokens_per_s"] for r in timed[-20:] if r.get("tokens_per_s")]
            if rates:  # tokens over time: the harmonic mean of the per-step rates
                run.tokens_per_s = len(rates) / sum(1.0 / r for r in rates)
        now = time.perf_counter()
        if now - self._last_ui >= self.pg.ui_interval or bad:
            self.pg._show_progress(run, step, loss)
            self._last_ui = now
        # redraw at most every draw_interval seconds, and never spend more than ~1/6 of the time drawing
        if self.pg.is_live and (now - self._last_draw >= max(self.pg.draw_interval, 5 * self._draw_s) or bad):
            self.pg._draw(full=False)
            self._last_draw = time.perf_counter()
            self._draw_s = self._last_draw - now

    def on_eval(self, step: int, val_loss: float) -> None:
        self.run.val.append((step, val_loss))


class Runner:
    """The training half of `Playground` (a mixin: the state it uses is set up by `Playground.__init__`)."""

    def data(self) -> tuple[Any, Any]:
        """(tokenizer, batches) every run of this playground trains on (loaded once, on first use)."""
        if self._data is None:
            from ..data import load_data

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
        `runs`. Every argument left out takes its control's current value, except that a placement given by
        name trains at that name's peak LR and warmup unless told otherwise (what choosing it in the dropdown
        sets: `run("ngpt-lerp")` is nGPT with nGPT's LR, not with the LR the slider was left at).

        `placement`: a Placement, a placement preset name (`post_ln`, `pre_ln`, `normformer`, `sandwich`,
        `none`) or `ngpt-lerp` / `ngpt-slerp`. `norm` applies to a preset name (a Placement carries its own).
        A diverging run stops and is returned with `diverged=True`; Stop returns the partial run, `stopped=True`
        (Stop can only act on a run the Train button started in the background: while a cell is busy in `run`,
        the kernel processes no button clicks).
        """
        if isinstance(placement, str) and (placement in PLACEMENT_PRESETS or placement in model_runs()):
            lr_default, warmup_default = self.recipe(placement)
        else:
            lr_default, warmup_default = self.lr_slider.value, self.warmup.value
        placement = self.placement_from_controls() if placement is None else placement
        steps = self.steps.value if steps is None else steps
        lr = lr_default if lr is None else lr
        warmup = warmup_default if warmup is None else warmup
        seed = self.seed.value if seed is None else seed
        n_layer = self.depth.value if n_layer is None else n_layer
        if norm is None:  # the norm box says "none" while a whole model (nGPT) is chosen
            norm = self.norm_dropdown.value if self.norm_dropdown.value in NORMS else NORMS[0]

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
                        "n_layer": n_layer, "eval_interval": max(steps // 6, 1), "eval_batches": self.eval_batches,
                        "progress": False, "compile": False, **extra})
        tokenizer, batches = self.data()
        model_cfg = dataclasses.replace(model_cfg, vocab_size=tokenizer.vocab_size)
        if not self._busy.acquire(blocking=False):
            busy = self.current
            where = f" (run #{busy.number}, step {busy.step}/{busy.steps})" if busy is not None else ""
            raise PlaygroundBusy(f"the playground is training{where}: press Stop or wait for the run to end, "
                                 "then run this again")
        try:
            self.run_count += 1
            run = PlaygroundRun(label="", placement=placement, model_run=model_run, lr=lr, warmup=warmup,
                                steps=steps, seed=seed, n_layer=n_layer, number=self.run_count)
            run.color = self._free_color(run)
            self._relabel(run)
            label = run.label
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
            # the model at init: the trainer evaluates after steps, this is the curve's step 0
            run.val.append((0, evaluate(model.to(device), val_batches, device, resolve_dtype(train_cfg.dtype, device))))
            hook = _LiveHook(self, run, model, val_batches[0][0][:4])
            t0 = time.perf_counter()
            try:
                result = train(model_cfg, train_cfg, hooks=[hook], batches=batches, tokenizer=tokenizer,
                               model=model, label=label, on_step=hook.on_record, on_eval=hook.on_eval)
            except TrainingInterrupted as e:  # Ctrl-C: keep what was trained, then let it propagate
                run.stopped = True
                self._finish(run, e.result, t0)
                raise
            run.stopped = result.stopped  # Stop: the hook raised StopTraining, the trainer returned
            self._finish(run, result, t0)
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

    def _finish(self, run: PlaygroundRun, result: TrainResult, t0: float) -> None:
        run.seconds = time.perf_counter() - t0
        run.result = result
        run.losses = list(result.losses)
        run.val = [run.val[0], *result.val] if run.val and run.val[0][0] == 0 else list(result.val)
        run.diverged, run.diverged_step = result.diverged, result.diverged_step
        if not run.diverged:
            run.diverged_loss, run.diverged_step = None, None
        if not math.isfinite(run.tokens_per_s):
            run.tokens_per_s = result.tokens_per_s
        run.message = result.message or ("stopped by the user" if run.stopped else "")
        if run.stopped and run.step:
            run.label = self._label(run)  # "..., stopped at 37"
        kept = run.step > 0 or run.diverged  # a run stopped before its first step has nothing to show
        if kept:
            self.runs.append(run)
        self.progress.value = run.step
        self.progress.bar_style = "danger" if run.diverged else ("warning" if run.stopped else "success")
        color = "red" if run.diverged else ("darkorange" if run.stopped else "green")
        note = f" — {run.message}" if run.diverged else ("" if kept else " (not kept on the figure)")
        self._final_status = (run.summary() + note, color)

    def _shown(self) -> list[PlaygroundRun]:
        """The runs on the figure: those kept and the one training."""
        return [*self.runs, *([self.current] if self.current is not None and self.current not in self.runs else [])]

    def _free_color(self, run: PlaygroundRun) -> str:
        """The run's variant colour from the registry (pre_ln blue, ngpt-lerp orange, as in every figure) if no
        run on the figure has it, else the first colour of `_palette` that none has: a colour is never reused
        while a run with it is shown."""
        used = {to_hex(r.color) for r in self._shown()}
        preferred = registry_color(run.model_run if run.placement is None else run.placement.describe())
        candidates = itertools.chain([preferred] if preferred else [], _palette())
        return next(c for c in map(to_hex, candidates) if c not in used)

    def _relabel(self, run: PlaygroundRun) -> None:
        """Label `run` with as many LR digits as tell it from the other runs shown, and give those that now
        read like it more digits too (a label only ever gains digits; its run number never changes)."""
        shown = [r for r in self._shown() if r is not run] + [run]
        for r in shown:
            digits = lr_digits(r.lr, [o.lr for o in shown])
            if r is run or digits > r.lr_digits:
                r.lr_digits = digits
                r.label = self._label(r)

    def _label(self, run: PlaygroundRun) -> str:
        """The legend entry, short and unique: the run number, the placement (preset name or the flags that are
        on), LR and warmup, then what differs from the controls' defaults (norm, depth, seed, steps) and
        whether the user stopped it."""
        p = run.placement
        name = run.model_run if p is None else p.describe()
        parts = [f"#{run.number} {name}", f"lr {lr_text(run.lr, run.lr_digits)}",
                 f"warmup {run.warmup}" if run.warmup else "no warmup"]
        if p is not None and p.norm != NORMS[0]:
            parts.append(p.norm)
        if run.n_layer != self.base_n_layer:
            parts.append(f"L{run.n_layer}")
        if run.seed != self.base_seed:
            parts.append(f"seed {run.seed}")
        if run.steps != DEFAULT_STEPS:
            parts.append(_plural(run.steps, "step"))
        if run.stopped:
            parts.append(f"stopped at {run.step}")
        return ", ".join(parts)


def _palette() -> Iterator[str]:
    """Distinct colours without end: tab10, then tab20's light shades, then hues a golden angle apart."""
    yield from colormaps["tab10"].colors
    yield from colormaps["tab20"].colors[1::2]
    for k in itertools.count():
        yield hsv_to_rgb(((k * 0.618034) % 1.0, 0.75 if k % 2 else 0.5, 0.85 if k % 3 else 0.6))
