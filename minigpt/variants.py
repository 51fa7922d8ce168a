"""The variants and their named runs: one `register(...)` line per variant (the tables live in registry.py).

Each line says which class builds the variant, how figures name and colour it, how `plots.plot_blocks` draws
its block, and which named runs `compare`, the race and the playground offer (default: one run, the variant
as configured; nGPT runs twice, with the paper's LERP update and with the exact SLERP).

A block schematic is two sublayers, each (ops on its branch bottom to top, the merge into the stream, ops on
the stream after the merge), plus the op after the last block and the stream's symbol. The equations are in
docs/design.md §3.
"""

from __future__ import annotations

from . import ngpt, normformer, post_ln, pre_ln
from .registry import Run, Style, register

register("post_ln", post_ln.GPT, display="post-LN", color="tab:red", schematic=dict(
    title="post-LN: $x' = N(x + \\mathrm{Attn}(x))$,  $x_{l+1} = N(x' + \\mathrm{FFN}(x'))$",
    subs=[(["Attn"], "+", ["N"]), (["FFN"], "+", ["N"])], final=None))
register("pre_ln", pre_ln.GPT, display="pre-LN", color="tab:blue", schematic=dict(
    title="pre-LN: $x' = x + \\mathrm{Attn}(N(x))$,  $x_{l+1} = x' + \\mathrm{FFN}(N(x'))$",
    subs=[(["N", "Attn"], "+", []), (["N", "FFN"], "+", [])], final="N (final, once)"))
register("normformer", normformer.GPT, display="NormFormer", color="tab:green", schematic=dict(
    title="NormFormer: pre-LN + head scale, post-attention N, FFN mid N",
    subs=[(["N", "Attn, γ per head", "N (post-attn)"], "+", []),
          (["N", "W₁, act", "N (mid)", "W₂"], "+", [])], final="N (final, once)"))
register("ngpt", ngpt.GPT, display="nGPT", color="tab:orange", schematic=dict(
    title="nGPT: $h \\leftarrow \\mathrm{Norm}(h + |\\alpha| \\odot (\\mathrm{Norm}(h_X) - h))$",
    subs=[(["Attn (q̂, k̂ unit)", "Norm"], "α", ["Norm"]), (["MLP", "Norm"], "α", ["Norm"])], final=None,
    stream="h"), runs={
    "ngpt-lerp": (Run("ngpt", {"ngpt_update": "lerp"}), Style("nGPT (LERP)", "tab:orange")),
    "ngpt-slerp": (Run("ngpt", {"ngpt_update": "slerp"}), Style("nGPT (SLERP)", "tab:purple", "--")),
})
