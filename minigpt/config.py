"""Configuration: the two dataclasses every part of minigpt reads, their validation, and named presets.

`ModelConfig` says *what* network to build (variant, shape, block ingredients); `TrainConfig` says *how* to
train it (data, optimizer, schedule, runtime). Both validate themselves in ``__post_init__`` so a bad value
fails where it was written, with a message that names the field and the allowed values (DESIGN.md §8).

Presets (``PRESETS``) are named (ModelConfig, TrainConfig) pairs. The ``cpu-*`` and ``gpu-*`` presets give every
variant the block ingredients nGPT uses (RoPE, SwiGLU, no bias) so that comparisons differ only in where the
norms sit (DESIGN.md §5); each variant gets its own learning rate (``Preset.lr``), the best of the sweep in
``benchmarks/lr_sweep.py``. ``gpt2-124m`` is the real GPT-2 small shape with the classic GPT-2 block.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields
from typing import Any

VARIANT_NAMES = ("post_ln", "pre_ln", "normformer", "ngpt")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")
POSITIONS = ("learned", "rope")
NGPT_UPDATES = ("lerp", "slerp")
INITS = ("gpt2", "fairseq", "xavier")  # init recipes: see layers.GPTBase.init_weights
TOKENIZERS = ("char", "gpt2")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
ON_NAN = ("stop", "skip")


class ConfigError(ValueError):
    """A configuration value is invalid. The message names the field, the value and what is allowed."""


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        hint = difflib.get_close_matches(str(value), allowed, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"{name}={value!r} is not valid; choose one of {', '.join(allowed)}{extra}")


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name}={value!r} is not valid; it must be a finite number {bound}")


def _fraction(name: str, value: Any, *, include_one: bool = False) -> None:
    """A number in [0, 1) (or [0, 1]). Checked here, type included, so that a string from a hand-written
    dict fails with a message naming the field rather than a TypeError from the comparison."""
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not (number and (0.0 <= value <= 1.0 if include_one else 0.0 <= value < 1.0)):
        raise ConfigError(f"{name}={value!r} is not valid; it must be in [0, 1{']' if include_one else ')'}")


def _integer(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r} is not valid; it must be an integer >= {minimum}")


@dataclass
class ModelConfig:
    """The network. Defaults are the classic GPT-2 block (LayerNorm, GELU, bias, learned positions, tied
    embeddings); the presets switch on the ingredients nGPT uses so that variants compare fairly."""

    variant: str = "pre_ln"
    vocab_size: int = 84
    # Embedding/LM-head rows rounded up to a multiple of this (GPU presets: 64, for tensor-core-friendly matmul
    # shapes); the extra rows are never looked up and their logits are sliced off, so loss and sampling see
    # exactly vocab_size ids. 1 = no padding.
    pad_vocab_to: int = 1
    block_size: int = 128  # maximum context length T
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None  # None -> n_head (multi-head); 1 -> multi-query; between -> grouped-query
    n_embd: int = 128
    norm: str = "layernorm"  # layernorm | rmsnorm (ignored by ngpt: it has no norm layers)
    norm_eps: float = 1e-5
    mlp: str = "gelu"  # gelu (hidden 4d) | swiglu (hidden 8/3 d rounded up to a multiple of 64)
    bias: bool = True  # biases in Linear layers and norms
    position: str = "learned"  # learned absolute positions | rope
    rope_base: float = 10000.0
    qk_norm: bool = False  # normalize q and k per head before the dot product
    z_loss: float = 0.0  # coefficient of the PaLM z-loss, mean(logsumexp(logits)^2)
    logit_softcap: float = 0.0  # 0 = off; else logits = c * tanh(logits / c) (Gemma 2)
    dropout: float = 0.0
    tie_embeddings: bool = True  # share token embedding and LM head (ngpt never ties)
    # init recipe, the paper's setting of each variant (ngpt ignores it: its own init keeps vectors on the sphere)
    #   gpt2:    N(0, init_std) everywhere, residual output projections init_std / sqrt(2 * n_layer)
    #   fairseq: token embeddings N(0, d^-1/2) times sqrt(d) in the forward (unit scale per element), attention
    #            Xavier, FFN torch's default (fairseq transformer_lm: the NormFormer paper's recipe)
    #   xavier:  every matrix Xavier-uniform, token embeddings at unit scale (Vaswani et al.; Xiong et al. Thm 1)
    init: str = "gpt2"
    init_std: float = 0.02  # gpt2 recipe: the normal init's std
    # NormFormer: the paper's per-dimension lambda_resid on the FFN residual (off by default, see normformer.py)
    resid_scale: bool = False
    # nGPT (see ngpt.py for where each constant comes from)
    ngpt_update: str = "lerp"  # lerp | slerp
    ngpt_alpha_init: float = 0.05
    ngpt_alpha_scale: float | None = None  # None -> 1/sqrt(n_embd)
    ngpt_sqk_init: float = 1.0
    ngpt_sqk_scale: float | None = None  # None -> 1/sqrt(n_embd)
    ngpt_suv_init: float = 1.0
    ngpt_suv_scale: float = 1.0
    ngpt_sz_init: float = 1.0
    ngpt_sz_scale: float | None = None  # None -> 1/sqrt(n_embd)

    def __post_init__(self) -> None:
        _choice("variant", self.variant, VARIANT_NAMES)
        _choice("norm", self.norm, NORMS)
        _choice("mlp", self.mlp, MLPS)
        _choice("position", self.position, POSITIONS)
        _choice("ngpt_update", self.ngpt_update, NGPT_UPDATES)
        _choice("init", self.init, INITS)
        for name in ("vocab_size", "pad_vocab_to", "block_size", "n_layer", "n_head", "n_embd"):
            _integer(name, getattr(self, name))
        if self.n_kv_head is not None:
            _integer("n_kv_head", self.n_kv_head)
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}; "
                f"the head dimension must be an integer"
            )
        if self.n_head % self.kv_heads:
            raise ConfigError(
                f"n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}; "
                f"each key/value head must serve a whole group of query heads"
            )
        if self.uses_rope and self.head_dim % 2:
            raise ConfigError(
                f"head dimension n_embd/n_head = {self.head_dim} is odd; RoPE rotates pairs of dimensions "
                f"(position='rope'{' is implied by variant=ngpt' if self.variant == 'ngpt' else ''})"
            )
        _positive("norm_eps", self.norm_eps)
        _positive("rope_base", self.rope_base)
        _positive("z_loss", self.z_loss, allow_zero=True)
        _positive("logit_softcap", self.logit_softcap, allow_zero=True)
        _positive("init_std", self.init_std)
        _fraction("dropout", self.dropout)
        for name in ("ngpt_alpha_init", "ngpt_sqk_init", "ngpt_suv_init", "ngpt_sz_init", "ngpt_suv_scale"):
            _positive(name, getattr(self, name))
        for name in ("ngpt_alpha_scale", "ngpt_sqk_scale", "ngpt_sz_scale"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding and LM head: vocab_size rounded up to a multiple of pad_vocab_to."""
        return self.pad_vocab_to * math.ceil(self.vocab_size / self.pad_vocab_to)

    @property
    def uses_rope(self) -> bool:
        """nGPT always uses RoPE (it has no position embedding); the others follow `position`."""
        return self.variant == "ngpt" or self.position == "rope"

    @property
    def mlp_hidden(self) -> int:
        """FFN width: 4d for GELU; for SwiGLU 8/3 d (same parameter count as a 4d GELU MLP), rounded up to a
        multiple of 64 for efficient matmuls, as LLaMA does."""
        if self.mlp == "gelu":
            return 4 * self.n_embd
        return 64 * math.ceil(8 * self.n_embd / 3 / 64)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, d)


@dataclass
class TrainConfig:
    """The run: data, optimizer, schedule and runtime. `steps` counts optimizer steps."""

    steps: int = 300
    batch_size: int = 16
    grad_accum: int = 1  # micro-batches per optimizer step (tokens/step = batch_size * grad_accum * T)
    lr: float = 3e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    warmup_steps: int = 0  # linear warmup from 0 to lr
    weight_decay: float = 0.1  # on matrices only (never on norms, biases, embeddings' scales, nGPT)
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    eval_interval: int = 50  # evaluate every N steps (and at the last step)
    eval_batches: int = 8  # fixed val batches per evaluation
    seed: int = 1337
    tokenizer: str = "char"  # char | gpt2
    compact_vocab: bool = True  # gpt2 only: map the ids the corpus uses onto a dense range
    data_dir: str | None = None  # None -> $MINIGPT_DATA_DIR, else the repo's / package's data folder
    device: str = "auto"  # auto -> cuda if available, else cpu
    dtype: str = "auto"  # auto -> bfloat16 autocast on CUDA (if supported), float32 on CPU
    compile: bool | None = None  # None -> torch.compile on CUDA only
    checkpoint_interval: int = 100  # also save ckpt.pt every N steps when out_dir is set (0 = only at the end)
    on_nan: str = "stop"  # stop | skip (skip the update of a non-finite step; for the LR-stability experiment)
    progress: bool = True  # tqdm progress bar

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "eval_interval", "eval_batches"):
            _integer(name, getattr(self, name))
        _integer("warmup_steps", self.warmup_steps, minimum=0)
        _integer("checkpoint_interval", self.checkpoint_interval, minimum=0)
        _integer("seed", self.seed, minimum=0)
        _positive("lr", self.lr)
        _positive("weight_decay", self.weight_decay, allow_zero=True)
        _positive("grad_clip", self.grad_clip, allow_zero=True)
        _fraction("min_lr_ratio", self.min_lr_ratio, include_one=True)
        _fraction("beta1", self.beta1)
        _fraction("beta2", self.beta2)
        _choice("tokenizer", self.tokenizer, TOKENIZERS)
        _choice("device", self.device, DEVICES)
        _choice("dtype", self.dtype, DTYPES)
        _choice("on_nan", self.on_nan, ON_NAN)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _from_dict(cls, d)


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = [k for k in d if k not in names]
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {', '.join(sorted(names))}")
    return cls(**d)


def field_names() -> dict[str, type]:
    """Every overridable field name -> the dataclass that owns it (names are unique across the two)."""
    out: dict[str, type] = {}
    for cls in (ModelConfig, TrainConfig):
        for f in fields(cls):
            out[f.name] = cls
    return out


def apply_overrides(
    model: ModelConfig, train: TrainConfig, overrides: dict[str, Any]
) -> tuple[ModelConfig, TrainConfig]:
    """Return copies of (model, train) with `overrides` applied; an unknown name raises ConfigError that
    suggests the closest valid one. Values must already have the right Python type."""
    owners = field_names()
    m: dict[str, Any] = {}
    t: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in owners:
            hint = difflib.get_close_matches(key, list(owners), n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(f"unknown config field {key!r}{extra}")
        (m if owners[key] is ModelConfig else t)[key] = value
    return dataclasses.replace(model, **m), dataclasses.replace(train, **t)


# ----------------------------------------------------------------------------------------------- presets

# The ingredients nGPT uses; every variant gets them in the cpu-*/gpu-* presets (DESIGN.md §5).
_FAIR = dict(position="rope", mlp="swiglu", bias=False, tie_embeddings=False)


@dataclass
class Preset:
    """A named starting point. `lr` maps variant -> peak LR (from benchmarks/lr_sweep.py); variants not
    listed use `train.lr`. `description` is shown by `python -m minigpt presets`."""

    description: str
    model: ModelConfig
    train: TrainConfig
    lr: dict[str, float] = field(default_factory=dict)

    def configs(self, variant: str, **overrides: Any) -> tuple[ModelConfig, TrainConfig]:
        """(ModelConfig, TrainConfig) for `variant` with this preset's LR for it, then `overrides`."""
        _choice("variant", variant, VARIANT_NAMES)
        model = dataclasses.replace(self.model, variant=variant)
        train = dataclasses.replace(self.train, lr=self.lr.get(variant, self.train.lr))
        if variant == "ngpt":  # the paper's recipe: no weight decay, no warmup (DESIGN.md §3)
            train = dataclasses.replace(train, weight_decay=0.0, warmup_steps=0)
        return apply_overrides(model, train, overrides)


PRESETS: dict[str, Preset] = {
    "cpu-tiny": Preset(
        "char-level, L4 d128 h4 T128 B8: all five `compare` runs in under 3 minutes on a 2-core laptop CPU",
        ModelConfig(vocab_size=84, block_size=128, n_layer=4, n_head=4, n_embd=128, **_FAIR),
        TrainConfig(steps=150, batch_size=8, eval_interval=30, eval_batches=8, tokenizer="char",
                    warmup_steps=20),
        lr={"post_ln": 6e-3, "pre_ln": 4e-3, "normformer": 4e-3, "ngpt": 8e-3},  # benchmarks/lr_sweep.md
    ),
    "cpu-small": Preset(
        "char-level, L6 d192 h6 T256 B16: a few minutes on a laptop CPU, readable samples",
        ModelConfig(vocab_size=84, block_size=256, n_layer=6, n_head=6, n_embd=192, **_FAIR),
        TrainConfig(steps=1000, batch_size=16, eval_interval=100, eval_batches=8, tokenizer="char",
                    warmup_steps=100),
        lr={"post_ln": 1.5e-3, "pre_ln": 3e-3, "normformer": 3e-3, "ngpt": 6e-3},  # not swept yet: guesses
    ),
    "gpu-small": Preset(
        "GPT-2 BPE (compacted vocab), L6 d384 h6 T256 B64: minutes on one GPU",
        ModelConfig(vocab_size=50257, pad_vocab_to=64, block_size=256, n_layer=6, n_head=6, n_embd=384,
                    dropout=0.1, **_FAIR),
        # 500 steps = 5.8 epochs of the 1.4M training tokens: on an H100 val loss flattens at 400-500 steps (4.08
        # pre-LN); the former 2000 steps memorized the corpus (train 0.29, val 6.79). Dropout 0.1 for the same reason.
        TrainConfig(steps=500, batch_size=64, eval_interval=50, eval_batches=16, tokenizer="gpt2",
                    warmup_steps=50),
        lr={"post_ln": 1e-3, "pre_ln": 2e-3, "normformer": 2e-3, "ngpt": 4e-3},  # not swept yet
    ),
    "gpt2-124m": Preset(
        "the real GPT-2 small shape and block (L12 d768 h12 T1024, LayerNorm, GELU, bias, learned "
        "positions, tied embeddings), GPT-2 BPE; a GPU job",
        ModelConfig(vocab_size=50257, pad_vocab_to=64, block_size=1024, n_layer=12, n_head=12, n_embd=768),
        TrainConfig(steps=5000, batch_size=16, grad_accum=4, eval_interval=250, eval_batches=20,
                    tokenizer="gpt2", compact_vocab=False, warmup_steps=700, lr=6e-4),
        lr={"ngpt": 1.5e-3},
    ),
}


def get_preset(name: str) -> Preset:
    _choice("preset", name, tuple(PRESETS))
    return PRESETS[name]


def default_preset_name() -> str:
    """`gpu-small` when CUDA is present, else `cpu-tiny` (what `compare` and the notebooks pick)."""
    import torch

    return "gpu-small" if torch.cuda.is_available() else "cpu-tiny"
