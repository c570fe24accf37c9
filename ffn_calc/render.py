"""Renderers: results in, text or rich renderables out. Nothing here computes a number.

One function per format serves every result type: `to_json`, `to_csv` and `to_table`
dispatch on the result (FFNReport, VerifyReport) through `as_dict`, `csv_rows` and `tables`.
JSON keys are the documented contract (README, "JSON output"); every integer is exact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import singledispatch
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ffn_calc import conventions as conv
from ffn_calc.checks import VerifyReport
from ffn_calc.core import FFNReport, Stage, Tensor
from ffn_calc.explain import Explanation
from ffn_calc.inputs import ModelList, ModelRow

if TYPE_CHECKING:
    from rich.console import RenderableType

SHAPES_SCHEMA = "ffn-calc/shapes/1"
VERIFY_SCHEMA = "ffn-calc/verify/1"
MODELS_SCHEMA = "ffn-calc/models/1"
EXPLAIN_SCHEMA = "ffn-calc/explain/1"


# --- plain data ------------------------------------------------------------------------------


def _tensor(t: Tensor) -> dict[str, Any]:
    return {
        "name": t.name,
        "role": t.role,
        "shape": list(t.shape),
        "params": t.elements,
        "active_params": t.active_elements,
        "experts": t.experts,
        "bytes": t.bytes,
    }


def _stage(s: Stage) -> dict[str, Any]:
    return {
        "name": s.name,
        "op": s.op,
        "formula": s.formula,
        "inputs": list(s.inputs),
        "output_shape": list(s.output_shape),
        "output_bytes": s.output_bytes,
        "weights": [_tensor(t) for t in s.weights],
        "weight_params": s.weight_params,
        "bias_params": s.bias_params,
        "norm_params": s.norm_params,
        "params": s.params,
        "active_params": s.active_params,
        "weight_bytes": s.weight_bytes,
        "matmul_mkn": list(s.matmul) if s.matmul else None,
        "macs": s.macs,
        "matmul_flops": s.matmul_flops,
        "elementwise_flops": s.elementwise_flops,
        "flops": s.flops,
    }


def conventions_dict() -> dict[str, Any]:
    return {
        "flops_per_mac": conv.FLOPS_PER_MAC,
        "bias_add_flops_per_element": conv.BIAS_ADD_FLOPS_PER_ELEMENT,
        "residual_add_flops_per_element": conv.RESIDUAL_ADD_FLOPS_PER_ELEMENT,
        "activation_flops_per_element": dict(conv.ACTIVATION_FLOPS_PER_ELEMENT),
        "layernorm_flops_per_element": conv.LAYERNORM_FLOPS_PER_ELEMENT,
        "layernorm_flops_per_row": conv.LAYERNORM_FLOPS_PER_ROW,
        "glu_multiply_flops_per_element": conv.GLU_MULTIPLY_FLOPS_PER_ELEMENT,
        "router_softmax_flops_per_logit": conv.ROUTER_SOFTMAX_FLOPS_PER_LOGIT,
    }


@singledispatch
def as_dict(result: object) -> dict[str, Any]:
    raise TypeError(f"no JSON form for {type(result).__name__}")


@as_dict.register(FFNReport)
def _as_dict_FFNReport(report: FFNReport) -> dict[str, Any]:
    cfg = report.config
    return {
        "schema": SHAPES_SCHEMA,
        "config": {
            **asdict(cfg),
            "origin": list(cfg.origin),
            "tokens": cfg.tokens,
            "dtype_bytes": cfg.dtype_bytes,
            "expert_capacity": cfg.expert_capacity,
        },
        "conventions": conventions_dict(),
        "stages": [_stage(s) for s in report.stages],
        "totals": asdict(report.totals),
        "model": asdict(report.model),
        "peak": {
            "stage": report.peak.stage,
            "live": list(report.peak.live),
            "activation_bytes": report.peak.activation_bytes,
            "peak_bytes": report.totals.peak_bytes,
        },
    }


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


@as_dict.register(VerifyReport)
def _as_dict_VerifyReport(report: VerifyReport) -> dict[str, Any]:
    return {
        "schema": VERIFY_SCHEMA,
        "ok": report.ok,
        "config": as_dict(report.prediction)["config"] | {"dtype": report.config.dtype},
        "computed_dtype": report.computed_dtype,
        "dtype_note": report.dtype_note,
        "seed": report.seed,
        "chunk_tokens": report.chunk_tokens,
        "chunks": report.chunks,
        "memory_limit_bytes": report.memory_limit_bytes,
        "seconds": report.seconds,
        "gflops_per_s": report.gflops_per_s,
        "checks": [
            {
                "group": c.group,
                "name": c.name,
                "predicted": _plain(c.predicted),
                "observed": _plain(c.observed),
                "ok": c.ok,
                "kind": c.kind,
                "detail": c.detail,
            }
            for c in report.checks
        ],
        "prediction": as_dict(report.prediction),
    }


def to_json(result: object) -> str:
    import json
    return json.dumps(as_dict(result), indent=2, ensure_ascii=False) + "\n"


# --- CSV ---------------------------------------------------------------------------------------


@singledispatch
def csv_rows(result: object) -> list[dict[str, Any]]:
    raise TypeError(f"no CSV form for {type(result).__name__}")


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


def to_csv(result: object) -> str:
    import csv
    import io
    rows = csv_rows(result)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# --- rich tables -----------------------------------------------------------------------------


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


@singledispatch
def tables(result: object) -> list[RenderableType]:
    raise TypeError(f"no table form for {type(result).__name__}")


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
        summary.add_row("  routed experts (active)", n(t.active_expert_params), human_count(t.active_expert_params), f"top-{c.top_k} of {c.experts} per token")
        summary.add_row("active parameters", n(t.active_params), human_count(t.active_params), "what one token uses: all but the idle experts")
    summary.add_row("FLOPs", n(t.flops), human_count(t.flops), f"matmul {n(t.matmul_flops)} + elementwise {n(t.elementwise_flops)}")
    summary.add_row("MACs (matmul)", n(t.macs), human_count(t.macs), "FLOPs = 2 × MACs for each multiply-add")
    summary.add_row("matmul FLOPs per token", _opt(t.matmul_flops_per_token), _opt(t.matmul_flops_per_token, human_count), f"2 × MACs ÷ {n(c.tokens)} tokens; the figure papers quote")
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
    from fractions import Fraction

    from rich.table import Table

    c = report.config
    table = Table(title="Each routed expert", title_justify="left")
    table.add_column("rows per expert", justify="right", overflow="fold")
    table.add_column("how")
    table.add_column("input")
    table.add_column("hidden")
    table.add_column("output")
    f = 2 * c.d_ff if c.fused else c.d_ff
    if c.expert_capacity is None:
        rows = Fraction(c.tokens * c.top_k, c.experts)
        shown = str(rows) if rows.denominator == 1 else f"{float(rows):.2f}"
        how = f"{c.tokens:,} tokens × top-{c.top_k} ÷ {c.experts} experts, if balanced (dropless: each computes what it gets)"
        r = shown
    else:
        r = str(c.expert_capacity)
        how = f"capacity ceil({c.capacity_factor:g} × {c.tokens:,} × {c.top_k} ÷ {c.experts}); overflow dropped, padding computed"
    table.add_row(r, how, f"({r}, {c.d_model})", f"({r}, {f})", f"({r}, {c.d_model})")
    return table


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
    verdict = (
        f"ok: all {len(judged)} checks match"
        if not failed
        else f"FAILED: {len(failed)} of {len(judged)} checks do not match"
    )
    timing = (
        f"forward pass {report.seconds * 1000:.1f} ms, {report.gflops_per_s:.2f} GFLOP/s "
        f"({n(report.prediction.totals.flops)} FLOPs in {report.computed_dtype})"
    )
    out: list[RenderableType] = [Text(config_line(report.prediction))]
    if report.chunk_tokens:
        out.append(Text(f"note: ran in {report.chunks} chunks of up to {report.chunk_tokens:,} tokens to stay under "
                        f"{human_bytes(report.memory_limit_bytes)} of memory", style="yellow"))
    if report.dtype_note:
        out.append(Text(f"note: {report.dtype_note}", style="yellow"))
    out += [table, Text(verdict, style="bold green" if not failed else "bold red"), Text(timing)]
    return out


# --- the model catalogue -------------------------------------------------------------------------


def _model_row(row: ModelRow) -> dict[str, Any]:
    p = row.preset
    return {
        "name": p.name,
        "d_model": p.d_model,
        "d_ff": p.d_ff,
        "activation": p.activation,
        "bias": p.bias,
        "experts": p.experts,
        "top_k": p.top_k,
        "shared_experts": p.shared_experts,
        "layers": p.layers,
        "params_per_layer": row.params_per_layer,
        "active_params_per_layer": row.active_params_per_layer,
        "model_params": row.model_params,
        "source": p.source,
        "note": p.note,
    }


@as_dict.register(ModelList)
def _as_dict_ModelList(models: ModelList) -> dict[str, Any]:
    return {"schema": MODELS_SCHEMA, "models": [_model_row(r) for r in models.rows]}


@csv_rows.register(ModelList)
def _csv_rows_ModelList(models: ModelList) -> list[dict[str, Any]]:
    return [_model_row(r) for r in models.rows]


@tables.register(ModelList)
def _tables_ModelList(models: ModelList) -> list[RenderableType]:
    from rich.table import Table

    table = Table(title="Models (--model NAME): the FFN of one layer", title_justify="left")
    for col, right in (("name", False), ("d_model", True), ("d_ff", True), ("activation", False), ("bias", False),
                       ("experts", False), ("layers", True), ("FFN params / layer", True), ("active / layer", True)):
        table.add_column(col, justify="right" if right else "left", overflow="fold")
    for r in models.rows:
        p = r.preset
        experts = f"{p.experts}, top-{p.top_k}" + (f" + {p.shared_experts} shared" if p.shared_experts else "") if p.experts else "—"
        table.add_row(p.name, n(p.d_model), n(p.d_ff), p.activation, "yes" if p.bias else "no", experts, str(p.layers),
                      n(r.params_per_layer), n(r.active_params_per_layer))
    sources = Table(title="Sources", title_justify="left")
    sources.add_column("name")
    sources.add_column("source")
    for r in models.rows:
        sources.add_row(r.preset.name, r.preset.source + (f"; {r.preset.note}" if r.preset.note else ""))
    return [table, sources]


# --- explain ------------------------------------------------------------------------------------------


@as_dict.register(Explanation)
def _as_dict_Explanation(ex: Explanation) -> dict[str, Any]:
    return {
        "schema": EXPLAIN_SCHEMA,
        "config": as_dict(ex.report)["config"],
        "formulas": [asdict(f) for f in ex.formulas],
        "diagram": list(ex.diagram),
        "facts": [asdict(f) for f in ex.facts],
    }


@csv_rows.register(Explanation)
def _csv_rows_Explanation(ex: Explanation) -> list[dict[str, Any]]:
    return [asdict(f) for f in ex.formulas]


@tables.register(Explanation)
def _tables_Explanation(ex: Explanation) -> list[RenderableType]:
    from rich.table import Table
    from rich.text import Text

    out: list[RenderableType] = [Text(config_line(ex.report)), Text("")]
    out.append(Text("Formulas, then the numbers substituted", style="bold"))
    for f in ex.formulas:
        out.append(Text(f"{f.name}\n  = {f.symbolic}\n  = {f.substituted}\n  = {n(f.value)} {f.unit}"))
    out.append(Text(""))
    out.append(Text("Data flow", style="bold"))
    out.append(Text("\n".join(ex.diagram)))
    out.append(Text(""))
    facts = Table(title="Why", title_justify="left", show_lines=False)
    facts.add_column("question")
    facts.add_column("answer")
    for fact in ex.facts:
        facts.add_row(fact.topic, fact.answer)
    out.append(facts)
    out.append(Text(f"Convention: {conv.CONVENTION_SUMMARY}", style="dim"))
    return out


# --- sweeps and charts ------------------------------------------------------------------------------


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def sweep_csv(columns: tuple[str, ...], rows: Iterable[list[Any]]) -> Iterator[str]:
    """CSV text, header first, a chunk at a time (a sweep may have millions of rows)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for i, values in enumerate(rows, start=1):
        # csv writes ints exactly and None as an empty field; only booleans need spelling out.
        writer.writerow([_cell_text(v) if isinstance(v, bool) else v for v in values])
        if i % 2048 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def sweep_jsonl(columns: tuple[str, ...], rows: Iterable[list[Any]]) -> Iterator[str]:
    """One JSON object per row, keys in column order."""
    import json

    chunk: list[str] = []
    for values in rows:
        chunk.append(json.dumps(dict(zip(columns, values, strict=True))))
        if len(chunk) == 2048:
            yield "\n".join(chunk) + "\n"
            chunk = []
    if chunk:
        yield "\n".join(chunk) + "\n"


def sweep_table(columns: tuple[str, ...], rows: Iterable[list[Any]]) -> RenderableType:
    from rich.table import Table

    table = Table(title="Sweep", title_justify="left")
    for c in columns:
        table.add_column(c, justify="left" if c in ("activation", "norm", "dtype", "peak_stage", "bias") else "right", overflow="fold")
    for values in rows:
        table.add_row(*(n(v) if isinstance(v, int) and not isinstance(v, bool) else _cell_text(v) or "—" for v in values))
    return table


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


@as_dict.register(Charted)
def _as_dict_Charted(c: Charted) -> dict[str, Any]:
    return as_dict(c.report)


@csv_rows.register(Charted)
def _csv_rows_Charted(c: Charted) -> list[dict[str, Any]]:
    return csv_rows(c.report)


@tables.register(Charted)
def _tables_Charted(c: Charted) -> list[RenderableType]:
    return tables(c.report) + stage_charts(c.report)
