"""Repository invariants: CI runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Test", 1)[1]
    commands = re.findall(r"^python -m pytest.*$", section, flags=re.M)
    assert len(commands) == 1, commands
    ci = [ln.strip() for ln in (ROOT / ".ci/run").read_text().splitlines()]
    assert commands[0] in ci
    assert "--nbval-lax" in commands[0] and "notebooks" in commands[0]
