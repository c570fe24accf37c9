"""Rendering `verify`: a VerifyReport, check by check, as JSON, CSV and a table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ffn_calc.render.base import View, csv_rows, tables
from ffn_calc.render.layout import Col, Grid, Wrapped, bytes_text, config_block, fit, hint, n, plural, shape
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
    if isinstance(value, str) and value.isdigit():  # an observed count reported as text
        return n(int(value))
    if isinstance(value, tuple):
        return shape(value)
    return "—" if value is None else str(value)


@tables.register(VerifyReport)
def _tables_VerifyReport(report: VerifyReport, view: View | None = None) -> list[RenderableType]:
    """By default any failures, then the verdict, last; with `view.every` (--all, --detail), every check."""
    from rich.text import Text

    view = view or View()
    judged = [c for c in report.checks if c.kind != "info"]
    failed = [c for c in judged if not c.ok]
    shown = list(report.checks) if view.every else failed
    verdict = (
        f"ok: all {plural(len(judged), 'check')} match" if not failed else f"FAILED: {len(failed)} of {plural(len(judged), 'check')} do not match"
    )
    timing = (
        f"verified in {report.seconds:.3g} s ({report.gflops_per_s:.2f} GFLOP/s overall), "
        f"forward pass {report.forward_seconds:.3g} s ({n(report.prediction.totals.flops)} FLOPs in {report.computed_dtype})"
    )
    out: list[RenderableType] = [config_block(report.prediction)]
    if report.chunk_tokens:
        out.append(
            Text(
                f"note: ran in {plural(report.chunks, 'chunk')} of up to {plural(report.chunk_tokens, 'token')} to stay under "
                f"{bytes_text(report.memory_limit_bytes)} of memory",
                style="yellow",
            )
        )
    if report.dtype_note:
        out.append(Text(f"note: {report.dtype_note}", style="yellow"))
    if shown:
        title = f"verify: predicted against observed (NumPy, {report.computed_dtype}, seed {report.seed})"
        table = Grid(
            title if view.every else title + ": the checks that failed",
            [
                Col("check", [c.name for c in shown]),
                Col("group", [c.group for c in shown], stack=True),
                Col("predicted", [_cell(c.predicted) for c in shown], right=True),
                Col("observed", [_cell(c.observed) for c in shown], right=True),
                Col("", [_mark(c.ok, c.kind) for c in shown]),
                Col("note", [c.detail for c in shown], prose=True),
            ],
            row_styles=[None if c.ok else "bold red" for c in shown],
        )
        out.append(fit(table, records=True))
    if not view.every:
        out.append(hint("--all lists every check: shapes, bytes, MACs, FLOPs and memory, predicted against observed"))
    return [*out, Wrapped(timing), Text(verdict, style="bold green" if not failed else "bold red")]  # the verdict, last
