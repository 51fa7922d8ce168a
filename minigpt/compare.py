"""`python -m minigpt compare`: every variant, same seed, same data order, same step budget; a table, a
figure and a report.

The comparison is fair by construction (DESIGN.md §5): one preset gives every variant the same block
ingredients (RoPE, SwiGLU, no bias), the same init seed and the same batches in the same order (the trainer
draws them from a generator of their own), and each variant its own best LR from the preset's sweep
(`Preset.configs`), since nGPT and NormFormer want a higher one than post-LN. What differs is where the
norms sit.

    result = run_compare("cpu-tiny", overrides={"steps": 100})
    print(result.table)               # variant | params | train loss | val loss | ms/step | tokens/s
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, default_preset_name, get_preset
from .train import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    CheckpointError,
    TrainResult,
    _write_text_atomic,
    train,
)

# label -> (variant, ModelConfig overrides). nGPT runs twice: the paper's LERP update and the exact SLERP.
RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    "post_ln": ("post_ln", {}),
    "pre_ln": ("pre_ln", {}),
    "normformer": ("normformer", {}),
    "ngpt-lerp": ("ngpt", {"ngpt_update": "lerp"}),
    "ngpt-slerp": ("ngpt", {"ngpt_update": "slerp"}),
}
# Fields a comparison sets itself for each run; overriding them would make the labels lie.
RESERVED = ("variant", "ngpt_update")

REPORT_FILE = "report.md"
FIGURE_FILE = "val_loss.png"


@dataclass
class CompareRow:
    label: str
    variant: str
    params: int
    lr: float
    final_train_loss: float
    final_val_loss: float
    ms_per_step: float
    tokens_per_s: float
    note: str = ""
    val_seeds: list[float] = field(default_factory=list)  # final val loss of each seed (final_val_loss: mean)

    @property
    def val_range(self) -> float:
        """max - min of the final val loss over seeds (0 with one seed)."""
        return max(self.val_seeds) - min(self.val_seeds) if self.val_seeds else float("nan")


@dataclass
class CompareResult:
    out_dir: Path
    preset: str
    rows: list[CompareRow] = field(default_factory=list)
    results: dict[str, TrainResult] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return format_table(self.rows)


def _safe_label(label: str) -> str:
    """Run folders are named after labels; keep them to a harmless character set (no path separators)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label).strip(".") or "run"


def default_out_dir(root: str | Path = "runs") -> Path:
    """runs/<YYYYmmdd-HHMMSS>, with a numeric suffix if two comparisons start in the same second."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(root) / stamp
    n = 2
    while out.exists():
        out = Path(root) / f"{stamp}-{n}"
        n += 1
    return out


def run_compare(
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    labels: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    command: str | None = None,
    overwrite: bool = False,
    seeds: int = 2,
) -> CompareResult:
    """Train each of `labels` (default: all of RUNS) with `preset` (default: `default_preset_name()`) and
    the same `overrides`, then write `out_dir` (default runs/<timestamp>): config.json, <label>/metrics.jsonl
    (+ ckpt.pt), val_loss.png and report.md. Returns the rows of the table and each run's TrainResult.

    The data is loaded once and shared: every run sees the same batches in the same order. Runs already in
    `out_dir` are an error unless `overwrite` (a comparison never silently replaces finished work).

    `seeds` (default 2): each run is repeated with seeds seed, seed + 1, ...; the table's losses are the
    means, and the report says which differences are within the seed-to-seed spread. Only the first seed
    writes files (metrics, checkpoint, the figure's curves): the others add a final loss each."""
    from .data import load_data

    preset_name = preset or default_preset_name()
    spec = get_preset(preset_name)
    overrides = dict(overrides or {})
    reserved = [k for k in RESERVED if k in overrides]
    if reserved:
        raise ConfigError(
            f"compare sets {', '.join(reserved)} itself for each run; choose runs with --variants "
            f"({', '.join(RUNS)}) instead"
        )
    labels = list(labels) if labels else list(RUNS)
    unknown = [x for x in labels if x not in RUNS]
    if unknown:
        raise ConfigError(f"unknown compare run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"compare runs must be distinct, got {', '.join(labels)}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds={seeds!r} is not valid; it must be an integer >= 1")

    configs = {}
    for label in labels:
        variant, extra = RUNS[label]
        configs[label] = spec.configs(variant, **{**overrides, **extra})
    first_model, first_train = configs[labels[0]]
    tokenizer, batches = load_data(first_train, first_model.block_size)

    out = Path(out_dir) if out_dir is not None else default_out_dir()
    existing = [str(out / _safe_label(x) / CHECKPOINT_FILE) for x in labels
                if (out / _safe_label(x) / CHECKPOINT_FILE).exists()]
    if existing and not overwrite:
        raise CheckpointError(
            f"{out} already holds runs ({', '.join(existing)}); pass overwrite=True (--overwrite) or choose "
            f"another output folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "preset": preset_name,
        "overrides": overrides,
        "command": command,
        "runs": {label: {"model": m.to_dict(), "train": t.to_dict()} for label, (m, t) in configs.items()},
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    _write_text_atomic(out / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")

    result = CompareResult(out_dir=out, preset=preset_name)
    for label in labels:
        model_cfg, train_cfg = configs[label]
        run_dir = out / _safe_label(label)
        r = train(model_cfg, train_cfg, run_dir, batches=batches, tokenizer=tokenizer, label=label,
                  overwrite=overwrite)
        more = [train(model_cfg, dataclasses.replace(train_cfg, seed=train_cfg.seed + i), None, batches=batches,
                      tokenizer=tokenizer, label=f"{label} seed {train_cfg.seed + i}") for i in range(1, seeds)]
        result.results[label] = r
        runs = [r, *more]
        result.rows.append(CompareRow(
            label=label,
            variant=model_cfg.variant,
            params=r.model.num_params() if hasattr(r.model, "num_params") else 0,
            lr=train_cfg.lr,
            final_train_loss=sum(x.final_train_loss for x in runs) / len(runs),
            final_val_loss=sum(x.final_val_loss for x in runs) / len(runs),
            ms_per_step=r.ms_per_step,
            tokens_per_s=r.tokens_per_s,
            note="; ".join(x.message for x in runs if x.diverged),
            val_seeds=[x.final_val_loss for x in runs],
        ))

    meta["results"] = {label: r.summary() for label, r in result.results.items()}
    _write_text_atomic(out / CONFIG_FILE, json.dumps(meta, indent=2) + "\n")
    steps = first_train.steps
    plot_val_loss(result.results, out / FIGURE_FILE,
                  title=f"Validation loss, preset {preset_name}, {steps} steps, same seed and data order")
    write_report(result, out / REPORT_FILE, command=command, steps=steps, seeds=seeds)
    return result


def _fmt(x: float, spec: str) -> str:
    return format(x, spec) if math.isfinite(x) else "—"


def format_table(rows: Sequence[CompareRow]) -> str:
    """A Markdown table (readable in a terminal, rendered in report.md). Train loss is the mean of the last
    10 steps; val loss the last evaluation (both: means over seeds); seed range: max - min of the seeds'
    val losses; ms/step and tokens/s (first seed) exclude evaluation."""
    header = ["variant", "params", "peak lr", "train loss", "val loss", "seed range", "ms/step", "tokens/s"]
    body = [
        [
            r.label, f"{r.params:,}", f"{r.lr:.3g}", _fmt(r.final_train_loss, ".4f"),
            _fmt(r.final_val_loss, ".4f"), _fmt(r.val_range, ".4f") if len(r.val_seeds) > 1 else "1 seed",
            _fmt(r.ms_per_step, ".1f"), _fmt(r.tokens_per_s, ",.0f"),
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

    # Markdown alignment row: the label column left-aligned, the numbers right-aligned.
    rule = "|" + "|".join(("-" * (w + 1) + ":") if i else (":" + "-" * (w + 1)) for i, w in enumerate(widths))
    rule += "|"
    return "\n".join([line(header), rule, *(line(b) for b in body)])


def plot_val_loss(results: dict[str, TrainResult], path: str | Path, title: str = "Validation loss") -> Path:
    """Train and validation loss vs optimizer step, one line per run (`plots.plot_val_curves`, no pyplot)."""
    from .plots import plot_val_curves

    path = Path(path)
    plot_val_curves(results, title=title).savefig(path)
    return path


def seed_noise(rows: Sequence[CompareRow]) -> list[str]:
    """One line per pair of runs adjacent in val loss: how far apart their means are, and whether that is
    more than the larger of their seed ranges (then the order is a finding at this budget) or not (then it
    is within seed noise: another pair of seeds could swap them)."""
    ranked = sorted((r for r in rows if math.isfinite(r.final_val_loss)), key=lambda r: r.final_val_loss)
    lines = []
    for a, b in zip(ranked, ranked[1:], strict=False):
        gap, noise = b.final_val_loss - a.final_val_loss, max(a.val_range, b.val_range)
        verdict = "beyond seed noise" if gap > noise else "**within seed noise**"
        lines.append(f"- {a.label} < {b.label} by {gap:.4f}: {verdict} (larger seed range {noise:.4f})")
    return lines


def write_report(result: CompareResult, path: str | Path, command: str | None = None, steps: int = 0,
                 seeds: int = 1) -> Path:
    """report.md: what was run (the exact command), the table, the figure, which differences are within
    seed noise, where the full-tier curves are, and any divergence."""
    lines = [
        f"# minigpt compare: preset `{result.preset}`, {steps} steps",
        "",
        "Every run uses the same seed, the same batches in the same order and the same step budget; each "
        "variant gets its preset's peak learning rate. Train loss: mean of the last 10 steps. Val loss: the "
        "last evaluation on the fixed validation batches. ms/step and tokens/s exclude evaluation.",
        "",
        "Command:",
        "",
        "```",
        command or "minigpt.compare.run_compare(...)",
        "```",
        "",
        result.table,
        "",
        f"![validation loss vs step]({FIGURE_FILE})",
        "",
        "Per-run metrics (first seed): "
        + ", ".join(f"[{r.label}]({_safe_label(r.label)}/{METRICS_FILE})" for r in result.rows),
        "",
        f"## Seed noise ({seeds} seed{'s' if seeds > 1 else ''} per run)",
        "",
        *(seed_noise(result.rows) if seeds > 1 else
          ["One seed: no spread measured, so no difference here can be called beyond seed noise (run with "
           "`--seeds 2` or more)."]),
        "",
        "This is one short budget. Which variant leads depends on the budget, the context length and the "
        "recipe: the full-tier curves (nGPT's speedup vs budget and vs context, NormFormer's recipe, the depth "
        "law; 3 seeds each) are in `docs/results/` of the repository (`python -m minigpt experiments --tier "
        "full`), drawn in the README's section on claims vs scale.",
    ]
    notes = [f"- **{r.label}**: {r.note}" for r in result.rows if r.note]
    if notes:
        lines += ["", "Diverged runs:", "", *notes]
    path = Path(path)
    _write_text_atomic(path, "\n".join(lines) + "\n")
    return path
