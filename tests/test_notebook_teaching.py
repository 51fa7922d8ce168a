"""The notebooks teach in a fixed shape: each opens with what the learner will be able to explain,
ends with a "Check yourself" exercise whose answer the next (last) cell asserts, and quotes no run's numbers in
its prose (a cell renders them from the values instead, so they cannot go stale)."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))  # 00-03, 05, 06 generated; 04 written by hand
# A run's number quoted in prose: "in our run ... 2.87", "our CPU run gave 0.81x".
QUOTED_RUN = re.compile(r"\bour (?:CPU )?runs?\b[^.]*?\d", re.IGNORECASE)


def _cells(path: Path) -> list[tuple[str, str]]:
    return [(c["cell_type"], "".join(c["source"])) for c in json.loads(path.read_text())["cells"]]


def test_every_notebook_is_checked() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opens_with_goals_and_ends_with_check_yourself(path: Path) -> None:
    cells = _cells(path)
    assert cells[0][0] == "markdown" and "After this notebook you will be able to explain" in cells[0][1]
    kind, text = cells[-2]
    assert "## Check yourself" in text, "the second-to-last cell poses the exercise"
    last_kind, last = cells[-1]
    assert last_kind == "code" and re.search(r"^\s*assert ", last, re.MULTILINE), "the last cell asserts the answer"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_quotes_no_run_numbers(path: Path) -> None:
    bad = [
        (i, m.group(0))
        for i, (kind, text) in enumerate(_cells(path))
        if kind == "markdown"
        for m in QUOTED_RUN.finditer(text)
    ]
    assert not bad, f"{path.name}: prose quotes a run's numbers (render them from the values instead): {bad}"


def test_the_prose_check_can_fail() -> None:
    assert QUOTED_RUN.search("in our CPU run 2.87 against 2.83")
    assert not QUOTED_RUN.search("the numbers of this run are printed above.")


# ------------------------------------------------------------------ numbers in the prose, tied or cited
def _tied() -> dict[str, dict[str, float]]:
    """Phrases of the notebooks' prose that quote a value the code defines: {notebook: {phrase: value}}, the
    number as {}. The number the prose has there must be the value at the precision it is quoted."""
    from minigpt import ModelConfig
    from minigpt.config import get_preset
    from minigpt.experiments.lr_stability import lr_stability
    from minigpt.playground.controls import CPU_DEFAULTS, DEFAULT_STEPS

    from .test_readme_numbers import measured

    tiny, defaults = get_preset("cpu-tiny"), ModelConfig()
    rise = inspect.signature(lr_stability).parameters["rise"].default
    return {
        "01": {"{} embeddings": defaults.init_std, "GPT-2's {} init": defaults.init_std},
        "02": {"{}-scale stream": defaults.init_std},
        "03": {'learning rates", init {})': defaults.ngpt_alpha_init, "start at {}": defaults.ngpt_alpha_init},
        "04": {"({} layers": tiny.model.n_layer, "d = {},": tiny.model.n_embd,
               "batch {},": CPU_DEFAULTS["cpu-tiny"]["batch_size"], "a {}-step run": DEFAULT_STEPS,
               "in about {} s": measured()["playground"]["median_s"]},  # benchmarks/readme_measurements.json
        "05": {"{}% above": 100 * rise},
    }


# Phrases that quote the papers or name things, not a value of ours: {notebook: {phrase: why}}
CITED = {
    "01": {"Fig. 3": "Xiong et al.'s figure"},
    "02": {"+0.4%": "the NormFormer paper's parameter overhead; the notebook asserts ours stays below 1%"},
    "03": {"near 180°": "a slider value for the learner to try"},
    "05": {"4x (1k context), 10x (4k) and 20x (8k)": "the nGPT paper's speedups",
           "the paper's 4x": "the nGPT paper's speedup", "1k-8k tokens": "the nGPT paper's context lengths",
           "Figure 5": "NormFormer's figure"},
    "06": {"~0.17%": "the lecture notes' claim (the notebook measures ours)", "~25%": "the same claim",
           "cap of 30": "Gemma 2's soft-cap", "100k+ steps": "PaLM's training length", "Gemma 2": "a name"},
}
# Everywhere: headings' numbers, years, arXiv ids, names, section and notebook references, LaTeX
GENERIC = [r"\$\$.*?\$\$", r"\$[^$]*\$", r"(?<![\d.,])0\d(?![\d.])", r"(?<=[\s(])(?:19|20)[0-2]\d(?=[),;:\s])",
           r"\d{4}\.\d{4,5}", r"GPT-2|2-D|notebooks? 0\d|sections? \d(?: and \d)?|Theorem \d|Figure \d|Fig\. \d"]
SMALL = {0.0, 1.0, 2.0}  # 0, 1, 2 as mathematics: "norm 1", "a factor of 2", "mean 0"


def _prose(path: Path) -> str:
    """The markdown cells up to "Check yourself" (an exercise's givens are hypothetical), without the numbers
    of headings, white space collapsed (a phrase may break across lines)."""
    text = "\n\n".join(t.split("## Check yourself")[0] for k, t in _cells(path) if k == "markdown")
    text = re.sub(r"^#+ [\d.]+|^\s*\d+\. ", "", text, flags=re.M)  # headings' and list items' numbers
    return " ".join(text.split())


def _untied(nb: str, text: str) -> list[str]:
    from .test_readme_numbers import matches, numbers

    for phrase, value in _tied().get(nb, {}).items():
        before, after = (re.escape(part) for part in phrase.split("{}"))
        found = re.findall(before + r"(\d[\d.,]*?)" + after, text)
        assert found, f"notebook {nb}: no '{phrase}' in its prose any more: update _tied"
        for quoted in found:
            assert matches(quoted, value), f"notebook {nb}: '{phrase.format(quoted)}' but the code says {value}"
        text = re.sub(before + r"\d[\d.,]*?" + after, " ", text)
    for phrase in CITED.get(nb, {}):
        assert phrase in text, f"notebook {nb}: no '{phrase}' in its prose any more: update CITED"
        text = text.replace(phrase, "")
    for pattern in GENERIC:
        text = re.sub(pattern, "", text, flags=re.S | re.M)
    return [q for q, v in numbers(text, {}) if v not in SMALL]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_numbers_are_tied_or_cited(path: Path) -> None:
    """Every number in a notebook's prose is a value the code defines (checked here), a paper's, or a
    reference; a run's numbers are rendered by its cells instead."""
    untied = _untied(path.name[:2], _prose(path))
    assert not untied, f"{path.name}: numbers typed into prose, tied to nothing: {untied}"


def test_the_tie_check_can_fail() -> None:
    assert _untied("99", "a run of 150 steps in about 17 s, notebook 03 (Xiong 2020, arXiv 2002.04745)") == \
        ["150", "17"]
    with pytest.raises(AssertionError, match="the code says"):
        _untied("04", "(4 layers, d = 256, batch 4, a 150-step run in about 19 s")
