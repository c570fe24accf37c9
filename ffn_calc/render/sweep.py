"""Rendering sweeps: rows streamed as CSV or JSON lines, or collected into one table (and a
chart of one column against the swept ones)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ffn_calc.inputs.sweep import SweepResult
from ffn_calc.render.base import bar_chart, csv_chunks, jsonl_chunks, n, tables

if TYPE_CHECKING:
    from rich.console import RenderableType

CHUNK_ROWS = 2048  # rows per write when streaming


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@csv_chunks.register(SweepResult)
def _csv_chunks_SweepResult(result: SweepResult) -> Iterator[str]:
    """CSV text, header first, a chunk at a time (a sweep may have millions of rows)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    for i, values in enumerate(result.rows, start=1):
        # csv writes ints exactly and None as an empty field; only booleans need spelling out.
        writer.writerow([_cell_text(v) if isinstance(v, bool) else v for v in values])
        if i % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@jsonl_chunks.register(SweepResult)
def _jsonl_chunks_SweepResult(result: SweepResult) -> Iterator[str]:
    """One JSON object per row, keys in column order."""
    import json

    chunk: list[str] = []
    for values in result.rows:
        chunk.append(json.dumps(dict(zip(result.columns, values, strict=True))))
        if len(chunk) == CHUNK_ROWS:
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


@tables.register(SweepResult)
def _tables_SweepResult(result: SweepResult) -> list[RenderableType]:
    cols = result.columns
    kept = list(result.rows)
    out = [sweep_table(cols, [values[: len(cols)] for values in kept])]
    if result.chart is not None:
        where = [cols.index(c) for c in result.swept if c in cols]
        labels = [", ".join(f"{cols[i]}={values[i]}" for i in where) for values in kept]
        title = f"{result.chart} against {', '.join(result.swept)}"
        out.append(bar_chart(title, labels, [values[-1] or 0 for values in kept], "", shares=False))
    return out
