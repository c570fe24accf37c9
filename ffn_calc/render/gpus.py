"""Rendering `gpus`: every GPU preset with its dense peaks by dtype, bandwidth and source."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ffn_calc.catalogue.gpus import GPUList
from ffn_calc.model.dtypes import COMPUTE_DTYPES as DTYPES  # what a product computes in: --dtype, or FP8/FP4 for W8A8/W4A4 formats
from ffn_calc.model.dtypes import DTYPES as REGISTRY
from ffn_calc.render.base import View, csv_rows, tables
from ffn_calc.render.layout import Col, Grid, fit, hint, plural

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
    """One line a GPU: its dense peaks and bandwidth; with `view.detail` each one's datasheet."""
    from rich.text import Text

    view = view or View()
    gs = result.gpus
    shown = [d for d in DTYPES if d not in ("float16", "float8_e5m2")]  # the same rates as bfloat16 and float8_e4m3fn
    table = Grid(
        "GPUs (--gpu NAME): dense peaks, TFLOP/s (int8: TOPS)",
        [
            Col("name", [g.name for g in gs]),
            *(Col("bf16/fp16" if d == "bfloat16" else REGISTRY[d].label, [f"{g.tflops[d]:,g}" if d in g.tflops else "—" for g in gs], right=True)
              for d in shown),
            Col("GB/s", [f"{g.bandwidth_gbs:,g}" for g in gs], right=True),
        ],
    )  # fmt: skip
    legend = "— : the datasheet gives no dense peak for that type"
    if not view.detail:
        return [fit(table), hint(f"{plural(len(gs), 'GPU')}; —: no dense peak on the datasheet; --detail: each one's datasheet")]
    out: list[RenderableType] = [fit(table), Text(legend + ".", style="dim"), Text("")]
    for g in gs:
        out.append(Text(f"{g.name}: {g.source}", style="dim"))
    return out
