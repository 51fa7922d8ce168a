"""The notebooks teach in a fixed shape: each opens with what the learner will be able to explain,
ends with a "Check yourself" exercise whose answer the next (last) cell asserts, and quotes no run's numbers in
its prose (a cell renders them from the values instead, so they cannot go stale)."""

from __future__ import annotations

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
