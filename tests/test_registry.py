"""The registry is the one home of the variants and named runs: a fifth variant (one class + one `register` line)
appears in the config's validation, `compare`'s run list, the playground's dropdown, the race and the figures.

The throwaway variant below is "pre-LN plus a norm on each sublayer's output" (sandwich), written as a variant
file would write it; the fixture registers it for one test and removes it again.
"""

from __future__ import annotations

import pytest
from torch import Tensor, nn

from minigpt import ModelConfig, build_model, get_preset, plots
from minigpt import experiments as E
from minigpt.__main__ import build_parser
from minigpt.compare import run_compare
from minigpt.config import VARIANT_NAMES, ConfigError
from minigpt.layers import MLP, CausalSelfAttention, GPTBase, make_norm
from minigpt.registry import RUNS, STYLES, VARIANTS, register, unregister

# ---------------------------------------------------------------- the throwaway variant: "one new module"


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias)
        self.attn = CausalSelfAttention(config)
        self.post_attn_norm = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias)
        self.ln_2 = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias)
        self.mlp = MLP(config)
        self.post_ffn_norm = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias)

    def forward(self, x: Tensor) -> Tensor:
        # x' = x + N(Attn(N(x)))
        x = x + self.post_attn_norm(self.attn(self.ln_1(x)))
        # x_{l+1} = x' + N(FFN(N(x')))
        return x + self.post_ffn_norm(self.mlp(self.ln_2(x)))


class SandwichGPT(GPTBase):
    Block = Block
    final_norm = True


SCHEMATIC = dict(title="sandwich: $x' = x + N(\\mathrm{Attn}(N(x)))$",
                 subs=[(["N", "Attn", "N"], "+", []), (["N", "FFN", "N"], "+", [])], final="N (final, once)")
TINY = dict(n_layer=1, n_embd=32, n_head=2, block_size=32, batch_size=4, eval_batches=1, progress=False)


@pytest.fixture
def fifth_variant():
    # ------------------------------------------------------------------------ "one registry line"
    register("sandwich_gpt", SandwichGPT, display="Sandwich", color="tab:brown", schematic=SCHEMATIC)
    try:
        yield "sandwich_gpt"
    finally:
        unregister("sandwich_gpt")
    assert "sandwich_gpt" not in VARIANTS and "sandwich_gpt" not in RUNS and "sandwich_gpt" not in STYLES


def test_registry_holds_the_four_variants_and_compares_five_runs():
    assert list(VARIANT_NAMES) == ["post_ln", "pre_ln", "normformer", "ngpt"]
    assert list(RUNS) == ["post_ln", "pre_ln", "normformer", "ngpt-lerp", "ngpt-slerp"]
    assert {run.variant for run in RUNS.values()} == set(VARIANTS)
    assert RUNS["ngpt-slerp"].overrides == {"ngpt_update": "slerp"}
    with pytest.raises(ValueError, match="already registered"):
        register("pre_ln", SandwichGPT, display="x", color="k")


def test_a_fifth_variant_is_validated_built_and_configured(fifth_variant):
    model = build_model(ModelConfig(variant=fifth_variant, vocab_size=84, block_size=16, n_layer=1, n_embd=32,
                                    n_head=2))
    assert isinstance(model, SandwichGPT)
    model_cfg, train_cfg = get_preset("cpu-tiny").configs(fifth_variant)
    assert model_cfg.variant == fifth_variant and train_cfg.weight_decay == 0.1  # no recipe: the preset's own
    with pytest.raises(ConfigError, match="sandwich_gpt"):  # the error lists it among the valid names
        ModelConfig(variant="sandwich_gtp")


def test_a_fifth_variant_appears_in_compare(fifth_variant, tmp_path, capsys):
    parsers = build_parser()[1]
    assert fifth_variant in parsers["compare"].format_help()  # `--variants` lists it
    res = run_compare("cpu-tiny", overrides={**TINY, "steps": 2}, labels=[fifth_variant, "pre_ln"],
                      out_dir=tmp_path / "cmp")
    assert [row.label for row in res.rows] == [fifth_variant, "pre_ln"]
    assert res.results[fifth_variant].model.__class__ is SandwichGPT
    assert res.results[fifth_variant].step == 2


def test_a_fifth_variant_appears_in_the_playground(fifth_variant):
    pytest.importorskip("ipywidgets")
    from minigpt.widgets import Playground

    pg = Playground("cpu-tiny", background=False, live=False, block_size=32, batch_size=4, n_embd=32, n_head=2,
                    n_layer=1)
    assert fifth_variant in pg.preset_dropdown.options
    pg.preset_dropdown.value = fifth_variant  # a whole model, not a placement: the norm boxes grey out
    assert all(box.disabled for box in pg.checkboxes.values())
    run = pg.run(steps=2)
    assert run.model_run == fifth_variant and isinstance(run.model, SandwichGPT) and run.step == 2


def test_a_fifth_variant_runs_in_the_race_and_the_figures(fifth_variant):
    race = E.race("cpu-tiny", steps=2, eval_interval=1, **TINY)
    assert list(race.runs) == ["post_ln", "pre_ln", "normformer", "ngpt", fifth_variant]
    fig = plots.plot_race(race)
    labels = [text.get_text() for ax in fig.axes if ax.get_legend() for text in ax.get_legend().get_texts()]
    assert any(label.startswith("Sandwich") for label in labels)  # its registered display name
    lines = [line for ax in fig.axes for line in ax.get_lines() if line.get_label().startswith("Sandwich")]
    assert lines and all(line.get_color() == "tab:brown" for line in lines)  # its registered colour
    blocks = plots.plot_blocks()  # every registered schematic, the fifth included
    assert len(blocks.axes) == 5 and blocks.axes[-1].get_title().startswith("sandwich:")
