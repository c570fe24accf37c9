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
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rich.console import RenderableType

    from ffn_calc.model.forward import FFNReport


class Result(Protocol):
    """What every command returns: a frozen dataclass with its JSON form."""

    def to_dict(self) -> dict[str, Any]: ...


# Which module renders which result (by class name), loaded on first use.
HANDLERS = {
    "FFNReport": "shapes",
    "Charted": "shapes",
    "VerifyReport": "verify",
    "ModelList": "catalogue",
    "Explanation": "catalogue",
    "TrainingReport": "training",
    "Roofline": "roofline",
    "SweepResult": "sweep",
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


@singledispatch
def tables(result: object) -> list[RenderableType]:
    """The rich renderables that show a result to a person."""
    _load(result)
    return tables.dispatch(type(result))(result)


def to_json(result: Result) -> str:
    import json

    return json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"


@singledispatch
def csv_chunks(result: object) -> Iterable[str]:
    """CSV text, header first, in chunks (a streamed result yields as it goes)."""
    return [to_csv(result)]


@singledispatch
def jsonl_chunks(result: object) -> Iterable[str]:
    """JSON lines: one object per row (only streamed results have rows)."""
    _load(result)
    return jsonl_chunks.dispatch(type(result))(result)


def chunks(result: Result, fmt: str) -> Iterable[str]:
    """The text of `result` in a machine format (json, csv, jsonl), in chunks."""
    if fmt == "json":
        return [to_json(result)]
    _load(result)
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


# --- shared formatting -------------------------------------------------------------------------


def n(value: int) -> str:
    """An exact integer with thousands separators."""
    return f"{value:,}"


def human_bytes(value: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value} B"


def human_count(value: int) -> str:
    for unit, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return str(value)


def shape(s: tuple[int, ...]) -> str:
    return f"({s[0]},)" if len(s) == 1 else "(" + ", ".join(map(str, s)) + ")"


def config_line(report: FFNReport) -> str:
    c = report.config
    kind = c.activation + (" (fused gate/up)" if c.fused else "")
    if c.is_moe:
        kind += f", {c.experts} experts, top-{c.top_k}" + (f", {c.shared_experts} shared" if c.shared_experts else "")
        kind += f", capacity factor {c.capacity_factor:g}" if c.capacity_factor is not None else ", dropless"
    return (
        f"FFN  batch {c.batch} × seq_len {c.seq_len} × d_model {c.d_model}, d_ff {c.d_ff} ({c.d_ff_rule})\n"
        f"     {kind}, {'bias' if c.bias else 'no bias'}, norm {c.norm}, {c.dtype} ({c.dtype_bytes} bytes/element)"
        + (f", {c.layers} layers" if c.layers > 1 else "")
    )


BAR = "█"
BAR_WIDTH = 40


def bar_chart(title: str, labels: list[str], values: list[int], unit: str, shares: bool = True) -> RenderableType:
    """Horizontal bars, linear in the value, with the exact value (and its share of the sum) beside each."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 1))
    table.add_column("label")
    table.add_column("bar")
    table.add_column("value", justify="right", overflow="fold")
    table.add_column("share", justify="right", overflow="fold")
    top = max(values) if values else 0
    total = sum(values)
    for label, value in zip(labels, values, strict=True):
        width = round(BAR_WIDTH * value / top) if top else 0
        bar = BAR * width if width or not value else "▏"
        share = f"{100 * value / total:.1f}%" if total and shares else ""
        table.add_row(label, bar, f"{n(value)} {unit}", share)
    return table
