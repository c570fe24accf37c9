"""The verifier's table of activation kernels, keyed by the names of the model's registry
(`ffn_calc.model.activations`); a test holds the two to the same names.

Each entry has the NumPy kernel the forward pass runs (in place, block by block), its
derivative for the backward pass, and an independent reference: the formula written again
with the math module, one float64 scalar at a time, that the kernel is checked against.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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
    "gelu_tanh": Kernel(_gelu_tanh, _d_gelu_tanh, lambda v: 0.5 * v * (1.0 + math.tanh(SQRT_2_OVER_PI * (v + GELU_TANH_CUBIC * v**3)))),
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
