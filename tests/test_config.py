"""Bad configuration values fail at construction with a message naming the field and what is allowed."""

from __future__ import annotations

import pytest

from minigpt import PRESETS, ModelConfig, TrainConfig, build_model, get_preset
from minigpt.config import ConfigError, apply_overrides


@pytest.mark.parametrize("field,value,allowed", [
    ("variant", "preln", "post_ln, pre_ln, normformer, ngpt"),
    ("norm", "batchnorm", "layernorm, rmsnorm"),
    ("mlp", "relu", "gelu, swiglu"),
    ("position", "alibi", "learned, rope"),
    ("ngpt_update", "nlerp", "lerp, slerp"),
])
def test_unknown_choice_lists_valid_names(field, value, allowed):
    with pytest.raises(ConfigError, match=f"{field}='{value}'.*{allowed}"):
        ModelConfig(**{field: value})


@pytest.mark.parametrize("field,value,allowed", [
    ("tokenizer", "bpe", "char, gpt2"), ("device", "tpu", "auto, cpu, cuda, mps"), ("on_nan", "ignore", "stop, skip"),
])
def test_unknown_train_choice_lists_valid_names(field, value, allowed):
    with pytest.raises(ConfigError, match=f"{field}='{value}'.*{allowed}"):
        TrainConfig(**{field: value})


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ConfigError, match="preset='cpu-huge' is not valid; choose one of " + ", ".join(PRESETS)):
        get_preset("cpu-huge")
    with pytest.raises(ConfigError, match="variant='bogus'.*post_ln, pre_ln, normformer, ngpt"):
        get_preset("cpu-tiny").configs("bogus")


def test_close_names_are_suggested():
    with pytest.raises(ConfigError, match="did you mean 'pre_ln'"):
        ModelConfig(variant="pre-ln")
    with pytest.raises(ConfigError, match="did you mean 'n_layer'"):
        apply_overrides(ModelConfig(), TrainConfig(), {"n_layers": 3})
    with pytest.raises(ConfigError, match="preset='cpu-tiniest'.*cpu-tiny"):
        get_preset("cpu-tiniest")


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_embd=100, n_head=3), "n_embd=100 is not divisible by n_head=3"),
    (dict(n_head=4, n_kv_head=3), "n_head=4 is not divisible by n_kv_head=3"),
    (dict(n_embd=12, n_head=4, position="rope"), "head dimension .* = 3 is odd"),
    (dict(n_embd=12, n_head=4, variant="ngpt"), "implied by variant=ngpt"),
    (dict(n_layer=0), "n_layer=0 .* integer >= 1"),
    (dict(n_embd=0), "n_embd=0 .* integer >= 1"),
    (dict(n_head=0), "n_head=0 .* integer >= 1"),
    (dict(n_kv_head=0), "n_kv_head=0 .* integer >= 1"),
    (dict(vocab_size=-1), "vocab_size=-1 .* integer >= 1"),
    (dict(block_size=-8), "block_size=-8"),
    (dict(vocab_size=2.5), "vocab_size=2.5"),
    (dict(dropout=1.0), r"dropout=1.0 .* \[0, 1\)"),
    (dict(dropout=-0.1), "dropout=-0.1"),
    (dict(dropout="0.1"), r"dropout='0.1' .* \[0, 1\)"),  # a string from a hand-written dict: not a TypeError
    (dict(dropout=float("nan")), "dropout=nan"),
    (dict(z_loss=-1e-4), "z_loss"),
    (dict(ngpt_alpha_init=0.0), "ngpt_alpha_init=0.0"),
])
def test_invalid_model_shapes(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=0), "steps=0"), (dict(batch_size=-1), "batch_size=-1"), (dict(lr=0.0), "lr=0.0"),
    (dict(lr=float("nan")), "lr=nan"), (dict(warmup_steps=-1), "warmup_steps=-1"),
    (dict(beta2=1.0), "beta2=1.0"), (dict(min_lr_ratio=2.0), "min_lr_ratio=2.0"),
    (dict(steps=-5), "steps=-5 .* integer >= 1"), (dict(batch_size=0), "batch_size=0 .* integer >= 1"),
    (dict(grad_accum=0), "grad_accum=0"), (dict(steps=2.5), "steps=2.5"),
    (dict(lr=-1e-3), r"lr=-0.001 .* finite number > 0"), (dict(lr=float("inf")), "lr=inf"),
    (dict(min_lr_ratio="0.1"), r"min_lr_ratio='0.1' .* \[0, 1\]"), (dict(beta1=None), "beta1=None"),
])
def test_invalid_train_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_valid_configs_pass_and_round_trip():
    for name, preset in PRESETS.items():
        for variant in ("post_ln", "pre_ln", "normformer", "ngpt"):
            m, t = preset.configs(variant)
            assert ModelConfig.from_dict(m.to_dict()) == m and TrainConfig.from_dict(t.to_dict()) == t, name
    with pytest.raises(ConfigError, match="unknown ModelConfig field"):
        ModelConfig.from_dict({"n_layers": 2})


def test_presets_give_every_variant_the_same_ingredients_and_ngpt_its_recipe():
    preset = get_preset("cpu-tiny")
    cfgs = {v: preset.configs(v) for v in ("post_ln", "pre_ln", "normformer", "ngpt")}
    for m, _ in cfgs.values():
        assert (m.position, m.mlp, m.bias) == ("rope", "swiglu", False)
    _, t = cfgs["ngpt"]
    assert t.weight_decay == 0.0 and t.warmup_steps == 0
    assert {v: t.lr for v, (_, t) in cfgs.items()} == preset.lr


def test_swiglu_hidden_is_8_3_d_rounded_up_to_64():
    assert ModelConfig(n_embd=128, mlp="swiglu").mlp_hidden == 384  # 341.3 -> 384
    assert ModelConfig(n_embd=192, mlp="swiglu").mlp_hidden == 512  # 512 exactly
    assert ModelConfig(n_embd=128, mlp="gelu").mlp_hidden == 512


def test_build_model_uses_the_registry():
    m = build_model(ModelConfig(variant="post_ln", n_layer=1, n_embd=32, n_head=2, block_size=16))
    assert type(m).__module__ == "minigpt.post_ln"
