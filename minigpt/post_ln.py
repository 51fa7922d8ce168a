"""Post-LN GPT: the norm sits on the residual stream, after each addition (the original Transformer,
Vaswani et al. 2017, "Attention Is All You Need", Sec. 3.1: LayerNorm(x + Sublayer(x))).

    x'      = N(x  + Attn(x))
    x_{l+1} = N(x' + FFN(x'))
    logits  = W_out · x_L             (no final norm: x_L is already normalized)

Every block's output is normalized, so the stream never grows; but every gradient on its way down also passes
through a norm per sublayer. At init the gradient of the weights grows toward the *output* layers (Xiong et
al. 2020, Fig. 3 / Thm. 1), which is why post-LN needs a learning-rate warmup and tolerates a lower peak LR.

Recipe (`ModelConfig.init`): the paper's setting, the one Xiong et al.'s Theorem 1 analyses, is `init="xavier"`
(Xavier-uniform matrices, token embeddings times sqrt(d): unit-scale inputs). The presets use GPT-2's init
(`"gpt2"`) for every variant; with it the sublayers add little to the stream and the growth toward the output
at init disappears (notebook 01; `python -m minigpt experiments --only depth_law` measures the law).
"""

from __future__ import annotations

from torch import Tensor, nn

from .config import ModelConfig
from .layers import MLP, CausalSelfAttention, GPTBase, make_norm


class Block(nn.Module):
    """`resid_norm_*` normalize the residual stream itself, after each addition (contrast pre-LN's `ln_*`,
    which normalize only the sublayer's input)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(config)
        self.resid_norm_1 = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias)
        self.mlp = MLP(config)
        self.resid_norm_2 = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias)

    def forward(self, x: Tensor) -> Tensor:
        # x' = N(x + Attn(x))
        x = self.resid_norm_1(x + self.attn(x))
        # x_{l+1} = N(x' + FFN(x'))
        x = self.resid_norm_2(x + self.mlp(x))
        return x


class GPT(GPTBase):
    """Post-LN GPT; no final norm (the last block already ends with one)."""

    Block = Block
    final_norm = False
