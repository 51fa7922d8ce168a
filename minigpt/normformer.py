"""NormFormer: pre-LN plus three operations (Shleifer, Weston & Ott 2021, "NormFormer: Improved Transformer
Pretraining with Extra Normalization", arXiv 2110.09456, Fig. 1 and Eqs. 1-3):

    x'      = x  + N_attn( HeadScaleAttn(N(x)) )            N_attn: post-attention norm (before the add)
    x_{l+1} = x' + W2 · N_ffn( act(W1 · N(x')) )            N_ffn:  norm on the FFN activation (hidden size)
    HeadScaleAttn(x) = concat_i(gamma_i · head_i(x)) · W_o,  gamma_i a learnable scalar per head, init 1
    logits  = W_out · N(x_L)

The extra norms rescale what each sublayer adds to the stream, correcting pre-LN's gradient imbalance (early
layers get larger gradients than late ones); the paper reports that the model tolerates a larger learning
rate (its 125M model: 3e-3 vs 6e-4), which our presets show rather than hide.

Choices, stated:
- HeadScale multiplies each head *before* the output projection, as the paper's Eq. 2 writes it. fairseq's
  implementation (`MultiheadAttention`, `head_scale`) applies the per-head factor after `out_proj` on the
  head-sized slices; the two differ only in whether gamma_i sees W_o's mixing.
- With SwiGLU the FFN norm sits on silu(W1 x) ⊙ (W3 x), the gated product that W2 reads.
- Dropout on the attention branch comes after N_attn, as in fairseq's `TransformerDecoderLayer` (attn_ln,
  then dropout): before the norm, the norm would rescale the dropped-out output back to unit scale.
- Recipe (`ModelConfig.init`): the paper trained in fairseq's `transformer_lm`, token embeddings N(0, d^-1/2)
  multiplied by sqrt(d), so the stream starts at unit scale per element (`init="fairseq"`). N_attn makes each
  attention output unit-scale whatever the stream's scale: on GPT-2's 0.02-scale stream (`init="gpt2"`) the
  first block's attention output drowns the token embedding. `python -m minigpt experiments --only
  normformer_recipe` measures both recipes.
- `resid_scale=True` adds the paper's lambda_resid (per-dimension, init 1) on the FFN residual only, as
  fairseq does (`ffn_layernorm` / `w_resid`): x_{l+1} = lambda ⊙ x' + ... . Off by default; the paper uses it
  only for its small models.
"""

from __future__ import annotations

from torch import Tensor, nn

from .config import ModelConfig
from .layers import MLP, CausalSelfAttention, GPTBase, Scale, make_norm


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias)
        self.attn = CausalSelfAttention(config, head_scale=True, out_dropout=False)  # (1) gamma_i per head
        self.post_attn_norm = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias)  # (2)
        self.attn_dropout = nn.Dropout(config.dropout)  # after N_attn, as fairseq orders it
        self.ln_2 = make_norm(config.norm, config.n_embd, config.norm_eps, config.bias)
        self.mlp = MLP(config, mid_norm=True)  # (3) N_ffn between act and W2
        self.lambda_resid = Scale(config.n_embd) if config.resid_scale else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        # x' = x + N_attn(HeadScaleAttn(N(x)))                    (dropout after N_attn)
        x = x + self.attn_dropout(self.post_attn_norm(self.attn(self.ln_1(x))))
        # x_{l+1} = lambda ⊙ x' + W2 · N_ffn(act(W1 · N(x')))      (lambda = 1 unless resid_scale)
        x = self.lambda_resid(x) + self.mlp(self.ln_2(x))
        return x


class GPT(GPTBase):
    """NormFormer GPT; like pre-LN it ends with a final norm."""

    Block = Block
    final_norm = True
