"""The NumPy verifier: run the FFN with random weights and observe every predicted number.

Nothing here recomputes a formula from the core. Shapes are read off the arrays, parameters
off the weight arrays' sizes, bytes off `.nbytes`, matmul FLOPs off the operand shapes of
the products actually computed (and, independently, numpy.einsum_path's FLOP count), and
the peak memory off tracemalloc, to which NumPy reports its allocations. Only the
per-element cost of elementwise work is taken from `conventions.py`, because it is a
convention; the element counts it multiplies are observed.

The forward pass is written out by hand, out of place, the way an eager framework runs
inference: each stage allocates its output, and a tensor is dropped as soon as nothing
later needs it. Elementwise work runs in blocks of BLOCK_ELEMENTS so that its scratch stays
bounded (SCRATCH_ALLOWANCE_BYTES) whatever the size of the layer.
"""

from __future__ import annotations

import math
import os
import re
import time
import tracemalloc
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ffn_calc.conventions import (
    ACTIVATION_FLOPS_PER_ELEMENT,
    BIAS_ADD_FLOPS_PER_ELEMENT,
    FLOPS_PER_MAC,
    RESIDUAL_ADD_FLOPS_PER_ELEMENT,
    layernorm_flops,
)
from ffn_calc.checks import Check, VerifyRefused, VerifyReport
from ffn_calc.core import FFNConfig, FFNReport, analyze

BLOCK_ELEMENTS = 1 << 14
# Block scratch (a few float64 blocks of BLOCK_ELEMENTS) plus interpreter noise.
SCRATCH_ALLOWANCE_BYTES = 2 << 20
PEAK_TOLERANCE = 0.10
MEMORY_SHARE = 0.8  # of the memory the OS reports available
LN_EPS = 1e-5

NUMPY_DTYPES: dict[str, Any] = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
DTYPE_NOTES = {
    "bfloat16": "NumPy has no bfloat16: computed in float32, so the byte checks use 4 bytes "
    "per element (the bfloat16 figures are exactly half)",
    "int8": "NumPy has no int8 matmul that accumulates in int32 (int8 products overflow): "
    "computed in float32, so the byte checks use 4 bytes per element (int8 figures are a quarter)",
}
# Relative tolerance of value comparisons in each computed dtype.
RTOL = {"float64": 1e-9, "float32": 1e-4, "float16": 2e-2}


@dataclass
class _Observed:
    shape: tuple[int, ...] = ()
    nbytes: int = 0
    matmuls: list[tuple[int, int, int]] = field(default_factory=list)
    einsum_flops: list[float] = field(default_factory=list)
    elementwise_flops: int = 0


class Recorder:
    """Collects what the forward pass really did, stage by stage."""

    def __init__(self) -> None:
        self.stages: dict[str, _Observed] = {}
        self.relu_zero_fraction: float | None = None

    def stage(self, name: str) -> _Observed:
        return self.stages.setdefault(name, _Observed())

    def output(self, name: str, array: np.ndarray) -> np.ndarray:
        obs = self.stage(name)
        obs.shape, obs.nbytes = tuple(array.shape), array.nbytes
        return array

    def matmul(self, name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        obs = self.stage(name)
        (m, k), (k2, n) = a.shape, b.shape
        assert k == k2
        obs.matmuls.append((m, k, n))
        obs.einsum_flops.append(_einsum_path_flops(a, b))
        return np.matmul(a, b)

    def elementwise(self, name: str, flops: int) -> None:
        self.stage(name).elementwise_flops += flops

    def zeros_after_relu(self, a: np.ndarray) -> None:
        self.relu_zero_fraction = 1.0 - np.count_nonzero(a) / a.size


class _Silent(Recorder):
    """For the extra forward passes of the structural checks: observes nothing."""

    def output(self, name: str, array: np.ndarray) -> np.ndarray:
        return array

    def matmul(self, name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.matmul(a, b)

    def elementwise(self, name: str, flops: int) -> None:
        pass

    def zeros_after_relu(self, a: np.ndarray) -> None:
        pass


_NAIVE_FLOPS = re.compile(r"Naive FLOP count:\s*([0-9.eE+-]+)")


def _einsum_path_flops(a: np.ndarray, b: np.ndarray) -> float:
    """numpy.einsum_path's own FLOP count for a·b (printed to 4 significant digits)."""
    _, text = np.einsum_path("ij,jk->ik", a, b, optimize=False)
    match = _NAIVE_FLOPS.search(text)
    return float(match.group(1)) if match else float("nan")


# --- the forward pass -------------------------------------------------------------------


def _compute_type(dtype: np.dtype) -> Any:
    """Elementwise math runs in at least float32 (float16 blocks are upcast, then stored)."""
    return np.float64 if dtype == np.float64 else np.float32


def _blocks(total: int, step: int) -> Any:
    for start in range(0, total, step):
        yield start, min(total, start + step)


def erf(x: np.ndarray) -> np.ndarray:
    """erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7); NumPy has no erf."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def _activation_block(kind: str, h: np.ndarray) -> np.ndarray:
    if kind == "gelu":
        return 0.5 * h * (1.0 + erf(h * (1.0 / math.sqrt(2.0))))
    if kind == "gelu_tanh":
        return 0.5 * h * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h**3)))
    if kind == "silu":
        return h / (1.0 + np.exp(-h))
    raise ValueError(kind)


def activation(rec: Recorder, kind: str, h: np.ndarray) -> np.ndarray:
    out = np.empty_like(h)
    if kind == "relu":
        np.maximum(h, 0, out=out)
    else:
        src, dst, ct = h.reshape(-1), out.reshape(-1), _compute_type(h.dtype)
        for i, j in _blocks(src.size, BLOCK_ELEMENTS):
            dst[i:j] = _activation_block(kind, src[i:j].astype(ct))
    rec.elementwise("activation", h.size * ACTIVATION_FLOPS_PER_ELEMENT[kind])
    return rec.output("activation", out)


def linear(rec: Recorder, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """x·W + b as one output buffer (the bias is added in place, as a fused addmm does)."""
    lead = x.shape[:-1]
    y = rec.matmul(name, x.reshape(-1, x.shape[-1]), w)
    if b is not None:
        np.add(y, b, out=y)
        rec.elementwise(name, y.size * BIAS_ADD_FLOPS_PER_ELEMENT)
    return rec.output(name, y.reshape(*lead, w.shape[1]))


def layernorm(rec: Recorder, name: str, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    width = x.shape[-1]
    src, dst, ct = x.reshape(-1, width), out.reshape(-1, width), _compute_type(x.dtype)
    for i, j in _blocks(src.shape[0], max(1, BLOCK_ELEMENTS // width)):
        blk = src[i:j].astype(ct)
        blk -= blk.mean(axis=1, keepdims=True)
        blk /= np.sqrt((blk * blk).mean(axis=1, keepdims=True) + LN_EPS)
        blk *= gamma
        blk += beta
        dst[i:j] = blk
    rec.elementwise(name, layernorm_flops(src.shape[0], width))
    return rec.output(name, out)


def residual(rec: Recorder, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.add(x, y)
    rec.elementwise("residual", out.size * RESIDUAL_ADD_FLOPS_PER_ELEMENT)
    return rec.output("residual", out)


def forward(rec: Recorder, cfg: FFNConfig, p: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The whole layer: bare act(x·W1 + b1)·W2 + b2, pre-LN x + FFN(LN(x)), or post-LN
    LN(x + FFN(x)). Each intermediate is deleted right after its last use."""
    rec.output("input", x)
    src = layernorm(rec, "layernorm", x, p["ln_gamma"], p["ln_beta"]) if cfg.norm == "pre" else x
    h = linear(rec, "linear1", src, p["W1"], p.get("b1"))
    del src
    a = activation(rec, cfg.activation, h)
    del h
    if cfg.activation == "relu":
        rec.zeros_after_relu(a)
    y = linear(rec, "linear2", a, p["W2"], p.get("b2"))
    del a
    if cfg.norm == "none":
        return y
    r = residual(rec, x, y)
    del y
    if cfg.norm == "post":
        r = layernorm(rec, "layernorm", r, p["ln_gamma"], p["ln_beta"])
    return r


def conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """A general Conv1d, stride 1, no padding: x (B, C_in, L), w (C_out, C_in, k) → (B, C_out, L−k+1)."""
    k = w.shape[2]
    length = x.shape[2] - k + 1
    out = np.zeros((x.shape[0], w.shape[0], length), dtype=x.dtype)
    for tap in range(k):  # out[b] += W[:, :, tap] · x[b, :, tap : tap + length]
        out += np.matmul(w[:, :, tap], x[:, :, tap : tap + length])
    if b is not None:
        out += b[None, :, None]
    return out


def ffn_as_conv1d(cfg: FFNConfig, p: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The FFN core as Conv1d(d_model→d_ff, k=1) → act → Conv1d(d_ff→d_model, k=1), channels first."""
    silent = _Silent()
    xc = np.ascontiguousarray(x.transpose(0, 2, 1))
    h = conv1d(xc, p["W1"].T[:, :, None], p.get("b1"))
    a = activation(silent, cfg.activation, h)
    y = conv1d(a, p["W2"].T[:, :, None], p.get("b2"))
    return np.ascontiguousarray(y.transpose(0, 2, 1))


# --- weights and memory ------------------------------------------------------------------


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, scale: float) -> np.ndarray:
    """Normal(0, scale²) made in `dtype` directly (float16 in blocks), with no full-size copy."""
    if dtype in (np.float32, np.float64):
        out = rng.standard_normal(shape, dtype=dtype)
        out *= scale
        return out
    out = np.empty(shape, dtype)
    flat = out.reshape(-1)
    for i, j in _blocks(flat.size, BLOCK_ELEMENTS):
        flat[i:j] = rng.standard_normal(j - i, dtype=np.float32) * scale
    return out


def make_params(rng: np.random.Generator, cfg: FFNConfig, dtype: Any) -> dict[str, np.ndarray]:
    """The layer's weights, built from the config alone (never from the core's prediction, so a
    wrong predicted shape is caught): matrices scaled by 1/√fan_in so activations stay O(1),
    biases likewise, LayerNorm γ = 1 and β = 0 as frameworks initialise them."""
    d, f = cfg.d_model, cfg.d_ff
    params = {
        "W1": random_array(rng, (d, f), dtype, 1.0 / math.sqrt(d)),
        "W2": random_array(rng, (f, d), dtype, 1.0 / math.sqrt(f)),
    }
    if cfg.bias:
        params["b1"] = random_array(rng, (f,), dtype, 1.0 / math.sqrt(d))
        params["b2"] = random_array(rng, (d,), dtype, 1.0 / math.sqrt(f))
    if cfg.norm != "none":
        params["ln_gamma"] = np.ones(d, dtype)
        params["ln_beta"] = np.zeros(d, dtype)
    return params


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


def _structural_checks(
    cfg: FFNConfig, p: dict[str, np.ndarray], x: np.ndarray, rng: np.random.Generator, rtol: float
) -> list[Check]:
    """Conv1d form, position-wise behaviour and the activation's formula, on the first sequence."""
    silent = _Silent()
    x0 = x[:1]
    checks = []

    bare = replace(cfg, norm="none")
    ok, diff = _close(ffn_as_conv1d(cfg, p, x0), forward(silent, bare, p, x0), rtol)
    checks.append(Check("structure", "Conv1d(k=1) form = linear form", "equal", f"max |Δ| {diff:.2e}", ok, "tolerance"))

    out = forward(silent, cfg, p, x0)
    perm = rng.permutation(cfg.seq_len)
    ok, diff = _close(forward(silent, cfg, p, x0[:, perm]), out[:, perm], rtol)
    checks.append(
        Check("structure", "position-wise: permuted input → permuted output", "equal", f"max |Δ| {diff:.2e}", ok, "tolerance")
    )

    if cfg.seq_len >= 2:
        i, j = (int(v) for v in rng.choice(cfg.seq_len, size=2, replace=False))
        twin = x0.copy()
        twin[0, j] = twin[0, i]
        y = forward(silent, cfg, p, twin)
        ok, diff = _close(y[0, j], y[0, i], rtol)
        checks.append(
            Check("structure", f"equal tokens → equal outputs (positions {i}, {j})", "equal", f"max |Δ| {diff:.2e}", ok, "tolerance")
        )

    h = linear(silent, "linear1", x0, p["W1"], p.get("b1")).reshape(-1)
    a = activation(silent, cfg.activation, h.reshape(1, 1, -1)).reshape(-1)
    idx = rng.choice(h.size, size=min(64, h.size), replace=False)
    expected = np.array([_reference_activation(cfg.activation, float(h[k])) for k in idx])
    diff = float(np.max(np.abs(a[idx].astype(np.float64) - expected)))
    bound = 1e-6 + rtol * float(np.max(np.abs(expected)) if expected.size else 0.0)
    checks.append(
        Check("structure", f"{cfg.activation} matches its formula (math module, 64 samples)", f"|Δ| ≤ {bound:.1e}", f"max |Δ| {diff:.2e}", diff <= bound, "tolerance")
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
        obs = rec.stages.get(stage.name, _Observed())
        exact("shape", f"{stage.name} output shape", stage.output_shape, obs.shape)
        exact("memory", f"{stage.name} output bytes", stage.output_bytes, obs.nbytes)
        if stage.op == "input":
            continue
        observed_macs = sum(m * k * n for m, k, n in obs.matmuls)
        if stage.matmul:
            exact("flops", f"{stage.name} matmul", stage.matmul, obs.matmuls[0] if obs.matmuls else None)
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
    if rec.relu_zero_fraction is not None:
        checks.append(Check("structure", "fraction of zeros after ReLU", "", f"{rec.relu_zero_fraction:.4f}", True, "info"))

    rate = observed_flops / seconds / 1e9 if seconds > 0 else float("inf")
    return VerifyReport(cfg, computed, DTYPE_NOTES.get(cfg.dtype, ""), pred, tuple(checks), seconds, rate, seed)
