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


def setup(*stdlib: str, experiments: bool = True) -> nbformat.NotebookNode:
    """The first code cell: the OpenMP wait policy, imports, then the preset (gpu-small on CUDA, else cpu-tiny)
    and the CPU scale."""
    lines = ["%matplotlib inline"] + [f"import {m}" for m in sorted({"os", *stdlib})] + [""]
    lines += textwrap.dedent('''
        # Before torch loads OpenMP: waiting threads sleep instead of spinning. With one other busy process on a
        # 2-core machine, spinning made training 2.5x slower than on the idle machine, sleeping 1.5x; on an idle
        # machine sleeping costs a few percent. (torch uses one thread per physical core.)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ''').strip().splitlines()
    lines += ["import torch", ""] + (["from minigpt import experiments as E"] if experiments else [])
    lines += ["from minigpt import plots", "from minigpt.config import default_preset_name", ""]
    lines += textwrap.dedent('''
        PRESET = default_preset_name()  # gpu-small when CUDA is available, else cpu-tiny
        ON_GPU = PRESET.startswith("gpu")
        # On a CPU, cpu-tiny is narrowed (d=64, T=64, batch 8) so that the notebook runs in about a minute on two
        # cores. On a GPU the preset runs as is; runs are short, so torch.compile would cost more than it saves.
        SCALE = dict(compile=False) if ON_GPU else dict(n_embd=64, block_size=64, batch_size=8, eval_batches=4)
        print(f"preset {PRESET}, overrides {SCALE}, {torch.get_num_threads()} CPU thread(s)")
    ''').strip().splitlines()
    return new_code_cell("\n".join(lines))


# ------------------------------------------------------------------------------------------------ 00

NB00 = [
    md(r'''
    # 00 · Quickstart: four places to put a norm

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
    setup("math", experiments=False),
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
    ## Build each variant and check it at init

    A freshly initialized language model knows nothing, so it should spread its probability almost evenly
    over the vocabulary: its cross-entropy is close to $\ln V$ (4.43 nats for the 84 characters of the
    corpus). All four variants take the same `ModelConfig`; `build_model` picks the class from
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
    '''),
    setup("math"),
    code('''
    plots.plot_blocks(("post_ln", "pre_ln"))
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
    XIONG = dict(mlp="gelu", position="learned", bias=True, tie_embeddings=False, n_layer=8)
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
    '''),
    md(r'''
    **What reproduces and what does not.** Post-LN's last layer gets a gradient about $\sqrt{L}$ times
    pre-LN's, as Theorem 1 says (in our CPU run 2.87 against $\sqrt 8 = 2.83$), and its $W_1$ gradient
    grows from the first layer to the last, though only by about 10% over eight layers ($W_2$'s does not
    grow). But pre-LN's profile is not level at this scale: its *early* layers get the larger gradients
    (ratio < 1), and its ratio is *farther* from 1 than post-LN's (printed above). So "pre-LN's
    last/first ratio is closer to 1 than post-LN's" does **not** reproduce in these small models; what holds
    is that the two placements tilt the gradient in opposite directions, post-LN toward the output and
    pre-LN toward the input. Pre-LN's early-layer excess is the imbalance NormFormer (notebook 02) sets out
    to correct.

    ## 2. The same measurement with GPT-2's small init

    `minigpt` initializes like GPT-2: $\mathcal N(0, 0.02^2)$ weights, residual output projections scaled
    by $1/\sqrt{2L}$. Then each sublayer adds only a sliver to the stream (printed below: the FFN output
    is about 0.1% of the stream's norm, against about half with Xavier weights), post-LN's norms hardly
    rescale anything, and its gradient profile goes flat. The placement shapes the gradient only together
    with the init. (The plot shows each profile relative to its layer 1: the magnitudes differ some 50x,
    because pre-LN's stream starts tiny, norm 0.16 with 0.02 embeddings, and its final norm scales every
    gradient up by the inverse of that.)
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

    Same setting as section 1 (Xavier init, classic block, eight layers; on the CPU twice as wide, d = 128,
    with shorter windows, where the effect shows within a hundred steps), both variants at the **same peak
    learning rate** $10^{-3}$, once with a linear warmup over the first 10% of the steps and once without;
    everything else (seed, data order, cosine decay) identical.
    '''),
    code('''
    WSTEPS = 300 if ON_GPU else 100
    WARM = {**SCALE, **XIONG, **({} if ON_GPU else dict(n_embd=128, block_size=32, batch_size=8))}
    warm = E.warmup_ablation(PRESET, ("post_ln", "pre_ln"), steps=WSTEPS, warmup_steps=WSTEPS // 10, lr=1e-3,
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
    md(r'''
    Without warmup, post-LN's first updates, driven by its large output-layer gradients, throw it onto the
    plateau of a model that predicts only letter frequencies (the unigram loss, about 3.4 nats) and, in our
    CPU run, never leaves it within the budget. With ten warmup steps it reaches the same plateau but leaves
    it after some 40 steps and trains. Pre-LN ends at the same loss either way. At a peak LR of
    $2\cdot10^{-3}$ post-LN fails even with this warmup while pre-LN trains: its usable LR range is narrower
    as well (notebook 05 measures it directly).

    ## Summary

    | claim (Xiong et al. 2020) | at this scale |
    |---|---|
    | post-LN's gradient grows toward the output at init | yes with Xavier init; not with GPT-2's 0.02 init |
    | post-LN's last-layer gradient ≈ $\sqrt{L}$ × pre-LN's | yes |
    | pre-LN's gradient is level across layers | **no**: its early layers get larger gradients |
    | pre-LN's residual stream grows with depth, post-LN's is pinned | yes |
    | post-LN needs warmup, pre-LN does not | yes |
    '''),    md(r'''
    ## 5. The depth law, and post-LN without warmup as depth grows

    Theorem 1 is a statement about depth: post-LN's last-layer gradient over pre-LN's grows as $\sqrt{L}$,
    a slope of 1/2 on log-log axes. `scale_curves.depth_law` measures that ratio at Xavier init for several
    depths (averaged over inits) and fits the slope, then trains post-LN without warmup, post-LN with warmup
    and pre-LN without warmup at each depth. Below: the CI tier live (seconds, tiny models), then the full
    tier committed in `docs/results/depth_law.json` (the command that made it is printed).
    '''),
    code('''
    from minigpt import scale_curves as S
    from minigpt.scale_plots import describe, load_result, plot_result

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
    '''),
    setup("math"),
    code('''
    plots.plot_blocks(("pre_ln", "normformer"))
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
    STEPS = 500 if ON_GPU else 150
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
    md(r'''
    The claim reproduces for $W_2$, the matrix that reads the FFN norm's output: after training, pre-LN's
    early layers get several times the gradient of its late layers, NormFormer's are close to even. The
    mechanism is visible in the equation: $\partial L/\partial W_2 = \delta \, N_{ffn}(\cdot)^\top$, and the
    norm pins the size of the second factor in every layer.

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
    '''),    md(r'''
    ## The recipe: GPT-2's init or fairseq's

    The paper trained NormFormer in fairseq's `transformer_lm`, whose token embeddings are initialized
    $\mathcal N(0, d^{-1/2})$ and multiplied by $\sqrt{d}$: the residual stream starts at unit scale per
    element. minigpt's default is GPT-2's init, embeddings $\mathcal N(0, 0.02^2)$. A norm on a branch's
    output fixes the branch's scale, so the stream's scale decides what that branch drowns: on GPT-2's
    0.02-scale stream, $N_{attn}$'s unit-scale output dwarfs the token embedding from the first block on.
    `ModelConfig.init` chooses the recipe (`"gpt2"`, `"fairseq"`, `"xavier"`).
    '''),
    code('''
    from minigpt import scale_curves as S
    from minigpt.scale_plots import describe, load_result, plot_result

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
    `scale_curves.normformer_recipe` trains pre-LN and NormFormer with each recipe at equal budgets over
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
    '''),
    setup("math"),
    code('''
    plots.plot_blocks(("pre_ln", "ngpt"))
    '''),
    md(r'''
    ## LERP and SLERP on paper

    Both moves stay on the great circle through $h$ and $b$; they differ in how far they go. SLERP turns
    $h$ by exactly $\alpha\theta$. LERP's point $h + \alpha(b - h)$ sits on the chord, and normalizing it
    turns $h$ by $\operatorname{atan2}(\alpha\sin\theta,\; 1-\alpha+\alpha\cos\theta)$, which is less:
    for $\alpha = 0.05$ and the $\theta \approx 90°$ of two random high-dimensional vectors, $3.0°$ instead of
    $4.5°$. So LERP with some $\alpha$ behaves like SLERP with a somewhat smaller one, and the learned
    $\alpha$ can absorb the difference. The cell checks `minigpt.ngpt`'s two functions against these
    closed forms on 2-D vectors.
    '''),
    code('''
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
    '''),
    md(r'''
    ## Train nGPT (LERP and SLERP) and pre-LN

    `experiments.hypersphere` trains three models with the same seed, data and budget (nGPT with each
    update, at nGPT's preset LR; pre-LN for contrast) and measures their geometry.
    '''),
    code('''
    STEPS = 1000 if ON_GPU else 150
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
    '''),
    md(r'''
    Averaged over layers and heads, nGPT's $W_q W_k^\top$ are better conditioned than pre-LN's (in our CPU
    run by 11x with LERP and 47x with SLERP), which is the paper's observation and what we assert. Layer
    by layer the picture is noisier (the figure's last panel), and the embedding covariance shows no
    advantage at all (in our run both nGPTs' are a little worse conditioned than pre-LN's, LERP 1.3e3 and
    SLERP 795 against 747: a char-level vocabulary of 84 tokens on a 64-dimensional sphere, trained for
    seconds), so we assert nothing about it.

    ## A token's hidden state moving across layers

    Each path follows one token of a validation sequence from its embedding (circle) through the blocks to
    the last one (star), projected onto the three principal directions of all these states and drawn on the
    unit sphere. Every step is one block's LERP move toward its sublayers' outputs.
    '''),
    code('''
    plots.plot_sphere_projection(sphere)
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
    In our runs every block's $\alpha$ grew above its init: the blocks learn to move $h$ further per layer
    than 0.05 allows. $s_{qk}$ grows too, which sharpens attention: a logit is $\sqrt{d_{head}}\,s_{qk}^2$
    times a cosine, so at $s_{qk} = 1$ it is bounded by $\sqrt{d_{head}}$ (4 here).

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
    assert all(g < s for g, s in zip(gap["attn_gap"] + gap["mlp_gap"], steps, strict=True))
    '''),
    md(r'''
    The gap is a sizable fraction of the step (a sixth to a third in our run; the closed form predicted
    that order: at $\theta = 90°$ SLERP turns 1.5 times as far as LERP), yet the two models reach similar
    losses: LERP is SLERP with a smaller effective
    $\alpha$, and $\alpha$ is learned. SLERP costs an `arccos` per token and two `sin` per element, per sublayer; the
    ms/step above say what that costs here. This is why the paper uses LERP in practice.
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
    '''),
    setup(),
    code('''
    RSTEPS = 500 if ON_GPU else 150  # gpu-small overfits the corpus after ~500 steps
    race = E.race(PRESET, steps=RSTEPS, **SCALE)
    print(race.table())
    plots.plot_race(race)
    '''),
    code('''
    assert all(r.final_val < r.val[0][1] - 0.3 for r in race.runs.values())  # every variant kept learning
    sp = race.speedup
    print(f"nGPT over pre-LN: {sp.factor:.2f}x at val loss {sp.target:.3f}")
    # no 4x here: nGPT and pre-LN are within a factor 2 of each other in steps to target, and nGPT ends within
    # 5% of pre-LN's loss at equal steps (two seeds of one 150-step run differ by up to ~4% at this scale)
    assert sp is not None and 0.5 < sp.factor < 2.0
    assert race.runs["ngpt"].final_val <= 1.05 * race.runs["pre_ln"].final_val
    '''),
    md(r'''
    **What reproduces at this scale:** little. nGPT ends within about 2% of pre-LN's loss at equal steps but
    does not beat it: in our CPU run pre-LN reached nGPT's final loss at step 121 of 150, a speedup of 0.81x,
    not 4x. The paper's models have 0.5B-1B parameters and
    1k-8k tokens of context; ours have a quarter of a million parameters and 64 characters. nGPT also pays
    more per step here (the normalizations are extra element-wise work, which a small model on a CPU
    feels; see the wall-clock panel), so in wall-clock it falls further behind. Post-LN, with its swept LR
    and the preset's warmup, ends lowest; NormFormer trails at this budget.

    ## 2. The confound: a GPT-2-style baseline

    The same race for pre-LN with the classic GPT-2 block (learned positions, GELU, biases), against the
    nGPT run above.
    '''),
    code('''
    classic = E.race(PRESET, ("pre_ln",), steps=RSTEPS, position="learned", mlp="gelu", bias=True, **SCALE)
    confounded = E.speedup(classic.runs["pre_ln"], race.runs["ngpt"])
    print(f"nGPT over a GPT-2-style pre-LN: {confounded.factor:.2f}x;  over the same-ingredient pre-LN: "
          f"{race.speedup.factor:.2f}x")
    assert confounded.factor > race.speedup.factor  # the confound inflates nGPT's speedup
    '''),
    md(r'''
    In our CPU run the unfair comparison gives 2.2x where the fair one gives 0.81x: all of what looks like
    nGPT's advantage over a textbook GPT-2 at this scale is RoPE and SwiGLU, not normalization.

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
    '''),
    md(r'''
    **This claim does not reproduce at this scale.** In our CPU run, with 120 steps, nGPT was
    *behind* pre-LN at both lengths (0.69x at 32 characters, 0.60x at 128). Contexts of 32 to 128 characters
    are far from the 1k-8k tokens where the paper sees its speedup grow, and the budgets are tiny. We assert
    what holds, that the two are within a factor of 2 of each other, and do not read a trend into two noisy
    points.

    ## 4. LR stability

    NormFormer's Figure 5 raises the learning rate every update until training blows up, to show that
    NormFormer survives larger LRs than pre-LN. Here every variant starts at $10^{-5}$ and multiplies its
    LR by a constant each step (reaching 1 at the last step). At this scale the loss rarely overflows (the
    norms and gradient clipping keep the logits bounded); a too-high LR shows as the loss climbing back
    toward the unigram loss. The **LR at divergence** is where the smoothed loss first rises 10% above the
    lowest value it reached (or where the loss blows up by the trainer's own rule).
    '''),
    code('''
    LSTEPS = 200 if ON_GPU else 100
    lrs = E.lr_stability(PRESET, steps=LSTEPS, **SCALE)
    print(lrs.table())
    plots.plot_lr_stability(lrs)
    '''),
    code('''
    div = {v: lrs.divergence_lr(v) for v in lrs.runs}
    assert div["post_ln"] < min(d for v, d in div.items() if v != "post_ln")  # post-LN gives out first
    assert div["normformer"] >= div["pre_ln"]  # NormFormer tolerates at least pre-LN's LR
    '''),
    md(r'''
    Post-LN gives out at the lowest LR, an order of magnitude before the others, which matches its need for
    warmup (notebook 01). By our criterion NormFormer survives at least as high an LR as pre-LN, as the
    paper's Figure 5 says, but read the curves before taking that as a reproduction: along this fast ramp
    NormFormer learns more slowly, its lowest loss is higher than pre-LN's, and at the highest LRs the two
    end at about the same loss. What is clean is that it does not blow up where pre-LN's loss turns up.
    nGPT, which the paper trains at a higher LR than its baseline, gives out about where pre-LN does here,
    but reaches its lowest loss at a higher LR (the "best LR" column).
    '''),    md(r'''
    ## 5. Where the speedup appears: budget and context, with seeds

    One short race says nothing about where a claim crosses 1. `scale_curves` repeats the race over
    training budgets and context lengths, three seeds per point. The CI tier live (tiny models, seconds),
    then the full tier committed in `docs/results/` (the command that made each is printed).
    '''),
    code('''
    from minigpt import scale_curves as S
    from minigpt.scale_plots import describe, load_result, plot_result

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
    '''),
    setup(),
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
    '''),
    md(r'''
    **What this shows at this scale.** The norms' share of the time is many times their share of the
    FLOPs, the memory-bound behaviour behind the lecture notes' figure (ours is a CPU and a tiny model,
    so the exact 25% does not transfer). RMSNorm is *not* faster than LayerNorm here: PyTorch's CPU
    LayerNorm is one fused kernel forward and one backward, while its CPU RMSNorm is a chain of generic
    element-wise ops, about four times LayerNorm's time forward + backward in isolation. minigpt's
    `RMSNorm` (layers.py) writes the backward out by hand, which halves that, but it is still several passes
    over the tensor against LayerNorm's one (in our run above: 7.7 against 5.1 ms per step). On GPUs with
    fused kernels for both, RMSNorm's saving (no mean, no bias) is what shows.

    One ingredient stands out in the loss: learned absolute positions instead of RoPE cost about 0.2 nats
    in our CPU run, about eight times the seed-to-seed difference. The other differences are within about twice
    that yardstick at a 150-step budget, so we draw no conclusion from them; these ingredients were chosen
    for their behaviour at scale (stability at high LR, KV-cache size, long context), which a minute of CPU
    training cannot show.
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
