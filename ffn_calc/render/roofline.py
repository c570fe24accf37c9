"""Rendering `roofline`: each GEMM's intensity, bound and lower-bound time, prefill and decode."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ffn_calc.model.roofline import Roofline
from ffn_calc.render.base import config_line, csv_rows, n, shape, tables

if TYPE_CHECKING:
    from rich.console import RenderableType


@csv_rows.register(Roofline)
def _csv_rows_Roofline(r: Roofline) -> list[dict[str, Any]]:
    return [
        {"phase": p.name, "stage": g.stage, "m": g.mkn[0], "k": g.mkn[1], "n": g.mkn[2], "flops": g.flops, "bytes": g.bytes,
         "intensity": g.intensity, "bound": g.bound, "seconds": g.seconds, "ridge_tokens": g.ridge_tokens}
        for p in r.phases
        for g in p.gemms
    ]  # fmt: skip


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.1f} ns"


@tables.register(Roofline)
def _tables_Roofline(r: Roofline) -> list[RenderableType]:
    from rich.table import Table
    from rich.text import Text

    out: list[RenderableType] = [
        Text(config_line(r.report)),
        Text(f"{r.gpu.name}: {r.peak_flops / 1e12:g} TFLOP/s ({r.report.config.dtype}, dense), {r.bandwidth / 1e9:g} GB/s; "
             f"ridge point {r.ridge:.1f} FLOP/byte ({r.gpu.source})"),
    ]  # fmt: skip
    for p in r.phases:
        what = f"{p.tokens:,} tokens" if p.name == "prefill" else f"one new token per sequence, {p.tokens:,} in all"
        table = Table(title=f"{p.name}: {what}", title_justify="left")
        for col in ("GEMM", "(M, K, N)"):
            table.add_column(col)
        for col in ("FLOPs", "bytes moved", "FLOP/byte"):
            table.add_column(col, justify="right", overflow="fold")
        table.add_column("bound")
        table.add_column("≥ time", justify="right")
        table.add_column("compute-bound from M =", justify="right")
        for g in p.gemms:
            table.add_row(g.stage, shape(g.mkn), n(g.flops), n(g.bytes), f"{g.intensity:,.1f}", g.bound, _time(g.seconds),
                          "never" if g.ridge_tokens is None else f"{g.ridge_tokens:,}")  # fmt: skip
        table.add_section()
        table.add_row("layer", "", n(p.flops), n(p.bytes), f"{p.intensity:,.1f}", p.bound, _time(p.seconds), "", style="bold")
        out.append(table)
    out.append(Text("Times are lower bounds: max(FLOPs / peak, bytes / bandwidth) per GEMM, each operand and result moved once; "
                    "elementwise work is left out.", style="dim"))  # fmt: skip
    return out
