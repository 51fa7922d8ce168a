"""Writes the notebooks 00, 01, 02, 03, 05 and 06 from the cell sources below, without outputs.

    python notebooks/build_notebooks.py            # rewrite them all
    python notebooks/build_notebooks.py 03         # only the ones whose name starts with 03

The notebooks are generated so that their text and code are reviewed as source and their outputs never reach
git. Each is thin: it picks a preset (gpu-small on CUDA, else cpu-tiny narrowed to run in about a minute on
two cores), calls `minigpt.experiments`, draws with `minigpt.plots`, and ends each experiment with an `assert`
of what the experiment shows at the scale it ran. Notebook 04 (the widget playground) is written by hand.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str) -> nbformat.NotebookNode:
    return new_code_cell(textwrap.dedent(text).strip())


def setup(*stdlib: str, experiments: bool = True, steps: bool = False, markdown: bool = True
          ) -> nbformat.NotebookNode:
    """The first code cell: imports, then the preset (gpu-small on CUDA, else cpu-tiny), the CPU scale and, on
    a CPU, one torch thread."""
    lines = ["%matplotlib inline"] + [f"import {m}" for m in sorted(stdlib)] + ([""] if stdlib else [])
    lines += ["import torch"] + (["from IPython.display import Markdown, display"] if markdown else []) + [""]
    lines += ["from minigpt import experiments as E"] if experiments else []
    scale = "notebook_scale, notebook_steps" if steps else "notebook_scale"
    lines += ["from minigpt import plots", "from minigpt.config import default_preset_name",
              f"from minigpt.experiments.scale import {scale}, use_notebook_threads", ""]
    lines += textwrap.dedent('''
        PRESET = default_preset_name()  # gpu-small when CUDA is available, else cpu-tiny
        ON_GPU = PRESET.startswith("gpu")
        # On a CPU, cpu-tiny is narrowed (d=64, T=64, batch 8) so that the notebook runs in about a minute on two
        # cores. On a GPU the preset runs as is; runs are short, so torch.compile would cost more than it saves.
        SCALE = notebook_scale(PRESET)  # minigpt/experiments/scale.py: also the README figures' scale
        use_notebook_threads(PRESET)  # on a CPU one thread: tiny models train fastest, or close, on one (scale.py)
        print(f"preset {PRESET}, overrides {SCALE}, {torch.get_num_threads()} CPU thread(s)")
    ''').strip().splitlines()
    return new_code_cell("\n".join(lines))


# ------------------------------------------------------------------------------------------------ 00

NB00 = [
    md(r'''
    # 00 · Quickstart: four places to put a norm

    **After this notebook you will be able to explain** where each of the four variants puts its norms, by
    pointing at the two lines of its `Block.forward`; why an untrained language model's loss is $\ln V$; and
    why nGPT's hidden state has norm 1 after every block while pre-LN's has whatever norm its blocks add up
    to. You will also have edited a block yourself and trained it.

    A transformer block has two sublayers, attention and a feed-forward network (FFN), each wrapped in a
    residual connection. Where the normalization sits relative to that residual connection decides how
    gradients flow, how large the residual stream grows and how high a learning rate the model survives.
    `minigpt` implements four placements, one file each, and nothing else differs between them.

    With $x$ the residual stream entering a block, $N(\cdot)$ a LayerNorm or RMSNorm and
    $\mathrm{Norm}(v) = v / \lVert v \rVert_2$:

    | variant | one block |
    |---|---|
    | post-LN (Vaswani 2017) | $x' = N(x + \mathrm{Attn}(x))$, $\;x_{l+1} = N(x' + \mathrm{FFN}(x'))$ |
    | pre-LN (GPT-2; Xiong 2020) | $x' = x + \mathrm{Attn}(N(x))$, $\;x_{l+1} = x' + \mathrm{FFN}(N(x'))$, final $N$ |
    | NormFormer (Shleifer 2021) | $x' = x + N(\mathrm{HSA}(N(x)))$, $\;x_{l+1} = x' + W_2 N(\mathrm{act}(W_1 N(x')))$ |
    | nGPT (Loshchilov 2024) | $h \leftarrow \mathrm{Norm}(h + \lvert\alpha\rvert(\mathrm{Norm}(h_A) - h))$, MLP alike |

    (HSA: attention with a learned scale per head; $\alpha \in \mathbb{R}^d$ multiplies per dimension.)

    This notebook builds each variant, checks it at init, trains two of them for a few seconds and samples
    from them. The other notebooks each reproduce one paper's claim:
    01 post-LN vs pre-LN · 02 NormFormer · 03 nGPT on the hypersphere · 04 the playground ·
    05 the race and LR stability · 06 modern block ingredients.
    '''),
    setup("math", experiments=False, markdown=False),
    md(r'''
    ## The four blocks

    The residual stream runs up the left of each drawing; each sublayer branches off to the right and is
    added back (⊕). Norms are shaded orange. Post-LN normalizes the stream itself after every addition;
    pre-LN only normalizes what enters a sublayer, so the stream is never normalized until the final norm;
    NormFormer adds two norms and a per-head scale inside the branches; nGPT keeps the stream on the unit
    sphere and replaces the addition by a step of size $\alpha$ toward the sublayer's (unit) output.
    '''),
    code('''
    plots.plot_blocks()
    '''),
    md(r'''
    ## The code

    The drawings are the `forward` of each variant's `Block`, read below from the files that run (with
    `inspect.getsource`, so this page cannot drift from the code). The comment above each line is the
    equation it computes. Everything else (attention, the FFN, the norms themselves, the embedding and the
    LM head) is shared, in `minigpt/layers.py`.
    '''),
    code('''
    from minigpt import ngpt, normformer, post_ln, pre_ln
    from minigpt.source_view import show_source, side_by_side

    side_by_side({"post-LN (post_ln.py)": post_ln.Block.forward, "pre-LN (pre_ln.py)": pre_ln.Block.forward,
                  "NormFormer (normformer.py)": normformer.Block.forward, "nGPT (ngpt.py)": ngpt.Block.forward})
    '''),
    md(r'''
    nGPT's `self.update` is `lerp_update` (or `slerp`, notebook 03): the step on the sphere.
    '''),
    code('''
    show_source(ngpt.lerp_update)
    '''),
    md(r'''
    ## Build each variant and check it at init

    A freshly initialized language model knows nothing, so it should spread its probability almost evenly
    over the vocabulary $V$: every token gets about $1/V$, and the cross-entropy, $-\ln(1/V) = \ln V$ nats,
    is the loss at init. All four variants take the same `ModelConfig`; `build_model` picks the class from
    `config.variant`.
    '''),
    code('''
    import dataclasses

    from minigpt import VARIANTS, build_model
    from minigpt.config import get_preset
    from minigpt.data import load_data

    model_cfg, train_cfg = get_preset(PRESET).configs("pre_ln", **SCALE)
    tokenizer, batches = load_data(train_cfg, model_cfg.block_size)
    V = tokenizer.vocab_size
    x, y = batches.sample("train", 4, torch.Generator().manual_seed(0))  # (4, T) token ids, y = x shifted
    init_loss = {}
    for variant in VARIANTS:
        torch.manual_seed(0)
        model = build_model(dataclasses.replace(model_cfg, variant=variant, vocab_size=V))
        logits, loss = model(x, y)
        init_loss[variant] = loss.item()
        print(f"{variant:<11} {model.num_params():>10,} parameters   logits {tuple(logits.shape)}   "
              f"loss {loss.item():.3f}   (ln V = {math.log(V):.3f})")
    # at init every variant is within 15% of the uniform guess
    assert all(abs(v - math.log(V)) < 0.15 * math.log(V) for v in init_loss.values()), init_loss
    '''),
    md(r'''
    ## Train two of them

    `minigpt.train.train` is the one training loop every notebook and the CLI use: AdamW, warmup and cosine
    decay, gradient clipping, evaluation on fixed validation batches. Both runs below see the same
    initialization seed and the same batches in the same order; each gets its preset's learning rate
    (nGPT's is higher, as in the paper, and nGPT uses no warmup and no weight decay).
    '''),
    code('''
    from minigpt.train import train

    STEPS = 1000 if ON_GPU else 150
    results = {}
    for variant in ("pre_ln", "ngpt"):
        m_cfg, t_cfg = get_preset(PRESET).configs(variant, steps=STEPS, eval_interval=max(1, STEPS // 6), **SCALE)
        results[variant] = train(m_cfg, t_cfg, batches=batches, tokenizer=tokenizer)
    for variant, r in results.items():
        print(f"{variant:<7} lr {r.train_config.lr:.0e}  val loss {r.final_val_loss:.3f}  {r.ms_per_step:.0f} ms/step")
    plots.plot_val_curves(results, title=f"{STEPS} steps, same seed and batches (preset {PRESET})")
    '''),
    code('''
    # both learned: more than one nat below the uniform guess they started from
    assert all(r.final_val_loss < init_loss[v] - 1.0 for v, r in results.items())
    '''),
    md(r'''
    ## nGPT's hidden states stay on the unit sphere

    In pre-LN the residual stream is a running sum, so its norm is whatever the blocks add up to. nGPT
    normalizes after every update, so every hidden state has norm exactly 1, in every layer, before and after
    training. `diagnostics.residual_norms` reads the stream with forward hooks.
    '''),
    code('''
    from minigpt import diagnostics as D

    val_x = batches.val_batches(1, 4)[0][0].to(next(results["ngpt"].model.parameters()).device)
    for variant, r in results.items():
        norms = D.residual_norms(r.model, val_x)
        print(f"{variant:<7} mean ||h|| entering block 0, then after each block:", [round(n, 4) for n in norms])
    # nGPT: every norm is 1 within 1e-4 (pre-LN's is whatever its blocks add up to)
    assert all(abs(n - 1) < 1e-4 for n in D.residual_norms(results["ngpt"].model, val_x))
    '''),
    md(r'''
    ## Edit a block yourself

    A variant is a `Block` class and a `GPT` class that names it; `train(..., model=...)` trains any module
    that takes the same config. The cell below subclasses pre-LN's block and changes its `forward`: as
    written it drops the norm in front of the FFN, so the FFN reads the raw, growing stream. Change a line
    (put `self.ln_2` back; make it post-LN with `x = self.ln_2(x + self.mlp(x))`; halve what attention
    writes) and re-run this cell and the next: the new block trains from the same init seed on the same
    batches as the pre-LN run above, so the difference is your edit.
    '''),
    code('''
    class MyBlock(pre_ln.Block):
        def forward(self, x):
            # x' = x + Attn(N(x))               (as pre-LN)
            x = x + self.attn(self.ln_1(x))
            # x_{l+1} = x' + FFN(x')            (pre-LN has FFN(N(x')) here)
            x = x + self.mlp(x)
            return x


    class MyGPT(pre_ln.GPT):
        Block = MyBlock
    '''),
    code('''
    m_cfg, t_cfg = get_preset(PRESET).configs("pre_ln", steps=STEPS, eval_interval=max(1, STEPS // 6), **SCALE)
    m_cfg = dataclasses.replace(m_cfg, vocab_size=V)
    torch.manual_seed(t_cfg.seed)  # the init seed train() uses for the models it builds itself
    mine = train(m_cfg, t_cfg, batches=batches, tokenizer=tokenizer, model=MyGPT(m_cfg), label="my block")
    for name, r in (("pre-LN", results["pre_ln"]), ("my block", mine)):
        norms = D.residual_norms(r.model, val_x)
        print(f"{name:<9} val loss {r.final_val_loss:.3f}   mean ||x|| entering block 0, then after each block: "
              f"{[round(n, 2) for n in norms]}")
    plots.plot_val_curves({"pre_ln": results["pre_ln"], "my block": mine}, title="pre-LN and your block")
    '''),
    code('''
    # whatever you changed, the loop trained it: the loss moved off ln V (a block that breaks training fails here)
    assert mine.final_val_loss < math.log(V) - 0.5, mine.final_val_loss
    '''),
    md(r'''
    ## Sample

    The models are tiny and trained for seconds, so expect Shakespeare-shaped noise: character-level
    models first learn spaces, capitals after newlines and common short words.
    '''),
    code('''
    prompt = "ROMEO:"
    for variant, r in results.items():
        model = r.model.eval()
        device = next(model.parameters()).device
        idx = torch.tensor([tokenizer.encode(prompt)], device=device)
        out = model.generate(idx, 120, temperature=0.8, top_k=20, generator=torch.Generator(device).manual_seed(0))
        text = tokenizer.decode(out[0].tolist())
        print(f"--- {variant}\\n{text}\\n")
        assert text.startswith(prompt) and len(out[0]) == idx.size(1) + 120
    '''),    md(r'''
    ## Check yourself

    Post-LN's residual stream leaves every block through a LayerNorm whose gain is 1 at init, so each of
    its $d$ coordinates has mean 0 and variance 1. **Before running the next cell, write down the norm of
    post-LN's stream after each block, as a function of $d$**, and what it is for this preset's $d$
    (`model_cfg.n_embd`). Then work out nGPT's. The next cell measures both on freshly built models.
    '''),
    code('''
    d = model_cfg.n_embd
    for variant, expected in (("post_ln", math.sqrt(d)), ("ngpt", 1.0)):
        torch.manual_seed(0)
        fresh = build_model(dataclasses.replace(model_cfg, variant=variant, vocab_size=V))
        after_blocks = D.residual_norms(fresh, x)[1:]
        print(f"{variant:<8} ||x|| after each block: {[round(n, 3) for n in after_blocks]}   expected {expected:.3f}")
        # the answer: sqrt(d) for post-LN (d coordinates of variance 1; eps makes it a hair less); 1 for nGPT
        assert all(abs(n - expected) < 1e-3 * expected for n in after_blocks)
    '''),
]


# ------------------------------------------------------------------------------------------------ 01

NB01 = [
    md(r'''
    # 01 · Post-LN vs pre-LN: gradients at init, the residual stream, and warmup

    The original Transformer normalizes the residual stream after each sublayer is added (**post-LN**);
    GPT-2 moved the norm inside the branch (**pre-LN**):

    $$\text{post-LN:}\quad x' = N\big(x + \mathrm{Attn}(x)\big), \qquad x_{l+1} = N\big(x' + \mathrm{FFN}(x')\big)$$
    $$\text{pre-LN:}\quad x' = x + \mathrm{Attn}\big(N(x)\big), \qquad x_{l+1} = x' + \mathrm{FFN}\big(N(x')\big),
      \qquad \text{logits} = W_{out}\,N(x_L)$$

    In pre-LN the identity path from the loss to every layer is untouched, so a gradient reaches layer 1 as
    easily as layer $L$. In post-LN every gradient on its way down passes through one norm per sublayer, and
    each norm rescales it by the inverse of the standard deviation of what it normalized.
    Xiong et al. (2020, *On Layer Normalization in the Transformer Architecture*) analyse this at
    initialization (Xavier init, unit-variance inputs). Their Theorem 1 bounds the gradient of the last
    layer's FFN weights: $O(d\sqrt{\ln d})$ for post-LN, independent of depth, and
    $O(d\sqrt{\ln d / L})$ for pre-LN, so post-LN's last-layer gradient is larger by about $\sqrt{L}$; their
    Fig. 3 shows post-LN's gradient growing toward the output layers while pre-LN's stays level. Large
    gradients near the output at the start of training are why post-LN needs a learning-rate **warmup**.

    This notebook measures the gradient of every layer's weights at init, the norm of the residual stream,
    and trains both with and without warmup.

    **After this notebook you will be able to explain** what a LayerNorm does to the gradient that passes
    through it (its Jacobian, derived and checked against autograd below), why that makes post-LN's gradient
    grow toward the output at init and why the init decides how much; why pre-LN's residual stream grows with
    depth while post-LN's is pinned at $\sqrt d$; and why post-LN needs a warmup that pre-LN does not.
    '''),
    setup("math"),
    code('''
    from minigpt import post_ln, pre_ln
    from minigpt.source_view import side_by_side

    plots.plot_blocks(("post_ln", "pre_ln"))
    '''),
    code('''
    side_by_side({"post-LN (post_ln.py)": post_ln.Block.forward, "pre-LN (pre_ln.py)": pre_ln.Block.forward})
    '''),
    md(r'''
    ## 0. What a norm does to a gradient

    Take LayerNorm without its gain and bias, on one vector $x \in \mathbb R^d$:
    $\hat x = (x - \mu)/\sigma$ with $\mu = \tfrac1d \sum_i x_i$ and $\sigma^2 = \tfrac1d \sum_i (x_i - \mu)^2$.
    Differentiate: $\partial \mu/\partial x = \tfrac1d \mathbf 1^\top$ and
    $\partial \sigma/\partial x = \tfrac{1}{d\sigma}(x - \mu)^\top = \tfrac1d \hat x^\top$, so

    $$\frac{\partial \hat x}{\partial x} = \frac{1}{\sigma}\Big(I - \frac{\mathbf 1 \mathbf 1^\top}{d}
      - \frac{\hat x \hat x^\top}{d}\Big).$$

    The bracket is a projection: it removes the component along $\mathbf 1$ (a shift of every coordinate,
    which the mean subtraction undoes) and along $\hat x$ (a rescaling, which the division undoes), and keeps
    the other $d - 2$ directions unchanged. So a gradient passing back through a norm loses two directions and
    is **divided by $\sigma$**, the scale of what the norm normalized. The cell checks the formula against
    autograd.
    '''),
    code('''
    d = 64
    x = 3.0 * torch.randn(d, dtype=torch.float64) + 1.0

    def layernorm(v):  # no gain, no bias, no eps: the function the formula is about
        return (v - v.mean()) / v.std(unbiased=False)

    sigma, x_hat = x.std(unbiased=False), layernorm(x)
    ones = torch.ones(d, dtype=torch.float64)
    by_hand = (torch.eye(d, dtype=torch.float64) - torch.outer(ones, ones) / d - torch.outer(x_hat, x_hat) / d) / sigma
    by_autograd = torch.autograd.functional.jacobian(layernorm, x)
    print(f"max |by hand - autograd| = {(by_hand - by_autograd).abs().max():.1e}   (sigma = {sigma:.3f})")
    assert torch.allclose(by_hand, by_autograd, atol=1e-12)
    # its eigenvalues: 0 twice (along 1 and x_hat), 1/sigma d-2 times
    eig = torch.linalg.eigvalsh(by_hand * sigma)
    assert (eig[:2].abs() < 1e-9).all() and torch.allclose(eig[2:], torch.ones(d - 2, dtype=torch.float64))
    # scale the input by c: the output is the same, the gradient through it is divided by c
    c = 10.0
    assert torch.allclose(torch.autograd.functional.jacobian(layernorm, c * x), by_autograd / c, atol=1e-12)
    '''),
    md(r'''
    **What the $1/\sigma$ does.** In post-LN the norm sits on the stream after each addition, on
    $x + F(x)$ with $x$ the previous norm's output (unit variance per coordinate). If the sublayer's output
    $F(x)$ is not negligible, $\sigma(x + F(x)) > 1$, and every gradient on its way down is divided by it,
    once per sublayer: the deeper a layer sits below the output, the more $1/\sigma$ factors its gradient has
    collected. That is Xiong et al.'s mechanism for post-LN's gradient growing toward the output, and it
    depends on how much each sublayer writes, which the init sets. In pre-LN the norm sits on the branch,
    and the identity path down the stream passes through no norm at all, only the final one.

    The cell measures the $\sigma$ each of post-LN's norms divides by at init, with Xiong et al.'s
    Xavier init (section 1) and with GPT-2's small init (section 2), on eight layers.
    '''),
    code('''
    import dataclasses

    from minigpt import build_model
    from minigpt import diagnostics as D
    from minigpt.config import get_preset
    from minigpt.data import load_data

    XIONG = dict(mlp="gelu", position="learned", bias=True, tie_embeddings=False, n_layer=8)
    cfg, tcfg = get_preset(PRESET).configs("post_ln", **XIONG, **SCALE)
    tokenizer, batches = load_data(tcfg, cfg.block_size)
    cfg = dataclasses.replace(cfg, vocab_size=tokenizer.vocab_size)
    probe_x = batches.val_batches(1, 4)[0][0]


    def norm_input_sigmas(model):  # the sigma of what each of post-LN's norms normalizes, mean over tokens
        sig = []
        hooks = [m.register_forward_pre_hook(lambda m, a: sig.append(a[0].std(-1, unbiased=False).mean().item()))
                 for b in model.blocks for m in (b.resid_norm_1, b.resid_norm_2)]
        with torch.no_grad():
            model(probe_x)
        for h in hooks:
            h.remove()
        return sig


    torch.manual_seed(0)
    sig_xavier = norm_input_sigmas(E.xavier_init_(build_model(cfg)))
    torch.manual_seed(0)
    sig_gpt2 = norm_input_sigmas(build_model(cfg))  # minigpt's default init: GPT-2's
    for name, sig in (("Xavier", sig_xavier), ("GPT-2 0.02", sig_gpt2)):
        down = math.prod(1 / s for s in sig[1:])
        print(f"{name:>10}: sigma at each norm {[round(s, 2) for s in sig]}\\n"
              f"{'':>12}product of 1/sigma from the last norm down to the first: {down:.3g}")
    assert all(s > 1 for s in sig_xavier[1:])  # x (unit variance) + a sizable F(x): sigma > 1, the gradient shrinks
    assert max(abs(s - 1) for s in sig_gpt2[1:]) < max(abs(s - 1) for s in sig_xavier[1:])  # the small init: ~1
    '''),
    md(r'''
    With Xavier weights each sublayer writes about as much as the stream already holds, every $\sigma$ is
    clearly above 1, and the product of the $1/\sigma$ factors (printed) is the attenuation the formula
    predicts along the stream, before the sublayers' own paths add their share. With GPT-2's small init the
    sublayers write a sliver, every $\sigma$ is about 1 and the norms pass the gradient through almost
    unchanged. Sections 1 and 2 measure the resulting gradient profiles.
    '''),
    md(r'''
    ## 1. Gradient norms at init, in Xiong et al.'s setting

    The setting of the analysis: the classic block (GELU FFN, learned positions, biases), Xavier-uniform
    weights and unit-variance embeddings (`experiments.xavier_init_`), eight layers. For each layer we
    compute $\lVert \partial L / \partial W \rVert_F$ of the attention and FFN weights on a few fixed batches,
    and average over several random initializations: the theorem is about the expected gradient, and one
    small model's profile carries its own init's noise.
    '''),
    code('''
    SEEDS = range(6)
    xiong = E.grad_norms_vs_depth(PRESET, ("post_ln", "pre_ln"), steps=0, init="xavier", n_batches=2,
                                  seeds=SEEDS, **XIONG, **SCALE)
    plots.plot_grad_norms(xiong, weights=("ffn_in", "ffn_out"))
    '''),
    code('''
    g = xiong.grads["init"]
    post, pre = xiong.last_first("post_ln", "ffn_in"), xiong.last_first("pre_ln", "ffn_in")
    print(f"last/first-layer gradient of FFN W1:  post-LN {post:.2f}   pre-LN {pre:.2f}")
    last = g["post_ln"]["ffn_in"][-1] / g["pre_ln"]["ffn_in"][-1]
    print(f"last layer, post-LN / pre-LN: {last:.2f}   (Theorem 1's scaling: sqrt(L) = {math.sqrt(8):.2f})")
    print(xiong.table("init"))
    assert post > 1.0  # post-LN: the gradient grows toward the output
    assert post > pre  # ... its profile tilts toward the output relative to pre-LN's
    assert last > 1.5  # post-LN's last-layer gradient is the larger one (Theorem 1: by ~sqrt(L))
    w2 = xiong.last_first("post_ln", "ffn_out")
    display(Markdown(
        f"In this run: post-LN's last-layer $W_1$ gradient is **{last:.2f}x** pre-LN's "
        rf"($\\sqrt{{L}} = {math.sqrt(xiong.n_layer):.2f}$); post-LN's $W_1$ gradient grows by "
        f"**{100 * (post - 1):.0f}%** from layer 1 to layer {xiong.n_layer} ($W_2$'s last/first: {w2:.2f}); "
        f"pre-LN's last/first ratio is **{pre:.2f}**."))
    '''),
    md(r'''
    **What reproduces and what does not** (the numbers are this run's, printed by the cell above the text).
    Post-LN's last layer gets a gradient about $\sqrt{L}$ times pre-LN's, as Theorem 1 says, and its $W_1$
    gradient grows from the first layer to the last, though by less than the last-layer ratio. But pre-LN's
    profile is not level at this scale: its *early* layers get the larger gradients (ratio < 1), and its
    ratio is *farther* from 1 than post-LN's. So "pre-LN's
    last/first ratio is closer to 1 than post-LN's" does **not** reproduce in these small models; what holds
    is that the two placements tilt the gradient in opposite directions, post-LN toward the output and
    pre-LN toward the input. Pre-LN's early-layer excess is the imbalance NormFormer (notebook 02) sets out
    to correct.

    ## 2. The same measurement with GPT-2's small init

    `minigpt` initializes like GPT-2: $\mathcal N(0, 0.02^2)$ weights, residual output projections scaled
    by $1/\sqrt{2L}$. Then each sublayer adds only a sliver to the stream (section 0: every $\sigma$ about 1),
    post-LN's norms hardly rescale anything, and its gradient profile goes flat. The placement shapes the
    gradient only together with the init. (The plot shows each profile relative to its layer 1: the two
    variants' magnitudes differ many times over, because pre-LN's stream starts tiny with 0.02 embeddings
    and its final norm divides every gradient by that small $\sigma$: section 0's $1/\sigma$ again. The
    cell after the plot prints both.)
    '''),
    code('''
    gpt2 = E.grad_norms_vs_depth(PRESET, ("post_ln", "pre_ln"), steps=0, n_batches=2, seeds=SEEDS, n_layer=8, **SCALE)
    plots.plot_grad_norms(gpt2, weights=("ffn_in", "ffn_out"), relative=True)
    '''),
    code('''
    for name, r in (("Xavier", xiong), ("GPT-2 0.02", gpt2)):
        share = r.sublayer["init"]["post_ln"]["ffn"][0] / r.residual["init"]["post_ln"][1]
        print(f"{name:>10} init: post-LN FFN output / stream norm = {share:.3f};  last/first FFN W1 gradient: "
              f"post-LN {r.last_first('post_ln', 'ffn_in'):.2f}, pre-LN {r.last_first('pre_ln', 'ffn_in'):.2f}")
    assert abs(gpt2.last_first("post_ln", "ffn_in") - 1) < abs(xiong.last_first("post_ln", "ffn_in") - 1)  # flatter
    assert gpt2.last_first("post_ln", "ffn_in") > gpt2.last_first("pre_ln", "ffn_in")  # still the same tilt
    g0 = gpt2.grads["init"]
    magnitude = g0["pre_ln"]["ffn_in"][0] / g0["post_ln"]["ffn_in"][0]
    stream0 = gpt2.residual["init"]["pre_ln"][0]
    print(f"GPT-2 init: pre-LN's layer-1 W1 gradient is {magnitude:.0f}x post-LN's; pre-LN's stream enters block 0 "
          f"with norm {stream0:.2f} (sqrt(d) = {math.sqrt(gpt2.n_embd):.1f} after a norm)")
    assert magnitude > 5 and stream0 < 0.1 * math.sqrt(gpt2.n_embd)  # a tiny stream, large gradients through 1/sigma
    '''),
    md(r'''
    ## 3. The residual stream

    Post-LN's stream leaves every block normalized, so its norm is pinned at $\sqrt{d}$ (a LayerNorm output
    has unit variance per coordinate). Pre-LN's stream is a running sum of everything the blocks write, so
    its norm grows with depth; how fast depends on how much each block writes (fast with Xavier weights,
    slowly with GPT-2's small init, then much faster once training has grown the weights).
    '''),
    code('''
    plots.plot_residual_norms(xiong)
    '''),
    code('''
    d, sqrt_d = xiong.residual["init"], math.sqrt(xiong.n_embd)
    print("pre-LN :", [round(v, 2) for v in d["pre_ln"]])
    print("post-LN:", [round(v, 2) for v in d["post_ln"]], f"   sqrt(d) = {sqrt_d:.2f}")
    assert all(b > a for a, b in zip(d["pre_ln"], d["pre_ln"][1:], strict=False))  # pre-LN: grows with every block
    assert all(abs(v - sqrt_d) < 0.01 * sqrt_d for v in d["post_ln"][1:])  # post-LN: pinned at sqrt(d)
    '''),
    md(r'''
    ## 4. Warmup

    Same setting as section 1 (Xavier init, classic block, eight layers; on the CPU wider, with shorter
    windows, where the effect shows within a hundred steps), both variants at the **same peak learning
    rate**, once with a linear warmup over the first tenth of the steps and once without; everything else
    (seed, data order, cosine decay) identical. The cell prints the exact setting.
    '''),
    code('''
    WSTEPS, WLR = (300 if ON_GPU else 100), 1e-3
    WARM = {**SCALE, **XIONG, **({} if ON_GPU else dict(n_embd=128, block_size=32, batch_size=8))}
    shape = {k: WARM.get(k, "as in the preset") for k in ("n_embd", "block_size", "batch_size")}
    display(Markdown(f"{WSTEPS} steps at peak LR {WLR:g}, warmup {WSTEPS // 10} steps or none; "
                     f"d = {shape['n_embd']}, T = {shape['block_size']}, batch {shape['batch_size']}."))
    warm = E.warmup_ablation(PRESET, ("post_ln", "pre_ln"), steps=WSTEPS, warmup_steps=WSTEPS // 10, lr=WLR,
                             init="xavier", eval_interval=WSTEPS // 10, **WARM)
    plots.plot_warmup(warm)
    '''),
    code('''
    def final(variant, warmup):  # a run that blew up counts as infinitely bad
        c = warm.get(variant, warmup)
        return math.inf if c.diverged else c.final_val

    for v in ("post_ln", "pre_ln"):
        print(f"{v:<8} val loss with warmup {final(v, True):.3f}   without {final(v, False):.3f}")
    post_gap = final("post_ln", False) - final("post_ln", True)
    pre_gap = abs(final("pre_ln", False) - final("pre_ln", True))
    assert post_gap > 0.05  # post-LN without warmup ends clearly worse (stuck near the unigram loss)
    assert pre_gap < post_gap / 2  # pre-LN hardly cares
    '''),
    code('''
    unigram = D.unigram_entropy(batches.train, tokenizer.vocab_size)


    def leaves_plateau(curve):  # the first evaluation clearly below the unigram loss (None: never)
        return next((step for step, v in curve.val if v < unigram - 0.1), None)


    cold, warmed = warm.get("post_ln", False), warm.get("post_ln", True)
    display(Markdown(
        f"The **unigram loss** of this corpus (the entropy of its letter frequencies, the loss of a model that "
        f"knows which letters are common and nothing else) is **{unigram:.2f} nats**. Post-LN without warmup "
        f"ends at {final('post_ln', False):.2f} and "
        + (f"leaves that plateau only at step {leaves_plateau(cold)}" if leaves_plateau(cold) else
           "never leaves that plateau within the budget")
        + f"; with {warmed.warmup_steps} warmup steps it leaves it at step {leaves_plateau(warmed)} and ends at "
        f"{final('post_ln', True):.2f}. Pre-LN ends at {final('pre_ln', True):.2f} with warmup and "
        f"{final('pre_ln', False):.2f} without."))
    assert leaves_plateau(warmed) is not None  # with warmup, post-LN trains past letter frequencies
    assert abs(final("post_ln", False) - unigram) < abs(final("post_ln", True) - unigram)  # without, it stays nearer
    '''),
    md(r'''
    Without warmup, post-LN's first updates, driven by its large output-layer gradients (sections 0 and 1),
    throw it onto the plateau of a model that predicts only letter frequencies. With a short warmup the same
    model gets past it and trains. Pre-LN ends at about the same loss either way. Post-LN's usable LR range
    is narrower as well; notebook 05 measures it directly.
    '''),
    md(r'''
    ## 5. The depth law, and post-LN without warmup as depth grows

    Theorem 1 is a statement about depth: post-LN's last-layer gradient over pre-LN's grows as $\sqrt{L}$,
    a slope of 1/2 on log-log axes. `experiments.depth_law` measures that ratio at Xavier init for several
    depths (averaged over inits) and fits the slope, then trains post-LN without warmup, post-LN with warmup
    and pre-LN without warmup at each depth. Below: the CI tier live (seconds, tiny models), then the full
    tier committed in `docs/results/depth_law.json` (the command that made it is printed).
    '''),
    code('''
    from minigpt.experiments import tiers as S
    from minigpt.plot_scale import describe, load_result, plot_result

    live = {"name": "depth_law", "tier": "ci", "params": S.TIERS["depth_law"]["ci"], "data": S.run("depth_law", "ci")}
    print(f"live CI tier: fitted slope {live['data']['slope']:.2f} over depths {S.TIERS['depth_law']['ci']['depths']}")
    plot_result(live)
    '''),
    code('''
    full = load_result("depth_law")
    print(describe(full))
    print(f"post-LN / pre-LN last-layer gradient, fitted slope {full['data']['slope']:.2f} (Theorem 1: 0.5)")
    for arm, pts in full["data"]["train"].items():
        print(f"{arm:<22}", "  ".join(f"L={p['n_layer']}: {p['val']['mean']:.3f}" for p in pts))
    assert 0.35 < full["data"]["slope"] < 0.65  # the ratio grows as sqrt(L)
    plot_result(full)
    '''),
    md(r'''
    ## Summary

    | claim (Xiong et al. 2020) | at this scale |
    |---|---|
    | post-LN's gradient grows toward the output at init | yes with Xavier init; not with GPT-2's 0.02 init |
    | post-LN's last-layer gradient ≈ $\sqrt{L}$ × pre-LN's | yes |
    | pre-LN's gradient is level across layers | **no**: its early layers get larger gradients |
    | pre-LN's residual stream grows with depth, post-LN's is pinned | yes |
    | post-LN needs warmup, pre-LN does not | yes |

    ## Check yourself

    A LayerNorm (no gain, no bias) reads a vector of $d = 64$ coordinates whose standard deviation is
    $\sigma = 2$. **Before running the next cell, write down** (a) the rank of its Jacobian
    $\partial \hat x / \partial x$ and (b) the largest factor by which it can multiply a gradient passing
    back through it. Then: (c) if the stream feeding it grows by a factor 10, what happens to (b)?
    '''),
    code('''
    x = 2.0 * torch.randn(64, dtype=torch.float64)
    x = (x - x.mean()) / x.std(unbiased=False) * 2.0 + 0.5  # sigma exactly 2
    J = torch.autograd.functional.jacobian(layernorm, x)
    rank, largest = torch.linalg.matrix_rank(J).item(), torch.linalg.matrix_norm(J, ord=2).item()
    largest_10x = torch.linalg.matrix_norm(torch.autograd.functional.jacobian(layernorm, 10 * x), ord=2).item()
    print(f"rank {rank}, largest factor {largest:.4f}, after the stream grows 10x: {largest_10x:.4f}")
    # (a) d - 2: the directions 1 and x_hat are lost; (b) 1/sigma; (c) ten times smaller
    assert rank == 64 - 2 and abs(largest - 1 / 2) < 1e-9 and abs(largest_10x - 1 / 20) < 1e-9
    '''),
]


# ------------------------------------------------------------------------------------------------ 02

NB02 = [
    md(r'''
    # 02 · NormFormer: three extra operations against pre-LN's gradient mismatch

    Pre-LN trains without warmup, but Shleifer, Weston & Ott (2021, *NormFormer*, arXiv 2110.09456) observe
    that during training its **early layers receive much larger gradients than its late layers**: every
    block writes into the same un-normalized stream, the stream grows, and a later block's contribution is
    small next to it. NormFormer adds three operations to each pre-LN block (about +0.4% parameters):

    $$x' = x + N_{attn}\Big(\mathrm{HeadScaleAttn}\big(N(x)\big)\Big), \qquad
      \mathrm{HeadScaleAttn}(x) = \mathrm{concat}_i(\gamma_i\,\mathrm{head}_i(x))\,W_o$$
    $$x_{l+1} = x' + W_2\,N_{ffn}\Big(\mathrm{act}\big(W_1\,N(x')\big)\Big)$$

    1. $\gamma_i$, one learned scalar per attention head (init 1), before the output projection;
    2. $N_{attn}$, a norm on the attention output before it is added to the stream;
    3. $N_{ffn}$, a norm on the FFN's hidden activation (with SwiGLU: on
       $\mathrm{silu}(W_1 x) \odot W_3 x$), right before $W_2$.

    The extra norms fix the scale of what each sublayer writes and of what $W_2$ reads, which is meant to
    even out the gradients across depth. This notebook trains pre-LN and NormFormer with the same data and
    budget and compares their per-layer gradients.

    **After this notebook you will be able to explain** which three operations NormFormer adds to a pre-LN
    block and where they sit in the code; what they cost in parameters (you will count them); why a norm in
    front of $W_2$ evens out $W_2$'s gradient across depth (its gradient is an outer product with that norm's
    output); and why the same does not follow for the matrices before the new norms.
    '''),
    setup("math", steps=True),
    code('''
    from minigpt import layers, normformer, pre_ln
    from minigpt.source_view import show_source, side_by_side

    plots.plot_blocks(("pre_ln", "normformer"))
    '''),
    md(r'''
    ## The code

    `diff pre_ln.py normformer.py` is the three operations: `post_attn_norm` wraps the attention output, the
    attention gets `head_scale=True` and the FFN `mid_norm=True` (and `lambda_resid` is the identity unless
    `resid_scale`).
    '''),
    code('''
    side_by_side({"pre-LN (pre_ln.py)": pre_ln.Block.forward, "NormFormer (normformer.py)": normformer.Block.forward})
    '''),
    md(r'''
    The FFN's mid norm lives in the shared `MLP` of `layers.py`, between the activation and $W_2$
    (`c_proj`); it is `None` in every other variant:
    '''),
    code('''
    show_source(layers.MLP.forward)
    '''),
    md(r'''
    ## The cost: parameters

    Two norms of size $d$ and $d_{ff}$ (gains only: the presets use no biases) and $n_{head}$ scalars per
    block.
    '''),
    code('''
    import dataclasses

    from minigpt import build_model
    from minigpt.config import get_preset

    base_cfg, _ = get_preset(PRESET).configs("pre_ln", **{k: v for k, v in SCALE.items() if k != "compile"})
    params = {v: build_model(dataclasses.replace(base_cfg, variant=v)).num_params() for v in ("pre_ln", "normformer")}
    overhead = params["normformer"] / params["pre_ln"] - 1
    print(f"pre-LN {params['pre_ln']:,} parameters, NormFormer {params['normformer']:,}: +{100 * overhead:.2f}%")
    assert 0 < overhead < 0.01  # the paper: +0.4%
    '''),
    md(r'''
    ## Gradient norms per layer, before and after training

    `experiments.grad_norms_vs_depth` measures $\lVert\partial L/\partial W\rVert_F$ of each block's
    weights on fixed batches at init and after training, and records the **early/late ratio** (mean
    gradient norm of the first half of the layers over the last half) of every training step's own
    gradients. A ratio of 1 is balanced; pre-LN's is expected above 1.
    '''),
    code('''
    STEPS = notebook_steps("depth", PRESET)
    nf = E.grad_norms_vs_depth(PRESET, ("pre_ln", "normformer"), steps=STEPS, **SCALE)
    plots.plot_grad_norms(nf, weights=("ffn_in", "ffn_out"))
    '''),
    code('''
    plots.plot_grad_ratio_history(nf, weight="ffn_out")
    '''),
    code('''
    pre, norm = nf.early_late("pre_ln", "ffn_out"), nf.early_late("normformer", "ffn_out")
    print(f"early/late gradient ratio of FFN W2 after {STEPS} steps: pre-LN {pre:.2f}, NormFormer {norm:.2f}")
    assert pre > 1  # pre-LN: early layers get the larger gradients
    assert abs(math.log(norm)) < abs(math.log(pre))  # NormFormer is closer to balanced
    '''),
    code('''
    display(Markdown(
        f"In this run the claim holds for $W_2$, the matrix that reads the FFN norm's output: after {STEPS} steps "
        f"pre-LN's early layers get **{pre:.2f}x** the gradient of its late layers, NormFormer's **{norm:.2f}x** "
        f"(1 is even)."))
    '''),
    md(r'''
    **Why $W_2$.** For a linear map $y = W_2 a$, $\partial L/\partial W_2 = \delta\, a^\top$ with
    $\delta = \partial L/\partial y$, so $\lVert \partial L/\partial W_2 \rVert_F = \lVert\delta\rVert\,\lVert a\rVert$
    (an outer product). In NormFormer $a = N_{ffn}(\cdot)$, whose norm is $\sqrt{d_{ff}}$ times its gain in
    every layer; in pre-LN $a$ is the raw activation, whose size differs from layer to layer. The norm
    pins one of the two factors; the cell below measures $\lVert a \rVert$, the input $W_2$ reads, per layer.
    '''),
    code('''
    def w2_input_norms(model, x):  # mean ||a|| of what each block's W2 (mlp.c_proj) reads
        out = []
        hooks = [b.mlp.c_proj.register_forward_pre_hook(lambda m, a: out.append(a[0].norm(dim=-1).mean().item()))
                 for b in model.blocks]
        with torch.no_grad():
            model(x)
        for h in hooks:
            h.remove()
        return out


    from minigpt.data import load_data

    _, probe_batches = load_data(get_preset(PRESET).configs("pre_ln", **SCALE)[1], base_cfg.block_size)
    probe = probe_batches.val_batches(1, 4)[0][0]
    a_norms = {v: w2_input_norms(build_model(dataclasses.replace(base_cfg, variant=v)), probe)
               for v in ("pre_ln", "normformer")}
    for v, ns in a_norms.items():
        print(f"{v:<11} ||input of W2|| per layer at init: {[round(n, 3) for n in ns]}")
    d_ff = base_cfg.mlp_hidden
    # NormFormer: about sqrt(d_ff) in every layer (gain 1 at init; a little under, as LayerNorm's eps is not
    # negligible next to the tiny variance of a GPT-2-initialized SwiGLU output); pre-LN: small and uneven
    assert all(abs(n - math.sqrt(d_ff)) < 0.05 * math.sqrt(d_ff) for n in a_norms["normformer"])
    '''),
    md(r'''
    At init both are even across layers: pre-LN's FFN reads a normalized input too, so its $a$ has the size
    its $W_1$ gives it, the same init in every layer. What differs is what training can change: in pre-LN
    $\lVert a\rVert$ follows each layer's learned $W_1$ (and $W_3$), in NormFormer it stays pinned at
    $\sqrt{d_{ff}}$ times that layer's norm gain.

    **What does not reproduce at this scale:** the other matrices. The table below gives the early/late
    ratio (E/L) and last/first ratio (L/F) of every weight after training; for $W_1$ and the attention
    weights NormFormer's ratio is *not* closer to 1 than pre-LN's (its $N_{attn}$ makes every block write
    a vector of the stream's full size from the first step, so the stream grows faster, and the matrices
    before the new norms see the same imbalance as in pre-LN, or more). At init, NormFormer is even less
    balanced than pre-LN (first table). We assert what holds: the early layers' $W_1$ gradients stay
    larger in NormFormer too.
    '''),
    code('''
    print("at init\\n" + nf.table("init"))
    print(f"\\nafter {STEPS} steps\\n" + nf.table("trained"))
    assert nf.early_late("normformer", "ffn_in") > 1  # NormFormer's early layers still get larger W1 gradients
    '''),
    md(r'''
    NormFormer's other claim, that it tolerates a higher learning rate than pre-LN, is tested in notebook 05
    (the LR stability test), with the race of all four variants at equal budget.
    '''),
    md(r'''
    ## The recipe: GPT-2's init or fairseq's

    The paper trained NormFormer in fairseq's `transformer_lm`, whose token embeddings are initialized
    $\mathcal N(0, d^{-1/2})$ and multiplied by $\sqrt{d}$: the residual stream starts at unit scale per
    element. minigpt's default is GPT-2's init, embeddings $\mathcal N(0, 0.02^2)$. A norm on a branch's
    output fixes the branch's scale, so the stream's scale decides what that branch drowns: on GPT-2's
    0.02-scale stream, $N_{attn}$'s unit-scale output dwarfs the token embedding from the first block on.
    `ModelConfig.init` chooses the recipe (`"gpt2"`, `"fairseq"`, `"xavier"`).
    '''),
    code('''
    from minigpt.experiments import tiers as S
    from minigpt.plot_scale import describe, load_result, plot_result

    for init in ("gpt2", "fairseq"):
        cfg = dataclasses.replace(base_cfg, variant="normformer", init=init)
        torch.manual_seed(0)
        m = build_model(cfg)
        blk = m.blocks[0]
        with torch.no_grad():
            x = m.embed(torch.randint(0, cfg.vocab_size, (4, cfg.block_size)))
            out = blk.post_attn_norm(blk.attn(blk.ln_1(x)))
        print(f"{init:>8} init: token embedding norm {x.norm(dim=-1).mean():.2f}, "
              f"N_attn output norm {out.norm(dim=-1).mean():.2f}")
    '''),
    md(r'''
    `experiments.normformer_recipe` trains pre-LN and NormFormer with each recipe at equal budgets over
    several seeds, and sweeps the LR. The CI tier live (tiny models, seconds), then the committed full tier.
    '''),
    code('''
    live = {"name": "normformer_recipe", "tier": "ci", "params": S.TIERS["normformer_recipe"]["ci"],
            "data": S.run("normformer_recipe", "ci")}
    plot_result(live)
    '''),
    code('''
    full = load_result("normformer_recipe")
    print(describe(full))
    fin = full["data"]["final"]
    for key, f in fin.items():
        print(f"{key:<18} val {f['val']['mean']:.3f} ± {f['val']['std']:.3f} (seeds {len(f['val']['values'])}), "
              f"best LR of the sweep {full['data']['best_lr'][key]:g}")
    for init, sp in full["data"]["speedup"].items():
        print(f"NormFormer over pre-LN, {init} recipe: {sp['band']['mean']:.2f}x ± {sp['band']['std']:.2f}")
    plot_result(full)
    '''),
    md(r'''
    ## Check yourself

    The presets use norms without biases (a gain vector only) and `resid_scale=False`. **Before running the
    next cell, write down how many parameters NormFormer adds to each block**, in terms of $d$ (`n_embd`),
    $d_{ff}$ (`mlp_hidden`) and $n_{head}$, and then the total for this preset's model.
    '''),
    code('''
    c = base_cfg
    per_block = c.n_embd + c.mlp_hidden + c.n_head  # N_attn's gain, N_ffn's gain, one gamma per head
    print(f"d = {c.n_embd}, d_ff = {c.mlp_hidden}, n_head = {c.n_head}, {c.n_layer} blocks: "
          f"{per_block} per block, {c.n_layer * per_block} in all")
    assert params["normformer"] - params["pre_ln"] == c.n_layer * per_block
    '''),
]

# ------------------------------------------------------------------------------------------------ 03

NB03 = [
    md(r'''
    # 03 · nGPT: learning on the hypersphere, with LERP and SLERP

    nGPT (Loshchilov, Hsieh, Sun & Ginsburg 2024, arXiv 2410.01131) removes every norm layer and instead
    keeps every vector that lives along the embedding dimension on the unit sphere: the token embeddings,
    the rows of $W_q, W_k, W_v$ and of the MLP input matrix, the columns of the output projections, and
    the hidden state itself. With $\mathrm{Norm}(v) = v/\lVert v\rVert_2$:

    $$q = \mathrm{Norm}(\mathrm{RoPE}(W_q h)) \odot s_{qk}, \quad k = \mathrm{Norm}(\mathrm{RoPE}(W_k h)) \odot s_{qk},
      \quad \text{softmax scale } \sqrt{d_{head}}$$
    $$h_M = W_o\,(u \odot \mathrm{SiLU}(\nu)), \quad u = s_u \odot W_u h, \quad \nu = s_\nu \odot W_\nu h\,\sqrt{d}$$
    $$h \leftarrow \mathrm{Norm}\big(h + \lvert\alpha_A\rvert \odot (\mathrm{Norm}(h_A) - h)\big), \qquad
      h \leftarrow \mathrm{Norm}\big(h + \lvert\alpha_M\rvert \odot (\mathrm{Norm}(h_M) - h)\big)$$
    $$z = s_z \odot (E_{out}\,h)$$

    Each block moves $h$ along the sphere toward the (normalized) output of its sublayer, by a learned
    per-dimension step $\alpha$ (the "eigen learning rates", init 0.05). The paper writes the move as linear
    interpolation followed by normalization (**LERP**), an approximation of the exact geodesic step
    (**SLERP**): with $\theta = \angle(h, b)$, $b = \mathrm{Norm}(h_X)$,

    $$\mathrm{SLERP}(h, b; \alpha) = \frac{\sin((1-\alpha)\theta)}{\sin\theta}\,h
      + \frac{\sin(\alpha\theta)}{\sin\theta}\,b .$$

    `minigpt` implements both (`ngpt_update="lerp"` / `"slerp"`). After every optimizer step
    `model.after_optimizer_step()` puts the weights back on the sphere.

    **After this notebook you will be able to explain** why, once every dot product is a cosine in
    $[-1, 1]$, nGPT needs $s_{qk}$, $s_z$ and the $\sqrt{d}$ on $\nu$ (each derived and measured below); why
    $\alpha$ reads as a per-dimension step size; why nGPT trains without weight decay and without warmup;
    how LERP and SLERP differ and why the paper can use LERP; and what nGPT's hidden states look like next to
    pre-LN's.
    '''),
    setup("math", steps=True),
    code('''
    from minigpt import ngpt
    from minigpt.source_view import show_source

    plots.plot_blocks(("pre_ln", "ngpt"))
    '''),
    md(r'''
    ## The code

    The block, then the three places where the scales enter: attention's $q, k$, the MLP's $u, \nu$ and the
    logits. Every `l2_normalize` is a $\mathrm{Norm}(\cdot)$ of the equations above.
    '''),
    code('''
    show_source(ngpt.Block.forward, ngpt.Attention.transform_qk, ngpt.NormalizedMLP.forward, ngpt.GPT.head)
    '''),
    md(r'''
    ## LERP and SLERP on paper

    Both moves stay on the great circle through $h$ and $b$; they differ in how far they go. SLERP turns
    $h$ by exactly $\alpha\theta$. LERP's point $h + \alpha(b - h)$ sits on the chord, and normalizing it
    turns $h$ by $\operatorname{atan2}(\alpha\sin\theta,\; 1-\alpha+\alpha\cos\theta)$, which is less
    (printed below for a few $\theta$; $\theta \approx 90°$ is the angle between two random high-dimensional
    vectors). So LERP with some $\alpha$ behaves like SLERP with a somewhat smaller one, and the learned
    $\alpha$ can absorb the difference. The cell checks `minigpt.ngpt`'s two functions against these
    closed forms on 2-D vectors.
    '''),
    code('''
    import dataclasses

    from minigpt.ngpt import lerp_update, slerp

    alpha = 0.05
    for deg in (10, 45, 90, 150):
        th = math.radians(deg)
        h, b = torch.tensor([1.0, 0.0]), torch.tensor([math.cos(th), math.sin(th)])
        by_lerp, by_slerp = lerp_update(h, b, torch.tensor(alpha)), slerp(h, b, alpha)
        turn_lerp = math.degrees(math.atan2(by_lerp[1], by_lerp[0]))
        turn_slerp = math.degrees(math.atan2(by_slerp[1], by_slerp[0]))
        want_lerp = math.degrees(math.atan2(alpha * math.sin(th), 1 - alpha + alpha * math.cos(th)))
        print(f"theta {deg:>3} deg: LERP turns h by {turn_lerp:.3f} deg, SLERP by {turn_slerp:.3f} deg")
        assert abs(turn_slerp - alpha * deg) < 1e-3 and abs(turn_lerp - want_lerp) < 1e-3
        if deg == 90:
            slerp_over_lerp_90 = turn_slerp / turn_lerp
    display(Markdown(rf"At $\\theta = 90°$ and $\\alpha = {alpha}$ SLERP turns $h$ **{slerp_over_lerp_90:.2f}** "
                     f"times as far as LERP."))
    '''),
    md(r'''
    Move the sliders: $\alpha$, the angle $\theta$ between $h$ and its target $b$, and the number of steps
    (the same update applied again toward the same $b$). The cross is LERP's point on the chord, inside the
    ball; the dashed ray normalizes it onto the sphere. Every point is computed by `lerp_update` and `slerp`.
    Try $\theta$ near 180°: the chord passes near the centre, and LERP hardly turns $h$ at all.
    '''),
    code('''
    from minigpt.sphere_steps import steps_widget

    steps_widget(alpha=0.3, theta_deg=120.0, n_steps=1)
    '''),
    md(r'''
    ## Train nGPT (LERP and SLERP) and pre-LN

    `experiments.hypersphere` trains three models with the same seed, data and budget (nGPT with each
    update, at nGPT's preset LR; pre-LN for contrast) and measures their geometry.
    '''),
    code('''
    STEPS = notebook_steps("hypersphere", PRESET)
    sphere = E.hypersphere(PRESET, steps=STEPS, **SCALE)
    for k in sphere.labels:
        print(f"{k:<11} val loss {sphere.final_val[k]:.3f}   {sphere.ms_per_step[k]:.0f} ms/step   "
              f"max | ||h|| - 1 | over tokens and layers: {sphere.max_norm_error[k]:.2e}")
    '''),
    code('''
    # nGPT: every hidden state of every layer, and every embedding row, has norm 1 within 1e-4
    for k in ("ngpt-lerp", "ngpt-slerp"):
        assert sphere.max_norm_error[k] < 1e-4, k
        assert max(abs(n - 1) for n in sphere.embedding_norms[k]) < 1e-4, k
    assert sphere.max_norm_error["pre_ln"] > 0.5  # pre-LN's stream is nowhere near the sphere
    '''),
    md(r'''
    ## The geometry

    Top left: pre-LN's embedding rows have all sorts of lengths, nGPT's are all exactly 1. Top right: the
    cosine similarities between embedding rows, and the condition number of their covariance
    $E^\top E / V$. Bottom: the hidden-state norm per layer (pre-LN's grows, nGPT's is 1), and the condition
    number of each attention head's $W_q W_k^\top$. The nGPT paper reports that nGPT's attention matrices
    are far better conditioned than its baseline's.
    '''),
    code('''
    plots.plot_hypersphere_stats(sphere)
    '''),
    code('''
    def mean_cond(k):
        rows = sphere.attention_cond[k]
        return sum(sum(r) / len(r) for r in rows) / len(rows)

    for k in sphere.labels:
        print(f"{k:<11} embedding-covariance condition {sphere.embedding_cond[k]:>9.3g}   "
              f"W_q W_k^T condition, mean over heads and layers {mean_cond(k):>9.3g}")
    assert mean_cond("ngpt-lerp") < mean_cond("pre_ln") and mean_cond("ngpt-slerp") < mean_cond("pre_ln")
    ec = sphere.embedding_cond
    display(Markdown(
        rf"In this run nGPT's $W_q W_k^\\top$ are better conditioned than pre-LN's by "
        f"**{mean_cond('pre_ln') / mean_cond('ngpt-lerp'):.1f}x** (LERP) and "
        f"**{mean_cond('pre_ln') / mean_cond('ngpt-slerp'):.1f}x** (SLERP); the embedding covariance's "
        f"condition numbers are {ec['ngpt-lerp']:.3g} (LERP), {ec['ngpt-slerp']:.3g} (SLERP) and "
        f"{ec['pre_ln']:.3g} (pre-LN)."))
    '''),
    md(r'''
    Averaged over layers and heads, nGPT's $W_q W_k^\top$ are better conditioned than pre-LN's (the ratios
    are printed above), which is the paper's observation and what we assert. Layer by layer the picture is
    noisier (the figure's last panel), and the embedding covariance need not show any advantage (a
    char-level vocabulary on a small sphere, trained for seconds), so we assert nothing about it.

    ## A token's hidden state moving across layers

    Each path follows one token of a validation sequence from its embedding (circle) through the blocks to
    the last one (star). A model's states live in $d$ dimensions; the picture keeps three, the principal
    directions of all the drawn states, and projects each state's direction $h/\lVert h\rVert$ onto them
    **without re-normalizing**: a point lies on the drawn sphere only if those three directions describe it
    fully, and the part they miss shows as its distance inside. (Re-normalizing the projection would put
    every model's states on the sphere, pre-LN's included.) Pre-LN's states are drawn beside nGPT's the same
    way, divided by their norm, and their norm, which no sphere can show, gets its own panel. The last panel
    is the angle each block turns each token: in nGPT, one LERP step per sublayer.
    '''),
    code('''
    plots.plot_sphere_projection(sphere)
    '''),
    code('''
    first = {k: math.degrees(sum(a[0]) / len(a[0])) for k, a in sphere.step_angles.items()}
    kept = sphere.projections["ngpt-lerp"].kept
    display(Markdown(
        f"In this run the three directions keep {kept.min():.2f} to {kept.max():.2f} of nGPT's tracked states "
        f"(1 = on the sphere). The first block turns a token by {first['pre_ln']:.0f}° on average in pre-LN "
        f"and {first['ngpt-lerp']:.0f}° in nGPT (LERP): pre-LN's embedding is tiny (GPT-2's 0.02 init), so the "
        f"first block's output swamps it, while nGPT's embedding has norm 1 and each block takes one step of "
        rf"size set by $\\alpha$."))
    assert (kept <= 1 + 1e-5).all()  # a projection of a unit vector never leaves the ball
    assert (sphere.projections["ngpt-lerp"].norms - 1).abs().max() < 1e-4  # nGPT's norms: 1
    assert first["pre_ln"] > first["ngpt-lerp"]  # pre-LN's first block overwrites its tiny embedding
    '''),
    md(r'''
    ## The learned scales

    The eigen learning rates $\alpha_A, \alpha_M$ start at 0.05; the scalings $s_{qk}, s_u, s_\nu$ at 1.
    (Each is stored as a raw parameter and used as raw $\cdot$ init/scale, so Adam's step on it is set by
    the scale; see `ngpt.ScaledParam`.)
    '''),
    code('''
    plots.plot_ngpt_scalars(sphere)
    '''),
    code('''
    print({k: [round(v, 3) for v in vals] for k, vals in sphere.scalars.items()})
    assert all(a > 0.05 for a in sphere.scalars["alpha_attn"])  # every block learned to take larger steps
    '''),
    md(r'''
    Every block's $\alpha$ grew above its init (asserted): the blocks learn to move $h$ further per layer
    than the init allows.

    ## Why the scales: every dot product is a cosine

    In nGPT every vector that enters a dot product along $d$ has norm 1, so every such dot product is a
    cosine in $[-1, 1]$. That is the point (nothing can blow up), and also the problem: a softmax over
    numbers in $[-1, 1]$ can hardly prefer anything. Each scale puts a range back where one is needed.

    **Attention: $\sqrt{d_{head}}$ and $s_{qk}$.** With the usual softmax scale $1/\sqrt{d_{head}}$ a
    logit would lie in $[-1/\sqrt{d_{head}}, 1/\sqrt{d_{head}}]$. With logits bounded by $B$, the most
    weight one of $T$ keys can get is $e^{B} / (e^{B} + (T-1)e^{-B})$. nGPT uses $\sqrt{d_{head}}$ instead, so
    $B = \sqrt{d_{head}}\,s_{qk}^2$, and learns $s_{qk}$ to sharpen further.
    '''),
    code('''
    from minigpt.config import get_preset

    cfg, _ = get_preset(PRESET).configs("ngpt", **SCALE)
    d_head, T, V = cfg.n_embd // cfg.n_head, cfg.block_size, cfg.vocab_size


    def top_weight(bound, n):  # the largest softmax weight one of n entries can get when |logit| <= bound
        return math.exp(bound) / (math.exp(bound) + (n - 1) * math.exp(-bound))


    s_qk = sum(sphere.scalars["s_qk"]) / len(sphere.scalars["s_qk"])  # learned, mean |s_qk| over layers
    for name, bound in (("usual scale 1/sqrt(d_head)", 1 / math.sqrt(d_head)), ("nGPT at init, sqrt(d_head)",
                        math.sqrt(d_head)), ("nGPT trained, sqrt(d_head) s_qk^2", math.sqrt(d_head) * s_qk**2)):
        print(f"{name:<34} |logit| <= {bound:6.3f}: top attention weight over T = {T} keys <= "
              f"{top_weight(bound, T):.3f}  (uniform: {1 / T:.3f})")
    assert top_weight(1 / math.sqrt(d_head), T) < 2 / T  # with cosines and the usual scale: nearly uniform
    '''),
    md(r'''
    **Logits: $s_z$.** $z = E_{out} h$ is a vector of cosines too. Even for the best case, $+1$ on the right
    token and $-1$ on every other, the probability of the right token is $e/(e + (V-1)e^{-1})$, so the loss
    could never go below $-\ln$ of that. $s_z$ (one per token, init 1) lifts the bound. The cell checks the
    floor with `cross_entropy` on that best case.
    '''),
    code('''
    import torch.nn.functional as F

    best = torch.full((1, V), -1.0)
    best[0, 0] = 1.0
    floor = F.cross_entropy(best, torch.tensor([0])).item()
    print(f"V = {V}: with s_z = 1 the loss can never go below {floor:.3f} nats "
          f"(ln V = {math.log(V):.3f}); nGPT's val loss after training: {sphere.final_val['ngpt-lerp']:.3f}, "
          f"its learned mean |s_z| = {sphere.scalars['s_z'][0]:.2f}")
    assert abs(floor + math.log(top_weight(1.0, V))) < 1e-5  # the closed form
    '''),
    md(r'''
    **The MLP: $\sqrt{d}$ on $\nu$.** $W_\nu h$ are cosines between $h$ and unit rows; for random directions
    in $d$ dimensions a cosine has standard deviation $1/\sqrt{d}$. SiLU is nearly linear on so small an
    input ($\mathrm{SiLU}(x) \approx x/2$ near 0), and the gate would not gate. Multiplying by $\sqrt d$
    brings $\nu$ to unit scale, where SiLU bends. Measured on a freshly built nGPT:
    '''),
    code('''
    from minigpt import build_model

    torch.manual_seed(0)
    fresh = build_model(cfg)
    h0 = fresh.wte.weight[:V]  # unit vectors, as every hidden state is
    nu = F.linear(h0, fresh.blocks[0].mlp.c_fc.weight).chunk(2, dim=-1)[1].detach()  # W_nu h, before any scale


    def bend(x):  # how far SiLU is from its linear part x/2 on these inputs, relative
        return ((F.silu(x) - x / 2).norm() / F.silu(x).norm()).item()


    d = cfg.n_embd
    print(f"std of W_nu h: {nu.std():.4f} (1/sqrt(d) = {1 / math.sqrt(d):.4f});  times sqrt(d): "
          f"{(nu * math.sqrt(d)).std():.3f}")
    print(f"SiLU's departure from linear: {bend(nu):.3f} on W_nu h, {bend(nu * math.sqrt(d)):.3f} on sqrt(d) W_nu h")
    assert abs(nu.std().item() * math.sqrt(d) - 1) < 0.2  # cosines of random directions: std 1/sqrt(d)
    assert bend(nu * math.sqrt(d)) > 3 * bend(nu)  # the gate is nonlinear only at unit scale
    '''),
    md(r'''
    **$\alpha$ is a per-dimension step size.** Write the LERP update as
    $h \leftarrow \mathrm{Norm}\big(h - \alpha \odot (h - b)\big)$: a step of gradient descent,
    $x \leftarrow x - \eta \odot g$, with $g = h - b$ (the gradient of $\tfrac12\lVert h - b\rVert^2$, the
    distance to the sublayer's suggestion $b$), a learning rate $\eta = \alpha$ per dimension, and a
    projection back onto the sphere. Each block runs one such step per sublayer; the paper calls the
    $\alpha$s "eigen learning rates", and the learned values above say how far each block trusts its
    sublayers.

    **No weight decay.** After every step the weights are projected back onto the sphere. AdamW's decay turns
    a step $w - \eta u$ into $(1 - \eta\lambda) w - \eta u$, and
    $\mathrm{Norm}\big((1-\eta\lambda) w - \eta u\big) = \mathrm{Norm}\big(w - \tfrac{\eta}{1-\eta\lambda} u\big)$:
    on a unit vector, decay is only a slightly larger learning rate, and its purpose (keeping norms small) is
    already served by the projection. On the scales ($\alpha$, $s_{qk}$, $s_u$, $s_\nu$, $s_z$) decay would
    pull toward 0 exactly what the model learns to enlarge. The cell checks the identity on random vectors.
    '''),
    code('''
    w = F.normalize(torch.randn(1000, d, dtype=torch.float64), dim=-1)
    u = torch.randn_like(w)
    eta, lam = 8e-3, 0.1
    with_decay = F.normalize((1 - eta * lam) * w - eta * u, dim=-1)
    larger_lr = F.normalize(w - eta / (1 - eta * lam) * u, dim=-1)
    print(f"max difference: {(with_decay - larger_lr).abs().max():.1e}")
    assert torch.allclose(with_decay, larger_lr, atol=1e-12)
    '''),
    md(r'''
    **No warmup.** Warmup protects a model from its first, badly scaled updates: in post-LN large early
    gradients throw the activations off scale (notebook 01). In nGPT no update can change the scale of
    anything: every weight vector is projected back to norm 1, every hidden state is normalized, and
    $|z_i| \le |s_{z,i}|$ whatever the weights. The cell makes a wild first step on every matrix of nGPT and
    of pre-LN, the step Adam takes at LR 1 in a random direction (every element moves by $\pm 1$), and
    compares the logits before and after.
    '''),
    code('''
    x = torch.randint(0, V, (4, T), generator=torch.Generator().manual_seed(0))
    for variant in ("pre_ln", "ngpt"):
        torch.manual_seed(0)
        model = build_model(dataclasses.replace(cfg, variant=variant))
        with torch.no_grad():
            before = model(x)[0].abs().max().item()
            for p in model.parameters():
                if p.dim() == 2:
                    p.add_(torch.randn_like(p).sign())  # Adam's step at LR 1: +-1 per element
            if hasattr(model, "after_optimizer_step"):
                model.after_optimizer_step()
            after = model(x)[0].abs().max().item()
        print(f"{variant:<7} max |logit| before {before:8.3f}, after the wild step {after:8.3f}")
        if variant == "ngpt":  # bounded by |s_z| (1 at init) whatever the weights
            assert after <= model.s_z().abs().max().item() + 1e-5
        else:
            assert after > 10 * before  # pre-LN's logits are not bounded: its LM head reads raw weights
    '''),
    md(r'''
    ## LERP vs SLERP, trained

    Left and middle: loss curves of the two nGPT runs (same seed and data). Right: on the LERP model's own
    hidden states, for each block and sublayer, the angle $h$ moves (its step) and the angle between the
    LERP and the SLERP update computed from the same $h$, target and $\alpha$ (their gap).
    '''),
    code('''
    plots.plot_lerp_vs_slerp(sphere)
    '''),
    code('''
    gap = sphere.gap
    for part in ("attn", "mlp"):
        print(f"{part:<4} step (deg) {[round(math.degrees(v), 2) for v in gap[part + '_step']]}   "
              f"LERP-SLERP gap (deg) {[round(math.degrees(v), 2) for v in gap[part + '_gap']]}")
    lerp, slerp_ = sphere.final_val["ngpt-lerp"], sphere.final_val["ngpt-slerp"]
    print(f"val loss LERP {lerp:.3f}, SLERP {slerp_:.3f};  ms/step LERP {sphere.ms_per_step['ngpt-lerp']:.0f}, "
          f"SLERP {sphere.ms_per_step['ngpt-slerp']:.0f}")
    # the two updates agree on the direction: their gap is smaller than the step itself, in every block
    steps = gap["attn_step"] + gap["mlp_step"]
    fractions = [g / s for g, s in zip(gap["attn_gap"] + gap["mlp_gap"], steps, strict=True)]
    assert all(f < 1 for f in fractions)
    display(Markdown(
        f"In this run the gap is **{min(fractions):.2f} to {max(fractions):.2f}** of the step; the closed form "
        rf"predicted that order (at $\\theta = 90°$ SLERP turns {slerp_over_lerp_90:.2f} times as far as LERP, "
        f"a gap of {1 - 1 / slerp_over_lerp_90:.2f} of SLERP's step)."))
    '''),
    md(r'''
    The gap is a sizable fraction of the step, yet the two models reach similar
    losses: LERP is SLERP with a smaller effective
    $\alpha$, and $\alpha$ is learned. SLERP costs an `arccos` per token and two `sin` per element, per sublayer; the
    ms/step above say what that costs here. This is why the paper uses LERP in practice.

    ## Check yourself

    Take $\alpha = 0.5$ in every dimension and a target $b$ at $\theta = 90°$ from $h$. **Before running the
    next cell, write down by how many degrees SLERP turns $h$, by how many LERP does, and which turns
    further.** (Hint: where does $h + \tfrac12 (b - h)$ point?)
    '''),
    code('''
    h, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    turns = {name: math.degrees(math.atan2(v[1], v[0]))
             for name, v in (("LERP", lerp_update(h, b, torch.tensor(0.5))), ("SLERP", slerp(h, b, 0.5)))}
    print(turns)
    # both 45 degrees: at alpha = 1/2 the chord's midpoint lies on the bisector, exactly where SLERP goes
    assert all(abs(t - 45.0) < 1e-4 for t in turns.values())
    '''),
]

# ------------------------------------------------------------------------------------------------ 05

NB05 = [
    md(r'''
    # 05 · The race, and LR stability

    ## 1. The race

    The nGPT paper's headline: nGPT reaches the loss of a pre-LN baseline in 4x (1k context), 10x (4k) and
    20x (8k) fewer steps. Its metric, which we use, is the **steps-to-target speedup**:

    $$\text{speedup} = \frac{s_{\text{pre-LN}}(\ell^*)}{s_{\text{nGPT}}(\ell^*)},$$

    with $\ell^*$ pre-LN's final validation loss and $s(\ell)$ the first step (interpolated between
    evaluations) at which a run's validation loss reaches $\ell$. (If nGPT never gets to $\ell^*$, $\ell^*$
    is nGPT's own final loss instead and the speedup comes out below 1.)

    A race measures normalization only if nothing else differs. The presets give every variant nGPT's
    other ingredients (RoPE, SwiGLU, no bias), the same seed, data order and step budget, and each variant
    its own best LR from a small sweep (nGPT's is the highest). A GPT-2-style pre-LN (learned positions,
    GELU, biases) against a RoPE/SwiGLU nGPT would measure RoPE and SwiGLU too; section 2 shows how much
    that inflates the speedup.

    **After this notebook you will be able to explain** how the steps-to-target speedup is computed (the
    code is below; you will compute one by hand); why a race measures normalization only when every other
    ingredient is shared, and how much a GPT-2-style baseline inflates nGPT's speedup; what the LR ramp
    measures and what "no divergence" means when the loss sits at the unigram loss.
    '''),
    setup(steps=True),
    md(r'''
    The metric, from `minigpt/experiments`: the first step at which a run's validation curve reaches a loss,
    interpolated linearly between evaluations, and the ratio of two such steps.
    '''),
    code('''
    from minigpt.source_view import show_source

    show_source(E.steps_to_reach, E.speedup)
    '''),
    code('''
    RSTEPS = notebook_steps("race", PRESET)  # gpu-small overfits the corpus after ~500 steps
    # two seeds per variant (init and batch order): lines are their mean, bands span the two, crosses mark the
    # steps-to-target points
    race = E.race(PRESET, steps=RSTEPS, seeds=2, **SCALE)
    print(race.table())
    plots.plot_race(race)
    '''),
    code('''
    assert all(r.final_val < r.val[0][1] - 0.3 for r in race.runs.values())  # every variant kept learning
    sp = race.speedup
    lo, hi = race.speedup_range
    seed_gap = {v: abs(r.per_seed[0].final_val - r.per_seed[1].final_val) / r.final_val for v, r in race.runs.items()}
    print(f"nGPT over pre-LN: {sp.factor:.2f}x at val loss {sp.target:.3f} (per seed {lo:.2f}x to {hi:.2f}x); "
          f"the two seeds' final losses differ by up to {100 * max(seed_gap.values()):.1f}%")
    # no 4x here: nGPT and pre-LN are within a factor 2 of each other in steps to target, and nGPT ends within
    # 5% of pre-LN's loss at equal steps
    assert sp is not None and 0.5 < sp.factor < 2.0 and 0.5 < lo <= hi < 2.0
    assert race.runs["ngpt"].final_val <= 1.05 * race.runs["pre_ln"].final_val
    '''),
    code('''
    from minigpt.registry import display_name

    pre_run, ngpt_run = race.runs["pre_ln"], race.runs["ngpt"]
    order = sorted(race.runs, key=lambda v: race.runs[v].final_val)
    display(Markdown(
        f"In this run nGPT ends at **{ngpt_run.final_val:.3f}** against pre-LN's **{pre_run.final_val:.3f}** "
        f"({100 * (ngpt_run.final_val / pre_run.final_val - 1):+.1f}%); the speedup is "
        f"**{sp.baseline_steps:.0f} / {sp.challenger_steps:.0f} = {sp.factor:.2f}x** at val loss {sp.target:.3f}. "
        f"Final val loss, lowest first: " + ", ".join(f"{display_name(v)} {race.runs[v].final_val:.3f}" for v in order)
        + "."))
    '''),
    md(r'''
    **What reproduces at this scale:** little. nGPT ends close to pre-LN's loss at equal steps but does not
    reach the paper's 4x. The paper's models have 0.5B-1B parameters and 1k-8k tokens of context; ours are
    tiny, with a context of a few dozen characters. nGPT also pays
    more per step here (the normalizations are extra element-wise work, which a small model on a CPU
    feels; see the wall-clock panel), so in wall-clock it falls further behind. The order of the four at
    this budget is printed above; post-LN has its own swept LR and the preset's warmup.

    ## 2. The confound: a GPT-2-style baseline

    The same race for pre-LN with the classic GPT-2 block (learned positions, GELU, biases), with the same two
    seeds, against the nGPT runs above.
    '''),
    code('''
    classic = E.race(PRESET, ("pre_ln",), steps=RSTEPS, seeds=2, position="learned", mlp="gelu", bias=True,
                     **SCALE)
    confounded = E.speedup(classic.runs["pre_ln"], race.runs["ngpt"])
    print(f"nGPT over a GPT-2-style pre-LN: {confounded.factor:.2f}x;  over the same-ingredient pre-LN: "
          f"{race.speedup.factor:.2f}x")
    assert confounded.factor > race.speedup.factor  # the confound inflates nGPT's speedup
    display(Markdown(
        f"In this run the unfair comparison gives **{confounded.factor:.2f}x** where the fair one gives "
        f"**{race.speedup.factor:.2f}x**: what separates the two is RoPE and SwiGLU, not normalization."))
    '''),
    md(r'''
    What looks like nGPT's advantage over a textbook GPT-2 at this scale is, to that extent, its other
    ingredients.

    ## 3. The trend with context length

    The paper's speedup grows with context length. `experiments.speedup_vs_context` repeats the race
    (pre-LN and nGPT only) at several context lengths with the tokens per step held fixed.
    '''),
    code('''
    CONTEXTS = (128, 256, 512) if ON_GPU else (32, 128)
    CSTEPS = 500 if ON_GPU else 120
    ctx_scale = {k: v for k, v in SCALE.items() if k not in ("block_size", "batch_size")}
    tokens = None if ON_GPU else 512
    ctx = E.speedup_vs_context(PRESET, CONTEXTS, steps=CSTEPS, tokens_per_step=tokens, **ctx_scale)
    for p in ctx:
        print(f"T = {p.block_size:>4}, batch {p.batch_size:>3}: speedup {p.speedup.factor:.2f}x "
              f"(pre-LN {p.runs['pre_ln'].final_val:.3f}, nGPT {p.runs['ngpt'].final_val:.3f})")
    plots.plot_speedup_vs_context(ctx)
    '''),
    code('''
    # at these contexts and budgets nGPT is nowhere near the paper's 4-20x: within a factor 2 of pre-LN
    assert all(p.speedup is not None and 0.5 < p.speedup.factor < 2.0 for p in ctx)
    display(Markdown(
        f"In this run, {CSTEPS} steps per race: " + ", ".join(f"**{p.speedup.factor:.2f}x** at T = {p.block_size}"
                                                           for p in ctx) + "."))
    '''),
    md(r'''
    **This claim does not reproduce at this scale.** Contexts of a few dozen to a few hundred tokens are
    far from the 1k-8k tokens where the paper sees its speedup grow, and the budgets are tiny. We assert
    what holds, that the two are within a factor of 2 of each other, and do not read a trend into a few
    noisy points.

    ## 4. LR stability

    NormFormer's Figure 5 raises the learning rate every update until training blows up, to show that
    NormFormer survives larger LRs than pre-LN. Here every variant starts at $10^{-5}$ and multiplies its
    LR by a constant each step (reaching 1 at the last step). At this scale the loss rarely overflows (the
    norms and gradient clipping keep the logits bounded); a too-high LR shows as the loss climbing back
    toward the unigram loss. The **LR at divergence** is where the smoothed loss first rises 10% above the
    lowest value it reached (or where the loss blows up by the trainer's own rule).
    '''),
    code('''
    LSTEPS = notebook_steps("lr_stability", PRESET)
    lrs = E.lr_stability(PRESET, steps=LSTEPS, **SCALE)
    print(lrs.table())
    plots.plot_lr_stability(lrs)
    '''),
    code('''
    div = {v: lrs.divergence_lr(v) for v in lrs.runs}
    assert div["post_ln"] < min(d for v, d in div.items() if v != "post_ln")  # post-LN gives out first
    assert div["normformer"] >= div["pre_ln"]  # NormFormer tolerates at least pre-LN's LR
    R = lrs.runs
    gap = min(d for v, d in div.items() if v != "post_ln") / div["post_ln"]
    display(Markdown(
        f"In this run post-LN gives out at LR **{div['post_ln']:.3g}**, the next variant at **{gap:.0f}x** that. "
        f"Lowest loss along the ramp: NormFormer {R['normformer'].best_loss:.3f} against pre-LN's "
        f"{R['pre_ln'].best_loss:.3f}; nGPT reaches its lowest loss at LR {R['ngpt'].best_lr:.3g} against "
        f"pre-LN's {R['pre_ln'].best_lr:.3g}."))
    '''),
    md(r'''
    Post-LN gives out at the lowest LR, which matches its need for warmup (notebook 01). By our criterion
    NormFormer survives at least as high an LR as pre-LN, as the paper's Figure 5 says, but read the curves
    (and the lowest losses printed above) before taking that as a reproduction: along this fast ramp a
    variant that learns more slowly also climbs later. nGPT, which the paper trains at a higher LR than its
    baseline, is compared by its "best LR" as well as by where it gives out.
    '''),
    md(r'''
    ## 5. Where the speedup appears: budget and context, with seeds

    One short race says nothing about where a claim crosses 1. `experiments.budget_curve` and
    `experiments.context_curve` repeat the race over training budgets and context lengths, three seeds per
    point. The CI tier live (tiny models, seconds), then the full tier committed in `docs/results/` (the
    command that made each is printed).
    '''),
    code('''
    from minigpt.experiments import tiers as S
    from minigpt.plot_scale import describe, load_result, plot_result

    live = {"name": "budget", "tier": "ci", "params": S.TIERS["budget"]["ci"], "data": S.run("budget", "ci")}
    plot_result(live)
    '''),
    code('''
    budget = load_result("budget")
    print(describe(budget))
    for p in budget["data"]["points"]:
        s = p["speedup"]
        seeds = ", ".join(f"{v:.2f}" for v in s["values"])
        print(f"{p['budget']:>5} steps: speedup {s['mean']:.2f}x ± {s['std']:.2f} (seeds: {seeds})")
    first, last = budget["data"]["points"][0]["speedup"], budget["data"]["points"][-1]["speedup"]
    assert first["max"] < 1 < last["min"]  # every seed: behind at the shortest budget, ahead at the longest
    plot_result(budget)
    '''),
    code('''
    context = load_result("context")
    print(describe(context))
    for p in context["data"]["points"]:
        s = p["speedup"]
        print(f"T = {p['block_size']:>4}, batch {p['batch_size']:>3}: speedup {s['mean']:.2f}x ± {s['std']:.2f}")
    plot_result(context)
    '''),
    md(r'''
    ## Check yourself

    A baseline's validation loss is 3.0 at step 100, 2.4 at step 200 and 2.0 at step 300 (its final loss);
    a challenger's is 2.5 at step 100 and 2.0 at step 200. **Before running the next cell, compute the
    steps-to-target speedup of the challenger over the baseline** (target: the baseline's final loss), and
    the step at which the baseline first reaches 2.7.
    '''),
    code('''
    base = E.RaceRun("base", "pre_ln", 1e-3, 0, [(100, 3.0), (200, 2.4), (300, 2.0)], [], 1.0)
    challenger = E.RaceRun("challenger", "ngpt", 1e-3, 0, [(100, 2.5), (200, 2.0)], [], 1.0)
    sp_check = E.speedup(base, challenger)
    print(f"speedup {sp_check.factor:.2f}x;  the baseline reaches 2.7 at step {E.steps_to_reach(base.val, 2.7):.0f}")
    # 300 / 200 = 1.5x; 2.7 lies halfway between 3.0 (step 100) and 2.4 (step 200): step 150
    assert abs(sp_check.factor - 1.5) < 1e-9 and abs(E.steps_to_reach(base.val, 2.7) - 150) < 1e-9
    '''),
]

# ------------------------------------------------------------------------------------------------ 06

NB06 = [
    md(r'''
    # 06 · Modern block ingredients

    A 2024 LLM block is a pre-LN block with a handful of changes that each have a one-line reason. Each is a
    `ModelConfig` flag in `minigpt`; this notebook changes one at a time from the preset's block and trains.

    | ingredient | what it computes | why |
    |---|---|---|
    | RMSNorm | $g \odot x / \sqrt{\tfrac1d \sum_i x_i^2 + \epsilon}$ | LayerNorm without centering |
    | SwiGLU | $W_2(\mathrm{silu}(W_1 x) \odot W_3 x)$, hidden $\tfrac83 d$ | a gated FFN, same parameters |
    | no bias | $Wx$ instead of $Wx + b$ | fewer parameters, more stable |
    | RoPE | rotate $q, k$ by position-dependent angles | relative positions, no table |
    | QK-norm | $N(q)^\top N(k)$ per head | bounds attention logits |
    | z-loss | $+\,c\,\mathrm{mean}(\log Z)^2$, $Z = \sum_j e^{z_j}$ | keeps the softmax normalizer near 1 |
    | soft-cap | $z \leftarrow c \tanh(z / c)$ | bounds the logits (Gemma 2, $c = 30$) |
    | GQA / MQA | $n_{kv} < n_{head}$ key/value heads | smaller KV cache |

    with LayerNorm for comparison: $\mathrm{LN}(x) = g \odot (x - \mu) / \sqrt{\sigma^2 + \epsilon} + b$.

    The lecture notes add a systems claim: normalization is ~0.17% of a transformer's FLOPs but ~25% of its
    runtime, because a norm reads and writes the whole activation for a handful of FLOPs per element
    (memory-bound), where a matmul does $O(d)$ FLOPs per element it reads.

    **After this notebook you will be able to explain** where each ingredient sits in the code (below); what
    QK-norm, z-loss and soft-capping each bound; why a norm costs far more time than its FLOPs; and how to
    tell an ingredient's effect from seed noise at a small budget.
    '''),
    setup("math"),
    md(r'''
    ## The code

    QK-norm is the `transform_qk` hook of the shared attention (nGPT overrides the same hook, notebook 03);
    soft-capping sits in the model's `forward`, z-loss in its `loss`:
    '''),
    code('''
    from minigpt import layers
    from minigpt.source_view import show_source

    show_source(layers.CausalSelfAttention.transform_qk, layers.GPTBase.forward, layers.GPTBase.loss)
    '''),
    code('''
    from minigpt.config import get_preset

    ABLATIONS = {**E.default_ablations(get_preset(PRESET).model.n_head), "baseline, another seed": {"seed": 7}}
    STEPS = 500 if ON_GPU else 150
    mb = E.modern_block(PRESET, ablations=ABLATIONS, steps=STEPS, **SCALE)
    print(mb.table())
    plots.plot_modern_block(mb)
    '''),
    md(r'''
    The row "baseline, another seed" is the yardstick: the same block trained from another init and data
    order. A difference between two ingredients smaller than the difference between the two baseline runs
    is noise at this budget.
    '''),
    code('''
    base = mb.row("baseline")
    noise = abs(mb.row("baseline, another seed").val_ce - base.val_ce)
    print(f"seed-to-seed difference of the baseline: {noise:.4f} nats")
    for r in mb.rows[1:-1]:  # every ablation (the last row is the seed yardstick itself)
        d = r.val_ce - base.val_ce
        verdict = "within seed noise" if abs(d) <= noise else ("better" if d < 0 else "worse")
        print(f"{r.label:<24} {d:+.4f}  {verdict:<17} {r.params - base.params:+,} parameters")
    '''),
    code('''
    # the systems claim: the norms take a far larger share of the time than of the FLOPs
    for k in ("layernorm", "rmsnorm"):
        print(f"{k}: {100 * mb.norm_share[k]:.1f}% of forward+backward time, {100 * mb.norm_flop_share[k]:.2f}% "
              f"of the FLOPs")
        assert mb.norm_share[k] > 2 * mb.norm_flop_share[k]
    # structural facts of the ingredients
    assert mb.row("RMSNorm").params == base.params  # no bias: one gain vector per norm either way
    assert mb.row("MQA (1 kv head)").params < base.params  # fewer key/value projections
    assert mb.row("bias").params > base.params
    # RoPE's advantage over learned absolute positions is far beyond the seed-to-seed yardstick
    assert mb.row("learned positions").val_ce - base.val_ce > 3 * noise
    learned_cost = mb.row("learned positions").val_ce - base.val_ce
    others = [abs(r.val_ce - base.val_ce) / noise for r in mb.rows[1:-1] if r.label != "learned positions"]
    ln_ms, rms_ms = mb.norm_ms["layernorm"], mb.norm_ms["rmsnorm"]
    display(Markdown(
        f"In this run: time inside the norms **{rms_ms:.1f} ms/step with RMSNorm against {ln_ms:.1f} with "
        f"LayerNorm** (RMSNorm {'slower' if rms_ms > ln_ms else 'faster'} here); learned positions instead of RoPE "
        f"cost **{learned_cost:.2f} nats**, {learned_cost / noise:.0f}x the seed-to-seed difference; every other "
        f"ingredient's difference is at most {max(others):.1f}x that yardstick."))
    '''),
    md(r'''
    **What this shows at this scale.** The norms' share of the time is many times their share of the
    FLOPs, the memory-bound behaviour behind the lecture notes' figure (ours is a CPU and a tiny model,
    so the lecture's share does not transfer). On a CPU RMSNorm need not be faster than LayerNorm (the
    times are printed above): PyTorch's CPU LayerNorm is one fused kernel forward and one backward, while
    its CPU RMSNorm is a chain of generic element-wise ops; minigpt's `RMSNorm` (layers.py) writes the
    backward out by hand, but it is still several passes over the tensor against LayerNorm's one
    (`benchmarks/rmsnorm.py` times them in isolation). On GPUs with fused kernels for both, RMSNorm's saving
    (no mean, no bias) is what shows.

    One ingredient stands out in the loss: learned absolute positions instead of RoPE, by many times the
    seed-to-seed difference (asserted). The other differences are within a small multiple of that yardstick
    at this budget, so we draw no conclusion from them; these ingredients were chosen
    for their behaviour at scale (stability at high LR, KV-cache size, long context), which a minute of CPU
    training cannot show.

    ## The stability claims, on an LR ramp

    Three ingredients are there to bound something. **QK-norm** normalizes $q$ and $k$ per head, so an
    attention logit $q^\top k/\sqrt{d_{head}}$ can only grow through the norms' gains; **soft-capping**
    $z \leftarrow c\tanh(z/c)$ keeps every output logit inside $(-c, c)$; **z-loss** adds
    $c\,\overline{\log Z}^2$ to the loss, pulling the softmax normalizer $\log Z = \log\sum_j e^{z_j}$ toward
    0. And biases are said to make training less stable. `experiments.stability_bounds` runs notebook 05's
    LR ramp (the LR multiplied every step) on the baseline block and on each ingredient alone, and measures
    each bounded quantity along the way on a fixed batch. A small model's logits stay far below Gemma 2's cap
    of 30 (the table prints how far), so the demo caps lower, and a ramp this short needs a z-loss
    coefficient far above PaLM's $10^{-4}$ (which acts over 100k+ steps) to show its pull. The baseline runs
    twice, with two seeds: the yardstick.
    '''),
    code('''
    BSTEPS = 120 if ON_GPU else 80
    bounds = E.stability_bounds(PRESET, steps=BSTEPS, **SCALE)
    print(bounds.table())
    plots.plot_stability_bounds(bounds)
    '''),
    code('''
    R = bounds.runs
    cap = R["soft-cap 5"].overrides["logit_softcap"]
    # QK-norm: the attention logits stay an order of magnitude below the baseline's along the whole ramp
    assert R["QK-norm"].peak("max_attn_logit") < R["baseline"].peak("max_attn_logit") / 10
    # soft-cap: |logit| < c always, where the baseline's logits do pass c
    assert R["soft-cap 5"].peak("max_logit") <= cap < R["baseline"].peak("max_logit")
    # z-loss: log Z pulled toward 0 at the high LRs, where the baseline's sits near ln V or above
    assert abs(R["z-loss 0.1"].late("mean_log_z")) < R["baseline"].late("mean_log_z") / 2
    div = {k: bounds.divergence_lr(k) for k in R}
    finite = [d for d in div.values() if math.isfinite(d)]
    lo, hi = sorted((div["baseline"], div["baseline, seed 2"]))
    seed_text = (f"by a factor of **{hi / lo:.1f}**" if math.isfinite(hi) else
                 "**from diverging to not diverging at all**" if math.isfinite(lo) else "not at all (neither diverged)")
    display(Markdown(
        f"Divergence LRs (lr_stability's rule; a dash: none up to {bounds.runs['baseline'].sweep.lrs[-1]:.2g}): "
        + ", ".join(f"{k} {'-' if math.isinf(d) else f'{d:.2g}'}" for k, d in div.items())
        + f". The same block with another seed moves it {seed_text}"
        + (f"; the finite ones span a factor of {max(finite) / min(finite):.1f}" if finite else "") + "."))
    '''),
    md(r'''
    **What holds.** Each ingredient bounds exactly what it is built to bound, and only that: QK-norm keeps
    the attention logits small while the output logits and $\log Z$ run as in the baseline; the soft-cap
    holds $|z| < c$ while the attention logits explode; z-loss holds $\log Z$ near 0 and nothing else (its
    loss curve includes the z-loss term, hence its higher start). **What does not, at this scale:** an
    ordering of divergence LRs. One seed's divergence LR moves by a large factor from the other's (printed
    above), so a single ramp per ingredient cannot rank them, and the "no bias is more stable" claim is
    within that noise; we assert no ordering. (The lecture notes' third claim, the norms' share of the time,
    is asserted above.)

    ## Check yourself

    The baseline has $n_{head}$ query heads of size $d_{head} = d / n_{head}$ and no biases; MQA keeps one key
    and one value head. **Before running the next cell, write down how many parameters MQA saves per block**
    in terms of $d$ and $n_{head}$, and then in all for this preset.
    '''),
    code('''
    cfg = get_preset(PRESET).configs("pre_ln", **SCALE)[0]
    d, n_head, n_layer = cfg.n_embd, cfg.n_head, cfg.n_layer
    per_block = 2 * d * (d - d // n_head)  # W_k and W_v shrink from d x d to d x d_head
    saved = base.params - mb.row("MQA (1 kv head)").params
    print(f"d = {d}, n_head = {n_head}, {n_layer} blocks: {per_block} per block, {n_layer * per_block} in all; "
          f"measured {saved}")
    assert saved == n_layer * per_block
    '''),
]

# ------------------------------------------------------------------------------------------------ main


NOTEBOOKS: dict[str, list[nbformat.NotebookNode]] = {
    "00_quickstart.ipynb": NB00,
    "01_post_ln_vs_pre_ln.ipynb": NB01,
    "02_normformer.ipynb": NB02,
    "03_ngpt_hypersphere.ipynb": NB03,
    "05_race_and_stability.ipynb": NB05,
    "06_modern_block.ipynb": NB06,
}


def build(name: str, cells: list[nbformat.NotebookNode]) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    stem = name.split("_")[0]
    for i, cell in enumerate(nb.cells):
        cell.id = f"nb{stem}-{i:02d}"  # stable ids: a rebuild without changes leaves git clean
    path = HERE / name
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


def main(argv: list[str]) -> int:
    for name, cells in NOTEBOOKS.items():
        if argv and not any(name.startswith(a) for a in argv):
            continue
        print(build(name, cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
