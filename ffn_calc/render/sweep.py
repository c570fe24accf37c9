"""Rendering sweeps: rows streamed as CSV or JSON lines, or collected into one table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ffn_calc.render.base import n

if TYPE_CHECKING:
    from rich.console import RenderableType


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def sweep_csv(columns: tuple[str, ...], rows: Iterable[list[Any]]) -> Iterator[str]:
    """CSV text, header first, a chunk at a time (a sweep may have millions of rows)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for i, values in enumerate(rows, start=1):
        # csv writes ints exactly and None as an empty field; only booleans need spelling out.
        writer.writerow([_cell_text(v) if isinstance(v, bool) else v for v in values])
        if i % 2048 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def sweep_jsonl(columns: tuple[str, ...], rows: Iterable[list[Any]]) -> Iterator[str]:
    """One JSON object per row, keys in column order."""
    import json

    chunk: list[str] = []
    for values in rows:
        chunk.append(json.dumps(dict(zip(columns, values, strict=True))))
        if len(chunk) == 2048:
            yield "\n".join(chunk) + "\n"
            chunk = []
    if chunk:
        yield "\n".join(chunk) + "\n"


def sweep_table(columns: tuple[str, ...], rows: Iterable[list[Any]]) -> RenderableType:
    from rich.table import Table

    table = Table(title="Sweep", title_justify="left")
    for c in columns:
        table.add_column(c, justify="left" if c in ("activation", "norm", "dtype", "peak_stage", "bias") else "right", overflow="fold")
    for values in rows:
        table.add_row(*(n(v) if isinstance(v, int) and not isinstance(v, bool) else _cell_text(v) or "—" for v in values))
    return table
