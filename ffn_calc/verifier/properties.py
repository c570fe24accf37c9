"""Properties of the layer checked on a sample of the run: the Conv1d(k=1) form equals the
linear one, the layer is position-wise, the activation kernel matches its formula, and the
norm (LayerNorm or RMSNorm) normalises each row."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ffn_calc.model import structure as names
from ffn_calc.model.layer import FFNConfig
from ffn_calc.verifier.forward import LN_EPS, Params, ffn_as_conv1d, forward, norm
from ffn_calc.verifier.kernels import activation_values, kernel
from ffn_calc.verifier.recorder import Silent
from ffn_calc.verifier.report import Check

# Relative tolerance of value comparisons in each computed dtype.
RTOL = {"float64": 1e-9, "float32": 1e-4, "float16": 2e-2}


def _close(a: np.ndarray, b: np.ndarray, rtol: float) -> tuple[bool, float]:
    """Agreement relative to the scale of b; returns (ok, max abs difference)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = float(np.max(np.abs(a64 - b64))) if a.size else 0.0
    scale = float(np.max(np.abs(b64))) if b.size else 0.0
    return a.shape == b.shape and diff <= rtol * max(scale, 1.0), diff


def structural_checks(cfg: FFNConfig, p: Params, x: np.ndarray, rng: np.random.Generator, rtol: float) -> list[Check]:
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
        checks.append(
            Check(
                "structure",
                "position-wise",
                "no",
                "capacity buffers fill in token order",
                True,
                "info",
                "which tokens an expert drops depends on their order",
            )
        )
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
    expected = np.array([kernel(act).reference(float(v)) for v in samples])
    diff = float(np.max(np.abs(ours.astype(np.float64) - expected)))
    bound = 1e-6 + rtol * float(np.max(np.abs(expected)))
    checks.append(
        Check(
            "structure",
            f"{act} matches its formula (math module, 64 samples)",
            f"|Δ| ≤ {bound:.1e}",
            f"max |Δ| {diff:.2e}",
            diff <= bound,
            "tolerance",
        )
    )

    if cfg.norm != "none" and cfg.norm_type == "layer":
        # With γ = 1 and β = 0 each row comes out with mean 0 and variance v / (v + eps),
        # where v is the row's variance going in (≈ 1 unless v is as small as eps).
        rows = norm(silent, "layer", x0, p).reshape(-1, cfg.d_model)
        v = x0.reshape(-1, cfg.d_model).astype(np.float64).var(axis=1)
        got = rows.astype(np.float64)
        mean_err = float(np.max(np.abs(got.mean(axis=1))))
        var_err = float(np.max(np.abs(got.var(axis=1) - v / (v + LN_EPS))))
        tol = max(10 * rtol, 1e-6)
        checks.append(
            Check(
                "structure",
                "LayerNorm rows: mean 0, variance v/(v + eps) (γ = 1, β = 0)",
                f"|Δ| ≤ {tol:.0e}",
                f"mean {mean_err:.1e}, var {var_err:.1e}",
                mean_err <= tol and var_err <= tol,
                "tolerance",
            )
        )
    if cfg.norm != "none" and cfg.norm_type == "rms":
        checks += _rmsnorm_checks(cfg, p, x0, rng, rtol)
    return checks


def _rmsnorm_checks(cfg: FFNConfig, p: Params, x0: np.ndarray, rng: np.random.Generator, rtol: float) -> list[Check]:
    """With γ = 1 each row comes out with mean square v / (v + eps), v its mean square going in;
    and rows with a clear mean (where a LayerNorm would differ) match the formula computed
    with Python's math module, under a random γ."""
    silent, d = Silent(), cfg.d_model
    tol = max(10 * rtol, 1e-6)
    got = norm(silent, "rms", x0, p).reshape(-1, d).astype(np.float64)
    v = np.square(x0.reshape(-1, d).astype(np.float64)).mean(axis=1)
    ms_err = float(np.max(np.abs(np.square(got).mean(axis=1) - v / (v + LN_EPS))))
    checks = [Check("structure", "RMSNorm rows: mean square v/(v + eps) (γ = 1)", f"|Δ| ≤ {tol:.0e}", f"{ms_err:.1e}", ms_err <= tol, "tolerance")]
    samples = (rng.standard_normal((4, d)) + 1.0).astype(x0.dtype)
    gamma = (1.0 + 0.5 * rng.standard_normal(d)).astype(x0.dtype)
    ours = norm(silent, "rms", samples[None], {**p, names.RMS_GAMMA: gamma}).reshape(4, d).astype(np.float64)
    expected = np.array(
        [[float(v) / math.sqrt(math.fsum(float(u) ** 2 for u in row) / d + LN_EPS) * float(gamma[i]) for i, v in enumerate(row)] for row in samples]
    )
    diff = float(np.max(np.abs(ours - expected)))
    bound = 1e-6 + rtol * float(np.max(np.abs(expected)))
    checks.append(Check("structure", "RMSNorm matches its formula (math module, 4 rows with mean ≈ 1)", f"|Δ| ≤ {bound:.1e}",
                        f"max |Δ| {diff:.2e}", diff <= bound, "tolerance"))  # fmt: skip
    return checks
