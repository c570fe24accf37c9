"""Rendering `shapes`: an FFNReport (and its bar charts) as JSON, CSV and tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ffn_calc.model import conventions as conv
from ffn_calc.model import structure as names
from ffn_calc.model.forward import FFNReport
from ffn_calc.render.base import bar_chart, config_line, csv_rows, human_bytes, human_count, n, shape, tables

if TYPE_CHECKING:
    from rich.console import RenderableType


@csv_rows.register(FFNReport)
def _csv_rows_FFNReport(report: FFNReport) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "stage": s.name,
            "op": s.op,
            "output_shape": "x".join(map(str, s.output_shape)),
            "params": s.params,
            "active_params": s.active_params,
            "weight_params": s.weight_params,
            "bias_params": s.bias_params,
            "norm_params": s.norm_params,
            "macs": s.macs,
            "matmul_flops": s.matmul_flops,
            "elementwise_flops": s.elementwise_flops,
            "flops": s.flops,
            "weight_bytes": s.weight_bytes,
            "output_bytes": s.output_bytes,
            "peak_bytes": "",
        }
        for s in report.stages
    ]
    t = report.totals
    rows.append(
        {
            "stage": "total",
            "op": "",
            "output_shape": "",
            "params": t.params,
            "active_params": t.active_params,
            "weight_params": t.weight_params,
            "bias_params": t.bias_params,
            "norm_params": t.norm_params,
            "macs": t.macs,
            "matmul_flops": t.matmul_flops,
            "elementwise_flops": t.elementwise_flops,
            "flops": t.flops,
            "weight_bytes": t.weight_bytes,
            "output_bytes": t.activation_bytes,
            "peak_bytes": t.peak_bytes,
        }
    )
    return rows


def _opt(value: int | None, fmt: Any = None) -> str:
    return "—" if value is None else (fmt or n)(value)


@tables.register(FFNReport)
def _tables_FFNReport(report: FFNReport) -> list[RenderableType]:
    from rich.table import Table
    from rich.text import Text

    by_name = {s.name: s for s in report.stages}
    t, c = report.totals, report.config
    stages = Table(title="Stages of one forward pass", title_justify="left")
    stages.add_column("stage")
    stages.add_column("computes")
    stages.add_column("input shape")
    stages.add_column("output shape")
    stages.add_column("output bytes", justify="right", overflow="fold")
    for s in report.stages:
        inputs = ", ".join(shape(by_name[i].output_shape) for i in s.inputs) or "—"
        stages.add_row(s.name, s.formula, inputs, shape(s.output_shape), n(s.output_bytes))

    counts = Table(title="Parameters, FLOPs and MACs per stage", title_justify="left")
    counts.add_column("stage")
    counts.add_column("matmul (M, K, N)")
    for col in ("params", "FLOPs", "MACs"):
        counts.add_column(col, justify="right", overflow="fold")
    for s in report.stages:
        counts.add_row(s.name, shape(s.matmul) if s.matmul else "—", n(s.params), n(s.flops), n(s.macs))
    counts.add_section()
    counts.add_row("total", "", n(t.params), n(t.flops), n(t.macs), style="bold")

    weights = Table(title="Weights", title_justify="left")
    weights.add_column("tensor")
    weights.add_column("role")
    weights.add_column("shape")
    weights.add_column("params", justify="right", overflow="fold")
    weights.add_column("bytes", justify="right", overflow="fold")
    for w in report.weights:
        role = f"{w.role}, {w.experts} experts" if w.experts else w.role
        weights.add_row(w.name, role, shape(w.shape), n(w.elements), n(w.bytes))

    out: list[RenderableType] = [Text(config_line(report)), stages, counts, weights]
    if c.is_moe:
        out.append(_experts_table(report))

    summary = Table(title="Totals (one layer)", title_justify="left")
    summary.add_column("quantity")
    summary.add_column("exact", justify="right", overflow="fold")
    summary.add_column("≈", justify="right", overflow="fold")
    summary.add_column("made of")
    parts = f"weights {n(t.weight_params)} + biases {n(t.bias_params)}"
    if t.norm_params:
        parts += f" + norm {n(t.norm_params)}"
    summary.add_row("parameters", n(t.params), human_count(t.params), parts)
    if c.is_moe:
        summary.add_row("  routed experts (all)", n(t.expert_params), human_count(t.expert_params), f"{c.experts} experts")
        summary.add_row(
            "  routed experts (active)", n(t.active_expert_params), human_count(t.active_expert_params), f"top-{c.top_k} of {c.experts} per token"
        )
        summary.add_row("active parameters", n(t.active_params), human_count(t.active_params), "what one token uses: all but the idle experts")
    summary.add_row("FLOPs", n(t.flops), human_count(t.flops), f"matmul {n(t.matmul_flops)} + elementwise {n(t.elementwise_flops)}")
    summary.add_row("MACs (matmul)", n(t.macs), human_count(t.macs), "FLOPs = 2 × MACs for each multiply-add")
    summary.add_row(
        "matmul FLOPs per token",
        _opt(t.matmul_flops_per_token),
        _opt(t.matmul_flops_per_token, human_count),
        f"2 × MACs ÷ {n(c.tokens)} tokens; the figure papers quote",
    )
    summary.add_row("FLOPs per token", _opt(t.flops_per_token), _opt(t.flops_per_token, human_count), "all FLOPs ÷ tokens")
    summary.add_row("weight memory (bytes)", n(t.weight_bytes), human_bytes(t.weight_bytes), f"{n(t.params)} params × {c.dtype_bytes} bytes")
    summary.add_row("activation memory (bytes)", n(t.activation_bytes), human_bytes(t.activation_bytes), "every stage output, none freed")
    live = " + ".join(report.peak.live)
    summary.add_row("peak forward memory (bytes)", n(t.peak_bytes), human_bytes(t.peak_bytes), f"weights + {live} (at {report.peak.stage})")
    out.append(summary)

    if c.layers > 1:
        m = report.model
        model = Table(title=f"Model totals ({c.layers} identical layers)", title_justify="left")
        model.add_column("quantity")
        model.add_column("exact", justify="right", overflow="fold")
        model.add_column("≈", justify="right", overflow="fold")
        model.add_column("made of")
        model.add_row("parameters", n(m.params), human_count(m.params), f"{c.layers} × {n(t.params)}")
        if c.is_moe:
            model.add_row("active parameters", n(m.active_params), human_count(m.active_params), f"{c.layers} × {n(t.active_params)}")
        model.add_row("FLOPs", n(m.flops), human_count(m.flops), f"{c.layers} × {n(t.flops)}")
        model.add_row("MACs (matmul)", n(m.macs), human_count(m.macs), f"{c.layers} × {n(t.macs)}")
        model.add_row("weight memory (bytes)", n(m.weight_bytes), human_bytes(m.weight_bytes), f"{c.layers} × {n(t.weight_bytes)}")
        model.add_row("peak forward memory (bytes)", n(m.peak_bytes), human_bytes(m.peak_bytes), "all layers' weights + one layer's activations")
        out.append(model)
    for line in c.origin:
        out.append(Text(line, style="dim"))
    out.append(Text(f"Convention: {conv.CONVENTION_SUMMARY}", style="dim"))
    return out


def _experts_table(report: FFNReport) -> RenderableType:
    """Per-expert shapes: the rows each routed expert computes and its products."""
    from rich.table import Table

    c = report.config
    table = Table(title="Each routed expert", title_justify="left")
    table.add_column("rows per expert", justify="right", overflow="fold")
    table.add_column("how")
    table.add_column("input")
    table.add_column("hidden")
    table.add_column("output")
    first = names.linears(c.is_glu, c.fused)[0]
    f = report.stage(names.EXPERT + first.stage).output_shape[-1]  # the first expert linear's width
    if c.expert_capacity is None:
        rows = c.balanced_expert_rows
        shown = str(rows) if rows.denominator == 1 else f"{float(rows):.2f}"
        how = f"{c.tokens:,} tokens × top-{c.top_k} ÷ {c.experts} experts, if balanced (dropless: each computes what it gets)"
        r = shown
    else:
        r = str(c.expert_capacity)
        how = f"capacity ceil({c.capacity_factor:g} × {c.tokens:,} × {c.top_k} ÷ {c.experts}); overflow dropped, padding computed"
    table.add_row(r, how, f"({r}, {c.d_model})", f"({r}, {f})", f"({r}, {c.d_model})")
    return table


def stage_charts(report: FFNReport) -> list[RenderableType]:
    """Where the FLOPs and the memory go, stage by stage."""
    names = [s.name for s in report.stages]
    return [
        bar_chart("FLOPs by stage", names, [s.flops for s in report.stages], "FLOPs"),
        bar_chart("Memory by stage: weights + output", names, [s.weight_bytes + s.output_bytes for s in report.stages], "bytes"),
    ]


@dataclass(frozen=True)
class Charted:
    """A report to be shown with its bar charts (tables only; JSON and CSV are the report's)."""

    report: FFNReport

    def to_dict(self) -> dict[str, Any]:
        return self.report.to_dict()


@csv_rows.register(Charted)
def _csv_rows_Charted(c: Charted) -> list[dict[str, Any]]:
    return csv_rows(c.report)


@tables.register(Charted)
def _tables_Charted(c: Charted) -> list[RenderableType]:
    return tables(c.report) + stage_charts(c.report)
