"""The playground widget, driven headless: set control values, click the buttons, check the recorded runs."""

from __future__ import annotations

import html
import math
import time

import pytest

pytest.importorskip("ipywidgets")

from matplotlib.colors import to_hex  # noqa: E402

from minigpt import registry  # noqa: E402
from minigpt.config import ConfigError, get_preset  # noqa: E402
from minigpt.placement import PLACEMENT_PRESETS, Placement  # noqa: E402
from minigpt.playground.runner import PlaygroundBusy  # noqa: E402
from minigpt.widgets import DEFAULT_STEPS, Playground, dropdown_choices, model_runs  # noqa: E402

# A model a few milliseconds per step: the widget's logic is under test here, not the science.
SMALL = dict(block_size=32, batch_size=4, n_embd=32, n_head=2, n_layer=2)


def small(**kwargs) -> Playground:
    pg = Playground("cpu-tiny", **{"background": False, "live": False, **kwargs}, **SMALL)
    pg.steps.value = 6
    return pg


def test_preset_sets_boxes_and_a_flag_switches_to_custom():
    pg = small()
    assert pg.preset_dropdown.options == dropdown_choices()
    for name in ("post_ln", "normformer", "sandwich", "pre_ln"):
        pg.preset_dropdown.value = name
        assert {k: b.value for k, b in pg.checkboxes.items()} == PLACEMENT_PRESETS[name].flags()
        assert pg.preset_dropdown.value == name  # setting the boxes from a preset is not a custom edit
    pg.checkboxes["ffn_out"].value = True
    assert pg.preset_dropdown.value == "custom"
    assert pg.placement_from_controls() == Placement(pre_attn=True, pre_ffn=True, ffn_out=True, final_norm=True)
    pg.norm_dropdown.value = "rmsnorm"
    assert pg.placement_from_controls().norm == "rmsnorm"


def test_ngpt_presets_disable_the_norm_boxes():
    """nGPT has no norm layer: its boxes are unticked and greyed out, the norm box says none, and the title
    says what nGPT normalizes instead."""
    pg = small()
    for name in model_runs():
        pg.preset_dropdown.value = name
        assert all(b.disabled and not b.value for b in pg.checkboxes.values()) and pg.norm_dropdown.disabled
        assert pg.norm_dropdown.value == "none" and "unit sphere" in pg.flags_title.value
        assert pg.placement_from_controls() == name
    pg.preset_dropdown.value = "post_ln"
    assert not any(b.disabled for b in pg.checkboxes.values()) and not pg.norm_dropdown.disabled
    assert pg.norm_dropdown.value == "layernorm" and "unit sphere" not in pg.flags_title.value


def test_a_preset_sets_the_lr_and_warmup_of_its_variant():
    """Choosing a placement sets every control it implies, from the preset (its swept LR per variant) and the
    variant's own recipe (nGPT: no warmup): the values are read from there, not retyped here."""
    pg = small()
    preset = get_preset("cpu-tiny")
    for name, variant in (("ngpt-lerp", "ngpt"), ("post_ln", "post_ln"), ("ngpt-slerp", "ngpt"),
                          ("normformer", "normformer"), ("sandwich", "pre_ln"), ("pre_ln", "pre_ln")):
        pg.preset_dropdown.value = name
        _, train_cfg = preset.configs(variant, **SMALL)
        assert math.isclose(pg.lr_slider.value, preset.lr[variant]), name
        assert pg.warmup.value == train_cfg.warmup_steps, name
        assert name in pg.status.value  # said on the status line, not changed silently
    pg.preset_dropdown.value = "ngpt-lerp"
    assert pg.warmup.value == 0 and pg.lr_slider.value > preset.lr["pre_ln"]  # the handicap of issue 20
    pg.lr_slider.value = 1e-3
    pg.preset_dropdown.value = "custom"  # keeps the boxes and the LR the user set
    assert pg.lr_slider.value == 1e-3 and not any(b.disabled for b in pg.checkboxes.values())


def test_train_button_records_a_run_from_the_controls_and_clear_empties():
    pg = small(live=True)
    pg.preset_dropdown.value = "post_ln"
    pg.checkboxes["final_norm"].value = True  # custom: post-LN plus a final norm
    pg.lr_slider.value, pg.warmup.value, pg.seed.value, pg.depth.value = 2e-3, 2, 7, 3
    pg.train_button.click()
    assert len(pg.runs) == 1
    run = pg.runs[0]
    assert run.placement == Placement(post_attn_resid=True, post_ffn_resid=True, final_norm=True)
    assert (run.steps, run.warmup, run.seed, run.n_layer) == (6, 2, 7, 3)
    assert math.isclose(run.lr, 2e-3, rel_tol=1e-6)
    assert run.label == "#1 post_attn_resid+post_ffn_resid+final_norm, lr 2.0e-3, warmup 2, L3, seed 7, 6 steps"
    assert len(run.losses) == 6 and all(math.isfinite(x) for x in run.losses)
    assert not run.diverged and not run.stopped
    assert [s for s, _ in run.val] == [0, 1, 2, 3, 4, 5, 6]
    assert len(run.block_grad_norms) == 3 and len(run.residual_norms) == 4
    assert run.grad_norms_init and run.model is not None
    assert pg.progress.value == 6 and pg.progress.bar_style == "success"
    assert not pg.train_button.disabled and pg.stop_button.disabled
    assert bytes(pg.image.value[:4]) == b"\x89PNG"
    assert 2.0 < pg.unigram_entropy() < math.log(pg.data()[0].vocab_size)  # the dotted line on the loss plot

    pg.live = False  # the live redraw is covered above; keep the second run cheap
    pg.preset_dropdown.value = "ngpt-lerp"
    pg.train_button.click()
    assert len(pg.runs) == 2 and pg.runs[1].label.startswith("#2 ngpt-lerp, lr 8.0e-3, no warmup")
    # nGPT keeps every hidden state on the unit sphere
    assert all(abs(r - 1) < 1e-3 for r in pg.runs[1].residual_norms)

    pg.clear_button.click()
    assert pg.runs == [] and pg.progress.value == 0


def test_run_defaults_to_the_controls_and_rejects_bad_names():
    pg = small()
    pg.preset_dropdown.value = "sandwich"
    pg.steps.value = 3
    run = pg.run()
    assert run.placement == Placement.preset("sandwich") and run.step == 3 and pg.runs == [run]
    with pytest.raises(ConfigError, match="ngpt-lerp"):
        pg.run("pre-ln")


def test_no_norm_at_high_lr_is_flagged_diverged_not_raised():
    """The lesson of the empty placement: without any norm a high LR blows the loss up. The run stops before
    the bad update, and the figure marks it."""
    pg = small()
    run = pg.run("none", lr=0.3, steps=30)
    assert run.diverged and run.diverged_step is not None and run.diverged_step <= 30
    assert len(run.losses) == run.diverged_step - 1  # the bad update was never applied
    assert pg.progress.bar_style == "danger" and "DIVERGED" in pg.status.value
    assert "checkpoint" not in run.message  # the playground has no checkpoints to suggest
    texts = [t.get_text() for t in pg._axes[0].texts]
    assert any(t.startswith(f"diverged at step {run.diverged_step}") for t in texts)


def test_diverged_run_panels_show_the_last_finite_step_and_mark_inf_nan():
    pg = small()
    run = pg.run("none", lr=0.3, steps=30)
    assert run.diverged
    # the gradient bars are those of the last step with finite gradients: the diverged one or the one before,
    # not the last every-10-steps snapshot
    assert run.grad_norms_step in (run.diverged_step - 1, run.diverged_step) and run.grad_norms_step >= 1
    assert all(math.isfinite(g) for g in run.block_grad_norms)
    assert run.residual_norms_step == run.diverged_step  # the stream that blew up
    _, ax_grad, ax_res = pg._axes
    assert ax_grad.get_title() == f"gradient norm per block (step {run.grad_norms_step})"
    run.residual_norms[1:] = [float("inf"), float("nan")] + run.residual_norms[3:]  # a stream gone non-finite
    pg._draw(full=True)
    _, _, ax_res = pg._axes
    assert sorted(t.get_text() for t in ax_res.texts) == ["NaN", "inf"]
    hatched = [bar for bar in ax_res.patches if bar.get_hatch()]
    assert len(hatched) == 2 and all(bar.get_visible() and bar.get_height() > 1 for bar in hatched)


def _legend_texts(pg: Playground) -> list[str]:
    (legend,) = pg.figure.legends
    return [t.get_text() for t in legend.get_texts()]


def test_labels_are_unique_numbered_and_name_what_differs():
    """Close LRs get the digits that tell them apart (earlier labels gain them too), every run has a number,
    and the label names the norm, depth, seed and steps when they differ from the controls' defaults."""
    pg = small()
    a = pg.run("pre_ln", lr=4.0e-3, warmup=0)
    b = pg.run("pre_ln", lr=4.5e-3, warmup=0)
    assert a.label == "#1 pre_ln, lr 4.0e-3, no warmup, 6 steps"
    assert b.label == "#2 pre_ln, lr 4.5e-3, no warmup, 6 steps"
    c = pg.run("pre_ln", lr=4.04e-3, warmup=0)
    assert c.label.startswith("#3 pre_ln, lr 4.04e-3,") and a.label.startswith("#1 pre_ln, lr 4.00e-3,")
    assert b.label.startswith("#2 pre_ln, lr 4.5e-3,")  # already told apart: unchanged
    d = pg.run("post_ln", lr=1e-3, warmup=3, seed=2, n_layer=3, norm="rmsnorm", steps=DEFAULT_STEPS // 30)
    assert d.label == f"#4 post_ln, lr 1.0e-3, warmup 3, rmsnorm, L3, seed 2, {DEFAULT_STEPS // 30} steps"
    e = pg.run("pre_ln", lr=4.0e-3, warmup=0, steps=1)
    assert e.label.endswith(", 1 step") and e.summary().startswith(e.label + ": done, loss")
    assert "1 steps" not in e.summary()
    labels = [r.label for r in pg.runs]
    assert len(set(labels)) == len(labels) == 5
    pg._draw(full=True)
    assert [t for t in _legend_texts(pg) if t.startswith("#")] == labels


def test_default_steps_seed_and_depth_stay_out_of_the_label():
    pg = small()
    pg.steps.value = DEFAULT_STEPS
    run = pg.run("pre_ln", lr=5e-3, warmup=0)
    assert run.label == "#1 pre_ln, lr 5.0e-3, no warmup"
    assert run.summary().startswith(f"{run.label}: {DEFAULT_STEPS} steps, loss ")


def test_colours_are_never_shared_while_shown_and_the_legend_sits_below_the_plots():
    pg = small()
    pg.steps.value = 1
    runs = [pg.run("pre_ln", lr=1e-3 * (1 + i / 10), warmup=0) for i in range(13)]
    assert to_hex(runs[0].color) == to_hex(registry.color("pre_ln"))  # the variant's colour in every figure
    colours = [to_hex(r.color) for r in runs]
    assert len(set(colours)) == 13  # more than tab10's ten
    assert len({r.label for r in runs}) == 13
    # the legend (14 entries with the unigram line) is outside every axes: below them
    pg._draw(full=True)
    renderer = pg.figure.canvas.get_renderer()
    (legend,) = pg.figure.legends
    box = legend.get_window_extent(renderer)
    assert all(box.y1 <= ax.get_tightbbox(renderer).y0 + 1 for ax in pg._axes)
    assert len(_legend_texts(pg)) == 14
    # a colour frees up only when its run leaves the figure
    pg.runs.remove(runs[4])
    assert to_hex(pg.run("pre_ln", lr=9e-3, warmup=0).color) == colours[4]
    pg.clear_button.click()
    assert to_hex(pg.run("pre_ln", lr=9e-3, warmup=0).color) == colours[0]


def test_stop_before_the_first_step_keeps_nothing(monkeypatch):
    """Stop pressed as soon as it is enabled: no step was trained, so no empty run in the legend and no nan
    in the status line."""
    pg = small()
    set_buttons = pg._set_buttons

    def press_stop_when_enabled(running: bool) -> None:
        set_buttons(running)
        if running:
            pg.stop_button.click()

    monkeypatch.setattr(pg, "_set_buttons", press_stop_when_enabled)
    run = pg.run("pre_ln")
    assert run.stopped and run.step == 0 and pg.runs == []
    assert "stopped before the first step" in pg.status.value and "nan" not in pg.status.value.lower()
    assert "stopped at" not in run.label
    assert "not kept" in pg.status.value and _legend_texts(pg) == ["unigram entropy (token frequencies only)"]


def test_short_runs_have_integer_ticks_and_a_one_step_run_shows_a_point():
    pg = small()
    pg.run("pre_ln", steps=1)
    ax_loss = pg._axes[0]
    assert all(float(t).is_integer() for t in ax_loss.get_xticks())
    (train_line,) = [line for line in ax_loss.lines if len(line.get_xdata()) == 1 and line.get_linestyle() == "-"]
    assert train_line.get_marker() == "o"


def test_two_runs_diverging_at_the_same_step_are_marked_apart():
    pg = small()
    a = pg.run("none", lr=0.3, steps=30)
    b = pg.run("none", lr=0.3, steps=30)
    assert a.diverged_step == b.diverged_step
    ax = pg._axes[0]
    marks = [line.get_ydata()[0] for line in ax.lines if line.get_marker() == "X" and len(line.get_ydata())]
    bottom, top = ax.get_ylim()
    assert len(marks) == 2 and abs(marks[0] - marks[1]) > 0.05 * (top - bottom)


def test_run_during_a_run_is_a_one_line_refusal():
    pg = small()
    assert pg._busy.acquire(blocking=False)  # as while the Train button's thread trains
    try:
        with pytest.raises(PlaygroundBusy, match="press Stop or wait") as info:
            pg.run("pre_ln")
    finally:
        pg._busy.release()
    (line,) = info.value._render_traceback_()  # what IPython shows instead of a traceback
    assert "Traceback" not in line and "press Stop" in line


def test_describe_says_the_batch_it_trains_with():
    pg = Playground("cpu-tiny", background=False, live=False, batch_size=4)
    assert pg.describe() == "cpu-tiny: L4 d128 h4 T128, char tokens, batch 4"


def test_stop_button_ends_a_background_run():
    pg = small(background=True)
    pg.steps.value = 10_000
    pg.train_button.click()
    deadline = time.monotonic() + 30
    while pg.progress.value < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pg.stop_button.disabled is False and pg.train_button.disabled is True
    pg.stop_button.click()
    pg.wait(timeout=30)
    assert pg.last_error is None
    (run,) = pg.runs
    assert run.stopped and not run.diverged and 2 <= run.step < 10_000
    assert run.label.endswith(f", stopped at {run.step}") and run.summary().startswith(run.label + ": loss ")
    assert html.unescape(pg.status.value).count(run.label) == 1
    assert pg.progress.bar_style == "warning" and not pg.train_button.disabled


def test_live_redraw_starts_once_displayed():
    pg = Playground("cpu-tiny", background=False, **SMALL)
    assert not pg.is_live  # a headless script pays for no frames
    bundle = pg._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and pg.is_live


def test_default_playground_on_cpu_trains_cpu_tiny_at_batch_4(monkeypatch):
    """`Playground()` (what notebook 04 builds) adds CPU_DEFAULTS to cpu-tiny; a named preset is used as is."""
    import minigpt.widgets as widgets

    if widgets.default_preset_name() != "cpu-tiny":
        pytest.skip("the CPU default applies where cpu-tiny is the default preset")
    seen = []

    def spy(model_cfg, train_cfg, **kwargs):
        seen.append((model_cfg, train_cfg))
        return real_train(model_cfg, train_cfg, **kwargs)

    import minigpt.playground.runner as runner

    real_train = runner.train
    monkeypatch.setattr(runner, "train", spy)
    pg = Playground(background=False, live=False)
    run = pg.run("pre_ln", steps=2)
    model_cfg, train_cfg = seen[-1]
    assert train_cfg.batch_size == 4 == widgets.CPU_DEFAULTS["cpu-tiny"]["batch_size"]
    assert (model_cfg.n_layer, model_cfg.n_embd, model_cfg.block_size) == (4, 128, 128)  # cpu-tiny's shape
    assert len(run.losses) == 2
    assert Playground("cpu-tiny", background=False, live=False).overrides == {}
    assert Playground(background=False, live=False, batch_size=2).overrides == {"batch_size": 2}
