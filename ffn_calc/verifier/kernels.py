"""The verifier's kernel tables: one record per activation and one per norm, keyed by the names
of the model's registries (`ffn_calc.model.activations`, `ffn_calc.model.norms`); a test holds
each table to its registry.

Each entry has the NumPy kernel the forward pass runs (in place, block by block), its backward
(an activation's derivative; a norm's dx and weight gradients), and an independent reference:
the formula written again with the math module, one float64 number or row at a time, that the
kernel is checked against.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ffn_calc.model import structure as names
from ffn_calc.model.activations import CLAMPED_SWIGLU_ALPHA, CLAMPED_SWIGLU_LIMIT

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_CUBIC = 0.044715


def erf(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7); NumPy has no erf.
    sign(x)·(1 − t·(a1 + t·(a2 + t·(a3 + t·(a4 + t·a5))))·exp(−x²)) with t = 1/(1 + p·|x|),
    computed in place with two temporaries of x's size."""
    t = np.abs(x)
    t *= 0.3275911
    t += 1.0
    np.reciprocal(t, out=t)
    poly = np.multiply(t, 1.061405429)
    for a in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += a
        poly *= t
    e = np.square(x, out=t)
    np.negative(e, out=e)
    np.exp(e, out=e)
    poly *= e
    out = np.subtract(1.0, poly, out=out)
    out *= np.sign(x, out=e)
    return out


# --- forward kernels: out = act(h), h left as it was -------------------------------------------


def _relu(h: np.ndarray, out: np.ndarray) -> None:
    np.maximum(h, 0, out=out)


def _relu2(h: np.ndarray, out: np.ndarray) -> None:
    np.maximum(h, 0, out=out)
    np.square(out, out=out)


def _gelu(h: np.ndarray, out: np.ndarray) -> None:  # 0.5·h·(1 + erf(h/√2))
    erf(np.multiply(h, 1.0 / math.sqrt(2.0)), out=out)
    out += 1.0
    out *= h
    out *= 0.5


def _gelu_tanh(h: np.ndarray, out: np.ndarray) -> None:  # 0.5·h·(1 + tanh(√(2/π)·(h + 0.044715·h³)))
    z = np.multiply(h, h)
    z *= h
    z *= GELU_TANH_CUBIC
    z += h
    z *= SQRT_2_OVER_PI
    np.tanh(z, out=out)
    out += 1.0
    out *= h
    out *= 0.5


def _silu_clamped(h: np.ndarray, out: np.ndarray) -> None:  # g·σ(α·g), g = min(h, limit): gpt-oss's gate
    g = np.minimum(h, CLAMPED_SWIGLU_LIMIT)
    np.multiply(g, -CLAMPED_SWIGLU_ALPHA, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.divide(g, out, out=out)


def _silu(h: np.ndarray, out: np.ndarray) -> None:  # h / (1 + exp(−h))
    np.negative(h, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.divide(h, out, out=out)


# --- derivatives act'(h), new arrays ---------------------------------------------------------


def _d_relu(h: np.ndarray) -> np.ndarray:
    return (h > 0).astype(h.dtype)


def _d_relu2(h: np.ndarray) -> np.ndarray:
    return 2.0 * np.maximum(h, 0)


def _d_gelu(h: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + erf(h / math.sqrt(2.0))) + h * np.exp(-0.5 * h * h) / math.sqrt(2.0 * math.pi)


def _d_gelu_tanh(h: np.ndarray) -> np.ndarray:
    t = np.tanh(SQRT_2_OVER_PI * (h + GELU_TANH_CUBIC * h**3))
    return 0.5 * (1.0 + t) + 0.5 * h * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3 * GELU_TANH_CUBIC * h * h)


def _d_silu_clamped(h: np.ndarray) -> np.ndarray:
    g = np.minimum(h, CLAMPED_SWIGLU_LIMIT)
    sig = 1.0 / (1.0 + np.exp(-CLAMPED_SWIGLU_ALPHA * g))
    return np.where(h < CLAMPED_SWIGLU_LIMIT, sig * (1.0 + CLAMPED_SWIGLU_ALPHA * g * (1.0 - sig)), 0.0).astype(h.dtype)


def _clamped_reference(v: float) -> float:
    g = min(v, CLAMPED_SWIGLU_LIMIT)
    return g / (1.0 + math.exp(-CLAMPED_SWIGLU_ALPHA * g))


def _d_silu(h: np.ndarray) -> np.ndarray:
    sig = 1.0 / (1.0 + np.exp(-h))
    return sig * (1.0 + h * (1.0 - sig))


@dataclass(frozen=True)
class Kernel:
    """`into(h, out)` writes act(h); `derivative(h)` returns act'(h); `reference(v)` is the
    formula on one float. `exact_in_storage`: a compare-and-select, exact in any dtype, so it
    runs in the storage dtype with no scratch. `zeros`: its outputs are exact zeros wherever
    h ≤ 0, and the fraction of them is reported."""

    into: Callable[[np.ndarray, np.ndarray], None]
    derivative: Callable[[np.ndarray], np.ndarray]
    reference: Callable[[float], float]
    exact_in_storage: bool = False
    zeros: bool = False
    approx_error: float = 0.0  # the kernel's own error against the formula when it approximates


KERNELS: dict[str, Kernel] = {
    "relu": Kernel(_relu, _d_relu, lambda v: max(0.0, v), exact_in_storage=True, zeros=True),
    "relu2": Kernel(_relu2, _d_relu2, lambda v: max(0.0, v) ** 2, zeros=True),
    "gelu": Kernel(_gelu, _d_gelu, lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))), approx_error=1.5e-7),  # erf's A&S 7.1.26
    # The reference writes the published constant out, not GELU_TANH_CUBIC: a changed digit in the kernel's is then seen.
    "gelu_tanh": Kernel(_gelu_tanh, _d_gelu_tanh, lambda v: 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))),
    "silu": Kernel(_silu, _d_silu, lambda v: v / (1.0 + math.exp(-v))),
    "silu_clamped": Kernel(_silu_clamped, _d_silu_clamped, _clamped_reference),
}


def kernel(name: str) -> Kernel:
    """The kernel of the nonlinearity `name`; an unregistered name raises, never a default."""
    try:
        return KERNELS[name]
    except KeyError:
        raise KeyError(f"the verifier has no NumPy kernel for the activation {name!r}") from None


def activation_values(name: str, h: np.ndarray) -> np.ndarray:
    """act(h) as a new array of h's dtype."""
    out = np.empty_like(h)
    kernel(name).into(h, out)
    return out


# --- norms ---------------------------------------------------------------------------------------
#
# Each norm of the registry (ffn_calc.model.norms) has one record here, keyed by the same name (a
# test holds the two tables together): its forward, which normalises a block of rows in place
# and, when asked, writes the per-row statistics `train` saves (the registry's `stats`, float32);
# its backward, from x̂ and those statistics; and an independent reference, its definition
# written again with the math module, one float64 row at a time. NORM_EPS is every norm's ε.

NORM_EPS = 1e-5  # as the frameworks default it
Params = dict[str, np.ndarray]
Vector = np.ndarray  # one row, float64


def _standardise(blk: np.ndarray, stats: np.ndarray | None) -> None:
    """(x − mean) / √(var + ε) of each row of `blk`, in place; its mean and 1/σ into `stats`."""
    mean = blk.mean(axis=1, keepdims=True)
    blk -= mean
    sigma = np.sqrt((blk * blk).mean(axis=1, keepdims=True) + NORM_EPS)
    blk /= sigma
    if stats is not None:
        stats[:, :1] = mean
        stats[:, 1:] = 1.0 / sigma


def _rms_scale(blk: np.ndarray, stats: np.ndarray | None) -> None:
    """x / √(mean(x²) + ε) of each row of `blk`, in place; its 1/rms into `stats`."""
    rms = np.sqrt((blk * blk).mean(axis=1, keepdims=True) + NORM_EPS)
    blk /= rms
    if stats is not None:
        stats[:, :1] = 1.0 / rms


def _layer_nonparam(blk: np.ndarray, p: Params, stats: np.ndarray | None) -> None:  # (x − mean) / √(var + ε)
    _standardise(blk, stats)


def _layer_nobias(blk: np.ndarray, p: Params, stats: np.ndarray | None) -> None:  # (x − mean) / √(var + ε) · γ
    _standardise(blk, stats)
    blk *= p[names.LN_GAMMA]


def _layer(blk: np.ndarray, p: Params, stats: np.ndarray | None) -> None:  # (x − mean) / √(var + ε) · γ + β
    _layer_nobias(blk, p, stats)
    blk += p[names.LN_BETA]


def _rms(blk: np.ndarray, p: Params, stats: np.ndarray | None) -> None:  # x / √(mean(x²) + ε) · γ
    _rms_scale(blk, stats)
    blk *= p[names.RMS_GAMMA]


def _centred_dx(dxhat: np.ndarray, xhat: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """dx of x̂ = (x − mean)·(1/σ) from dx̂: (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) / σ."""
    return inv * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))


def _layer_nonparam_backward(dy: np.ndarray, xhat: np.ndarray, inv: np.ndarray, p: Params, g: Params, input_grad: bool) -> np.ndarray | None:
    return _centred_dx(dy, xhat, inv) if input_grad else None


def _layer_nobias_backward(dy: np.ndarray, xhat: np.ndarray, inv: np.ndarray, p: Params, g: Params, input_grad: bool) -> np.ndarray | None:
    g[names.LN_GAMMA] = (dy * xhat).sum(axis=0)
    return _centred_dx(dy * p[names.LN_GAMMA], xhat, inv) if input_grad else None


def _layer_backward(dy: np.ndarray, xhat: np.ndarray, inv: np.ndarray, p: Params, g: Params, input_grad: bool) -> np.ndarray | None:
    g[names.LN_BETA] = dy.sum(axis=0)
    return _layer_nobias_backward(dy, xhat, inv, p, g, input_grad)


def _rms_backward(dy: np.ndarray, xhat: np.ndarray, inv: np.ndarray, p: Params, g: Params, input_grad: bool) -> np.ndarray | None:
    g[names.RMS_GAMMA] = (dy * xhat).sum(axis=0)
    if not input_grad:
        return None
    dxhat = dy * p[names.RMS_GAMMA]
    return inv * (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))


def _standardised(x: Vector) -> list[float]:
    """(x − mean) / √(var + ε), the mean and the (biased) variance by math.fsum."""
    d = x.size
    mean = math.fsum(x.tolist()) / d
    var = math.fsum((v - mean) ** 2 for v in x.tolist()) / d
    inv = 1.0 / math.sqrt(var + NORM_EPS)
    return [(v - mean) * inv for v in x.tolist()]


def _layer_reference(x: Vector, p: Params) -> Vector:
    """(x − mean) / √(var + ε) · γ + β."""
    return np.array([z * float(g) + float(b) for z, g, b in zip(_standardised(x), p[names.LN_GAMMA], p[names.LN_BETA], strict=True)])


def _layer_nobias_reference(x: Vector, p: Params) -> Vector:
    """(x − mean) / √(var + ε) · γ."""
    return np.array([z * float(g) for z, g in zip(_standardised(x), p[names.LN_GAMMA], strict=True)])


def _layer_nonparam_reference(x: Vector, p: Params) -> Vector:
    """(x − mean) / √(var + ε)."""
    return np.array(_standardised(x))


def _rms_reference(x: Vector, p: Params) -> Vector:
    """x / √(mean(x²) + ε) · γ."""
    inv = 1.0 / math.sqrt(math.fsum(v * v for v in x.tolist()) / x.size + NORM_EPS)
    return np.array([v * inv * float(g) for v, g in zip(x.tolist(), p[names.RMS_GAMMA], strict=True)])


@dataclass(frozen=True)
class NormKernel:
    """One norm. `rows(blk, p, stats)` normalises each row of `blk` (in the compute type) in
    place, writing the registry's per-row `stats` into `stats` when it is not None; `backward(dy,
    x̂, 1/σ, p, g, input_grad)` puts its weights' gradients into g and returns dx (None without
    `input_grad`); `reference(x, p)` is its definition on one float64 row. `centred`: it subtracts
    the mean (its statistics are the mean and 1/σ, else 1/rms alone). `undo(out, p)` takes its
    affine back out of an output, written as `undone`, for the check that the rows come out
    normalised; `formula_rows_mean`: the mean of the rows it is also checked against its formula
    on, where a kernel it could be mistaken for would differ (None: the reference check suffices)."""

    rows: Callable[[np.ndarray, Params, np.ndarray | None], None]
    backward: Callable[[np.ndarray, np.ndarray, np.ndarray, Params, Params, bool], np.ndarray | None]
    reference: Callable[[Vector, Params], Vector]
    centred: bool
    undo: Callable[[np.ndarray, Params], np.ndarray]
    undone: str
    formula_rows_mean: float | None = None

    def xhat(self, x: np.ndarray, stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x̂ and 1/σ (or 1/rms) again, from the norm's input and its saved statistics."""
        ct: Any = np.float64 if x.dtype == np.float64 else np.float32
        inv = stats[:, -1:].astype(ct)
        xf = x.astype(ct)
        return ((xf - stats[:, :1].astype(ct)) * inv if self.centred else xf * inv), inv


def _f64(p: Params, name: str) -> np.ndarray:
    return p[name].astype(np.float64)


NORM_KERNELS: dict[str, NormKernel] = {
    "layer": NormKernel(_layer, _layer_backward, _layer_reference, True,
                        lambda out, p: (out - _f64(p, names.LN_BETA)) / _f64(p, names.LN_GAMMA), "(out − β)/γ"),
    "rms": NormKernel(_rms, _rms_backward, _rms_reference, False, lambda out, p: out / _f64(p, names.RMS_GAMMA), "(out/γ)",
                      formula_rows_mean=1.0),  # rows with a clear mean, where a LayerNorm without β would differ
    "layer_nobias": NormKernel(_layer_nobias, _layer_nobias_backward, _layer_nobias_reference, True,
                               lambda out, p: out / _f64(p, names.LN_GAMMA), "out/γ"),
    "layer_nonparam": NormKernel(_layer_nonparam, _layer_nonparam_backward, _layer_nonparam_reference, True, lambda out, p: out, "out"),
}  # fmt: skip


def norm_kernel(name: str) -> NormKernel:
    """The kernel record of the norm `name`; an unregistered name raises, never a default."""
    try:
        return NORM_KERNELS[name]
    except KeyError:
        raise KeyError(f"the verifier has no NumPy kernel for the norm {name!r}") from None
