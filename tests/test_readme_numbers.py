"""The README's numbers cannot go stale: every number in its "What it shows" captions is one that
docs/figures/numbers.md (written by `python -m minigpt figures` with the figures) holds, at the precision the
README quotes it, or the scale the figures ran at. (The notebooks' side: tests/test_notebook_teaching.py.)"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

from minigpt.experiments import CPU_SCALE

ROOT = Path(__file__).resolve().parents[1]
# a number, also before a sentence's full stop or an "x" (0.81x); not part of a word or a longer number
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[+-]?\d+)?(?=x\b|(?!\w|\.\d))")
# Numbers in the captions that are citations of the papers, not measurements: (text, why)
CITED = {"4-20x": "the nGPT paper's reported speedup range"}


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def _matches(quoted: str, value: float) -> bool:
    """`value` printed at the precision of `quoted` is `quoted` (2.380 vs 2.3801; 1.2e-7 vs 1.19e-07)."""
    q = Decimal(quoted)
    if "e" in quoted.lower():
        digits = len(quoted.lower().split("e")[0].replace(".", "").lstrip("0"))
        return f"{value:.{digits - 1}e}" == f"{float(q):.{digits - 1}e}"
    return Decimal(str(value)).quantize(q) == q if value < 1e15 else False


def _caption_numbers(readme: str) -> list[str]:
    section = _section(readme, "What it shows")
    section = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", section)  # figure links
    section = re.sub(r"`[^`]*`", "", section)  # code: file names, commands
    for cited in CITED:
        section = section.replace(cited, "")
    section = re.sub(r"\bd(\d+)/T(\d+)/B(\d+)\b", "", section)  # the scale, checked on its own below
    section = re.sub(r"notebook 0\d|GPT-2|Fig\. \d+", "", section)  # names and citations, not measurements
    return NUMBER.findall(section)


def test_every_caption_number_is_in_numbers_md() -> None:
    readme = (ROOT / "README.md").read_text()
    numbers_md = (ROOT / "docs" / "figures" / "numbers.md").read_text()
    source = [float(x) for x in NUMBER.findall(numbers_md)]
    quoted = _caption_numbers(readme)
    assert len(quoted) >= 8, quoted  # the captions do quote numbers: the parser still finds them
    missing = [q for q in quoted if not any(_matches(q, v) for v in source)]
    assert not missing, f"README numbers not in docs/figures/numbers.md at the quoted precision: {missing}"


def test_caption_scale_is_the_figures_scale() -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.findall(r"\bd(\d+)/T(\d+)/B(\d+)\b", _section(readme, "What it shows"))
    assert found, "the captions name the scale the figures ran at (dNN/TNN/BNN)"
    for d, t, b in found:
        assert (int(d), int(t), int(b)) == (CPU_SCALE["n_embd"], CPU_SCALE["block_size"], CPU_SCALE["batch_size"])


def test_parser_catches_a_stale_number() -> None:
    """The check above can fail: a number numbers.md does not hold is reported."""
    assert _matches("2.380", 2.3801) and _matches("1.2e-7", 1.19e-07) and _matches("0.03", 0.0305)
    assert NUMBER.findall("at 0.705. A 0.81x speedup, 1.56e+01, d64, 4-20x") == ["0.705", "0.81", "1.56e+01", "4", "20"]
    assert not _matches("1.2", 1.32) and not _matches("4.5", 4.61)
