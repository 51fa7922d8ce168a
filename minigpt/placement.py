"""One configurable block whose norm positions are flags: the playground behind notebook 04's widgets.

The four readable variant files each fix one placement. `PlacementGPT` makes every position a switch, so a
student can move the norms and watch what happens. Parameter names are the variant files' names, so
`PlacementGPT(cfg, Placement.preset("pre_ln"))` loads a `pre_ln.GPT` state dict with `strict=True` and gives
the same logits (tested for post_ln, pre_ln and normformer): the playground and the readable files cannot
drift apart.

    position          name in the block         what it normalizes
    pre_attn          ln_1                      the attention input            (pre-LN)
    attn_out          post_attn_norm            the attention output, pre-add  (NormFormer, sandwich)
    post_attn_resid   resid_norm_1              the stream after the add       (post-LN)
    pre_ffn           ln_2                      the FFN input                  (pre-LN)
    ffn_mid           mlp.ffn_mid_norm          the FFN activation             (NormFormer)
    ffn_out           post_ffn_norm             the FFN output, pre-add        (sandwich)
    post_ffn_resid    resid_norm_2              the stream after the add       (post-LN)
    head_scale        attn.head_scale           a learnable scalar per head    (NormFormer)
    final_norm        ln_f                      the stream before the LM head  (pre-LN, NormFormer)

`sandwich` (pre and output norms on both sublayers, also called "double norm" or Peri-LN) is here only; a
placement with no norm at all is allowed: it diverges, and that is a lesson.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from torch import Tensor, nn

from .config import NORMS, ConfigError, ModelConfig
from .layers import MLP, CausalSelfAttention, GPTBase, make_norm


@dataclass(frozen=True)
class Placement:
    pre_attn: bool = False
    attn_out: bool = False
    post_attn_resid: bool = False
    pre_ffn: bool = False
    ffn_mid: bool = False
    ffn_out: bool = False
    post_ffn_resid: bool = False
    head_scale: bool = False
    final_norm: bool = False
    norm: str = "layernorm"

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ConfigError(f"norm={self.norm!r} is not valid; choose one of {', '.join(NORMS)}")

    @staticmethod
    def preset(name: str, norm: str = "layernorm") -> Placement:
        if name not in PLACEMENT_PRESETS:
            raise ConfigError(f"placement {name!r} is not valid; choose one of {', '.join(PLACEMENT_PRESETS)}")
        return dataclasses.replace(PLACEMENT_PRESETS[name], norm=norm)

    def flags(self) -> dict[str, bool]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "norm"}

    def describe(self) -> str:
        """A short label for legends: the preset name if it is one, else the flags that are on."""
        for name, p in PLACEMENT_PRESETS.items():
            if p.flags() == self.flags():
                return name
        on = [k for k, v in self.flags().items() if v]
        return "+".join(on) if on else "no norm"


PLACEMENT_PRESETS: dict[str, Placement] = {
    "post_ln": Placement(post_attn_resid=True, post_ffn_resid=True),
    "pre_ln": Placement(pre_attn=True, pre_ffn=True, final_norm=True),
    "normformer": Placement(pre_attn=True, attn_out=True, pre_ffn=True, ffn_mid=True, head_scale=True,
                            final_norm=True),
    "sandwich": Placement(pre_attn=True, attn_out=True, pre_ffn=True, ffn_out=True, final_norm=True),
    "none": Placement(),
}


class PlacementBlock(nn.Module):
    def __init__(self, config: ModelConfig, p: Placement) -> None:
        super().__init__()

        def norm(on: bool, dim: int = config.n_embd) -> nn.Module:
            return make_norm(p.norm, dim, config.norm_eps, config.bias) if on else nn.Identity()

        self.ln_1 = norm(p.pre_attn)
        # with a norm on a sublayer's output, dropout goes after that norm (fairseq's NormFormer order)
        self.attn = CausalSelfAttention(config, head_scale=p.head_scale, out_dropout=not p.attn_out)
        self.post_attn_norm = norm(p.attn_out)
        self.attn_dropout = nn.Dropout(config.dropout) if p.attn_out else nn.Identity()
        self.resid_norm_1 = norm(p.post_attn_resid)
        self.ln_2 = norm(p.pre_ffn)
        self.mlp = MLP(config, mid_norm=p.ffn_mid, out_dropout=not p.ffn_out)
        self.post_ffn_norm = norm(p.ffn_out)
        self.ffn_dropout = nn.Dropout(config.dropout) if p.ffn_out else nn.Identity()
        self.resid_norm_2 = norm(p.post_ffn_resid)

    def forward(self, x: Tensor) -> Tensor:
        # x' = N_post( x + N_out( Attn( N_pre(x) ) ) )          every N is a norm or the identity
        x = self.resid_norm_1(x + self.attn_dropout(self.post_attn_norm(self.attn(self.ln_1(x)))))
        # x_{l+1} = N_post( x' + N_out( FFN( N_pre(x') ) ) )    FFN carries the optional mid norm
        x = self.resid_norm_2(x + self.ffn_dropout(self.post_ffn_norm(self.mlp(self.ln_2(x)))))
        return x


class PlacementGPT(GPTBase):
    """A GPT whose blocks are `PlacementBlock(config, placement)`; `config.norm` is replaced by
    `placement.norm`, `config.variant` is kept only for the record (the placement decides the function)."""

    def __init__(self, config: ModelConfig, placement: Placement) -> None:
        self.placement = placement
        self.final_norm = placement.final_norm
        config = dataclasses.replace(config, norm=placement.norm)
        self.Block = lambda cfg: PlacementBlock(cfg, placement)  # type: ignore[assignment]
        super().__init__(config)
