"""The playground's runner: one training run (`PlaygroundRun`), the hook that follows the trainer, and `run()`,
what the Train button calls. Part of minigpt/playground (overview in its __init__.py)."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import build_model
from ..config import ConfigError
from ..diagnostics import layer_grad_norms, residual_norms
from ..placement import PLACEMENT_PRESETS, Placement, PlacementGPT
from ..registry import RUNS
from ..train import (
    StopTraining,
    TrainingInterrupted,
    TrainResult,
    evaluate,
    resolve_device,
    resolve_dtype,
    train,
)
from .controls import model_runs


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
        if step == 1 or step % self.pg.diag_every == 0 or step == run.steps:
            norms = layer_grad_norms(model)
            if step == 1:
                run.grad_norms_init = norms
            if all(math.isfinite(g) for gs in norms.values() for g in gs):
                run.grad_norms, run.grad_norms_step = norms, step
            run.residual_norms = residual_norms(model, self.probe)

    def on_record(self, record: dict[str, Any]) -> None:
        run, step = self.run, record["step"]
        loss = record["loss"] if record["loss"] is not None else float("nan")
        bad = bool(record.get("diverged"))
        if bad:  # the trainer refused this update and stops; the figure shows where, and the stream that blew up
            run.diverged_step, run.diverged_loss = step, loss
            run.residual_norms = residual_norms(self.model, self.probe)
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
                        "n_layer": n_layer, "eval_interval": max(steps // 6, 1), "eval_batches": self.eval_batches,
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
