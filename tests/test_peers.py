"""minigpt against the implementations its readers already trust: port our weights into a peer, run the same
tokens, compare the float32 logits (tolerance 1e-4; each test prints the max |difference| it measured).

    peer                                   ours                                   compared
    karpathy/nanoGPT model.py (vendored)   pre_ln, classic GPT-2 block            logits
    transformers GPT2LMHeadModel           pre_ln, classic GPT-2 block            logits (exact GELU; gelu_new: control)
    torch nn.TransformerEncoderLayer       post_ln (norm_first=False), pre_ln     logits
    x-transformers Decoder                 post_ln, pre_ln, placement, NormFormer logits
    NVIDIA/ngpt model.py (vendored)        ngpt (LERP)                            logits, weights after a step

Where a peer cannot express our model exactly, the peer is patched from here (never by editing the vendored
files, whose upstream hashes `test_vendored_files_are_upstream` checks), each patch named and paired with a
control that removes it. Every test moves all parameters off their init first, so that a misplaced norm or a
dropped scale cannot hide behind ones and zeros. Peer packages missing: skip, except under CI (`CI` set),
where the test fails (the `dev` extra includes `peers`; .ci/run installs it).

The README's "Checked against" table quotes each check's difference: a check with a row there asserts that
its measurement still is the quoted one (`assert_readme_quotes`), so the table cannot go stale.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import math
import os
import re
import sys
import types
from pathlib import Path
from types import ModuleType
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minigpt import build_model
from minigpt.layers import Rotary
from minigpt.ngpt import GPT as NGPT
from minigpt.placement import Placement, PlacementGPT

from .conftest import tiny_config

PEERS = Path(__file__).resolve().parent / "peers"
README = Path(__file__).resolve().parents[1] / "README.md"
TOL = 1e-4
# How close a measurement must stay to the README's quote of it: a quoted 0 within ZERO_TOL (bitwise here;
# another BLAS may round differently), any other value within a factor README_FACTOR either way.
ZERO_TOL = 1e-6
README_FACTOR = 3
CHECKED: set[str] = set()  # the checks that ran and met their README row
SKIPPED: list[str] = []  # peers not installed (outside CI): their rows are not checked
V, T, B = 84, 32, 2  # vocab, sequence length (= block_size of tiny_config), batch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)  # our models' init: the measured differences are the same from run to run


def require(package: str) -> ModuleType:
    """Import a peer package; without it skip, or fail under CI, where every peer must run."""
    try:
        return importlib.import_module(package)
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"{package} is missing but CI is set: install the peers extra (pip install -e '.[peers]')")
        SKIPPED.append(package)
        pytest.skip(f"{package} is not installed ({e}); pip install -e '.[peers]'")


def tokens() -> Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def perturbed(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter moved off its init: norm gains and scales multiplied by 1 ± 0.2, the rest added
    noise (0.1 std for matrices, 0.05 for biases). nGPT's matrices are put back on the sphere."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        noise = torch.randn(p.shape, generator=g)
        if p.dim() == 1 and torch.all(p != 0):  # gains and scales
            p.mul_(1 + 0.2 * noise)
        else:
            p.add_((0.1 if p.dim() > 1 else 0.05) * noise)
    if hasattr(model, "after_optimizer_step"):
        model.after_optimizer_step()
    return model.eval()


@functools.cache
def readme_table() -> dict[str, str]:
    """The README's "Checked against" table: check name (as printed here) -> the max |Δ| it quotes."""
    text = README.read_text()
    text = text[text.index("## Checked against\n"):]
    text = text[: text.index("\n## ", 1)]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) == 5 and cells[3].startswith("`"):
            rows[cells[3].strip("`")] = cells[4]
    return rows


def assert_readme_quotes(name: str, diff: float) -> None:
    """A check with a row in the README's table still measures what the row quotes."""
    quoted = readme_table().get(name)
    if quoted is None:
        return
    q = float(quoted)
    if q == 0:
        assert diff <= ZERO_TOL, f"{name}: the README quotes 0, measured {diff:.2e}: update its table"
    else:
        assert q / README_FACTOR <= diff <= q * README_FACTOR, (
            f"{name}: the README quotes {quoted}, measured {diff:.2e}: update its table")
    CHECKED.add(name)


def max_diff(name: str, ours: Tensor, theirs: Tensor) -> float:
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    diff = (ours - theirs).abs().max().item()
    print(f"{name}: max |logits diff| = {diff:.2e} (logits up to {ours.abs().max().item():.1f})")
    assert_readme_quotes(name, diff)
    return diff


def assert_same(name: str, ours: Tensor, theirs: Tensor) -> None:
    diff = max_diff(name, ours, theirs)
    assert diff < TOL, f"{name}: max |diff| {diff:.2e} is over the tolerance {TOL}"


def assert_differ(name: str, ours: Tensor, theirs: Tensor, at_least: float) -> None:
    """For controls: the change must show, by more than `at_least`."""
    diff = max_diff(name, ours, theirs)
    assert diff > at_least, f"{name}: max |diff| {diff:.2e}, expected more than {at_least}"


def our_logits(model: nn.Module, idx: Tensor) -> Tensor:
    with torch.no_grad():
        return model(idx)[0]


# ------------------------------------------------------------------------- the vendored files are upstream's


def git_blob_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_vendored_files_are_upstream():
    """The vendored peers are upstream's bytes: the hash `git rev-parse <commit>:model.py` gives upstream."""
    assert git_blob_sha1(PEERS / "nanogpt/model.py") == "c698f8b60129d793494de058b0dd4e318c0dcb5e"  # 3adf61e
    assert git_blob_sha1(PEERS / "ngpt/model.py") == "a4f2507162ff5b40e03a4f271cdd557b4218ac9f"  # ed19eb2
    # the excerpt of train.py: upstream's lines 388-408 below the marker, byte for byte
    excerpt = (PEERS / "ngpt/normalize.py").read_text().split("# ---- upstream lines 388-408 ----\n", 1)[1]
    assert hashlib.sha256(excerpt.encode()).hexdigest() == (
        "d02bf384ff6a9ccf736f7b7d1b882ce4521f4db811d764481098998a484d0cd8"
    )  # git show ed19eb2:train.py | sed -n 388,408p | sha256sum
    for folder in ("nanogpt", "ngpt"):
        assert "MIT" in (PEERS / folder / "LICENSE").read_text()


def load_vendored(relpath: str, name: str, extra_modules: dict | None = None) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, PEERS / relpath)
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(sys.modules, {name: module, **(extra_modules or {})}):
        spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------- classic pre-LN: nanoGPT and HF GPT-2

CLASSIC = dict(variant="pre_ln")  # tiny_config's defaults: LayerNorm, GELU, bias, learned positions, tied


def rename_for_nanogpt(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Our names -> nanoGPT's: the same modules, under `transformer.` and `h.` instead of `blocks.`."""
    out = {}
    for key, value in state.items():
        key = "transformer.h." + key.removeprefix("blocks.") if key.startswith("blocks.") else key
        out[key if key.startswith(("transformer.", "lm_head")) else "transformer." + key] = value
    return out


def nanogpt_peer(ours: nn.Module) -> nn.Module:
    nanogpt = load_vendored("nanogpt/model.py", "minigpt_peer_nanogpt")
    c = ours.config
    peer = nanogpt.GPT(
        nanogpt.GPTConfig(
            block_size=c.block_size,
            vocab_size=c.vocab_size,
            n_layer=c.n_layer,
            n_head=c.n_head,
            n_embd=c.n_embd,
            dropout=0.0,
            bias=True,
        )
    )
    peer.load_state_dict(rename_for_nanogpt(ours.state_dict()), strict=True)
    return peer.eval()


def nanogpt_logits(peer: nn.Module, idx: Tensor) -> Tensor:
    with torch.no_grad():
        return peer(idx, targets=idx)[0]  # with targets nanoGPT returns every position's logits


def test_pre_ln_matches_nanogpt():
    ours = perturbed(build_model(tiny_config(**CLASSIC)))
    idx = tokens()
    assert_same("nanoGPT", our_logits(ours, idx), nanogpt_logits(nanogpt_peer(ours), idx))


def hf_gpt2_peer(ours: nn.Module, activation: str) -> nn.Module:
    transformers = require("transformers")
    c = ours.config
    hf_config = transformers.GPT2Config(
        vocab_size=c.vocab_size,
        n_positions=c.block_size,
        n_embd=c.n_embd,
        n_layer=c.n_layer,
        n_head=c.n_head,
        activation_function=activation,
        layer_norm_epsilon=c.norm_eps,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
    )
    peer = transformers.GPT2LMHeadModel(hf_config)
    # HF's Conv1D stores (in, out): our nn.Linear (out, in) weights transposed
    state = {
        k: (v.t() if k.endswith("weight") and v.dim() == 2 and ".h." in k else v)
        for k, v in rename_for_nanogpt(ours.state_dict()).items()
    }
    peer.load_state_dict(state, strict=True)
    return peer.eval()


def test_pre_ln_matches_hf_gpt2_with_exact_gelu():
    """GPT2LMHeadModel with activation_function="gelu" (exact erf GELU, ours and nanoGPT's). Control: GPT-2's
    own "gelu_new" (the tanh approximation) is a different function, and the comparison sees it."""
    ours = perturbed(build_model(tiny_config(**CLASSIC)))
    idx = tokens()
    with torch.no_grad():
        exact = hf_gpt2_peer(ours, "gelu")(idx).logits
        tanh = hf_gpt2_peer(ours, "gelu_new")(idx).logits
    assert_same("HF GPT-2 (gelu)", our_logits(ours, idx), exact)
    assert_differ("HF GPT-2 (gelu_new, control)", our_logits(ours, idx), tanh, TOL)


# ------------------------------------------------------------------------- torch nn.TransformerEncoderLayer


def torch_encoder_logits(ours: nn.Module, idx: Tensor, norm_first: bool) -> Tensor:
    """Our embeddings and head around PyTorch's own encoder layers (causal mask), our block weights ported."""
    c = ours.config
    mask = nn.Transformer.generate_square_subsequent_mask(idx.size(1))
    x = ours.wte.weight[idx] + ours.wpe.weight[: idx.size(1)]
    for block in ours.blocks:
        layer = nn.TransformerEncoderLayer(
            c.n_embd,
            c.n_head,
            dim_feedforward=c.mlp_hidden,
            dropout=0.0,
            activation="gelu",
            layer_norm_eps=c.norm_eps,
            batch_first=True,
            norm_first=norm_first,
        ).eval()
        norm1, norm2 = (block.ln_1, block.ln_2) if norm_first else (block.resid_norm_1, block.resid_norm_2)
        with torch.no_grad():
            layer.self_attn.in_proj_weight.copy_(block.attn.c_attn.weight)  # [W_q; W_k; W_v], as ours
            layer.self_attn.in_proj_bias.copy_(block.attn.c_attn.bias)
            for theirs, mine in [
                (layer.self_attn.out_proj, block.attn.c_proj),
                (layer.linear1, block.mlp.c_fc),
                (layer.linear2, block.mlp.c_proj),
                (layer.norm1, norm1),
                (layer.norm2, norm2),
            ]:
                theirs.load_state_dict(mine.state_dict())
            x = layer(x, src_mask=mask, is_causal=True)
    if ours.ln_f is not None:
        x = ours.ln_f(x)
    return F.linear(x, ours.lm_head.weight)


@pytest.mark.parametrize("variant", ["post_ln", "pre_ln"])
def test_matches_torch_transformer_encoder_layer(variant):
    ours = perturbed(build_model(tiny_config(variant)))
    idx = tokens()
    with torch.no_grad():
        theirs = torch_encoder_logits(ours, idx, norm_first=variant == "pre_ln")
    assert_same(f"nn.TransformerEncoderLayer ({variant})", our_logits(ours, idx), theirs)


# ---------------------------------------------------------------------------------------- x-transformers

NORMFORMER_AS_XT = dataclasses.replace(Placement.preset("normformer"), ffn_out=True)


def pre_ln_with(**flags: bool) -> Placement:
    """placement.py's pre-LN with some of NormFormer's flags switched on."""
    return dataclasses.replace(Placement.preset("pre_ln"), **flags)


def xtransformers_peer(ours: nn.Module, patch=None, strict: bool = True, **decoder_kwargs) -> nn.Module:
    """A TransformerWrapper of lucidrains' x-transformers with our weights. Its norms are bias-free LayerNorms
    (gain only), so ours run with bias=False; it scales learned positions by d^-1/2, so they are ported ×√d;
    its tied head's default scale d^-1/2 is set to 1 (GPT-2's); its norms store gain − 1 (`unit_offset`).
    `patch(peer)` runs before the port; `strict=False` leaves a norm that has no counterpart here at its init."""
    xt = require("x_transformers")
    c = ours.config
    peer = xt.TransformerWrapper(
        num_tokens=c.vocab_size,
        max_seq_len=c.block_size,
        tie_embedding=True,
        tie_embedding_scale=1.0,
        attn_layers=xt.Decoder(
            dim=c.n_embd, depth=c.n_layer, heads=c.n_head, attn_dim_head=c.head_dim, ff_no_bias=True, **decoder_kwargs
        ),
    ).eval()
    if patch is not None:
        patch(peer)

    def copy(theirs: nn.Module | None, mine: nn.Module) -> None:
        assert theirs is not None and not isinstance(mine, nn.Identity), (theirs, mine)
        if hasattr(theirs, "gamma"):  # its LayerNorm: gain = gamma + 1 with `unit_offset` (the Decoder's default)
            theirs.gamma.copy_(mine.weight - float(getattr(theirs, "unit_offset", False)))
        else:
            theirs.weight.copy_(mine.weight)

    with torch.no_grad():
        peer.token_emb.emb.weight.copy_(ours.wte.weight)
        peer.pos_emb.emb.weight.copy_(ours.wpe.weight * math.sqrt(c.n_embd))
        for i, block in enumerate(ours.blocks):
            (attn_norms, attn, _), (ff_norms, ff, _) = peer.attn_layers.layers[2 * i : 2 * i + 2]
            # x-transformers' three norm slots per sublayer: pre-branch, post-branch (sandwich), post-residual
            slots = zip(
                [*attn_norms, *ff_norms],
                ["ln_1", "post_attn_norm", "resid_norm_1", "ln_2", "post_ffn_norm", "resid_norm_2"],
                strict=True,
            )
            for theirs, name in slots:
                mine = getattr(block, name, None)
                if theirs is None or (mine is None and not strict):  # a norm there exactly where one is here
                    assert mine is None or isinstance(mine, nn.Identity) or theirs is not None, name
                else:
                    copy(theirs, mine)
            for theirs, w in zip([attn.to_q, attn.to_k, attn.to_v], block.attn.c_attn.weight.chunk(3), strict=True):
                theirs.weight.copy_(w)
            attn.to_out.weight.copy_(block.attn.c_proj.weight)
            if block.attn.head_scale is not None:
                attn.head_scale_params.copy_(block.attn.head_scale.view(1, -1, 1, 1))
            ff_modules = [m for m in ff.ff.modules() if isinstance(m, nn.Linear) or hasattr(m, "gamma")]
            copy(ff_modules[0], block.mlp.c_fc)
            copy(ff_modules[-1], block.mlp.c_proj)
            if block.mlp.ffn_mid_norm is not None:
                copy(ff_modules[1], block.mlp.ffn_mid_norm)
        if ours.ln_f is not None:
            copy(peer.attn_layers.final_norm, ours.ln_f)
    return peer


def remove_ffn_sandwich_norm(peer: nn.Module) -> None:
    """PATCH (x-transformers -> NormFormer): `sandwich_norm` puts an output norm on every sublayer; NormFormer
    has one on attention only. Drop the FFN's (the second of each FFN layer's three norm slots)."""
    for i, (norms, layer, _) in enumerate(peer.attn_layers.layers):
        if i % 2 == 1:  # layers alternate attention, feedforward
            assert type(layer).__name__ == "FeedForward" and norms[1] is not None
            norms[1] = None


XT_CASES = {
    # name: (x-transformers Decoder flags, our model); our block ingredients: LayerNorm without bias, GELU
    "post_ln": (dict(pre_norm=False), lambda c: build_model(c)),
    "pre_ln": (dict(), lambda c: build_model(c)),
    "sandwich": (dict(sandwich_norm=True), lambda c: PlacementGPT(c, Placement.preset("sandwich"))),
    # NormFormer's pieces one at a time, on pre-LN
    "attn_head_scale": (dict(attn_head_scale=True), lambda c: PlacementGPT(c, pre_ln_with(head_scale=True))),
    "ff_post_act_ln": (dict(ff_post_act_ln=True), lambda c: PlacementGPT(c, pre_ln_with(ffn_mid=True))),
    "normformer+ffn_out": (
        dict(sandwich_norm=True, attn_head_scale=True, ff_post_act_ln=True),
        lambda c: PlacementGPT(c, NORMFORMER_AS_XT),
    ),
}


@pytest.mark.parametrize("case", list(XT_CASES))
def test_matches_x_transformers(case):
    """x-transformers has no switch for an output norm on attention alone, so NormFormer's closest
    configuration there (head scale, FFN post-activation norm, sandwich norms) also normalizes the FFN's
    output: it is compared with placement.py set to exactly that (NormFormer + ffn_out)."""
    flags, make = XT_CASES[case]
    variant = case if case in ("post_ln", "pre_ln") else "pre_ln"
    ours = perturbed(make(tiny_config(variant, bias=False)))
    idx = tokens()
    with torch.no_grad():
        theirs = xtransformers_peer(ours, **flags)(idx)
    assert_same(f"x-transformers ({case})", our_logits(ours, idx), theirs)


def test_normformer_matches_x_transformers_without_the_ffn_sandwich_norm():
    """normformer.py itself vs x-transformers with `remove_ffn_sandwich_norm`. Control: unpatched, the peer
    computes NormFormer + ffn_out, which differs."""
    ours = perturbed(build_model(tiny_config("normformer", bias=False)))
    idx = tokens()
    flags = XT_CASES["normformer+ffn_out"][0]
    patched = xtransformers_peer(ours, patch=remove_ffn_sandwich_norm, **flags)
    unpatched = xtransformers_peer(ours, strict=False, **flags)  # its FFN output norm at init (gain 1)
    with torch.no_grad():
        assert_same("x-transformers (NormFormer, FFN sandwich norm removed)", our_logits(ours, idx), patched(idx))
        assert_differ("x-transformers (unpatched, control)", our_logits(ours, idx), unpatched(idx), 1e-2)


# ------------------------------------------------------------------------------------- NVIDIA's ngpt

NGPT_CFG = dict(variant="ngpt", n_embd=64)  # mlp_hidden 192 here, NVIDIA's 4·d = 256: patched below


def flash_attn_func(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    alibi_slopes: Tensor | None = None,
    deterministic: bool = False,
) -> Tensor:
    """Stand-in for flash-attn's `flash_attn_func` (CUDA only), same calling convention, in float32:
    q, k, v (B, T, nh, hd) -> (B, T, nh, hd). Only what ngpt's model.py uses is implemented."""
    if dropout_p or window_size != (-1, -1) or alibi_slopes is not None:
        raise NotImplementedError("the stand-in implements dropout_p=0, window_size=(-1, -1), no alibi")
    scale = q.size(-1) ** -0.5 if softmax_scale is None else softmax_scale
    scores = torch.einsum("bthd,bshd->bhts", q.float(), k.float()) * scale  # (B, nh, T, T)
    if causal:
        T_ = q.size(1)
        scores = scores.masked_fill(torch.ones(T_, T_, dtype=torch.bool).triu(1), float("-inf"))
    return torch.einsum("bhts,bshd->bthd", scores.softmax(-1), v.float()).to(q.dtype)


class Float32Torch(types.ModuleType):
    """PATCH (dtype): ngpt's model.py hard-codes torch.bfloat16 (Linear weights, q/k/v cast for flash-attn).
    Installed as that module's `torch`, this is torch with `bfloat16` meaning float32: the peer runs in float32."""

    bfloat16 = torch.float32

    def __getattr__(self, name: str):
        return getattr(torch, name)


def load_ngpt_peer() -> ModuleType:
    stand_in = types.ModuleType("flash_attn")
    stand_in.flash_attn_func = flash_attn_func
    stand_in.flash_attn_qkvpacked_func = None  # imported, never called
    module = load_vendored("ngpt/model.py", "minigpt_peer_ngpt", {"flash_attn": stand_in})
    module.torch = Float32Torch("torch")
    return module


def patch_rope(peer_module: ModuleType, head_dim: int, block_size: int) -> None:
    """PATCH (RoPE): NVIDIA's `apply_rotary_position_embeddings` is not a rotation (see
    test_nvidia_rope_is_not_a_rotation); ours is the standard rotate-half RoPE of layers.Rotary."""
    rotary = Rotary(head_dim, block_size)
    peer_module.apply_rotary_position_embeddings = lambda sinusoidal_pos, q, k: (rotary(q), rotary(k))


def patch_hidden_size(peer: nn.Module, hidden: int) -> None:
    """PATCH (hidden size): NVIDIA's MLP is 4·d wide; ours config.mlp_hidden (8/3·d rounded up to 64)."""
    for block in peer.transformer.h:
        d = block.c_fc.in_features
        block.c_fc = nn.Linear(d, 2 * hidden, bias=False)
        block.mlp_c_proj = nn.Linear(hidden, d, bias=False)
        block.suv = nn.Parameter(torch.full((2 * hidden,), block.suv_init_scaling))


def patch_mlp_sqrt_d(peer: nn.Module) -> None:
    """PATCH (√d_model): NVIDIA multiplies both halves of [u; ν] by √d_model, the paper (and we) only ν.
    u enters W_o linearly, so dividing W_o's input u ⊙ SiLU(ν) by √d_model undoes it exactly. Provably a
    no-op on the logits: h_M only changes by the positive factor √d_model, which Norm(h_M) removes."""
    for block in peer.transformer.h:
        sqrt_d = block.c_fc.in_features**0.5
        block.mlp_c_proj.register_forward_pre_hook(lambda _module, args, s=sqrt_d: (args[0] / s,))


def ngpt_peer(
    ours: NGPT, rope: bool = True, hidden: bool = True, mlp_sqrt_d: bool = True
) -> tuple[ModuleType, nn.Module]:
    """NVIDIA's nGPT with our weights; each keyword applies (True) or leaves out one named patch."""
    peer_module = load_ngpt_peer()
    c = ours.config
    peer = peer_module.GPT(
        peer_module.GPTConfig(
            block_size=c.block_size,
            vocab_size=c.vocab_size,
            n_layer=c.n_layer,
            n_head=c.n_head,
            n_embd=c.n_embd,
            base_scale=c.n_embd**-0.5,
            use_nGPT=1,
            bias=False,
        )
    )
    if rope:
        patch_rope(peer_module, c.head_dim, c.block_size)
    if hidden:
        patch_hidden_size(peer, ours.blocks[0].mlp.c_proj.in_features)
    load_ngpt_weights(peer, ours)
    if mlp_sqrt_d:
        patch_mlp_sqrt_d(peer)
    return peer_module, peer.float().eval()


@torch.no_grad()
def load_ngpt_weights(peer: nn.Module, ours: NGPT) -> None:
    """Our matrices into theirs (W_q, W_k, W_v are one fused c_attn here, three Linears there; [W_u; W_ν] is
    one c_fc in both). Scales go across as effective values: theirs = ours() · init_scaling / init_value."""
    peer.transformer.wte.weight.copy_(ours.wte.weight)
    peer.lm_head.weight.copy_(ours.lm_head.weight)
    peer.sz.copy_(ours.s_z() * peer.sz_init_scaling / peer.sz_init_value)
    for theirs, mine in zip(peer.transformer.h, ours.blocks, strict=True):
        for linear, w in zip([theirs.query, theirs.key, theirs.value], mine.attn.c_attn.weight.chunk(3), strict=True):
            linear.weight.copy_(w)
        theirs.att_c_proj.weight.copy_(mine.attn.c_proj.weight)
        theirs.c_fc.weight.copy_(mine.mlp.c_fc.weight)
        theirs.mlp_c_proj.weight.copy_(mine.mlp.c_proj.weight)
        theirs.attn_alpha.copy_(mine.alpha_attn() * theirs.attn_alpha_init_scaling / theirs.attn_alpha_init_value)
        theirs.mlp_alpha.copy_(mine.alpha_mlp() * theirs.mlp_alpha_init_scaling / theirs.mlp_alpha_init_value)
        theirs.sqk.copy_(mine.attn.s_qk() * theirs.sqk_init_scaling / theirs.sqk_init_value)
        suv = torch.cat([mine.mlp.s_u(), mine.mlp.s_nu()])
        theirs.suv.copy_(suv * theirs.suv_init_scaling / theirs.suv_init_value)


def ngpt_logits(peer: nn.Module, idx: Tensor) -> Tensor:
    with torch.no_grad():
        return peer(idx, targets=idx)[0]  # with targets it returns every position's logits


def test_ngpt_matches_nvidia():
    """nGPT (LERP) vs NVIDIA's model.py with the three patches, float32 on the CPU. Forms that differ but are
    equal by algebra need no patch: s_qk on q and k there, s_qk² on q here; their re-normalization of h (unit
    already) before each update."""
    ours = perturbed(NGPT(tiny_config(**NGPT_CFG)))
    idx = tokens()
    assert_same("NVIDIA ngpt (patched)", our_logits(ours, idx), ngpt_logits(ngpt_peer(ours)[1], idx))


def test_ngpt_patch_controls():
    """Each patch, removed: RoPE changes the logits; √d_model on u provably does not (Norm(h_M) removes
    it); the hidden size does not even let the weights load."""
    ours = perturbed(NGPT(tiny_config(**NGPT_CFG)))
    idx = tokens()
    mine = our_logits(ours, idx)
    assert_differ("NVIDIA ngpt, NVIDIA's RoPE (control)", mine, ngpt_logits(ngpt_peer(ours, rope=False)[1], idx), 1e-2)
    assert_same("NVIDIA ngpt, √d on u too (control)", mine, ngpt_logits(ngpt_peer(ours, mlp_sqrt_d=False)[1], idx))
    with pytest.raises(RuntimeError, match="size"):
        ngpt_peer(ours, hidden=False)


def test_nvidia_rope_is_not_a_rotation():
    """What ngpt.py's docstring says about NVIDIA's rotary: it keeps only the rotate-half term (no q·cos) and
    reads cos and sin from the two halves of an interleaved table, so it changes norms and q·k depends on
    absolute positions, not only on their offset. Ours (layers.Rotary) is a rotation: it does neither."""
    peer_module = load_ngpt_peer()
    hd = 16
    q, k = torch.randn(2, 1, 1, 1, hd, generator=torch.Generator().manual_seed(0)).expand(2, 1, 1, T, hd).unbind(0)
    # the same q and k at every position
    nv_q, nv_k = peer_module.apply_rotary_position_embeddings(peer_module.get_sinusoidal_embeddings(T, hd), q, k)
    rotary = Rotary(hd, T)
    our_q, our_k = rotary(q), rotary(k)
    norm_ratio = nv_q.norm(dim=-1) / q.norm(dim=-1)
    print(f"NVIDIA rotary: |q'|/|q| from {norm_ratio.min():.2f} to {norm_ratio.max():.2f}")
    assert (norm_ratio - 1).abs().max() > 0.1
    assert torch.allclose(our_q.norm(dim=-1), q.norm(dim=-1), atol=1e-5)

    def dot(a: Tensor, b: Tensor, m: int, n: int) -> float:
        return (a[0, 0, m] * b[0, 0, n]).sum().item()

    assert abs(dot(our_q, our_k, 5, 2) - dot(our_q, our_k, 9, 6)) < 1e-4  # offset 3 both times
    assert abs(dot(nv_q, nv_k, 5, 2) - dot(nv_q, nv_k, 9, 6)) > 1e-2


def test_ngpt_renormalization_after_a_step_matches_nvidia_normalize_matrices():
    """One AdamW step moves our matrices off the sphere; NVIDIA's train.py `normalize_matrices` on the same
    perturbed weights (loaded into their model) and our `after_optimizer_step` give the same matrices."""
    ours = perturbed(NGPT(tiny_config(**NGPT_CFG)))
    idx = tokens()
    opt = torch.optim.AdamW(ours.param_groups(0.0), lr=1e-2, betas=(0.9, 0.95))
    ours.train()
    ours(idx[:, :-1], idx[:, 1:])[1].backward()
    opt.step()
    _, peer = ngpt_peer(ours)  # their model, holding our stepped (not yet re-normalized) matrices
    off_sphere = (peer.transformer.h[0].query.weight.norm(dim=1) - 1).abs().max().item()
    assert off_sphere > 1e-3, off_sphere  # the step did move them
    normalize = load_vendored("ngpt/normalize.py", "minigpt_peer_ngpt_normalize")
    normalize.module, normalize.transformer, normalize.config = peer, peer.transformer, peer.config
    normalize.normalize_matrices()
    ours.after_optimizer_step()
    pairs = [(ours.wte.weight, peer.transformer.wte.weight), (ours.lm_head.weight, peer.lm_head.weight)]
    for mine, theirs in zip(ours.blocks, peer.transformer.h, strict=True):
        qkv = torch.cat([theirs.query.weight, theirs.key.weight, theirs.value.weight])
        pairs += [
            (mine.attn.c_attn.weight, qkv),
            (mine.attn.c_proj.weight, theirs.att_c_proj.weight),
            (mine.mlp.c_fc.weight, theirs.c_fc.weight),
            (mine.mlp.c_proj.weight, theirs.mlp_c_proj.weight),
        ]
    diff = max((a - b).abs().max().item() for a, b in pairs)
    print(f"NVIDIA normalize_matrices: max |weight diff| = {diff:.2e} over {len(pairs)} matrices")
    assert_readme_quotes("NVIDIA normalize_matrices", diff)
    assert diff < 1e-6
    assert_same("NVIDIA ngpt after the step", our_logits(ours.eval(), idx), ngpt_logits(peer, idx))


# ------------------------------------------------------------------- the checks can fail: broken variants


def test_a_broken_variant_fails_its_peer_check(monkeypatch):
    """The comparisons above are not blind: move pre-LN's second norm after the residual add, or drop nGPT's
    s_qk, and the peer's logits are far outside the tolerance."""
    from minigpt import ngpt, pre_ln

    idx = tokens()
    ours = perturbed(build_model(tiny_config(**CLASSIC)))
    peer = nanogpt_peer(ours)
    monkeypatch.setattr(
        pre_ln.Block, "forward", lambda self, x: self.ln_2((x := x + self.attn(self.ln_1(x))) + self.mlp(x))
    )
    assert_differ("nanoGPT vs pre-LN with ln_2 moved (broken)", our_logits(ours, idx), nanogpt_logits(peer, idx), 1e-2)

    ngpt_model = perturbed(NGPT(tiny_config(**NGPT_CFG)))
    _, ngpt_ref = ngpt_peer(ngpt_model)
    monkeypatch.setattr(ngpt.Attention, "transform_qk", lambda self, q, k: (ngpt.l2_normalize(q), ngpt.l2_normalize(k)))
    assert_differ(
        "NVIDIA ngpt vs nGPT without s_qk (broken)", our_logits(ngpt_model, idx), ngpt_logits(ngpt_ref, idx), 1e-2
    )


def test_a_stale_readme_quote_fails(monkeypatch):
    """The README tie can fail: a measurement far from its quote, or a quoted 0 that is not, is reported."""
    monkeypatch.setattr(sys.modules[__name__], "readme_table", lambda: {"a": "1.2e-6", "b": "0"})
    assert_readme_quotes("a", 2.0e-6)
    with pytest.raises(AssertionError, match="quotes 1.2e-6"):
        assert_readme_quotes("a", 1.2e-5)
    with pytest.raises(AssertionError, match="quotes 0"):
        assert_readme_quotes("b", 1e-5)
    CHECKED.discard("a")


def _xdist_mode(config: pytest.Config) -> str:
    """How pytest-xdist distributes the tests ("no" without workers). A worker knows only the main command
    line, so the mode is read from it (`-n N` alone means "load": test by test)."""
    argv = getattr(config, "workerinput", {}).get("mainargv")
    if argv is None:
        return "no"
    for i, arg in enumerate(argv):
        if arg == "--dist" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--dist="):
            return arg.split("=", 1)[1]
    return "load"


def test_every_readme_row_was_checked(request):
    """Last in the file: every row of the README's table belongs to a check that ran above and met it. It needs
    every check of this file in this process, in order: `pytest tests/test_peers.py`, or the README command
    (`--dist loadfile`); with a subset (-k) or tests spread over xdist workers one by one it skips."""
    if SKIPPED:
        pytest.skip(f"peers not installed: {', '.join(SKIPPED)}")
    here = [i for i in request.session.items if i.path == request.node.path]
    every = [name for name in globals() if name.startswith("test_")]
    if {i.originalname for i in here} != set(every):
        pytest.skip("only some of this file's tests were selected")
    if _xdist_mode(request.config) not in ("no", "loadfile", "loadscope", "loadgroup"):
        pytest.skip("this file's tests are spread over xdist workers: use --dist loadfile")
    assert len(readme_table()) >= 10, readme_table()
    assert set(readme_table()) == CHECKED, set(readme_table()) ^ CHECKED
