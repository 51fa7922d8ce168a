"""The playground's controls: the placement dropdown and checkboxes, the sliders, the buttons and the status
line. Part of minigpt/playground (overview in its __init__.py)."""

from __future__ import annotations

import threading
import traceback
from typing import TYPE_CHECKING, Any

from ..config import NORMS
from ..placement import PLACEMENT_PRESETS, Placement
from ..registry import RUNS, VARIANTS, Run, display_name

if TYPE_CHECKING:
    from .runner import PlaygroundRun


def model_runs() -> dict[str, Run]:
    """The registered runs the playground trains as whole models: those of a variant with no placement preset
    (nGPT: it has no norm layers to tick). The other variants are placements of `PlacementGPT`."""
    return {label: run for label, run in RUNS.items() if run.variant not in PLACEMENT_PRESETS}


def recipe_variant(name: str) -> str:
    """The variant whose preset LR and training recipe (warmup, weight decay) a dropdown choice trains with: a
    whole-model run's own variant, a placement named like a variant that variant (post_ln, pre_ln, normformer),
    any other placement pre-LN's (sandwich, no norm and custom placements are pre-LN's block with norms added
    or removed)."""
    if name in model_runs():
        return RUNS[name].variant
    return name if name in VARIANTS else "pre_ln"


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


# What a whole-model run does instead of norm layers, shown in place of the (unticked, greyed-out) checkboxes.
OWN_NORMS = {
    "ngpt": "no norm layer anywhere. Instead Norm(v) = v/‖v‖₂ puts the hidden state h back on the unit sphere "
            "after every residual step (LERP or SLERP, step sizes α), normalizes q and k (scaled by s_qk) and "
            "the attention and MLP outputs, and every weight vector is renormalized after each optimizer step; "
            "learned scales s_u, s_ν, s_z replace the norms' gains.",
}

DEFAULT_STEPS = 150
# What `Playground()` adds to the CPU preset it picks: half of cpu-tiny's batch, so that a default run (150 steps,
# cpu-tiny's shape L4 / d128 / T128) takes 16-18 s on 2 idle cores instead of 28 s, and every lesson of notebook
# 04 still shows (measured with seeds 1337, 1, 2: post-LN without warmup still stalls at the unigram entropy).
CPU_DEFAULTS: dict[str, dict[str, Any]] = {"cpu-tiny": {"batch_size": 4}}


def lr_text(lr: float, digits: int) -> str:
    """The LR with `digits` significant digits and a short exponent: 4.5e-3."""
    mantissa, exponent = f"{lr:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def lr_digits(lr: float, others: list[float]) -> int:
    """The fewest significant digits (at least 2) at which `lr` reads differently from every other LR in
    `others` (equal LRs excepted): 4.0e-3 and 4.5e-3 need 2, 4.0e-3 and 4.04e-3 need 3."""
    digits = 2
    while digits < 12 and any(o != lr and lr_text(o, digits) == lr_text(lr, digits) for o in others):
        digits += 1
    return digits


FLAGS_TITLE = "<b>norm positions</b> (N = the chosen norm)"


class Controls:
    """The widgets half of `Playground` (a mixin: the state it uses is set up by `Playground.__init__`)."""

    def _build_controls(self, base_train: Any) -> None:
        import ipywidgets as W

        # Fixed widths that fit their text (the readout "4.0e-03", the longest checkbox label); the two columns
        # wrap under each other in a narrow notebook (1024 px with the file browser open) instead of cutting it.
        short = W.Layout(width="290px", min_width="290px")
        self.preset_dropdown = W.Dropdown(options=list(dropdown_choices()), value="pre_ln", description="placement",
                                          layout=short)
        self.checkboxes = {
            name: W.Checkbox(value=False, description=f"{name}: {FLAG_HELP[name]}", indent=False,
                             layout=W.Layout(width="auto"))
            for name in FLAG_HELP
        }
        self.norm_dropdown = W.Dropdown(options=list(NORMS), value="layernorm", description="norm", layout=short)
        self.depth = W.IntSlider(value=self.base_n_layer, min=1, max=12, description="layers", layout=short)
        # A fine step and no continuous update: the front end snaps a value set here to its step grid and, with
        # continuous_update, writes the snapped value back (nGPT's 8e-3 became 10^-2.1 = 7.9e-3); so a preset's
        # LR stays exact, and the readout shows it to within 0.2%.
        self.lr_slider = W.FloatLogSlider(value=base_train.lr, base=10, min=-4, max=-0.5, step=0.001,
                                          continuous_update=False, description="peak LR", readout_format=".1e",
                                          layout=short)
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
        self.flags_title = W.HTML(FLAGS_TITLE, layout=W.Layout(width="auto"))
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
        flags = W.VBox([self.flags_title, *boxes], layout=W.Layout(min_width="300px", flex="1 1 300px"))
        settings = W.VBox([self.preset_dropdown, self.norm_dropdown, self.depth, self.lr_slider, self.warmup,
                           self.steps, self.seed], layout=W.Layout(min_width="300px"))
        buttons = W.HBox([self.train_button, self.stop_button, self.clear_button])
        top = W.HBox([settings, flags], layout=W.Layout(flex_flow="row wrap"))
        self.widget = W.VBox([top, buttons, W.HBox([self.progress]), self.status, self.image, self.log])

    def _apply_preset(self, name: str) -> None:
        """Set every control a dropdown choice implies: the boxes from a named placement (or all unticked and
        greyed out for a whole model such as nGPT, which has no norm layers, with what it does instead), and the
        peak LR and warmup of the preset's recipe for the variant (`Preset.configs`: its swept LR, and e.g.
        nGPT's no warmup), so that no run is handicapped by another variant's settings. `custom` keeps them."""
        whole_model = name in model_runs()
        self._syncing = True
        try:
            for box in self.checkboxes.values():
                box.disabled = whole_model
            self.norm_dropdown.disabled = whole_model
            if whole_model:
                self.norm_dropdown.options = [(f"none ({display_name(name)})", "none")]
                own = OWN_NORMS.get(RUNS[name].variant, "no norm layers to place: it is its own model.")
                self.flags_title.value = f"<b>norm positions</b>: none. {display_name(name)} has {own}"
            elif self.norm_dropdown.value == "none":  # back from a whole model: the norms again
                self.norm_dropdown.options = list(NORMS)
                self.norm_dropdown.value = NORMS[0]
                self.flags_title.value = FLAGS_TITLE
            if name == "custom":  # the boxes as they are, the LR and warmup as set
                return
            flags = PLACEMENT_PRESETS[name].flags() if name in PLACEMENT_PRESETS else dict.fromkeys(FLAG_HELP, False)
            for flag, value in flags.items():
                self.checkboxes[flag].value = value
            self.lr_slider.value, self.warmup.value = self.recipe(name)
        finally:
            self._syncing = False

    def recipe(self, name: str) -> tuple[float, int]:
        """(peak LR, warmup steps) a dropdown choice trains with: the preset's values for its variant
        (`recipe_variant`), with the playground's overrides on top."""
        _, train_cfg = self.preset.configs(recipe_variant(name), **self.overrides)
        return train_cfg.lr, train_cfg.warmup_steps

    def _on_preset(self, change: dict) -> None:
        self._apply_preset(change["new"])
        name = change["new"]
        if name != "custom" and not self._busy.locked():  # say what changed (a run in progress owns the line)
            self._set_status(f"{name}: peak LR {lr_text(self.lr_slider.value, 2)}, warmup {self.warmup.value} "
                             f"({self.preset_name}'s values for {display_name(recipe_variant(name))})", "black")

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
