"""Rendering sweeps: rows streamed as CSV or JSON lines, or collected into one table (and a
chart of one column against the swept ones)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from ffn_calc.api.sweep_executor import SweepResult
from ffn_calc.render.base import View, csv_chunks, jsonl_chunks, markdown_chunks, tables
from ffn_calc.render.layout import Cell, Col, Fit, Grid, Num, _text, bar_chart, fit, grid_layout, split_layout

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
        chunk.append(json.dumps(dict(zip(result.columns, values, strict=True)), allow_nan=False))
        if len(chunk) == CHUNK_ROWS:
            yield "\n".join(chunk) + "\n"
            chunk = []
    if chunk:
        yield "\n".join(chunk) + "\n"


@markdown_chunks.register(SweepResult)
def _markdown_chunks_SweepResult(result: SweepResult, view: View | None = None) -> Iterable[str]:
    """A pipe table, every column, exact integers, streamed (with --chart: the table, then
    the chart, after the last row)."""
    if result.chart is not None:
        from ffn_calc.render.markdown import to_markdown

        return [to_markdown(_tables_SweepResult(result, view))]
    return _markdown_rows(result)


def _markdown_rows(result: SweepResult) -> Iterator[str]:
    from ffn_calc.render.markdown import pipe_table

    head = pipe_table("Sweep", list(result.columns), [], [c not in LEFT for c in result.columns])
    chunk = [head.rstrip("\n")]
    for values in result.rows:
        cells = [_markdown_cell(v) for v in values[: len(result.columns)]]
        chunk.append("| " + " | ".join(cells) + " |")
        if len(chunk) == CHUNK_ROWS:
            yield "\n".join(chunk) + "\n"
            chunk = []
    if chunk:
        yield "\n".join(chunk) + "\n"


def _markdown_cell(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return _cell_text(value).replace("|", "\\|") or "—"


LEFT = ("model", "d_ff_given", "activation", "norm", "dtype", "peak_stage", "bias")


def _unit(column: str) -> str:
    """How a sweep column's integers are shown in units (a count stays exact)."""
    name = column.removeprefix("model_")
    if name.endswith("params"):
        return "params"
    if name.endswith("bytes"):
        return "bytes"
    if "flops" in name:
        return "flops"
    if name == "macs":
        return "macs"
    return "count"


def sweep_table(columns: tuple[str, ...], rows: Iterable[list[Any]], exact: bool = False) -> RenderableType:
    """The sweep as one table. A column with the same value in every row is said once, above the
    table, so that the columns that vary have the width."""
    from rich.console import Group
    from rich.text import Text

    kept = [list(values) for values in rows]

    def cell(column: str, value: object) -> Cell:
        if isinstance(value, int) and not isinstance(value, bool):
            return Num(value, _unit(column))
        return _cell_text(value) or "—"

    same = [i for i, c in enumerate(columns) if len(kept) > 1 and all(values[i] == kept[0][i] for values in kept)]
    varying = [i for i in range(len(columns)) if i not in same] or list(range(len(columns)))
    if varying == list(range(len(columns))):
        same = []
    cols = [Col(columns[i], [cell(columns[i], values[i]) for values in kept], right=columns[i] not in LEFT) for i in varying]
    grid = Grid("Sweep", cols)
    if not same:
        return fit(grid, exact)
    every = Grid(
        "Sweep",
        [Col(c, [cell(c, values[i]) for values in kept], right=c not in LEFT) for i, c in enumerate(columns)],
    )

    def layout(exact_numbers: bool, compact: bool) -> list[RenderableType]:
        fixed = ", ".join(f"{columns[i]} {_text(cell(columns[i], kept[0][i]), exact_numbers)}" for i in same)
        return [Group(*grid_layout(grid, exact_numbers, False, compact)), Text("in every row: " + fixed)]

    def split(width: int) -> list[RenderableType]:
        fixed = ", ".join(f"{columns[i]} {_text(cell(columns[i], kept[0][i]), exact)}" for i in same)
        return [Group(*split_layout(grid, exact, width)), Text("in every row: " + fixed)]

    layouts = [(True, False), (True, True)] if exact else [(True, False), (False, False), (False, True)]
    return Fit([partial(layout, e, c) for e, c in layouts], every, split)  # Markdown shows every column


@tables.register(SweepResult)
def _tables_SweepResult(result: SweepResult, view: View | None = None) -> list[RenderableType]:
    view = view or View()
    cols = result.columns
    kept = list(result.rows)
    out = [sweep_table(cols, [values[: len(cols)] for values in kept], view.exact)]
    if result.chart is not None:
        where = [cols.index(c) for c in result.swept if c in cols]
        labels = [", ".join(f"{cols[i]}={values[i]}" for i in where) for values in kept]
        title = f"{result.chart} against {', '.join(result.swept)}"
        out.append(bar_chart(title, labels, [values[-1] or 0 for values in kept], "", shares=False))
    return out
