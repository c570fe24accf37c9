"""Rendering `gpus`: every GPU preset with its dense peaks by dtype, bandwidth and source."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ffn_calc.catalogue.gpus import GPUList
from ffn_calc.model.dtypes import ACTIVATION_DTYPES as DTYPES  # a GPU computes in these: 4-bit weights compute in --dtype
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
    heads = {"float64": "fp64", "float32": "fp32", "bfloat16": "bf16/fp16", "float8_e4m3fn": "fp8", "int8": "int8"}
    for d in shown:
        table.add_column(heads.get(d, d), justify="right", no_wrap=True)
    table.add_column("GB/s", justify="right", no_wrap=True)
    for g in result.gpus:
        table.add_row(g.name, *(f"{g.tflops[d]:,g}" if d in g.tflops else "—" for d in shown), f"{g.bandwidth_gbs:,g}")
    out: list[RenderableType] = [table, Text("— : the datasheet gives no dense peak for that type.", style="dim"), Text("")]
    for g in result.gpus:
        out.append(Text(f"{g.name}: {g.source}", style="dim"))
    return out
