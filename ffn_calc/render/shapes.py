"""Rendering `shapes`: an FFNReport (and its bar charts) as JSON, CSV and tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from ffn_calc.model import conventions as conv
from ffn_calc.model import structure as names
from ffn_calc.model.forward import FFNReport
from ffn_calc.model.layer import FFNConfig
from ffn_calc.render.base import View, csv_rows, tables
from ffn_calc.render.layout import UNITS, Col, Grid, Num, bar_chart, config_block, fit, hint, n, plural, shape
from ffn_calc.render.layout import headline as base_headline

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


def headline(report: FFNReport) -> RenderableType:
    """The short answer: parameters (active ones for a mixture of experts), FLOPs per token,
    weight and peak memory; the model's totals when there are several layers."""
    t, c = report.totals, report.config
    rows: list[tuple[str, Num, str]] = [("parameters", Num(t.params, "params"), "one layer")]
    if c.is_moe:
        rows.append(("active parameters", Num(t.active_params, "params"), f"top-{c.top_k} of {plural(c.experts, 'expert')}"))
    rows.append(("FLOPs per token", Num(t.flops_per_token, "flops"), f"forward, over {plural(c.tokens, 'token')}"))
    rows.append(("weight memory", Num(t.weight_bytes, "bytes"), f"{c.weight_dtype} weights" if c.weight_packing else c.dtype))
    rows.append(("peak memory", Num(t.peak_bytes, "bytes"), f"forward, at {report.peak.stage}"))
    if report.model.layers > 1:
        m = report.model
        rows.append(("model parameters", Num(m.params, "params"), plural(m.layers, "layer")))
        if c.is_moe:
            rows.append(("model active parameters", Num(m.active_params, "params"), plural(m.layers, "layer")))
    return base_headline("", rows)


@tables.register(FFNReport)
def _tables_FFNReport(report: FFNReport, view: View | None = None) -> list[RenderableType]:
    """A screenful ending with the headline: the config, one table of the stages and, for a
    mixed stack, its groups; with `view.detail` every table; with `view.summary` the headline."""
    view = view or View()
    if view.summary:
        return [headline(report)]
    return [*(_detail(report, view.exact) if view.detail else _screen(report, view.exact)), headline(report)]


def _screen(report: FFNReport, ex: bool) -> list[RenderableType]:
    """What fits 80 × 50 above the headline: the config, each stage's formula, output shape,
    parameters and FLOPs with their totals, and a mixed stack's groups."""
    stg, t, c = report.stages, report.totals, report.config
    mixed = len(report.groups) > 1
    stages = Grid(
        "Stages of one forward pass" + (f" (each of the {c.layers} MoE layers)" if mixed else ""),
        [
            Col("stage", [s.name for s in stg] + ["total"]),
            Col("computes", [s.formula for s in stg] + [""], prose=True, omit="what each stage computes: --detail, or ffn-calc explain"),
            Col("output shape", [shape(s.output_shape) for s in stg] + [""]),
            Col("params", [Num(s.params, "params") for s in stg] + [Num(t.params, "params")]),
            Col("FLOPs", [Num(s.flops, "flops") for s in stg] + [Num(t.flops, "flops")]),
        ],
        totals=1,
    )
    out: list[RenderableType] = [config_block(report), fit(stages, ex, keep_prose=True)]
    if mixed:
        m, gs = report.model, report.groups
        groups = Grid(
            "Layer groups",
            [
                Col("group", [g.name for g in gs] + ["model"]),
                Col("layers", [Num(g.config.layers, "count") for g in gs] + [Num(m.layers, "count")]),
                Col("FFN", [_group_kind(g.config) for g in gs] + [""], prose=True),
                Col("params/layer", [Num(g.totals.params, "params") for g in gs] + [""]),
                Col("FLOPs/token", [Num(g.totals.flops_per_token, "flops") for g in gs] + [""]),
                Col("params", [Num(g.sum.params, "params") for g in gs] + [Num(m.params, "params")]),
            ],
            totals=1,
        )
        out.append(fit(groups, ex, keep_prose=True))
    out.append(hint("--detail: matmuls, MACs, weights, memory and sources; --help: the conventions"))
    return out


def _group_kind(c: FFNConfig) -> str:
    return f"MoE, d_ff {c.d_ff} × {c.experts} experts, top-{c.top_k}" if c.is_moe else f"dense, d_ff {c.d_ff}"


def _detail(report: FFNReport, ex: bool) -> list[RenderableType]:
    """Every table: the stages' shapes, the products, the weights (and a format's stored
    tensors, the experts' rows), the totals with what they are made of, the model's, the
    origin of each value and the counting convention."""
    from rich.text import Text

    out: list[RenderableType] = []
    by_name = {s.name: s for s in report.stages}
    t, c = report.totals, report.config
    stg = report.stages
    stages = Grid(
        "Stages of one forward pass",
        [
            Col("stage", [s.name for s in stg]),
            Col("computes", [s.formula for s in stg], prose=True),
            Col("input shape", [",\n".join(shape(by_name[i].output_shape) for i in s.inputs) or "—" for s in stg]),
            Col("output shape", [shape(s.output_shape) for s in stg]),
            Col("output bytes", [Num(s.output_bytes, "bytes") for s in stg], short="output"),
        ],
    )
    counts = Grid(
        "Parameters, FLOPs and MACs per stage",
        [
            Col("stage", [s.name for s in stg] + ["total"]),
            Col("matmul (M, K, N)", [shape(s.matmul) if s.matmul else "—" for s in stg] + [""]),
            Col("params", [Num(s.params, "params") for s in stg] + [Num(t.params, "params")]),
            Col("FLOPs", [Num(s.flops, "flops") for s in stg] + [Num(t.flops, "flops")]),
            Col("MACs", [Num(s.macs, "macs") for s in stg] + [Num(t.macs, "macs")]),
        ],
        totals=1,
    )
    ws = report.weights
    weights = Grid(
        "Weights",
        [
            Col("tensor", [w.name for w in ws]),
            Col("role", [f"{w.role}, {plural(w.experts, 'expert')}" if w.experts else w.role for w in ws]),
            Col("shape", [shape(w.shape) for w in ws]),
            Col("params", [Num(w.elements, "params") for w in ws]),
            Col("bytes", [Num(w.bytes, "bytes") for w in ws]),
        ],
    )
    out += [config_block(report), fit(stages, ex), fit(counts, ex), fit(weights, ex)]
    if c.weight_packing is not None:
        out.append(fit(_stored_tensors(report), ex))
    if c.is_moe:
        out += _experts_table(report)

    parts = f"weights {n(t.weight_params)} + biases {n(t.bias_params)}"
    if t.norm_params:
        parts += f" + norm {n(t.norm_params)}"
    rows: list[tuple[str, Num, str]] = [("parameters", Num(t.params, "params"), parts)]
    if c.is_moe:
        rows += [
            ("  routed experts (all)", Num(t.expert_params, "params"), plural(c.experts, "expert")),
            ("  routed experts (active)", Num(t.active_expert_params, "params"), f"top-{c.top_k} of {c.experts} per token"),
            ("active parameters", Num(t.active_params, "params"), "what one token uses: all but the idle experts"),
        ]
    live = " + ".join(report.peak.live)
    rows += [
        ("FLOPs", Num(t.flops, "flops"), f"matmul {n(t.matmul_flops)} + elementwise {n(t.elementwise_flops)}"),
        ("MACs (matmul)", Num(t.macs, "macs"), "FLOPs = 2 × MACs for each multiply-add"),
        ("matmul FLOPs per token", Num(t.matmul_flops_per_token, "flops"), f"2 × MACs ÷ {plural(c.tokens, 'token')}; the figure papers quote"),
        ("FLOPs per token", Num(t.flops_per_token, "flops"), "all FLOPs ÷ tokens"),
        ("weight memory", Num(t.weight_bytes, "bytes"), _weight_memory(report)),
        ("activation memory", Num(t.activation_bytes, "bytes"), "every stage output, none freed"),
        ("peak forward memory", Num(t.peak_bytes, "bytes"), f"weights + {live} (at {report.peak.stage})"),
    ]
    out.append(fit(_quantities("Totals (one layer)", rows), ex))

    if len(report.groups) > 1:
        out += _groups_tables(report, ex)
    elif c.layers > 1:
        m = report.model
        mrows: list[tuple[str, Num, str]] = [("parameters", Num(m.params, "params"), f"{c.layers} × {n(t.params)}")]
        if c.is_moe:
            mrows.append(("active parameters", Num(m.active_params, "params"), f"{c.layers} × {n(t.active_params)}"))
        mrows += [
            ("FLOPs", Num(m.flops, "flops"), f"{c.layers} × {n(t.flops)}"),
            ("MACs (matmul)", Num(m.macs, "macs"), f"{c.layers} × {n(t.macs)}"),
            ("weight memory", Num(m.weight_bytes, "bytes"), f"{c.layers} × {n(t.weight_bytes)}"),
            ("peak forward memory", Num(m.peak_bytes, "bytes"), "all layers' weights + one layer's activations"),
        ]
        out.append(fit(_quantities(f"Model totals ({c.layers} identical layers)", mrows), ex))
    for line in c.origin:
        out.append(Text(line, style="dim"))
    out.append(Text(f"Convention: {conv.CONVENTION_SUMMARY}", style="dim"))
    return out


def _weight_memory(report: FFNReport) -> str:
    """What the weight bytes are made of: params × bytes, or the stored tensors of the format."""
    t, c = report.totals, report.config
    p = c.weight_packing
    if p is None:
        return f"{n(t.params)} params × {plural(c.dtype_bytes, 'byte')}"
    matrices = [w for w in report.weights if w.packing]
    rest = t.params - sum(w.elements for w in matrices)
    text = f"{n(sum(w.elements for w in matrices))} matrix entries as {p.format} stores them: {p.spec.layout} per (K, N) matrix"
    return text + (f"; {n(rest)} more (biases, norm, router) × {plural(c.dtype_bytes, 'byte')} ({c.dtype})" if rest else "")


def _stored_tensors(report: FFNReport) -> Grid:
    """Each packed matrix's tensors as its checkpoint stores them (one expert's, for experts)."""
    rows = [(w, x) for w in report.weights if w.packing for x in w.packing.tensors(*w.shape[-2:])]
    p = report.config.weight_packing
    assert p is not None
    return Grid(
        f"Stored tensors ({p.format}; {p.spec.source})",
        [
            Col("matrix", [w.name + (f" (each of {w.experts})" if w.experts else "") for w, _ in rows]),
            Col("stored as", [x.describe() for _, x in rows]),
            Col("holds", [x.holds for _, x in rows], prose=True),
            Col("bytes", [Num(x.bytes, "bytes") for _, x in rows]),
        ],
    )


def _groups_tables(report: FFNReport, ex: bool) -> list[RenderableType]:
    """A mixed stack: each group's per-layer figures and its sum, then the model's totals."""
    m = report.model
    gs = report.groups
    kind = [_group_kind(g.config) for g in gs]
    grid = Grid(
        "Layer groups (per layer, and × layers)",
        [
            Col("group", [g.name for g in gs] + ["model"]),
            Col("layers", [Num(g.config.layers, "count") for g in gs] + [Num(m.layers, "count")]),
            Col("FFN", kind + [""], prose=True),
            Col("params/layer", [Num(g.totals.params, "params") for g in gs] + [""], short="params"),
            Col("active/layer", [Num(g.totals.active_params, "params") for g in gs] + [""], short="active"),
            Col("FLOPs/token", [Num(g.totals.flops_per_token, "flops") for g in gs] + [""], short="FLOP/tok"),
            Col("group params", [Num(g.sum.params, "params") for g in gs] + [Num(m.params, "params")]),
            Col("group active", [Num(g.sum.active_params, "params") for g in gs] + [Num(m.active_params, "params")]),
            Col("group weight bytes", [Num(g.sum.weight_bytes, "bytes") for g in gs] + [Num(m.weight_bytes, "bytes")], short="weights"),
        ],
        totals=1,
    )
    sums = " + ".join(f"{g.config.layers} × {n(g.totals.params)}" for g in gs)
    mrows: list[tuple[str, Num, str]] = [
        ("parameters", Num(m.params, "params"), sums),
        ("active parameters", Num(m.active_params, "params"), " + ".join(f"{g.config.layers} × {n(g.totals.active_params)}" for g in gs)),
        ("FLOPs", Num(m.flops, "flops"), " + ".join(f"{g.config.layers} × {n(g.totals.flops)}" for g in gs)),
        ("matmul FLOPs", Num(m.matmul_flops, "flops"), " + ".join(f"{g.config.layers} × {n(g.totals.matmul_flops)}" for g in gs)),
        ("MACs (matmul)", Num(m.macs, "macs"), " + ".join(f"{g.config.layers} × {n(g.totals.macs)}" for g in gs)),
        ("weight memory", Num(m.weight_bytes, "bytes"), " + ".join(f"{g.config.layers} × {n(g.totals.weight_bytes)}" for g in gs)),
        ("peak forward memory", Num(m.peak_bytes, "bytes"), "all layers' weights + the largest layer's activations"),
    ]
    return [fit(grid, ex), fit(_quantities(f"Model totals ({m.layers} layers in {len(gs)} groups)", mrows), ex)]


def _quantities(title: str, rows: list[tuple[str, Num, str]]) -> Grid:
    """A totals table: quantity, exact value, ≈ (beside exact values only), what it is made of."""
    return Grid(
        title,
        [
            Col("quantity", [q for q, _, _ in rows]),
            Col("exact", [v for _, v, _ in rows], short="value"),
            Col("≈", [UNITS[v.unit](v.value) if v.value is not None else "—" for _, v, _ in rows], exact_only=True, right=True),
            Col("made of", [m for _, _, m in rows], prose=True),
        ],
    )


def _experts_table(report: FFNReport) -> list[RenderableType]:
    """Per-expert shapes: the rows each routed expert computes (a count, or r with its rule when
    the balanced share is not whole) and its products."""
    from rich.text import Text

    c = report.config
    first = names.linears(c.is_glu, c.fused)[0]
    f = report.stage(names.EXPERT + first.stage).output_shape[-1]  # the first expert linear's width
    if c.expert_capacity is None:
        rows = c.balanced_expert_rows
        pairs = f"{plural(c.tokens, 'token')} × top-{c.top_k} ÷ {plural(c.experts, 'expert')}"
        if rows.denominator == 1:
            r = n(int(rows))
            how = f"rows per expert: {pairs} = {r}, if balanced (dropless: each computes what it gets)"
        else:
            r = "r"
            how = (
                f"r: the rows routed to an expert, a whole number that varies: {pairs} = {float(rows):.2f} "
                "on average (dropless: each computes what it gets)"
            )
    else:
        r = n(c.expert_capacity)
        how = (
            f"rows per expert: capacity ceil({c.capacity_factor:g} × {plural(c.tokens, 'token')} × {c.top_k} ÷ {c.experts}) = {r}; "
            "overflow dropped, padding computed"
        )
    grid = Grid(
        "Each routed expert",
        [
            Col("rows", [r], right=True),
            Col("input", [f"({r}, {c.d_model})"]),
            Col("hidden", [f"({r}, {f})"]),
            Col("output", [f"({r}, {c.d_model})"]),
        ],
    )
    return [fit(grid), Text(how)]


def stage_charts(report: FFNReport) -> list[RenderableType]:
    """Where the FLOPs and the memory go, stage by stage."""
    names = [s.name for s in report.stages]
    return [
        bar_chart("FLOPs by stage", names, [s.flops for s in report.stages], "FLOPs"),
        bar_chart("Memory by stage: weights + output", names, [s.weight_bytes + s.output_bytes for s in report.stages], "bytes"),
    ]


class Charted(NamedTuple):
    """A report to be shown with its bar charts (tables only; JSON and CSV are the report's)."""

    report: FFNReport

    def to_dict(self) -> dict[str, Any]:
        return self.report.to_dict()


@csv_rows.register(Charted)
def _csv_rows_Charted(c: Charted) -> list[dict[str, Any]]:
    return csv_rows(c.report)


@tables.register(Charted)
def _tables_Charted(c: Charted, view: View | None = None) -> list[RenderableType]:
    out = tables(c.report, view or View())
    return out[:-1] + stage_charts(c.report) + out[-1:]  # the headline stays last
