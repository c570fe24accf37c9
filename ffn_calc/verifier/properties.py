"""Properties of the layer checked on a sample of tokens of the run, never on further full
passes: the sampled tokens run alone give the outputs the main pass gave them; permuting them
permutes the outputs and two equal tokens give equal outputs (position-wise); the Conv1d(k=1)
form equals the linear one; the activation kernel matches its formula; the norm normalises
each row; and the output agrees with an independent float64 reference (reference.py)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ffn_calc.model import structure as names
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.norms import norm_type
from ffn_calc.verifier import reference
from ffn_calc.verifier.forward import Params, ffn_as_conv1d, forward, norm, route_tokens
from ffn_calc.verifier.kernels import NORM_EPS, activation_values, kernel, norm_kernel
from ffn_calc.verifier.observe import Sample
from ffn_calc.verifier.packed import PackedWeight
from ffn_calc.verifier.recorder import Silent
from ffn_calc.verifier.report import Check

# Stored fraction bits of the ml_dtypes types (a test holds them to ml_dtypes.finfo), so that
# float32 and float16 runs never import ml_dtypes.
FRACTION_BITS = {"bfloat16": 7, "float8_e4m3fn": 3, "float8_e5m2": 2}


def eps(dtype: str) -> float:
    """The gap between 1 and the next number of `dtype`: 2^-fraction bits."""
    if dtype in FRACTION_BITS:
        return 2.0 ** -FRACTION_BITS[dtype]
    return float(np.finfo(dtype).eps)


# Relative tolerance of comparisons between two runs of the fast path in each computed dtype.
RTOL = {"float64": 1e-9, "float32": 1e-4, "float16": 2e-2, **{d: 4 * eps(d) for d in ("bfloat16", "float8_e4m3fn", "float8_e5m2")}}
# A token's k-th and (k+1)-th router logits closer than this many eps (× max(1, |logit|))
# count as a near-tie that rounding may break either way.
ROUTING_MARGIN = 16
# What each computed dtype accumulates products in (float16 products run through float32 BLAS).
ACCUMULATE = {"float64": "float64", **dict.fromkeys(("float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2"), "float32")}


def _close(a: np.ndarray, b: np.ndarray, rtol: float) -> tuple[bool, float]:
    """Agreement relative to the scale of b; returns (ok, max abs difference)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = float(np.max(np.abs(a64 - b64))) if a.size else 0.0
    scale = float(np.max(np.abs(b64))) if b.size else 0.0
    return a.shape == b.shape and diff <= rtol * max(scale, 1.0), diff


def reference_tolerance(cfg: FFNConfig) -> float:
    """The fast path's allowed distance from the float64 reference, relative to max(1, the
    largest |output|): 16·u for the roundings to the storage dtype (each stored tensor is
    rounded once, about half a dozen on the way to the output) plus 8·√K·u_acc for the
    accumulation of the longest dot product (K terms summed in the accumulation dtype), u
    being the unit roundoff (eps / 2), plus 16 × the activation kernel's own approximation
    error (GELU's erf: 1.5e-7). float32: 5.1e-5 at K = 11,008; float16: 7.9e-3."""
    u = eps(cfg.dtype) / 2
    u_acc = eps(ACCUMULATE[cfg.dtype]) / 2
    widest = max(cfg.d_model, cfg.d_ff * max(1, cfg.shared_experts))
    return 16 * u + 8 * math.sqrt(widest) * u_acc + 16 * kernel(cfg.base_activation).approx_error


def structural_checks(cfg: FFNConfig, p: Params, sample: Sample, rng: np.random.Generator, rtol: float) -> list[Check]:
    """Every property on the sampled tokens: one extra pass of 3 × (sample) tokens, the
    Conv1d form on the sample, the activation on 64 numbers, the norm on the sample's rows,
    and the reference on the sample."""
    silent = Silent()
    xs, m = sample.inputs, sample.inputs.shape[0]
    one = replace(cfg, batch=1, seq_len=m)
    checks = []

    def row(name: str, ok: bool, diff: float) -> None:
        checks.append(Check("structure", name, "equal", f"max |Δ| {diff:.2e}", ok, "tolerance", f"on {m} sampled tokens"))

    if cfg.weight_packing is not None:
        checks.append(Check("structure", "Conv1d(k=1) form = linear form", "equal", "not run", True, "info",
                            "packed weights are multiplied by the packed product only"))  # fmt: skip
    elif not cfg.is_moe:
        # The equivalence does not depend on the width: it runs on the leading CONV_D_FF hidden
        # units (all of them on a layer no wider), so it costs no pass over the whole weights.
        narrow, q = hidden_slice(one, p, CONV_D_FF)
        ok, diff = _close(ffn_as_conv1d(narrow, q, xs[None]), forward(silent, replace(narrow, norm="none"), q, xs[None]), rtol)
        width = "" if narrow.d_ff == cfg.d_ff else f", on the first {narrow.d_ff} of {cfg.d_ff} hidden units"
        row(f"Conv1d(k=1) form = linear form{width}", ok, diff)

    capacity = cfg.expert_capacity is not None
    clear = np.ones(m, bool)
    if cfg.is_moe and not capacity:
        clear = _clear_routing(cfg, p, xs, ROUTING_MARGIN * eps(cfg.dtype))
    if capacity:
        checks.append(
            Check("structure", "position-wise", "no", "capacity buffers fill in token order", True, "info",
                  "which tokens an expert drops depends on their order")
        )  # fmt: skip
    else:
        # One pass over three sequences: the sample, the sample permuted, the sample with
        # token j replaced by token i.
        perm = rng.permutation(m)
        twin = xs.copy()
        i = int(rng.choice(np.flatnonzero(clear))) if clear.any() else 0
        j = int(rng.choice([t for t in range(m) if t != i])) if m >= 2 else 0
        twin[j] = twin[i]
        y = forward(silent, replace(one, batch=3), p, np.stack([xs, xs[perm], twin]))
        # (rows on a near-tie in routing may go either way by rounding: compared only when clear)
        ok, diff = _close(y[0][clear], sample.outputs[clear], rtol)
        row("sampled tokens run alone → the outputs the whole pass gave them", ok, diff)
        ok, diff = _close(y[1][clear[perm]], y[0][perm][clear[perm]], rtol)
        row("position-wise: permuted input → permuted output", ok, diff)
        if m >= 2:
            ok, diff = _close(y[2][j], y[2][i], rtol)
            row("equal tokens → equal outputs", ok, diff)

    checks.append(_activation_check(cfg, rng, xs.dtype, rtol))
    if cfg.norm != "none":
        checks += _norm_checks(cfg, p, xs, rng, rtol)
    # The reference multiplies the dequantized weights (float64), never the packed product.
    dequantized = {k: (_dequantized(v) if isinstance(v, PackedWeight) else v) for k, v in p.items()}
    checks.append(reference_check(cfg, dequantized, sample, clear))
    return checks


CONV_D_FF = 256  # hidden units the Conv1d form is checked on


def hidden_slice(cfg: FFNConfig, p: Params, width: int) -> tuple[FFNConfig, Params]:
    """The dense layer cut to its first `width` hidden units: the first linears' leading columns
    (each half of a fused gate_up), the second linear's leading rows; the rest as it is."""
    f = cfg.d_ff
    if f <= width:
        return cfg, p
    *first, last = names.linears(cfg.is_glu, cfg.fused)
    q = dict(p)
    for spec in first:
        w = p[spec.weight]
        q[spec.weight] = np.concatenate([w[:, :width], w[:, f : f + width]], axis=1) if spec.fused else np.ascontiguousarray(w[:, :width])
        if spec.bias in p:
            b = p[spec.bias]
            q[spec.bias] = np.concatenate([b[:width], b[f : f + width]]) if spec.fused else b[:width].copy()
    q[last.weight] = np.ascontiguousarray(p[last.weight][:width])
    return replace(cfg, d_ff=width), q


def _dequantized(w: PackedWeight) -> np.ndarray:
    """A packed weight (or expert stack) as float64, by reference.dequantize from its stored arrays."""
    if w.ndim == 3:
        return np.stack([_dequantized(w[e]) for e in range(w.shape[0])])
    k, n = w.shape
    return reference.dequantize(w.format, w.arrays, k, n, w.group)


def _activation_check(cfg: FFNConfig, rng: np.random.Generator, dtype: np.dtype, rtol: float) -> Check:
    """The kernel against its formula (math module), both in float64 on 64 samples of scale 2,
    to the kernel's own approximation error plus float64 rounding: a constant changed in its
    fourth digit moves the kernel by ~1e-6 and is seen (the storage dtype's rounding is the
    reference check's to judge)."""
    act = cfg.base_activation
    samples = 2.0 * rng.standard_normal(64)
    ours = activation_values(act, samples)
    expected = np.array([kernel(act).reference(float(v)) for v in samples])
    diff = float(np.max(np.abs(ours - expected)))
    scale = max(1.0, float(np.max(np.abs(samples))), float(np.max(np.abs(expected))))  # GELU's erf error is scaled by h/2
    bound = (kernel(act).approx_error + 64 * float(np.finfo(np.float64).eps)) * scale
    return Check("structure", f"{act} matches its formula (math module, 64 samples, float64)", f"|Δ| ≤ {bound:.1e}", f"max |Δ| {diff:.2e}",
                 diff <= bound, "tolerance")  # fmt: skip


def _norm_checks(cfg: FFNConfig, p: Params, xs: np.ndarray, rng: np.random.Generator, rtol: float) -> list[Check]:
    """With the norm's affine taken back out (its kernel record's `undo`), each sampled row comes
    out with mean 0 and variance v / (v + eps) for a norm that centres (v its variance going in),
    mean square v / (v + eps) otherwise (v its mean square); a norm its kernel record says could be
    mistaken for another on such rows also against its formula (the math module) on rows with a
    clear mean (RMSNorm, where a LayerNorm without β would differ)."""
    silent, d = Silent(), cfg.d_model
    entry, record = norm_type(cfg.norm_type), norm_kernel(cfg.norm_type)
    tol = max(10 * rtol, 1e-6)
    got = norm(silent, cfg.norm_type, xs[None], p).reshape(-1, d).astype(np.float64)
    x64 = xs.astype(np.float64)
    unit = record.undo(got, p)
    weights = ", ".join(("γ", "β")[: len(entry.weights)])
    random = f" (random {weights})" if weights else ""
    if record.centred:
        v = x64.var(axis=1)
        mean_err = float(np.max(np.abs(unit.mean(axis=1))))
        var_err = float(np.max(np.abs(unit.var(axis=1) - v / (v + NORM_EPS))))
        checks = [Check("structure", f"{entry.label} rows: {record.undone} has mean 0, variance v/(v + eps){random}", f"|Δ| ≤ {tol:.0e}",
                        f"mean {mean_err:.1e}, var {var_err:.1e}", mean_err <= tol and var_err <= tol, "tolerance")]  # fmt: skip
    else:
        v = np.square(x64).mean(axis=1)
        ms_err = float(np.max(np.abs(np.square(unit).mean(axis=1) - v / (v + NORM_EPS))))
        checks = [Check("structure", f"{entry.label} rows: {record.undone} has mean square v/(v + eps){random}", f"|Δ| ≤ {tol:.0e}",
                        f"{ms_err:.1e}", ms_err <= tol, "tolerance")]  # fmt: skip
    if record.formula_rows_mean is not None:
        rows = (rng.standard_normal((4, d)) + record.formula_rows_mean).astype(xs.dtype)
        ours = norm(silent, cfg.norm_type, rows[None], p).reshape(4, d).astype(np.float64)
        expected = np.array([record.reference(row.astype(np.float64), p) for row in rows])
        diff = float(np.max(np.abs(ours - expected)))
        bound = 1e-6 + rtol * float(np.max(np.abs(expected)))
        checks.append(Check("structure", f"{entry.label} matches its formula (math module, 4 rows with mean ≈ {record.formula_rows_mean:g})",
                            f"|Δ| ≤ {bound:.1e}", f"max |Δ| {diff:.2e}", diff <= bound, "tolerance"))  # fmt: skip
    return checks


def _clear_routing(cfg: FFNConfig, p: Params, xs: np.ndarray, margin: float) -> np.ndarray:
    """Which sampled tokens have a clear top-k: the k-th and (k+1)-th router logits (computed
    by the reference, in float64) further apart than `margin`. A token on a near-tie may be
    routed either way by rounding in the storage dtype, so it says nothing either way."""
    tokens = [r.astype(np.float64) for r in xs]
    if cfg.norm == "pre":
        tokens = [reference.norm(cfg, p, t) for t in tokens]
    clear = []
    for logits in reference.linear(tokens, p[names.W_ROUTER], None):
        ranked = sorted(logits.tolist(), reverse=True)
        k = cfg.top_k
        clear.append(k >= cfg.experts or ranked[k - 1] - ranked[k] > margin * max(1.0, abs(ranked[k - 1])))
    return np.array(clear, bool)


def reference_check(cfg: FFNConfig, p: Params, sample: Sample, keep: np.ndarray | None = None) -> Check:
    """The fast path's outputs for the sampled tokens against reference.py's float64 ones. A
    token not in `keep` (on a near-tie in routing, which rounding in the storage dtype may break
    either way) is given the experts the fast path chose; everything after the choice is checked."""
    m = sample.inputs.shape[0]
    if cfg.expert_capacity is not None:
        return Check("structure", "output = float64 reference", "—", "not run", True, "info",
                     "capacity-factor routing is not per token (which pairs are dropped depends on the other tokens); "
                     "the reference routes each token alone, so it checks dropless layers only")  # fmt: skip
    tol = reference_tolerance(cfg)
    keep = np.ones(m, bool) if keep is None else keep
    given: list[list[int] | None] = [None] * m
    if not keep.all():
        index = route_tokens(cfg, p, sample.inputs)
        given = [None if keep[t] else [int(e) for e in index[t]] for t in range(m)]
    expected = reference.reference(cfg, p, sample.inputs, given)
    got = sample.outputs.astype(np.float64)
    diff = float(np.max(np.abs(got - expected)))
    bound = tol * max(1.0, float(np.max(np.abs(expected))))
    tied = f"; {m - int(keep.sum())} on a near-tie in routing given the pass's experts" if not keep.all() else ""
    return Check("structure", f"output = float64 reference ({m} sampled tokens{tied})", f"|Δ| ≤ {bound:.1e}",
                 f"max |Δ| {diff:.2e}", diff <= bound, "tolerance",
                 f"reference.py, one token at a time; tolerance {tol:.1e} × max(1, max |y|) for {cfg.dtype}")  # fmt: skip
