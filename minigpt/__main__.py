"""Command line: ``python -m minigpt {train,compare,sample,presets}`` (also installed as ``minigpt``).

    python -m minigpt compare                       # every variant, default preset: table + report
    python -m minigpt train --variant ngpt --preset cpu-small --steps 500 --out runs/x
    python -m minigpt train --variant ngpt --preset cpu-small --steps 500 --out runs/x --resume
    python -m minigpt sample --checkpoint runs/x/ckpt.pt --prompt "ROMEO:"
    python -m minigpt presets
    torchrun --standalone --nproc_per_node=8 -m minigpt train --preset gpu-small --out runs/x   # DDP, 8 GPUs

Every ModelConfig / TrainConfig field is an option of `train` and `compare` (``--n_layer 6``, ``--lr 3e-3``,
``--on_nan skip``; ``--on-nan`` works too), generated from the dataclasses so the CLI cannot fall behind the
config. Bad input — an unknown option (the closest valid name is suggested), a value of the wrong type, an
invalid config, missing data, a bad checkpoint — prints one line ``error: ...`` on stderr and exits with
status 2, never a traceback (set MINIGPT_DEBUG=1 to see one). A diverged run exits 1, Ctrl-C exits 130 after
saving a checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import difflib
import math
import os
import shlex
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import config as C
from .config import ConfigError, ModelConfig, TrainConfig

PROG = "python -m minigpt"

# One line per field: what it is and why you would change it. Kept beside the CLI (dataclass comments are not
# visible at runtime); tests/test_cli.py checks that every field has one.
FIELD_HELP: dict[str, str] = {
    # ModelConfig
    "variant": "normalization placement: post_ln (Vaswani 2017), pre_ln (GPT-2), normformer (Shleifer 2021), "
               "ngpt (Loshchilov 2024)",
    "vocab_size": "vocabulary size; set automatically from the tokenizer when training",
    "pad_vocab_to": "round the embedding/LM-head rows up to a multiple of this (GPU presets: 64, faster "
                    "matmuls); padding ids never get probability; 1 = none",
    "block_size": "maximum context length T (tokens per training window)",
    "n_layer": "number of transformer blocks",
    "n_head": "number of attention (query) heads; must divide n_embd",
    "n_kv_head": "key/value heads: none = n_head (multi-head), 1 = multi-query, in between = grouped-query",
    "n_embd": "model width d_model",
    "norm": "norm layer N(.): layernorm or rmsnorm (ngpt has no norm layers)",
    "norm_eps": "epsilon inside the norm layers",
    "mlp": "feed-forward block: gelu (hidden 4d) or swiglu (hidden 8/3 d, rounded up to a multiple of 64)",
    "bias": "biases in Linear layers and norms",
    "position": "position information: learned absolute embeddings or rope (ngpt always uses rope)",
    "rope_base": "RoPE frequency base",
    "qk_norm": "normalize q and k per head before the dot product",
    "z_loss": "coefficient of the PaLM z-loss mean(logsumexp(logits)^2); 0 = off",
    "logit_softcap": "cap logits to (-c, c) with c*tanh(z/c) (Gemma 2); 0 = off",
    "dropout": "dropout probability in [0, 1)",
    "tie_embeddings": "share the token embedding with the LM head (ngpt never ties)",
    "init": "init recipe: gpt2 (N(0, init_std)), fairseq (embeddings N(0, d^-1/2) x sqrt(d): NormFormer's "
            "paper) or xavier (Xavier matrices, unit-scale embeddings: Xiong et al.); ngpt ignores it",
    "init_std": "gpt2 recipe: std of the normal init (GPT-2: 0.02; residual projections get 0.02/sqrt(2 n_layer))",
    "resid_scale": "NormFormer's per-dimension lambda_resid on the FFN residual",
    "ngpt_update": "nGPT residual update: lerp (the paper's practical form) or slerp (the exact geodesic)",
    "ngpt_alpha_init": "nGPT eigen learning rates alpha_A, alpha_M: initial value",
    "ngpt_alpha_scale": "nGPT alpha parametrization scale; none = 1/sqrt(n_embd)",
    "ngpt_sqk_init": "nGPT s_qk (query/key scaling): initial value",
    "ngpt_sqk_scale": "nGPT s_qk parametrization scale; none = 1/sqrt(n_embd)",
    "ngpt_suv_init": "nGPT s_u, s_v (MLP scalings): initial value",
    "ngpt_suv_scale": "nGPT s_u, s_v parametrization scale",
    "ngpt_sz_init": "nGPT s_z (logit scaling): initial value",
    "ngpt_sz_scale": "nGPT s_z parametrization scale; none = 1/sqrt(n_embd)",
    # TrainConfig
    "steps": "total optimizer steps of the run (with --resume: continue up to this step)",
    "batch_size": "sequences per micro-batch per process (global batch = batch_size * grad_accum * "
                  "torchrun's world size)",
    "grad_accum": "micro-batches per optimizer step (tokens/step = batch_size * grad_accum * block_size)",
    "lr": "peak learning rate (default: the preset's best LR for the variant)",
    "min_lr_ratio": "the cosine schedule decays to lr * min_lr_ratio at the last step",
    "warmup_steps": "linear warmup steps from 0 to lr (post-LN needs them; nGPT uses none)",
    "weight_decay": "AdamW weight decay on matrices only (never norms, biases, scales; nGPT: 0)",
    "beta1": "AdamW beta1",
    "beta2": "AdamW beta2",
    "grad_clip": "clip the global gradient norm to this value; 0 = off",
    "eval_interval": "evaluate on the fixed validation batches every N steps (and at the last step)",
    "eval_batches": "number of fixed validation batches per evaluation",
    "seed": "seed of the init and of the batch order (the same for every variant)",
    "tokenizer": "char (84 symbols) or gpt2 (BPE from data/gpt2.tiktoken)",
    "compact_vocab": "gpt2 only: map the ids the corpus uses onto a dense range (smaller embeddings)",
    "data_dir": "folder with shakespeare.txt and gpt2.tiktoken; none = $MINIGPT_DATA_DIR or built-in data",
    "device": "auto (cuda if available, else cpu), cpu, cuda or mps",
    "dtype": "autocast dtype on CUDA; auto = bfloat16 where supported, float32 elsewhere",
    "compile": "torch.compile the model; none = on CUDA only",
    "checkpoint_interval": "also save ckpt.pt every N steps; 0 = only at the end and on Ctrl-C",
    "on_nan": "on a non-finite or exploding loss: stop (keep the last good checkpoint) or skip the update",
    "progress": "show a tqdm progress bar",
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "variant": C.VARIANT_NAMES,
    "norm": C.NORMS,
    "mlp": C.MLPS,
    "position": C.POSITIONS,
    "ngpt_update": C.NGPT_UPDATES,
    "init": C.INITS,
    "tokenizer": C.TOKENIZERS,
    "device": C.DEVICES,
    "dtype": C.DTYPES,
    "on_nan": C.ON_NAN,
}

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_NONE = ("none", "null")


def _wrap(text: str) -> str:
    return textwrap.fill(text, 100)


class CLIError(Exception):
    """Bad command-line usage (unknown option, missing or malformed value)."""


class _Parser(argparse.ArgumentParser):
    """argparse with our error policy: raise instead of printing usage and exiting, so `main` prints one line
    and exits 2. Abbreviations are off: with ~50 options, `--n_lay` must not silently mean `--n_layer`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        raise CLIError(f"{message}; see `{self.prog} --help`")


# ------------------------------------------------------------------------------ options from dataclasses


def _field_parser(name: str, tp: Any) -> tuple[Callable[[str], Any], str]:
    """(string -> value, metavar) for a dataclass field of type `tp` (int, float, bool, str, or X | None)."""
    is_union = isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union
    args = typing.get_args(tp) if is_union else ()
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), tp) if args else tp

    def parse(text: str) -> Any:
        low = text.strip().lower()
        if optional and low in _NONE:
            return None
        if base is bool:
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
        if base is int:
            try:
                return int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if base is float:
            try:
                return float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        return text  # str: choices are checked by the config, whose message suggests the closest name

    if name in _CHOICES:
        metavar = "{" + ",".join(_CHOICES[name]) + "}"
    else:
        fallback = "DIR" if name.endswith("_dir") else "S"
        metavar = {bool: "{true,false}", int: "N", float: "X"}.get(base, fallback)
    if optional:
        metavar += "|none"
    return parse, metavar


def _add_field_options(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """One option per ModelConfig/TrainConfig field; only the ones given become overrides (SUPPRESS)."""
    for cls, title in ((ModelConfig, "model (ModelConfig)"), (TrainConfig, "training (TrainConfig)")):
        group = parser.add_argument_group(
            f"{title} overrides",
            _wrap("Each replaces the preset's value; the defaults shown are the dataclass defaults, which a "
                  "preset may change (see `presets`)."),
        )
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in skip:
                continue
            parse, metavar = _field_parser(f.name, hints[f.name])
            default = f.default if f.default is not dataclasses.MISSING else None
            text = FIELD_HELP.get(f.name, f"{cls.__name__}.{f.name}")
            help_text = f"{text} (default {default!r})".replace("%", "%%")
            group.add_argument(f"--{f.name}", dest=f.name, type=parse, metavar=metavar,
                               default=argparse.SUPPRESS, help=help_text)


def _overrides(ns: argparse.Namespace, skip: Sequence[str] = ()) -> dict[str, Any]:
    names = [f.name for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)]
    return {n: getattr(ns, n) for n in names if n not in skip and hasattr(ns, n)}


# ------------------------------------------------------------------------------------------------ parser


def build_parser() -> tuple[_Parser, dict[str, _Parser]]:
    parser = _Parser(
        prog=PROG,
        description="minigpt: post-LN, pre-LN, NormFormer and nGPT side by side: train, compare, sample.",
        epilog="Run `%(prog)s COMMAND --help` for the options of each command. Errors print one line "
               "`error: ...` and exit with status 2 (MINIGPT_DEBUG=1 shows the traceback).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    default_preset = "gpu-small with CUDA, cpu-tiny otherwise"

    p_train = sub.add_parser(
        "train", help="train one variant; writes OUT/ckpt.pt, OUT/metrics.jsonl, OUT/config.json",
        description=_wrap(
            "Train one variant with a preset and any field overrides. Writes OUT/ckpt.pt (the latest "
            "checkpoint: model, optimizer, RNG states; resumable exactly), OUT/metrics.jsonl (one JSON "
            "object per step) and OUT/config.json."
        ),
        epilog="example:\n  %(prog)s --variant ngpt --preset cpu-small --steps 500 --out runs/x\n"
               "  %(prog)s --variant ngpt --preset cpu-small --steps 500 --out runs/x --resume",
    )
    p_train.add_argument("--preset", default=None, metavar="NAME",
                         help=f"starting configuration, one of {', '.join(C.PRESETS)} "
                              f"(default: {default_preset})")
    p_train.add_argument("--out", default=None, metavar="DIR",
                         help="run folder (default: runs/<timestamp>-<variant>)")
    p_train.add_argument("--resume", action="store_true",
                         help="continue OUT/ckpt.pt up to --steps (exact: same data order and RNG states)")
    p_train.add_argument("--overwrite", action="store_true",
                         help="start over even if OUT already holds a checkpoint (it is replaced)")
    p_train.add_argument("--stop_at", type=_field_parser("stop_at", int)[0], default=None, metavar="N",
                         help="stop (and checkpoint) after step N of the --steps schedule; continue later "
                              "with --resume")
    _add_field_options(p_train)

    p_cmp = sub.add_parser(
        "compare", help="train every variant with the same seed, data order and budget; table + report",
        description=_wrap(
            "Train post_ln, pre_ln, normformer, ngpt-lerp and ngpt-slerp with the same seed, the same "
            "batches in the same order and the same step budget, each at its preset's peak LR. Prints a "
            "table and writes OUT/config.json, OUT/<run>/metrics.jsonl, OUT/val_loss.png and OUT/report.md."
        ),
        epilog="example:\n  %(prog)s\n  %(prog)s --preset cpu-small --steps 1000 --variants pre_ln ngpt-lerp",
    )
    from .compare import RESERVED, RUNS

    p_cmp.add_argument("--preset", default=None, metavar="NAME",
                       help=f"one of {', '.join(C.PRESETS)} (default: {default_preset})")
    p_cmp.add_argument("--variants", nargs="+", default=None, metavar="RUN",
                       help=f"runs to compare (default: all): {', '.join(RUNS)}")
    p_cmp.add_argument("--out", default=None, metavar="DIR", help="output folder (default: runs/<timestamp>)")
    p_cmp.add_argument("--seeds", type=_field_parser("seeds", int)[0], default=2, metavar="N",
                       help="seeds per run (seed, seed+1, ...): the table shows means and the seed range, the "
                            "report which differences are within seed noise (default 2)")
    p_cmp.add_argument("--overwrite", action="store_true", help="replace runs already in OUT")
    _add_field_options(p_cmp, skip=RESERVED)

    p_sample = sub.add_parser(
        "sample", help="generate text from a checkpoint",
        description="Load a checkpoint written by `train` and print the prompt followed by generated text.",
        epilog='example:\n  %(prog)s --checkpoint runs/x/ckpt.pt --prompt "ROMEO:" --max_new_tokens 300',
    )
    p_sample.add_argument("--checkpoint", required=True, metavar="PATH", help="a ckpt.pt written by train")
    p_sample.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p_sample.add_argument("--max_new_tokens", type=_field_parser("max_new_tokens", int)[0], default=200,
                          metavar="N", help="tokens to generate (default 200)")
    p_sample.add_argument("--temperature", type=_field_parser("temperature", float)[0], default=0.8,
                          metavar="X", help="softmax temperature > 0; lower is more conservative "
                                            "(default 0.8)")
    p_sample.add_argument("--top_k", type=_field_parser("top_k", int)[0], default=40, metavar="N",
                          help="sample among the k most likely tokens; 0 = all (default 40)")
    p_sample.add_argument("--seed", type=_field_parser("seed", int)[0], default=1337, metavar="N",
                          help="sampling seed, for reproducible output (default 1337)")
    p_sample.add_argument("--device", default="cpu", metavar="{" + ",".join(C.DEVICES) + "}",
                          help="where to run the model (default cpu)")
    p_sample.add_argument("--data_dir", default=None, metavar="DIR",
                          help="data folder for the gpt2 BPE ranks (default: the checkpoint's, else "
                               "built-in)")

    sub.add_parser("presets", help="list the presets with their description",
                   description="List the named presets: shape, tokenizer, steps, and each variant's peak LR.")
    p_fig = sub.add_parser(
        "figures", help="regenerate the README figures (docs/figures/*.png)",
        description="Run the experiments behind the README figures (gradient norms vs depth, the race, LR "
                    "stability, the nGPT hypersphere) and write them as PNGs.")
    p_fig.add_argument("--out", default="docs/figures", metavar="DIR", help="output folder (default docs/figures)")
    p_fig.add_argument("--preset", default=None, choices=list(C.PRESETS),
                       help="preset (default: gpu-small on CUDA, else cpu-tiny)")
    p_fig.add_argument("--quick", action="store_true", help="tiny budgets: checks the pipeline, not the science")
    from .scale_curves import add_arguments

    p_exp = sub.add_parser(
        "experiments", help="the claim-vs-scale curves with seed bands; writes docs/results/<name>.json + .png",
        description="nGPT's speedup vs budget and vs context, NormFormer's recipe, the depth law: each at a ci "
                    "tier (seconds) or a full tier (minutes; the committed curves in docs/results/).")
    add_arguments(p_exp)
    return parser, {"train": p_train, "compare": p_cmp, "sample": p_sample, "figures": p_fig,
                    "experiments": p_exp}


def _is_negative_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return tok.startswith("-")


def _normalize_argv(argv: Sequence[str]) -> list[str]:
    """Accept `--on-nan` for `--on_nan` (options are defined with underscores, like the fields), and
    `--lr -1e-3` for `--lr=-1e-3`: argparse takes `-1e-3` for an option (only `-2` or `-.5` look like
    numbers to it), which would hide the real problem (a negative LR) behind "expected one argument"."""
    out: list[str] = []
    rest = False
    for tok in argv:
        option = bool(out) and out[-1].startswith("--") and out[-1] != "--" and "=" not in out[-1]
        if not rest and option and _is_negative_number(tok):
            out[-1] += "=" + tok
            continue
        if rest or not tok.startswith("--") or tok == "--":
            rest = rest or tok == "--"
            out.append(tok)
            continue
        name, eq, value = tok.partition("=")
        out.append("--" + name[2:].replace("-", "_") + eq + value)
    return out


def _reject_unknown(extras: list[str], parser: argparse.ArgumentParser) -> None:
    """An unknown option names the closest valid one (a typo in a field name is the usual cause)."""
    if not extras:
        return
    options = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    for tok in extras:
        if tok.startswith("-"):
            name = tok.split("=", 1)[0]
            hint = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
            extra = f"; did you mean {hint[0]}?" if hint else f"; see `{parser.prog} --help`"
            raise CLIError(f"unknown option {name}{extra}")
    raise CLIError(f"unexpected argument {extras[0]!r}; see `{parser.prog} --help`")


# ---------------------------------------------------------------------------------------------- commands


def _command_line(argv: Sequence[str]) -> str:
    return f"{PROG} {shlex.join(argv)}".rstrip()


def cmd_train(ns: argparse.Namespace) -> int:
    from .train import CHECKPOINT_FILE, METRICS_FILE, train

    preset_name = ns.preset or C.default_preset_name()
    preset = C.get_preset(preset_name)
    overrides = _overrides(ns)
    variant = overrides.pop("variant", preset.model.variant)
    model_cfg, train_cfg = preset.configs(variant, **overrides)
    if ns.out is None:
        if ns.resume:
            raise CLIError("--resume needs --out DIR: the run folder whose ckpt.pt to continue")
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{stamp}-{variant}"
    else:
        out = Path(ns.out)
    r = train(model_cfg, train_cfg, out, resume=ns.resume, stop_at=ns.stop_at, overwrite=ns.overwrite,
              label=variant)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 reports for all (the ranks end identical)
        return 1 if r.diverged else 0
    if r.diverged:
        print(f"error: {r.message}", file=sys.stderr)
        return 1
    val = f", val loss {r.final_val_loss:.4f}" if r.val else ""
    speed = ""
    if math.isfinite(r.ms_per_step):
        speed = f", {r.ms_per_step:.1f} ms/step, {r.tokens_per_s:,.0f} tokens/s"
    print(f"{variant}: step {r.step}/{train_cfg.steps}, train loss {r.final_train_loss:.4f}{val}{speed}")
    print(f"checkpoint: {out / CHECKPOINT_FILE}\nmetrics: {out / METRICS_FILE}")
    if r.skipped_steps:
        print(f"skipped {len(r.skipped_steps)} non-finite/exploding step(s): {r.skipped_steps[:10]}")
    return 0


def cmd_compare(ns: argparse.Namespace, argv: Sequence[str]) -> int:
    from .compare import RESERVED, run_compare

    res = run_compare(ns.preset, _overrides(ns, skip=RESERVED), ns.variants, ns.out,
                      command=_command_line(argv), overwrite=ns.overwrite, seeds=ns.seeds)
    print(res.table)
    for row in res.rows:
        if row.note:
            print(f"note: {row.label}: {row.note}")
    print(f"\nwrote {res.out_dir}/ (config.json, report.md, val_loss.png, one metrics.jsonl per run)")
    return 0


def cmd_sample(ns: argparse.Namespace) -> int:
    import torch

    from .layers import ModelInputError
    from .train import CheckpointError, model_from_checkpoint, resolve_device

    if ns.max_new_tokens < 0:
        raise ModelInputError(f"max_new_tokens={ns.max_new_tokens} must be >= 0")
    device = resolve_device(ns.device) if ns.device in C.DEVICES else None
    if device is None:
        raise ConfigError(f"device={ns.device!r} is not valid; choose one of {', '.join(C.DEVICES)}")
    model, tok, _ = model_from_checkpoint(ns.checkpoint, device, data_dir=ns.data_dir)
    if tok is None:
        raise CheckpointError(f"checkpoint {ns.checkpoint} stores no tokenizer, so text cannot be encoded")
    ids = tok.encode(ns.prompt)
    if not ids:
        raise ModelInputError("the prompt encodes to no tokens; give at least one character")
    gen = torch.Generator(device=device).manual_seed(ns.seed)
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    out = model.generate(idx, ns.max_new_tokens, temperature=ns.temperature, top_k=ns.top_k or None,
                         generator=gen)
    print(tok.decode(out[0].tolist()))
    return 0


def cmd_figures(ns: argparse.Namespace) -> int:
    from .experiments import make_figures

    for name, path in make_figures(ns.out, preset=ns.preset, quick=ns.quick).items():
        print(f"{name}: {path}")
    return 0


def cmd_presets() -> int:
    default = C.default_preset_name()
    for name, p in C.PRESETS.items():
        m, t = p.model, p.train
        mark = "  (default here)" if name == default else ""
        print(f"{name}{mark}\n  {p.description}")
        print(f"  L{m.n_layer} d{m.n_embd} h{m.n_head} T{m.block_size} B{t.batch_size}x{t.grad_accum}, "
              f"{t.steps} steps, tokenizer {t.tokenizer}, {m.norm}, {m.mlp}, {m.position}, bias={m.bias}")
        lrs = ", ".join(f"{v} {p.lr.get(v, t.lr):g}" for v in C.VARIANT_NAMES)
        print(f"  peak lr: {lrs}\n")
    return 0


# ------------------------------------------------------------------------------------------------- main


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 diverged / I/O failure, 2 bad input, 130 Ctrl-C)."""
    from .data import DataError
    from .layers import ModelInputError
    from .train import CheckpointError, TrainingInterrupted

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("MINIGPT_DEBUG"))
    try:
        parser, subs = build_parser()
        ns, extras = parser.parse_known_args(_normalize_argv(argv))
        _reject_unknown(extras, subs.get(ns.command, parser))
        if ns.command == "train":
            return cmd_train(ns)
        if ns.command == "compare":
            return cmd_compare(ns, argv)
        if ns.command == "sample":
            return cmd_sample(ns)
        if ns.command == "figures":
            return cmd_figures(ns)
        if ns.command == "experiments":
            from .scale_curves import command

            return command(ns, _command_line(argv))
        return cmd_presets()
    except (CLIError, ConfigError, DataError, CheckpointError, ModelInputError) as e:
        if debug:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        r = e.result
        where, hint = "no checkpoint was written", ""
        if r.checkpoint is not None:
            where = f"checkpoint saved to {r.checkpoint} (step {r.checkpoint_step})"
            hint = "; continue with the same command plus --resume"
        print(f"\ninterrupted after step {r.step}: {where}{hint}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if debug:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
