"""Rendering `roofline --measure`: the measured device, each GEMM's measured time beside the
bound the roofline predicts from the measured peak and bandwidth, and the sweep of M across the
predicted crossover with the measured knee."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ffn_calc.measure.report import GemmTiming, MeasuredRoofline
from ffn_calc.render.base import View, csv_rows, tables
from ffn_calc.render.layout import Col, Grid, Wrapped, config_block, fit, hint, shape
from ffn_calc.render.roofline import _time

if TYPE_CHECKING:
    from rich.console import RenderableType


def _rate(value: float, unit: str) -> str:
    """3 significant figures in decimal units: 77.8 GFLOP/s, 14.5 GB/s."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _achieved(g: GemmTiming) -> str:
    """The rate of what bounds the GEMM: FLOP/s when compute-bound, bytes/s when memory-bound."""
    return _rate(g.achieved_flops_per_s, "FLOP/s") if g.bound == "compute" else _rate(g.achieved_bytes_per_s, "B/s")


def _mib(value: int) -> str:
    return f"{value / 2**30:.3g} GiB" if value >= 2**30 else f"{value / 2**20:.3g} MiB"


def _row(g: GemmTiming) -> dict[str, Any]:
    return {
        "phase": g.phase, "stage": g.stage, "m": g.mkn[0], "k": g.mkn[1], "n": g.mkn[2], "flops": g.flops, "bytes": g.bytes, "bound": g.bound,
        "bound_seconds": g.bound_seconds, "measured_seconds": g.measured_seconds, "calls": g.timed.calls, "warmups": g.timed.warmups,
        "copies": g.copies, "achieved_flops_per_s": g.achieved_flops_per_s, "achieved_bytes_per_s": g.achieved_bytes_per_s,
        "achieved_over_bound": g.achieved_over_bound,
    }  # fmt: skip


@csv_rows.register(MeasuredRoofline)
def _csv_rows_MeasuredRoofline(r: MeasuredRoofline) -> list[dict[str, Any]]:
    """Every timed GEMM of the layer (phase prefill, decode), then the sweep's (phase sweep)."""
    return [_row(g) for g in (*r.gemms, *r.knee.points)]


def _grid(title: str, gemms: tuple[GemmTiming, ...], sweep: bool) -> RenderableType:
    """A phase's GEMMs (or the sweep's M) with bound and measured side by side; the shapes stack
    under the GEMM's name on a narrow page."""
    columns = [
        Col("M" if sweep else "GEMM", [f"{g.mkn[0]:,}" if sweep else g.stage for g in gemms], right=sweep),
        *([] if sweep else [Col("(M, K, N)", [shape(g.mkn) for g in gemms], stack=True, label=False)]),
        Col("bound", [g.bound for g in gemms]),
        Col("≥ time", [_time(g.bound_seconds) for g in gemms], right=True),
        Col("measured", [_time(g.measured_seconds) for g in gemms], right=True),
        Col("calls", [f"{g.timed.calls}" for g in gemms], right=True),
        Col("achieved", [_achieved(g) for g in gemms], right=True),
        Col("÷ bound", [f"{g.achieved_over_bound:.3g}" for g in gemms], right=True),
    ]
    return fit(Grid(title, columns))


def _device_lines(r: MeasuredRoofline) -> str:
    d = r.device
    streams = ", ".join(f"{s.kernel} {_rate(s.best_bytes_per_s, 'B/s')}" for s in d.stream)
    cache = ""
    if d.last_level_cache_bytes:
        cache = f"; the last-level cache reads {_mib(d.last_level_cache_bytes)}"
        if 4 * d.last_level_cache_bytes > d.stream_array_bytes:
            cache += " (4 × that is past the bounds of time and memory)"
    load = f", load average {d.load_average:.2f}" if d.load_average is not None else ""
    return (
        f"measured {d.device}, no datasheet: {d.name}\n  {d.library}\n"
        f"  peak {_rate(d.peak_flops_per_s, 'FLOP/s')} {d.dtype}: the best call of {len(d.gemms)} GEMMs ({d.peak_from})\n"
        f"  bandwidth {_rate(d.bandwidth_bytes_per_s, 'B/s')}: the best STREAM kernel of {streams}; 3 arrays of {_mib(d.stream_array_bytes)}"
        f"{cache}\n"
        f"  ridge {r.roofline.ridge:.1f} FLOP/byte; measured in {r.seconds:.1f} s (budget {r.budget_seconds:g} s){load}"
    )


def _knee_lines(r: MeasuredRoofline) -> str:
    k, e, b = r.knee, r.knee.estimate, r.knee.predicted
    crossover = "no M is compute-bound" if k.predicted_m is None else f"compute-bound from M = {k.predicted_m:,}"
    if e.m is None or b.m is None:
        return f"the roofline's crossover: {crossover}; no knee (the sweep has one M)"
    where = "" if e.inside else f", outside the swept {e.flat_m:,}…{e.last_m:,}"
    ratio = f", {k.ratio:.3g} × the predicted" if k.ratio is not None else ""
    return (
        f"knee: measured M ≈ {e.m:,.1f}{ratio} M ≈ {b.m:,.1f}{where} (the roofline's crossover: {crossover})\n"
        f"  measured: the flat line at M = {e.flat_m:,}'s {_time(e.flat_seconds)} meets the line through the origin and "
        f"M = {e.last_m:,}'s {_time(e.last_seconds)}; predicted: the same on the bounds"
    )


@tables.register(MeasuredRoofline)
def _tables_MeasuredRoofline(r: MeasuredRoofline, view: View | None = None) -> list[RenderableType]:
    """The device, each GEMM's bound beside its measured time, the sweep and its knee; with
    `view.detail` the notes on how each figure is measured."""
    from rich.text import Text

    view = view or View()
    out: list[RenderableType] = [config_block(r.roofline.report), Wrapped(_device_lines(r), indent=4)]
    for p in r.roofline.phases:
        what = f"{p.tokens:,} tokens" if p.name == "prefill" else f"one new token per sequence, {p.tokens:,} in all"
        out.append(_grid(f"{p.name}: {what}", tuple(g for g in r.gemms if g.phase == p.name), sweep=False))
    k = r.knee
    out.append(_grid(f"sweep: {k.stage} (M, {k.k:,}, {k.n:,}) across the predicted crossover", k.points, sweep=True))
    knee = Wrapped(_knee_lines(r), indent=4)
    if not view.detail:
        return [*out, hint("≥ time: the roofline's bound on the measured peak and bandwidth; measured: the median call; "
                           "--detail: how each figure is measured"), knee]  # fmt: skip
    note = ("≥ time is the roofline's bound, max(FLOPs / peak, bytes / bandwidth), with the peak and bandwidth measured above; "
            "measured, the median of the timed calls after a warm-up (a call of half a second or more that outlasts its share of the "
            "budget runs once, alone); achieved, the GEMM's FLOPs (compute-bound) or bytes (memory-bound) over that median, both rates "
            "in JSON; ÷ bound = bound / measured, 1 on the roofline. Each GEMM's calls rotate through copies of its operands (up to 64, "
            "a STREAM array's worth), so that they come from memory as a layer's weights would.")  # fmt: skip
    if any(g.achieved_over_bound > 1 for g in (*r.gemms, *k.points)):
        note += (" Above 1: faster than the bound — operands still in a cache, or the GEMM drew more bandwidth than the STREAM kernels; "
                 "the bound then says less than it should.")  # fmt: skip
    note += f" The knee is {k.definition}. Exact figures in -f json and -f csv."
    return [*out, Text(note, style="dim"), knee]
