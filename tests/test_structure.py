"""The package's shape: no import cycles and no module over 450 lines (readability is the product: a reader
should be able to hold any one file), found by parsing the source, not by importing it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minigpt"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = ["minigpt", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path) -> set[str]:
    """The minigpt modules `name` imports when it runs: every import statement, at module level or inside a
    function, except those under `if TYPE_CHECKING:` (annotations only, never executed)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block)
            for stmt in block.body for n in ast.walk(stmt)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in MODULES else target)
    return {m for m in out if m in MODULES and m != name}


def test_no_import_cycles():
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    # the package's own __init__ runs before any of its modules: an edge back to it is not a cycle
    graph = {name: {m for m in deps if not name.startswith(m + ".")} for name, deps in graph.items()}
    assert graph["minigpt.plots"] and "minigpt.experiments.figures" in graph["minigpt.experiments"]  # parsed
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The check above can fail: two modules importing each other are reported."""
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("from . import a\nif TYPE_CHECKING:\n    from .c import y\n")
    monkeypatch.setitem(MODULES, "minigpt.a", tmp_path / "a.py")
    monkeypatch.setitem(MODULES, "minigpt.b", tmp_path / "b.py")
    monkeypatch.setitem(MODULES, "minigpt.c", tmp_path / "a.py")
    assert _imports("minigpt.a", tmp_path / "a.py") == {"minigpt.b"}
    assert _imports("minigpt.b", tmp_path / "b.py") == {"minigpt.a"}  # the TYPE_CHECKING import is skipped
    try:
        test_no_import_cycles()
    except AssertionError as e:
        assert "minigpt.a -> minigpt.b -> minigpt.a" in str(e)
    else:
        raise AssertionError("the cycle a <-> b was not found")


def test_no_module_over_450_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES.values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them at their seams): {long}"
