"""Rendering `roofline`: each GEMM's intensity, bound and lower-bound time, prefill and decode;
for a routed-expert GEMM, the experts touched and the rows per expert under both routings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from ffn_calc.model.dtypes import DTYPES
from ffn_calc.model.roofline import ExpertSpread, GemmRoof, Roofline
from ffn_calc.render.base import View, csv_rows, tables
from ffn_calc.render.layout import Col, Grid, Num, Wrapped, config_block, fit, flops_text, headline, hint, plural, shape

if TYPE_CHECKING:
    from rich.console import RenderableType

_SPREAD = ("experts_touched", "rows_per_expert", "bytes", "intensity", "bound", "seconds")


def _routing_columns(g: GemmRoof) -> dict[str, Any]:
    r = g.routing
    row: dict[str, Any] = {"ridge_tokens_uniform": r.ridge_tokens_uniform if r else None}
    for name in ("uniform", "worst_case"):
        spread = getattr(r, name) if r else None
        row |= {f"{key}_{name}": getattr(spread, key) if spread else None for key in _SPREAD}
    return row


@csv_rows.register(Roofline)
def _csv_rows_Roofline(r: Roofline) -> list[dict[str, Any]]:
    moe = any(g.routing for p in r.phases for g in p.gemms)  # a dense layer's columns stay as they were
    return [
        {"phase": p.name, "stage": g.stage, "m": g.mkn[0], "k": g.mkn[1], "n": g.mkn[2], "flops": g.flops, "bytes": g.bytes,
         "intensity": g.intensity, "bound": g.bound, "seconds": g.seconds, "ridge_tokens": g.ridge_tokens,
         **(_routing_columns(g) if moe else {})}
        for p in r.phases
        for g in p.gemms
    ]  # fmt: skip


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds / 1e-9:.1f} ns"


def _bytes(value: float) -> str:
    """Decimal units, as the bandwidth's GB/s: 1 GB = 10⁹ bytes."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.4g} {unit}"
    return f"{value:.0f} B"


def _count(value: float) -> str:
    """An exact integer, or 4 significant figures of an expectation."""
    return f"{int(value):,}" if isinstance(value, int) or value.is_integer() else f"{value:.4g}"


class _Row(NamedTuple):
    """One line of a phase's table: a GEMM, a routing assumption under it, a collective or a total."""

    name: str
    mkn: str = ""
    spread: str = ""  # experts whose weights are read × the rows each multiplies
    flops: str = ""
    bytes: str = ""
    intensity: str = ""
    bound: str = ""
    time: str = ""
    ridge: str = ""


def _spread_row(label: str, s: ExpertSpread, ridge: str) -> _Row:
    """A routing assumption under its GEMM: experts touched × rows per expert, and its traffic."""
    return _Row(f"  {label}", "", f"{_count(s.experts_touched)} × {_count(s.rows_per_expert)} rows", "", _bytes(s.bytes),
                f"{s.intensity:,.1f}", s.bound, _time(s.seconds), ridge)  # fmt: skip


def _grid(title: str, rows: list[_Row], totals: int) -> RenderableType:
    """A phase's table, laid out at the width it is printed at: the shapes and the routed rows
    stacked under the GEMM's name when the page is narrow; exact counts are in JSON and CSV."""
    column = list(zip(*rows, strict=True))
    columns = [
        Col("GEMM", column[0]),
        Col("(M, K, N)", column[1], stack=True, label=False),
        Col("experts × rows", column[2], stack=True, label=False),
        Col("FLOPs", column[3], right=True),
        Col("bytes", column[4], right=True),
        Col("FLOP/B", column[5], right=True),
        Col("bound", column[6]),
        Col("≥ time", column[7], right=True),
        Col("compute-\nbound from\nM =", column[8], right=True),
    ]
    return fit(Grid(title, [columns[0], *(c for c in columns[1:] if any(c.cells))], totals=totals))  # a dense layer has no routed rows


def _peak_line(r: Roofline, source: bool = True) -> str:
    """The peak used, and why: --dtype's, or the type a format's quantized products compute in."""
    c = r.report.config
    label = DTYPES[r.peak_dtype].label.upper() if r.peak_dtype in DTYPES else r.peak_dtype
    why = f"--dtype {c.dtype}" if r.peak_dtype == c.dtype else f"{c.weight_dtype} quantizes each product's input: products in {r.peak_dtype}"
    line = f"{r.gpu.name}: peak used {label} dense, {r.peak_flops / 1e12:g} TFLOP/s ({why}); {r.bandwidth / 1e9:g} GB/s; "
    others = sorted({g.peak_dtype for p in r.phases for g in p.gemms} - {r.peak_dtype})
    if others:  # the router (and shared-expert gate), never quantized, computes in --dtype
        line += f"the router at {', '.join(f'{d} ({r.gpu.tflops[d]:g} TFLOP/s)' for d in others)}; "
    return line + f"ridge point {r.ridge:.1f} FLOP/byte" + (f" ({r.gpu.source})" if source else "")


@tables.register(Roofline)
def _tables_Roofline(r: Roofline, view: View | None = None) -> list[RenderableType]:
    """A screenful ending with the headline: each phase's GEMMs with their bound and time;
    with `view.detail` their FLOPs, bytes and both routings, and the notes."""
    view = view or View()
    if view.summary:
        return [_headline(r)]
    return [*(_detail(r) if view.detail else _screen(r)), _headline(r)]


def _headline(r: Roofline) -> RenderableType:
    """Each phase's lower-bound time and what bounds it, and the ridge point."""
    rows: list[tuple[str, Num | str, str]] = []
    for p in r.phases:
        routed = ", worst-case routing" if p.worst_case is not None else ""
        rows.append((p.name, f"≥ {_time(p.seconds)}", f"{p.bound}-bound, {plural(p.tokens, 'token')}{routed}"))
    rows.append(("ridge point", f"{r.ridge:.1f} FLOP/byte", f"{r.gpu.name}, {r.peak_flops / 1e12:g} TFLOP/s, {r.bandwidth / 1e9:g} GB/s"))
    return headline(f"One layer{', one rank' if r.expert_ranks > 1 else ''}: lower bounds", rows)


def _screen(r: Roofline) -> list[RenderableType]:
    """What fits 80 × 50 above the headline: each GEMM's shape, intensity, bound, time and
    crossover, a routed one's under worst-case routing (the JSON's top-level figures)."""
    out: list[RenderableType] = [config_block(r.report), Wrapped(_peak_line(r, source=False))]
    moe = False
    for p in r.phases:
        what = f"{p.tokens:,} tokens" if p.name == "prefill" else f"one new token per sequence, {p.tokens:,} in all"
        rows = [(g.stage, shape(g.mkn), f"{g.intensity:,.1f}", g.bound, _time(g.seconds), _crossover(g)) for g in p.gemms]
        rows.append(("layer", "", f"{p.intensity:,.1f}", p.bound, _time(p.seconds), ""))
        u = p.uniform
        if u is not None:
            moe = True
            if abs(u.seconds - p.seconds) > 0.01 * p.seconds or u.bound != p.bound:  # not a rounding apart
                rows.append(("  uniform routing", "", f"{u.intensity:,.1f}", u.bound, _time(u.seconds), ""))
        column = list(zip(*rows, strict=True))
        grid = Grid(
            f"{p.name}: {what}",
            [
                Col("GEMM", column[0]),
                Col("(M, K, N)", column[1], stack=True, label=False),
                Col("FLOP/B", column[2], right=True),
                Col("bound", column[3]),
                Col("≥ time", column[4], right=True),
                Col("compute-bound\nfrom M", column[5], right=True),
            ],
            totals=len(rows) - len(p.gemms),
        )
        out.append(fit(grid, keep_prose=True))
        if p.collectives:
            sent = ", ".join(f"{c.where.split(':')[0]} {_bytes(c.bytes_sent_per_rank)}" for c in p.collectives)
            out.append(Wrapped(f"all-to-all, bytes each rank sends: {sent} (not in the times: they depend on the interconnect)"))
    note = "≥ time: max(FLOPs / peak, bytes / bandwidth), each operand moved once"
    if moe:
        note += "; routed experts: worst-case routing, every expert the rows reach read in full"
    out.append(hint(note + f"; --detail: each GEMM's FLOPs and bytes{', both routings' if moe else ''}, the notes"))
    return out


def _crossover(g: GemmRoof) -> str:
    ridge = "never" if g.ridge_tokens is None else f"{g.ridge_tokens:,}"
    return f"{ridge}/expert" if g.routing is not None else ridge


def _detail(r: Roofline) -> list[RenderableType]:
    """Every GEMM's FLOPs, bytes, intensity, bound and time, a routed one's under both
    routings, the all-to-alls, and the notes on how the bounds are drawn."""
    from rich.text import Text

    out: list[RenderableType] = [config_block(r.report), Wrapped(_peak_line(r))]
    moe = False
    for p in r.phases:
        what = f"{p.tokens:,} tokens" if p.name == "prefill" else f"one new token per sequence, {p.tokens:,} in all"
        rows: list[_Row] = []
        for g in p.gemms:
            ridge = "never" if g.ridge_tokens is None else f"{g.ridge_tokens:,}"
            if g.routing is None:
                rows.append(_Row(g.stage, shape(g.mkn), "", flops_text(g.flops), _bytes(g.bytes), f"{g.intensity:,.1f}", g.bound,
                                 _time(g.seconds), ridge))  # fmt: skip
                continue
            moe = True
            tokens = g.routing.ridge_tokens_uniform
            rows.append(_Row(g.stage, shape(g.mkn), "", flops_text(g.flops), ridge=f"{ridge}/expert"))
            for label, spread, ridge_note in (("uniform", g.routing.uniform, "" if tokens is None else f"T ≥ {tokens:,}"),
                                              ("worst case", g.routing.worst_case, "")):  # fmt: skip
                rows.append(_spread_row(label, spread, ridge_note))
        for c in p.collectives:  # --ep: bytes each rank sends, beside the GEMMs, not in the totals
            rows.append(_Row(f"all-to-all {c.where.split(':')[0]}", shape(c.shape), "", "", _bytes(c.bytes_sent_per_rank), "", "sent/rank"))
        totals = [_Row("layer", "", "", flops_text(p.flops), _bytes(p.bytes), f"{p.intensity:,.1f}", p.bound, _time(p.seconds))]
        if p.uniform is not None and p.worst_case is not None:
            totals = [_Row("layer", "", "", flops_text(p.flops))] + [
                _Row(f"  {label}", "", "", "", _bytes(t.bytes), f"{t.intensity:,.1f}", t.bound, _time(t.seconds))
                for label, t in (("uniform", p.uniform), ("worst case", p.worst_case))
            ]
        out.append(_grid(f"{p.name}: {what}", rows + totals, len(totals)))
    note = ("Times are lower bounds: max(FLOPs / peak, bytes / bandwidth) per GEMM, each operand and result moved once; "
            "elementwise work is left out. Bytes in decimal units (1 GB = 10⁹ B); exact counts in -f json and -f csv.")  # fmt: skip
    if moe:
        note += (" Routed experts: M is all experts' rows; under it, the experts whose weights are read (each in full) × the rows each "
                 "multiplies — uniform routing, E·(1 − (1 − k/E)^T) experts expected for T tokens with top-k of E; worst case, "
                 "min(E, T·k), the most bytes. An expert is compute-bound from M rows of its own, which uniform routing gives from "
                 "T tokens on; JSON and CSV's top-level figures are the worst case's.")  # fmt: skip
    if r.expert_ranks > 1:
        note += (f" Expert parallel over {r.expert_ranks} ranks: every figure is one rank's — its share of the tokens, the replicated "
                 "router and shared experts, its E/N experts with the rows all ranks send them (balanced routing); T in 'T ≥' counts "
                 "all ranks' tokens. The all-to-all rows give the bytes each rank sends (balanced routing); their time depends on the "
                 "interconnect and is not in the totals.")  # fmt: skip
    out.append(Text(note, style="dim"))
    return out
