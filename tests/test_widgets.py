"""The playground widget, driven headless: set control values, click the buttons, check the recorded runs."""

from __future__ import annotations

import math
import time

import pytest

pytest.importorskip("ipywidgets")

from minigpt.config import ConfigError  # noqa: E402
from minigpt.placement import PLACEMENT_PRESETS, Placement  # noqa: E402
from minigpt.widgets import Playground, dropdown_choices, model_runs  # noqa: E402

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
    pg = small()
    for name in model_runs():
        pg.preset_dropdown.value = name
        assert all(b.disabled for b in pg.checkboxes.values()) and pg.norm_dropdown.disabled
        assert pg.placement_from_controls() == name
    pg.preset_dropdown.value = "post_ln"
    assert not any(b.disabled for b in pg.checkboxes.values()) and not pg.norm_dropdown.disabled


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
    assert run.label.startswith("post_attn_resid+post_ffn_resid+final_norm, lr 2e-03, warmup 2")
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
    assert len(pg.runs) == 2 and pg.runs[1].label.startswith("ngpt-lerp")
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
    texts = [t.get_text() for t in pg._axes[0].texts]
    assert any(t.startswith(f"diverged at step {run.diverged_step}") for t in texts)


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
