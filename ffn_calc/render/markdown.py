"""Markdown: the tables a command prints, as GitHub-flavoured pipe tables that paste into a
README or notes. One description, two renderers: a table described as a Grid (layout.py) is
written from that Grid with its exact integers; a plain rich Table from its cells as shown; a
line of prose becomes a paragraph, and a block of several lines (a diagram, the config line)
a fenced block that keeps its alignment. Each table's title is a bold line above it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ffn_calc.render.layout import Fit, Grid, Num, _text

if TYPE_CHECKING:
    from rich.console import RenderableType


def _escape(text: str) -> str:
    """A cell's text inside a pipe table: `|` escaped, line breaks as <br>."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>").strip()


def pipe_table(title: str, headers: list[str], rows: list[list[str]], right: list[bool], bold_from: int | None = None) -> str:
    """One pipe table, its title a bold line above it; rows from `bold_from` on are bold (totals)."""
    out = [f"**{_escape(title)}**", ""] if title else []
    out.append("| " + " | ".join(_escape(h) or " " for h in headers) + " |")
    out.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
    for i, cells in enumerate(rows):
        texts = [_escape(c) for c in cells]
        if bold_from is not None and i >= bold_from:
            texts = [f"**{t}**" if t else t for t in texts]
        out.append("| " + " | ".join(texts) + " |")
    return "\n".join(out) + "\n"


def grid_markdown(grid: Grid) -> str:
    """A Grid with every column and its exact integers (the `--exact` table, unwrapped)."""
    headers = [c.header for c in grid.columns]
    right = [c.right or any(isinstance(cell, Num) for cell in c.cells) for c in grid.columns]
    count = len(grid.columns[0].cells) if grid.columns else 0
    rows = [[_text(c.cells[i], True) for c in grid.columns] for i in range(count)]
    return pipe_table(grid.title, headers, rows, right, count - grid.totals if grid.totals else None)


def _plain(cell: Any) -> str:
    from rich.text import Text

    if isinstance(cell, Text):
        return cell.plain
    return cell if isinstance(cell, str) else str(cell)


def rich_table_markdown(table: Any) -> str:
    """A rich Table as it is drawn, cell by cell (the title and headers as shown)."""
    cols = table.columns
    headers = [_plain(c.header).replace("\n", " ") for c in cols] if table.show_header else [""] * len(cols)
    rows = [[_plain(cell) for cell in cells] for cells in zip(*(list(c.cells) for c in cols), strict=True)]
    right = [c.justify == "right" for c in cols]
    bold = [i for i, r in enumerate(table.rows) if r.style == "bold"]
    first_bold = bold[0] if bold and bold == list(range(bold[0], len(rows))) else None
    return pipe_table(_plain(table.title or ""), headers, rows, right, first_bold)


def _text_block(text: str, style: str) -> str | None:
    lines = text.rstrip("\n").split("\n")
    if not any(line.strip() for line in lines):
        return None
    if len(lines) > 1:
        return "```text\n" + "\n".join(lines) + "\n```\n"
    line = lines[0].strip()
    return f"**{line}**\n" if "bold" in style.split() else line + "\n"


def blocks(renderables: Iterable[RenderableType]) -> Iterator[str]:
    """Markdown blocks (a table, a paragraph) for what `tables` returns, in order."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from ffn_calc.render.layout import _Titled

    for r in renderables:
        if isinstance(r, Fit):
            if r.source is not None:
                yield grid_markdown(r.source)
            else:  # the first layout is the widest: exact integers, every column
                yield from blocks(r.layouts[0]())
        elif isinstance(r, Table):
            yield rich_table_markdown(r)
        elif isinstance(r, Text):
            block = _text_block(r.plain, str(r.style or ""))
            if block is not None:
                yield block
        elif isinstance(r, str):
            block = _text_block(r, "")
            if block is not None:
                yield block
        elif isinstance(r, Group):
            yield from blocks(r.renderables)
        elif isinstance(r, _Titled):
            yield f"**{_escape(r.title)}**\n"
            yield from blocks([r.body])
        elif isinstance(getattr(r, "text", None), str):  # prose that wraps itself (explain's)
            block = _text_block(r.text, str(getattr(r, "style", "")))  # type: ignore[union-attr]
            if block is not None:
                yield block
        else:  # anything else, as drawn on a wide page, in a fenced block
            block = _text_block(_drawn(r), "")
            if block is not None:
                yield block


def _drawn(renderable: RenderableType) -> str:
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, color_system=None, highlight=False)
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.file.getvalue().split("\n"))  # type: ignore[attr-defined]


def to_markdown(renderables: Iterable[RenderableType]) -> str:
    """The blocks separated by blank lines."""
    return "\n".join(blocks(renderables))
