"""Show the code that runs, in a notebook: read from the source with `inspect`, so the page cannot drift from it.

    from minigpt import post_ln, pre_ln
    from minigpt.source_view import show_source, side_by_side
    show_source(pre_ln.Block.forward)                                     # one function, as a code block
    side_by_side({"post-LN": post_ln.Block.forward, "pre-LN": pre_ln.Block.forward})   # columns

Both return objects that Jupyter displays (Markdown / HTML) and whose `str` is the plain source, so a
script or a test can read them too.
"""

from __future__ import annotations

import html
import inspect
import textwrap
from collections.abc import Callable, Mapping
from typing import Any


def source(obj: Callable[..., Any] | type) -> str:
    """The dedented source of a function, method or class, as `inspect` reads it from its file."""
    return textwrap.dedent(inspect.getsource(obj)).rstrip()


class _Shown:
    """A displayable source: `_repr_markdown_` / `_repr_html_` for Jupyter, `str` for everything else."""

    def __init__(self, text: str, markdown: str | None = None, html_text: str | None = None) -> None:
        self.text, self._markdown, self._html = text, markdown, html_text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str | None:
        return self._markdown

    def _repr_html_(self) -> str | None:
        return self._html


def show_source(*objs: Callable[..., Any] | type) -> _Shown:
    """The source of each object, one Python code block each (in a notebook, syntax-highlighted)."""
    texts = [source(o) for o in objs]
    return _Shown("\n\n".join(texts), markdown="\n\n".join(f"```python\n{t}\n```" for t in texts))


def side_by_side(columns: Mapping[str, Callable[..., Any] | type], per_row: int = 2) -> _Shown:
    """A grid of `per_row` columns, each object's source under its name: for comparing short functions."""
    if per_row < 1:
        raise ValueError(f"per_row={per_row} must be >= 1")
    texts = {name: source(obj) for name, obj in columns.items()}
    cells = [
        f'<td style="vertical-align:top;text-align:left"><b>{html.escape(name)}</b>'
        f'<pre style="font-size:80%;margin-top:4px">{html.escape(text)}</pre></td>'
        for name, text in texts.items()
    ]
    rows = "".join("<tr>" + "".join(cells[i : i + per_row]) + "</tr>" for i in range(0, len(cells), per_row))
    plain = "\n\n".join(f"# --- {name}\n{text}" for name, text in texts.items())
    return _Shown(plain, html_text=f"<table>{rows}</table>")
