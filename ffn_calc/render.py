"""Renderers: results in, text or rich renderables out. Nothing here computes a number.

One function per format serves every result type: `to_json`, `to_csv` and `to_table`
dispatch on the result (FFNReport, VerifyReport) through `as_dict`, `csv_rows` and `tables`.
JSON keys are the documented contract (README, "JSON output"); every integer is exact.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import singledispatch
from typing import TYPE_CHECKING, Any

from ffn_calc import conventions as conv
from ffn_calc.checks import VerifyReport
from ffn_calc.core import FFNReport, Stage, Tensor

if TYPE_CHECKING:
    from rich.console import RenderableType

SHAPES_SCHEMA = "ffn-calc/shapes/1"
VERIFY_SCHEMA = "ffn-calc/verify/1"


# --- plain data ------------------------------------------------------------------------------


def _tensor(t: Tensor) -> dict[str, Any]:
    return {"name": t.name, "role": t.role, "shape": list(t.shape), "params": t.elements, "bytes": t.bytes}


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
    }


@singledispatch
def as_dict(result: object) -> dict[str, Any]:
    raise TypeError(f"no JSON form for {type(result).__name__}")


@as_dict.register(FFNReport)
def _as_dict_FFNReport(report: FFNReport) -> dict[str, Any]:
    cfg = report.config
    return {
        "schema": SHAPES_SCHEMA,
        "config": {**asdict(cfg), "tokens": cfg.tokens, "dtype_bytes": cfg.dtype_bytes},
        "conventions": conventions_dict(),
        "stages": [_stage(s) for s in report.stages],
        "totals": asdict(report.totals),
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


CSV_STAGE_COLUMNS = (
    "stage", "op", "output_shape", "params", "weight_params", "bias_params", "norm_params",
    "macs", "matmul_flops", "elementwise_flops", "flops", "weight_bytes", "output_bytes", "peak_bytes",
)  # fmt: skip


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
    return (
        f"FFN  batch {c.batch} × seq_len {c.seq_len} × d_model {c.d_model}, d_ff {c.d_ff} ({c.d_ff_rule})\n"
        f"     {c.activation}, {'bias' if c.bias else 'no bias'}, norm {c.norm}, {c.dtype} ({c.dtype_bytes} bytes/element)"
    )


@tables.register(FFNReport)
def _tables_FFNReport(report: FFNReport) -> list[RenderableType]:
    from rich.table import Table
    from rich.text import Text

    by_name = {s.name: s for s in report.stages}
    t = report.totals
    stages = Table(title="Stages of one forward pass", title_justify="left")
    stages.add_column("stage")
    stages.add_column("computes")
    stages.add_column("input shape")
    stages.add_column("output shape")
    stages.add_column("output bytes", justify="right")
    for s in report.stages:
        inputs = ", ".join(shape(by_name[i].output_shape) for i in s.inputs) or "—"
        stages.add_row(s.name, s.formula, inputs, shape(s.output_shape), n(s.output_bytes))

    counts = Table(title="Parameters, FLOPs and MACs per stage", title_justify="left")
    counts.add_column("stage")
    counts.add_column("matmul (M, K, N)")
    for col in ("params", "FLOPs", "MACs"):
        counts.add_column(col, justify="right")
    for s in report.stages:
        counts.add_row(s.name, shape(s.matmul) if s.matmul else "—", n(s.params), n(s.flops), n(s.macs))
    counts.add_section()
    counts.add_row("total", "", n(t.params), n(t.flops), n(t.macs), style="bold")

    weights = Table(title="Weights", title_justify="left")
    weights.add_column("tensor")
    weights.add_column("role")
    weights.add_column("shape")
    weights.add_column("params", justify="right")
    weights.add_column("bytes", justify="right")
    for w in report.weights:
        weights.add_row(w.name, w.role, shape(w.shape), n(w.elements), n(w.bytes))

    c = report.config
    summary = Table(title="Totals", title_justify="left")
    summary.add_column("quantity")
    summary.add_column("exact", justify="right")
    summary.add_column("≈", justify="right")
    summary.add_column("made of")
    parts = f"weights {n(t.weight_params)} + biases {n(t.bias_params)}"
    if t.norm_params:
        parts += f" + norm {n(t.norm_params)}"
    summary.add_row("parameters", n(t.params), human_count(t.params), parts)
    summary.add_row("FLOPs", n(t.flops), human_count(t.flops), f"matmul {n(t.matmul_flops)} + elementwise {n(t.elementwise_flops)}")
    summary.add_row("MACs (matmul)", n(t.macs), human_count(t.macs), "FLOPs = 2 × MACs for each multiply-add")
    summary.add_row("matmul FLOPs per token", n(t.matmul_flops_per_token), human_count(t.matmul_flops_per_token), f"2 × MACs ÷ {n(c.tokens)} tokens; the figure papers quote")
    summary.add_row("FLOPs per token", n(t.flops_per_token), human_count(t.flops_per_token), "all FLOPs ÷ tokens")
    summary.add_row("weight memory (bytes)", n(t.weight_bytes), human_bytes(t.weight_bytes), f"{n(t.params)} params × {c.dtype_bytes} bytes")
    summary.add_row("activation memory (bytes)", n(t.activation_bytes), human_bytes(t.activation_bytes), "every stage output, none freed")
    live = " + ".join(report.peak.live)
    summary.add_row("peak forward memory (bytes)", n(t.peak_bytes), human_bytes(t.peak_bytes), f"weights + {live} (at {report.peak.stage})")

    note = Text(f"Convention: {conv.CONVENTION_SUMMARY}", style="dim")
    return [Text(config_line(report)), stages, counts, weights, summary, note]


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
    table.add_column("predicted", justify="right")
    table.add_column("observed", justify="right")
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
    if report.dtype_note:
        out.append(Text(f"note: {report.dtype_note}", style="yellow"))
    out += [table, Text(verdict, style="bold green" if not failed else "bold red"), Text(timing)]
    return out
