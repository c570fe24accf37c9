"""The verifier: run the layer in NumPy with random weights and observe every predicted number.

Nothing here recomputes a formula from the core. Shapes are read off the arrays, parameters
off the weight arrays' sizes, bytes off `.nbytes`, matmul FLOPs off the operand shapes of
the products actually computed (and, independently, numpy.einsum_path's FLOP count), and
the peak memory off tracemalloc, to which NumPy reports its allocations. Only the
per-element cost of elementwise work is taken from `conventions.py`, because it is a
convention; the element counts it multiplies are observed. The forward pass itself is in
`numpy_ffn.py`.
"""

from __future__ import annotations

import math
import os
import time
import tracemalloc
from dataclasses import replace
from typing import Any

import numpy as np

from ffn_calc.checks import Check, VerifyRefused, VerifyReport
from ffn_calc.config import FFNConfig
from ffn_calc.conventions import FLOPS_PER_MAC
from ffn_calc.core import FFNReport, analyze
from ffn_calc.numpy_ffn import (
    LN_EPS,
    Observed,
    Params,
    Recorder,
    Silent,
    activation_values,
    ffn_as_conv1d,
    forward,
    layernorm,
    make_params,
    random_array,
)

# Block scratch (a few float64 blocks of numpy_ffn.BLOCK_ELEMENTS) plus interpreter noise.
SCRATCH_ALLOWANCE_BYTES = 2 << 20
PEAK_TOLERANCE = 0.10
MEMORY_SHARE = 0.8  # of the memory the OS reports available

NUMPY_DTYPES: dict[str, Any] = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
DTYPE_NOTES = {
    "bfloat16": "NumPy has no bfloat16: computed in float32, so the byte checks use 4 bytes "
    "per element (the bfloat16 figures are exactly half)",
    "int8": "NumPy has no int8 matmul that accumulates in int32 (int8 products overflow): "
    "computed in float32, so the byte checks use 4 bytes per element (int8 figures are a quarter)",
}
# Relative tolerance of value comparisons in each computed dtype.
RTOL = {"float64": 1e-9, "float32": 1e-4, "float16": 2e-2}


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo, else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def required_bytes(prediction: FFNReport) -> int:
    """What a verify run allocates at most: the predicted forward peak, the structural checks
    (a few passes over one sequence), and the scratch allowance."""
    one_seq = analyze(replace(prediction.config, batch=1))
    checks = one_seq.totals.weight_bytes + 4 * one_seq.peak.activation_bytes
    return max(prediction.totals.peak_bytes, checks) + SCRATCH_ALLOWANCE_BYTES


def _gib(n: int | float) -> str:
    return f"{n / 2**30:.2f} GiB"


def check_fits(prediction: FFNReport, limit_bytes: int | None) -> None:
    need = required_bytes(prediction)
    if limit_bytes is None:
        limit_bytes = int(available_memory_bytes() * MEMORY_SHARE)
        where = f"{MEMORY_SHARE:.0%} of the memory available"
    else:
        where = "the memory limit"
    if need > limit_bytes:
        t = prediction.totals
        raise VerifyRefused(
            f"verify would need {_gib(need)} (weights {_gib(t.weight_bytes)}, activations "
            f"{_gib(t.peak_bytes - t.weight_bytes)}) but {where} is {_gib(limit_bytes)}; "
            "use a smaller BATCH or SEQ_LEN, or a smaller dtype"
        )


# --- the checks ----------------------------------------------------------------------------


def _close(a: np.ndarray, b: np.ndarray, rtol: float) -> tuple[bool, float]:
    """Agreement relative to the scale of b; returns (ok, max abs difference)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = float(np.max(np.abs(a64 - b64))) if a.size else 0.0
    scale = float(np.max(np.abs(b64))) if b.size else 0.0
    return a.shape == b.shape and diff <= rtol * max(scale, 1.0), diff


def _reference_activation(kind: str, v: float) -> float:
    if kind == "relu":
        return max(0.0, v)
    if kind == "gelu":
        return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))
    if kind == "gelu_tanh":
        return 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))
    return v / (1.0 + math.exp(-v))


def _structural_checks(cfg: FFNConfig, p: Params, x: np.ndarray, rng: np.random.Generator, rtol: float) -> list[Check]:
    """Conv1d form, position-wise behaviour and the activation's formula, on the first sequence."""
    silent = Silent()
    one = replace(cfg, batch=1)
    x0 = x[:1]
    checks = []

    def row(name: str, ok: bool, diff: float) -> None:
        checks.append(Check("structure", name, "equal", f"max |Δ| {diff:.2e}", ok, "tolerance"))

    if not cfg.is_moe:
        ok, diff = _close(ffn_as_conv1d(one, p, x0), forward(silent, replace(one, norm="none"), p, x0), rtol)
        row("Conv1d(k=1) form = linear form", ok, diff)

    if cfg.expert_capacity is not None:
        checks.append(Check("structure", "position-wise", "no", "capacity buffers fill in token order", True, "info",
                            "which tokens an expert drops depends on their order"))
    else:
        out = forward(silent, one, p, x0)
        perm = rng.permutation(cfg.seq_len)
        ok, diff = _close(forward(silent, one, p, x0[:, perm]), out[:, perm], rtol)
        row("position-wise: permuted input → permuted output", ok, diff)
        if cfg.seq_len >= 2:
            i, j = (int(v) for v in rng.choice(cfg.seq_len, size=2, replace=False))
            twin = x0.copy()
            twin[0, j] = twin[0, i]
            y = forward(silent, one, p, twin)
            ok, diff = _close(y[0, j], y[0, i], rtol)
            row(f"equal tokens → equal outputs (positions {i}, {j})", ok, diff)

    act = cfg.base_activation
    samples = rng.standard_normal(64).astype(x.dtype)
    ours = activation_values(act, samples.astype(np.float64 if x.dtype == np.float64 else np.float32)).astype(x.dtype)
    expected = np.array([_reference_activation(act, float(v)) for v in samples])
    diff = float(np.max(np.abs(ours.astype(np.float64) - expected)))
    bound = 1e-6 + rtol * float(np.max(np.abs(expected)))
    checks.append(
        Check("structure", f"{act} matches its formula (math module, 64 samples)", f"|Δ| ≤ {bound:.1e}",
              f"max |Δ| {diff:.2e}", diff <= bound, "tolerance")
    )

    if cfg.norm != "none":
        # With γ = 1 and β = 0 each row comes out with mean 0 and variance v / (v + eps),
        # where v is the row's variance going in (≈ 1 unless v is as small as eps).
        rows = layernorm(silent, "layernorm", x0, p["ln_gamma"], p["ln_beta"]).reshape(-1, cfg.d_model)
        v = x0.reshape(-1, cfg.d_model).astype(np.float64).var(axis=1)
        got = rows.astype(np.float64)
        mean_err = float(np.max(np.abs(got.mean(axis=1))))
        var_err = float(np.max(np.abs(got.var(axis=1) - v / (v + LN_EPS))))
        tol = max(10 * rtol, 1e-6)
        checks.append(
            Check("structure", "LayerNorm rows: mean 0, variance v/(v + eps) (γ = 1, β = 0)", f"|Δ| ≤ {tol:.0e}",
                  f"mean {mean_err:.1e}, var {var_err:.1e}", mean_err <= tol and var_err <= tol, "tolerance")
        )
    return checks


def _grouped(matmuls: list[tuple[int, int, int]]) -> tuple[int, int, int] | None:
    """The products of one stage as one (M, K, N): rows summed over the experts' products."""
    if not matmuls or len({(k, n) for _, k, n in matmuls}) != 1:
        return matmuls[0] if matmuls else None
    return (sum(m for m, _, _ in matmuls), matmuls[0][1], matmuls[0][2])


def verify(cfg: FFNConfig, seed: int = 0, max_memory_bytes: int | None = None) -> VerifyReport:
    """Run the layer in NumPy and compare everything observed with the prediction.

    Raises VerifyRefused, before allocating anything, when the run would not fit."""
    computed = cfg.dtype if cfg.dtype in NUMPY_DTYPES else "float32"
    run_cfg = replace(cfg, dtype=computed)
    pred = analyze(run_cfg)
    check_fits(pred, max_memory_bytes)
    np_dtype = NUMPY_DTYPES[computed]
    rng = np.random.default_rng(seed)
    checks: list[Check] = []

    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        params = make_params(rng, run_cfg, np_dtype)
        x = random_array(rng, (cfg.batch, cfg.seq_len, cfg.d_model), np_dtype, 1.0)
        rec = Recorder()
        tracemalloc.reset_peak()
        start = time.perf_counter()
        out = forward(rec, run_cfg, params, x)
        seconds = time.perf_counter() - start
        _, observed_peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    del out

    def exact(group: str, name: str, predicted: object, observed: object) -> None:
        checks.append(Check(group, name, predicted, observed, predicted == observed))

    for stage in pred.stages:
        obs = rec.stages.get(stage.name, Observed())
        exact("shape", f"{stage.name} output shape", stage.output_shape, obs.shape)
        exact("memory", f"{stage.name} output bytes", stage.output_bytes, obs.nbytes)
        if stage.op == "input":
            continue
        observed_macs = sum(m * k * n for m, k, n in obs.matmuls)
        if stage.matmul:
            exact("flops", f"{stage.name} matmul (M, K, N)", stage.matmul, _grouped(obs.matmuls))
            exact("flops", f"{stage.name} MACs", stage.macs, observed_macs)
            einsum = sum(obs.einsum_flops)
            checks.append(
                Check("flops", f"{stage.name} matmul FLOPs (einsum_path, 4 s.f.)", stage.matmul_flops, f"{einsum:.4g}",
                      abs(einsum - stage.matmul_flops) <= 5e-4 * stage.matmul_flops, "tolerance")
            )
        exact("flops", f"{stage.name} FLOPs", stage.flops, FLOPS_PER_MAC * observed_macs + obs.elementwise_flops)

    exact("params", "weight tensors", tuple(sorted(t.name for t in pred.weights)), tuple(sorted(params)))
    for t in pred.weights:
        arr = params.get(t.name)
        exact("params", f"{t.name} {t.role} shape", t.shape, None if arr is None else tuple(arr.shape))
        exact("params", f"{t.name} parameters", t.elements, None if arr is None else arr.size)
        exact("memory", f"{t.name} bytes", t.bytes, None if arr is None else arr.nbytes)

    observed_macs = sum(m * k * n for o in rec.stages.values() for m, k, n in o.matmuls)
    observed_flops = FLOPS_PER_MAC * observed_macs + sum(o.elementwise_flops for o in rec.stages.values())
    totals = pred.totals
    exact("totals", "parameters", totals.params, sum(a.size for a in params.values()))
    exact("totals", "weight bytes", totals.weight_bytes, sum(a.nbytes for a in params.values()))
    exact("totals", "MACs", totals.macs, observed_macs)
    exact("totals", "FLOPs", totals.flops, observed_flops)
    allowance = max(PEAK_TOLERANCE * totals.peak_bytes, SCRATCH_ALLOWANCE_BYTES)
    checks.append(
        Check("totals", f"peak bytes (tracemalloc; within {PEAK_TOLERANCE:.0%} or 2 MiB scratch)", totals.peak_bytes,
              observed_peak, abs(observed_peak - totals.peak_bytes) <= allowance, "tolerance",
              f"{(observed_peak - totals.peak_bytes) / totals.peak_bytes:+.2%}")
    )

    checks.extend(_structural_checks(run_cfg, params, x, rng, RTOL[computed]))
    if rec.expert_rows is not None:
        rows = rec.expert_rows
        balanced = f"{cfg.tokens * cfg.top_k / cfg.experts:g} each if balanced"
        checks.append(Check("structure", "rows each expert computed (min / mean / max)", balanced,
                            f"{min(rows)} / {sum(rows) / len(rows):g} / {max(rows)}", True, "info"))
    if rec.relu_zero_fraction is not None:
        checks.append(Check("structure", "fraction of zeros after ReLU", "", f"{rec.relu_zero_fraction:.4f}", True, "info"))

    rate = observed_flops / seconds / 1e9 if seconds > 0 else float("inf")
    return VerifyReport(cfg, computed, DTYPE_NOTES.get(cfg.dtype, ""), pred, tuple(checks), seconds, rate, seed)
