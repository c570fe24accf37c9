"""Measure a device and time a layer's GEMMs on it, within a time budget and the free memory.

In order:
1. refuse what cannot be measured honestly (a dtype with no fast GEMM on the device, packed
   weights, routed experts) and GEMMs whose operands do not fit in half the free memory —
   before anything is allocated;
2. bandwidth: the STREAM copy and triad (on the CPU, on one thread and split over the BLAS's
   threads) over three arrays of 4 × the last-level cache each
   (at least 64 MiB, at most 256 MiB and a sixth of the free memory), the best call of each;
3. peak: square GEMMs of 256, 512, 1024, … rows (the best of at least 3 calls each), doubling
   past 1024 until one call takes an eighth of this step's budget, then the layer's own GEMMs at their prefill and decode shapes; the peak is
   the best rate of any of those calls (so no GEMM timed before the roofline is drawn beats it);
4. the roofline drawn with that peak and bandwidth (model/roofline.py, no datasheet);
5. the knee: the decode phase's first GEMM swept in M across its predicted crossover (knee.py).
Every GEMM rotates through enough operand sets to fill a STREAM array, at most 64, so that a
small GEMM's operands come from memory as a layer's would, not from the caches.

The budget (`budget_seconds`) is shared out: a fifth to bandwidth, a quarter to the square
GEMMs, three tenths to the layer's GEMMs and a quarter to the sweep; each timing's repeats are
fitted into its share (timing.py), and a GEMM that alone outlasts its share runs once.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

from ffn_calc.errors import ConfigError
from ffn_calc.measure.devices import Device, pick_device
from ffn_calc.measure.knee import measured_knee, sweep_rows
from ffn_calc.measure.report import GemmRate, GemmTiming, Knee, MeasuredDevice, MeasuredRoofline, StreamRate, Timed
from ffn_calc.measure.timing import Timing, time_calls
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.roofline import GPU, GemmRoof, roofline

DEFAULT_BUDGET = 5.0  # seconds for the repeats; a layer's big prefill GEMMs add their own single calls
MIB = 2**20
STREAM_MIN, STREAM_MAX = 64 * MIB, 256 * MIB
CACHE_MULTIPLE = 4  # STREAM arrays this many times the last-level cache, within the bounds above
MAX_COPIES = 64
FIRST_SQUARE, LARGE_SQUARE, MAX_SQUARE = 256, 1024, 16384
SQUARE_REPEATS = 3  # the least calls of each square GEMM (the best of several), when one call fits its share
SHARES = {"stream": 0.2, "square": 0.25, "layer": 0.3, "sweep": 0.25}

Progress = Callable[[str], object]


def _timed(t: Timing) -> Timed:
    return Timed(t.calls, t.warmups, t.median, t.best)


def _refuse(cfg: FFNConfig, device: Device) -> None:
    if cfg.is_moe:
        raise ConfigError("--measure", "times dense GEMMs; a mixture-of-experts layer's routed GEMMs are not measured — drop --measure")
    if cfg.weight_packing is not None:
        raise ConfigError("--measure", f"{cfg.weight_dtype} weights have no GEMM here to time; drop --weight-dtype")
    reason = device.refusal(cfg.dtype)
    if reason:
        raise ConfigError("--measure", reason)


def _gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


def _operand_bytes(mkn: tuple[int, int, int], nb: int) -> int:
    m, k, n = mkn
    return nb * (m * k + k * n + m * n)


def _copies(operands: int, stream_bytes: int, limit: int) -> int:
    """Operand sets to rotate through: enough to fill a STREAM array, at most MAX_COPIES, within `limit`."""
    return max(1, min(MAX_COPIES, math.ceil(stream_bytes / operands), limit // operands))


def _shapes(cfg: FFNConfig) -> list[tuple[str, GemmRoof]]:
    """The layer's GEMMs, prefill's then decode's (their shapes do not depend on the device)."""
    placeholder = GPU("placeholder", {cfg.dtype: 1.0}, 1.0, "")
    return [(p.name, g) for p in roofline(cfg, placeholder).phases for g in p.gemms]


def _stream(device: Device, array_bytes: int, budget: float) -> tuple[StreamRate, ...]:
    kernels = device.stream(array_bytes)
    rates = []
    for kernel in kernels:
        t = time_calls(kernel.run, device.clock, budget / len(kernels))
        rates.append(StreamRate(kernel.name, kernel.formula, kernel.bytes_per_call, _timed(t), kernel.bytes_per_call / t.best))
    del kernels
    device.release()
    return tuple(rates)


def _gemm(device: Device, mkn: tuple[int, int, int], dtype: str, copies: int, budget: float, least: int = 1) -> Timing:
    call = device.gemm(*mkn, dtype, copies)
    t = time_calls(call, device.clock, budget, min_repeats=least)
    del call
    device.release()
    return t


def _squares(device: Device, dtype: str, nb: int, budget: float, limit: int) -> list[GemmRate]:
    rates: list[GemmRate] = []
    started = time.perf_counter()
    n = FIRST_SQUARE
    while 3 * n * n * nb <= limit:
        mkn = (n, n, n)
        t = _gemm(device, mkn, dtype, 1, budget / 3, SQUARE_REPEATS)
        rates.append(GemmRate("square", mkn, 2 * n**3, _timed(t), 2 * n**3 / t.best))
        if n >= LARGE_SQUARE and (t.best >= budget / 8 or time.perf_counter() - started >= budget) or n >= MAX_SQUARE:
            break
        n *= 2
    return rates


def _knee(device: Device, cfg: FFNConfig, gpu: GPU, budget: float, array_bytes: int, limit: int, say: Progress) -> Knee:
    """The decode phase's first GEMM swept in M across its predicted crossover (knee.py)."""
    nb = cfg.dtype_bytes
    decode = roofline(cfg, gpu).phases[-1].gemms[0]
    _, k, n = decode.mkn
    most = max(1, (limit - nb * k * n) // (nb * (k + n)))  # rows whose operands still fit (in one set)
    rows = sweep_rows(decode.ridge_tokens, most)
    say(f"the sweep of M over {rows[0]}…{rows[-1]}")
    points = []
    for m in rows:
        g = roofline(replace(cfg, batch=m, seq_len=1), gpu).phases[-1].gemms[0]  # the model's own bound at M = m
        copies = _copies(_operand_bytes(g.mkn, nb), array_bytes, limit)
        t = _gemm(device, g.mkn, cfg.dtype, copies, budget / len(rows))
        points.append(GemmTiming("sweep", g.stage, g.mkn, g.flops, g.bytes, g.bound, g.seconds, t.median, _timed(t), copies))
    estimate = measured_knee([(p.mkn[0], p.measured_seconds) for p in points])
    bounds = measured_knee([(p.mkn[0], p.bound_seconds) for p in points])
    return Knee(decode.stage, k, n, decode.ridge_tokens, estimate, bounds, tuple(points))


def measure_roofline(
    cfg: FFNConfig,
    *,
    device: str | Device = "auto",
    budget_seconds: float = DEFAULT_BUDGET,
    stream_array_bytes: int | None = None,
    progress: Progress | None = None,
) -> MeasuredRoofline:
    """Measure `device` (auto: a CUDA device when PyTorch sees one, else the CPU; or a Device
    already made, as tests pass one) and time the layer's GEMMs on it; `stream_array_bytes`
    overrides the STREAM arrays' size (tests)."""
    if not (budget_seconds > 0 and math.isfinite(budget_seconds)):
        raise ConfigError("--measure-seconds", f"must be a positive number of seconds, got {budget_seconds}")
    say = progress or (lambda what: None)
    dev = pick_device(device) if isinstance(device, str) else device
    _refuse(cfg, dev)
    nb = cfg.dtype_bytes
    limit = dev.available_bytes() // 2
    shapes = _shapes(cfg)
    for phase, g in shapes:
        need = _operand_bytes(g.mkn, nb)
        if need > limit:
            raise ConfigError("--measure", f"the {phase} GEMM {g.stage} {g.mkn} needs {_gib(need)} of operands and half the free "
                              f"memory is {_gib(limit)}; measure fewer tokens (BATCH × SEQ_LEN) or a narrower layer")  # fmt: skip
    cache = dev.cache_bytes()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    array_bytes = stream_array_bytes or min(max(STREAM_MIN, CACHE_MULTIPLE * (cache or 0)), STREAM_MAX, limit // 3)
    started = time.perf_counter()
    measured_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017 (the spelling mypy's 3.11 target reads)

    say("memory bandwidth (STREAM copy and triad)")
    stream = _stream(dev, array_bytes, budget_seconds * SHARES["stream"])
    say("matmul peak (square GEMMs)")
    rates = _squares(dev, cfg.dtype, nb, budget_seconds * SHARES["square"], limit)
    say("the layer's GEMMs")
    layer: list[tuple[Timing, int]] = []
    for phase, g in shapes:
        copies = _copies(_operand_bytes(g.mkn, nb), array_bytes, limit)
        t = _gemm(dev, g.mkn, cfg.dtype, copies, budget_seconds * SHARES["layer"] / len(shapes))
        layer.append((t, copies))
        rates.append(GemmRate(f"{phase} {g.stage}", g.mkn, g.flops, _timed(t), g.flops / t.best))
    best = max(rates, key=lambda r: r.best_flops_per_s)
    fastest = max(stream, key=lambda s: s.best_bytes_per_s)
    measured = MeasuredDevice(dev.kind, dev.name, dev.library, dev.threads, cfg.dtype, best.best_flops_per_s, fastest.best_bytes_per_s,
                              f"{best.what} {best.mkn}", tuple(rates), stream, array_bytes, cache, measured_at, load)  # fmt: skip
    gpu = measured.gpu()
    roof = roofline(cfg, gpu)
    gemms = tuple(
        GemmTiming(p.name, g.stage, g.mkn, g.flops, g.bytes, g.bound, g.seconds, t.median, _timed(t), copies)
        for (p, g), (t, copies) in zip(((p, g) for p in roof.phases for g in p.gemms), layer, strict=True)
    )

    knee = _knee(dev, cfg, gpu, budget_seconds * SHARES["sweep"], array_bytes, limit, say)
    return MeasuredRoofline(roof, measured, gemms, knee, budget_seconds, time.perf_counter() - started)
