"""Renderers: results in, text or rich renderables out. Nothing here computes a number.

One function per format serves every result type. JSON is the result's own `to_dict()` (the
Python API's dict form, defined beside each result's dataclass), so the two cannot differ;
`to_csv` and `tables` dispatch on the result through `csv_rows` and `tables`, whose handlers
for each kind of result live in their own module (shapes, verify, catalogue, ...), imported
the first time such a result is rendered, so that a command loads only what it prints. JSON
keys are the documented contract (README, "JSON output"); every integer is exact.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from functools import singledispatch
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from rich.console import RenderableType


class Result(Protocol):
    """What every command returns: a frozen dataclass with its JSON form."""

    def to_dict(self) -> dict[str, Any]: ...


# Which module renders which result (by class name), loaded on first use.
HANDLERS = {
    "FFNReport": "shapes",
    "Charted": "shapes",
    "VerifyReport": "verify",
    "ModelList": "catalogue",
    "Explanation": "explain",
    "Comparison": "explain",
    "TrainingReport": "training",
    "Roofline": "roofline",
    "MeasuredRoofline": "measured",
    "SweepResult": "sweep",
    "GPUList": "gpus",
}


def _load(result: object) -> None:
    """Import the module that renders `result` (its handlers register themselves)."""
    name = HANDLERS.get(type(result).__name__)
    if name is None:
        raise TypeError(f"nothing renders a {type(result).__name__}")
    importlib.import_module(f"ffn_calc.render.{name}")


@singledispatch
def csv_rows(result: object) -> list[dict[str, Any]]:
    """The CSV form of a result: one dict per row, the same keys in every row."""
    _load(result)
    return csv_rows.dispatch(type(result))(result)


class View(NamedTuple):
    """How a person asked to see a result: `exact` integers in every table, only the `summary`
    (the headline), `every` check of a verify rather than its failures, every table in `detail`
    rather than the screenful (80 × 50) that ends with the headline."""

    exact: bool = False
    summary: bool = False
    every: bool = False
    detail: bool = False


@singledispatch
def tables(result: object, view: View | None = None) -> list[RenderableType]:
    """The rich renderables that show a result to a person (`view`: for the results that have
    options of display; the others are called without it)."""
    _load(result)
    handler = tables.dispatch(type(result))
    return handler(result) if view is None else handler(result, view)


def to_json(result: Result) -> str:
    import json

    # Strict JSON: a non-finite float is a bug upstream, never `Infinity` on stdout (a ValueError).
    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


@singledispatch
def csv_chunks(result: object) -> Iterable[str]:
    """CSV text, header first, in chunks (a streamed result yields as it goes)."""
    return [to_csv(result)]


@singledispatch
def jsonl_chunks(result: object) -> Iterable[str]:
    """JSON lines: one object per row (only streamed results have rows)."""
    _load(result)
    return jsonl_chunks.dispatch(type(result))(result)


@singledispatch
def markdown_chunks(result: object, view: View | None = None) -> Iterable[str]:
    """Markdown (render/markdown.py): the tables `tables` gives, as pipe tables with their
    exact integers. A streamed result registers its own, to write rows as they come."""
    from ffn_calc.render.markdown import to_markdown

    return [to_markdown(tables(result) if view is None else tables(result, view))]


def chunks(result: Result, fmt: str, view: View | None = None) -> Iterable[str]:
    """The text of `result` as text (json, csv, jsonl, markdown), in chunks (`view`: as for
    `tables`, for markdown)."""
    if fmt == "json":
        return [to_json(result)]
    _load(result)
    if fmt == "markdown":
        return markdown_chunks(result, view)
    return csv_chunks(result) if fmt == "csv" else jsonl_chunks(result)


def to_csv(result: object) -> str:
    import csv
    import io

    rows = csv_rows(result)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    # Booleans as JSON spells them (true, false), the same as in sweeps.
    writer.writerows({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in row.items()} for row in rows)
    return out.getvalue()
