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
