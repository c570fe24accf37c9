"""Rendering `verify`: a VerifyReport, check by check, as JSON, CSV and a table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ffn_calc.render.base import config_line, csv_rows, human_bytes, n, shape, tables
from ffn_calc.verifier.report import VerifyReport

if TYPE_CHECKING:
    from rich.console import RenderableType


@csv_rows.register(VerifyReport)
def _csv_rows_VerifyReport(report: VerifyReport) -> list[dict[str, Any]]:
    return [
        {
            "group": c.group,
            "check": c.name,
            "predicted": _csv_cell(c.predicted),
            "observed": _csv_cell(c.observed),
            "ok": "true" if c.ok else "false",
            "kind": c.kind,
        }
        for c in report.checks
    ]


def _csv_cell(value: object) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _mark(ok: bool, kind: str) -> str:
    if kind == "info":
        return "·"
    return "✓" if ok else "✗ MISMATCH"


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return n(value)
    if isinstance(value, tuple):
        return shape(value)
    return "—" if value is None else str(value)


@tables.register(VerifyReport)
def _tables_VerifyReport(report: VerifyReport) -> list[RenderableType]:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"verify: predicted against observed (NumPy, {report.computed_dtype}, seed {report.seed})", title_justify="left")
    table.add_column("group")
    table.add_column("check")
    table.add_column("predicted", justify="right", overflow="fold")
    table.add_column("observed", justify="right", overflow="fold")
    table.add_column("", justify="left")
    for c in report.checks:
        observed = _cell(c.observed) + (f" ({c.detail})" if c.detail else "")
        style = None if c.ok else "bold red"
        table.add_row(c.group, c.name, _cell(c.predicted), observed, _mark(c.ok, c.kind), style=style)
    judged = [c for c in report.checks if c.kind != "info"]
    failed = [c for c in judged if not c.ok]
    verdict = f"ok: all {len(judged)} checks match" if not failed else f"FAILED: {len(failed)} of {len(judged)} checks do not match"
    timing = (
        f"forward pass {report.seconds * 1000:.1f} ms, {report.gflops_per_s:.2f} GFLOP/s "
        f"({n(report.prediction.totals.flops)} FLOPs in {report.computed_dtype})"
    )
    out: list[RenderableType] = [Text(config_line(report.prediction))]
    if report.chunk_tokens:
        out.append(
            Text(
                f"note: ran in {report.chunks} chunks of up to {report.chunk_tokens:,} tokens to stay under "
                f"{human_bytes(report.memory_limit_bytes)} of memory",
                style="yellow",
            )
        )
    if report.dtype_note:
        out.append(Text(f"note: {report.dtype_note}", style="yellow"))
    out += [table, Text(verdict, style="bold green" if not failed else "bold red"), Text(timing)]
    return out
