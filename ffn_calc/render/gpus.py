"""Rendering `gpus`: every GPU preset with its dense peaks by dtype, bandwidth and source."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ffn_calc.catalogue.gpus import GPUList
from ffn_calc.model.dtypes import COMPUTE_DTYPES as DTYPES  # what a product computes in: --dtype, or FP8/FP4 for W8A8/W4A4 formats
from ffn_calc.model.dtypes import DTYPES as REGISTRY
from ffn_calc.render.base import View, csv_rows, tables

if TYPE_CHECKING:
    from rich.console import RenderableType


@csv_rows.register(GPUList)
def _csv_rows_GPUList(result: GPUList) -> list[dict[str, Any]]:
    return [
        {"name": g.name, **{f"{d}_tflops": g.tflops.get(d, "") for d in DTYPES}, "bandwidth_gbs": g.bandwidth_gbs, "source": g.source}
        for g in result.gpus
    ]


@tables.register(GPUList)
def _tables_GPUList(result: GPUList, view: View | None = None) -> list[RenderableType]:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="GPUs (--gpu NAME): dense peaks, TFLOP/s (int8: TOPS)", title_justify="left")
    table.add_column("name", no_wrap=True)
    shown = [d for d in DTYPES if d not in ("float16", "float8_e5m2")]  # the same rates as bfloat16 and float8_e4m3fn
    for d in shown:
        table.add_column("bf16/fp16" if d == "bfloat16" else REGISTRY[d].label, justify="right", no_wrap=True)
    table.add_column("GB/s", justify="right", no_wrap=True)
    for g in result.gpus:
        table.add_row(g.name, *(f"{g.tflops[d]:,g}" if d in g.tflops else "—" for d in shown), f"{g.bandwidth_gbs:,g}")
    out: list[RenderableType] = [table, Text("— : the datasheet gives no dense peak for that type.", style="dim"), Text("")]
    for g in result.gpus:
        out.append(Text(f"{g.name}: {g.source}", style="dim"))
    return out
