"""Pre-LN GPT: the norm moves inside the residual branch (GPT-2, Radford et al. 2019; analysed by Xiong et
al. 2020, "On Layer Normalization in the Transformer Architecture", arXiv 2002.04745).

    x'      = x  + Attn(N(x))
    x_{l+1} = x' + FFN(N(x'))
    logits  = W_out · N(x_L)          (a final norm: the residual stream itself is never normalized)

Because the identity path is untouched, gradients reach every layer through it and, at init, are roughly the
same size at every depth (Xiong et al., Thm. 2), so pre-LN trains without warmup. The price: each block adds to
an un-normalized stream, whose norm grows with depth, and later in training early layers receive larger
gradients than late ones (the imbalance NormFormer corrects).

Recipe (`ModelConfig.init`): GPT-2's, `init="gpt2"` (the default): N(0, 0.02) weights and embeddings, residual
output projections 0.02/sqrt(2L) (Radford et al. 2019, Sec. 2.3).
"""

from __future__ import annotations

from torch import Tensor, nn

from .config import ModelConfig
from .layers import MLP, CausalSelfAttention, GPTBase, make_norm


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor) -> Tensor:
        # x' = x + Attn(N(x))
        x = x + self.attn(self.ln_1(x))
        # x_{l+1} = x' + FFN(N(x'))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(GPTBase):
    """Pre-LN GPT; ends with a final norm N(x_L) before the LM head."""

    Block = Block
    final_norm = True
