"""The playground block reproduces the readable variant files exactly (same names, same logits)."""

from __future__ import annotations

import pytest
import torch

from minigpt import build_model
from minigpt.config import ConfigError
from minigpt.placement import PLACEMENT_PRESETS, Placement, PlacementGPT

from .conftest import FAIR, tiny_config


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("block", [pytest.param({}, id="gpt2-block"), pytest.param(FAIR, id="fair-block")])
@pytest.mark.parametrize("variant", ["post_ln", "pre_ln", "normformer"])
def test_presets_reproduce_variant_files(variant, block, norm):
    cfg = tiny_config(variant, norm=norm, **block)
    torch.manual_seed(0)
    ref = build_model(cfg)
    with torch.no_grad():  # move every parameter off its init so that a misplaced norm cannot hide
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
    torch.manual_seed(1)
    pg = PlacementGPT(cfg, Placement.preset(variant, norm=norm))
    pg.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randint(0, 84, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, _ = ref(x)
        b, _ = pg(x)
    assert (a - b).abs().max() < 1e-6


def test_placements_differ_from_each_other():
    cfg = tiny_config("pre_ln", **FAIR)
    x = torch.randint(0, 84, (2, 32), generator=torch.Generator().manual_seed(0))
    outs = {}
    for name in PLACEMENT_PRESETS:
        torch.manual_seed(0)
        with torch.no_grad():
            outs[name] = PlacementGPT(cfg, Placement.preset(name))(x)[0]
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert (outs[a] - outs[b]).abs().max() > 1e-4, (a, b)


def test_no_norm_placement_has_no_norm_parameters_and_describe():
    pg = PlacementGPT(tiny_config("pre_ln", **FAIR), Placement.preset("none"))
    assert not any("norm" in n or ".ln_" in n or n.startswith("ln_") for n, _ in pg.named_parameters())
    assert Placement.preset("sandwich").describe() == "sandwich"
    assert Placement(pre_attn=True, ffn_out=True).describe() == "pre_attn+ffn_out"


def test_bad_placement_names_raise():
    with pytest.raises(ConfigError, match="pre_ln"):
        Placement.preset("pre-ln")
    with pytest.raises(ConfigError, match="layernorm, rmsnorm"):
        Placement(norm="batchnorm")


def test_flags_round_trip_and_every_preset_describes_itself():
    """The playground rebuilds a Placement from its checkboxes: flags() + norm must give the same placement
    back, and a preset's flags must be recognised as that preset (its legend label)."""
    for name, preset in PLACEMENT_PRESETS.items():
        p = Placement.preset(name, norm="rmsnorm")
        assert Placement(**p.flags(), norm=p.norm) == p
        assert p.describe() == name == Placement(**preset.flags()).describe()
    assert set(Placement().flags()) == {f for f in Placement.__dataclass_fields__ if f != "norm"}


def test_no_norm_placement_blows_up_at_a_high_lr():
    """The lesson the playground shows: with no norm anywhere, a few large Adam steps send the loss far above
    the uniform-guess loss ln V (where the trainer calls it diverged); pre-LN at the same LR stays near it."""
    import math

    cfg = tiny_config("pre_ln", **FAIR)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 84, (4, 32), generator=gen)
    y = torch.randint(0, 84, (4, 32), generator=gen)
    losses = {}
    for name in ("none", "pre_ln"):
        torch.manual_seed(0)
        model = PlacementGPT(cfg, Placement.preset(name))
        opt = torch.optim.AdamW(model.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            _, loss = model(x, y)
            loss.backward()
            opt.step()
        losses[name] = model(x, y)[1].item()
    assert not math.isfinite(losses["none"]) or losses["none"] > 2 * math.log(84)
    assert losses["pre_ln"] < 2 * math.log(84)
