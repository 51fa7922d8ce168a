"""The registry: one home for what the rest of minigpt knows about each variant and each named run.

    VARIANTS   variant name -> model class                  (build_model, ModelConfig's validation)
    RUNS       run label -> Run(variant, overrides, ...)    (compare, the race, the playground, benchmarks)
    STYLES     label -> Style(name, colour, line style)     (every figure: one colour and name per label)
    SCHEMATICS variant name -> its block drawn as boxes     (plots.plot_blocks)

The four variants register themselves in `minigpt/variants.py`, one `register(...)` call each. A fifth variant
is one new module with its `GPT` class plus one `register(...)` line there: it then appears in `compare`, the
race, the playground's dropdown and the figures, which all read these tables (tests/test_registry.py).

This module imports nothing from minigpt, so config.py can validate names against it without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

VARIANTS: dict[str, type] = {}
RUNS: dict[str, Run] = {}
STYLES: dict[str, Style] = {}
SCHEMATICS: dict[str, dict[str, Any]] = {}

# A live view of VARIANTS' keys: the variant names, in registration order, never retyped.
VARIANT_NAMES = VARIANTS.keys()


@dataclass(frozen=True)
class Style:
    """How a label is drawn: display name, matplotlib colour and line style."""

    name: str
    color: str | None = None
    line: str = "-"


@dataclass(frozen=True)
class Run:
    """A named run: a variant and the ModelConfig overrides that make it this run (e.g. nGPT's SLERP)."""

    variant: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


def register(
    name: str,
    cls: type,
    *,
    display: str,
    color: str,
    schematic: dict[str, Any] | None = None,
    runs: Mapping[str, tuple[Run, Style]] | None = None,
) -> None:
    """Register variant `name` (model class `cls`) with its display name, colour and block schematic, and its
    named runs (default: one run labelled `name` with no overrides)."""
    if name in VARIANTS:
        raise ValueError(f"variant {name!r} is already registered")
    VARIANTS[name] = cls
    STYLES[name] = Style(display, color)
    if schematic is not None:
        SCHEMATICS[name] = schematic
    for label, (run, style) in (runs or {name: (Run(name), STYLES[name])}).items():
        RUNS[label] = run
        STYLES[label] = style


def unregister(name: str) -> None:
    """Remove variant `name` and its runs (tests register throwaway variants)."""
    VARIANTS.pop(name)
    SCHEMATICS.pop(name, None)
    STYLES.pop(name, None)
    for label in [label for label, run in RUNS.items() if run.variant == name]:
        del RUNS[label]
        STYLES.pop(label, None)


def display_name(label: str) -> str:
    """The label's display name ("pre-LN" for pre_ln); an unknown label is shown as itself."""
    return STYLES[label].name if label in STYLES else label


def color(label: str) -> str | None:
    return STYLES[label].color if label in STYLES else None


def line_style(label: str) -> str:
    return STYLES[label].line if label in STYLES else "-"
