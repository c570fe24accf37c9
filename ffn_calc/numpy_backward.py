"""The backward pass in NumPy, with explicit matmuls, for `verify --backward`.

The forward keeps what backward needs; backward computes every gradient by hand (no autograd)
and records the operand shapes of each product and the elements of each elementwise step, as
the forward recorder does. A finite-difference check on a small float64 layer shows that the
gradients are right, so that the FLOPs observed are those of a correct backward pass.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ffn_calc import conventions as conv
from ffn_calc.config import FFNConfig
from ffn_calc.numpy_ffn import LN_EPS, Params, activation_values, erf

Grads = dict[str, np.ndarray]


def activation_derivative(kind: str, h: np.ndarray) -> np.ndarray:
    if kind == "relu":
        return (h > 0).astype(h.dtype)
    if kind == "gelu":
        return 0.5 * (1.0 + erf(h / math.sqrt(2.0))) + h * np.exp(-0.5 * h * h) / math.sqrt(2.0 * math.pi)
    if kind == "gelu_tanh":
        c = math.sqrt(2.0 / math.pi)
        t = np.tanh(c * (h + 0.044715 * h**3))
        return 0.5 * (1.0 + t) + 0.5 * h * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * h * h)
    if kind == "silu":
        sig = 1.0 / (1.0 + np.exp(-h))
        return sig * (1.0 + h * (1.0 - sig))
    raise ValueError(kind)


class BackwardRecorder:
    """(stage, kind) → the products' (M, K, N) and the elementwise FLOPs observed."""

    def __init__(self) -> None:
        self.matmuls: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
        self.elementwise: dict[tuple[str, str], int] = {}

    def matmul(self, stage: str, kind: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        (m, k), (k2, n) = a.shape, b.shape
        assert k == k2
        self.matmuls.setdefault((stage, kind), []).append((m, k, n))
        return a @ b

    def flops(self, stage: str, kind: str, count: int) -> None:
        self.elementwise[(stage, kind)] = self.elementwise.get((stage, kind), 0) + count


def _layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    inv = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + LN_EPS)
    xhat = xc * inv
    return xhat * gamma + beta, (xhat, inv)


def _layernorm_backward(rec: BackwardRecorder, dy: np.ndarray, cache: tuple[np.ndarray, np.ndarray], gamma: np.ndarray, g: Grads) -> np.ndarray:
    xhat, inv = cache
    rows, width = dy.shape
    g["ln_gamma"] = (dy * xhat).sum(axis=0)
    g["ln_beta"] = dy.sum(axis=0)
    dxhat = dy * gamma
    dx = inv * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    rec.flops("layernorm", "elementwise", rows * (conv.LAYERNORM_BACKWARD_FLOPS_PER_ELEMENT * width + conv.LAYERNORM_BACKWARD_FLOPS_PER_ROW))
    return dx


def forward_backward(cfg: FFNConfig, p: Params, x: np.ndarray, dout: np.ndarray, rec: BackwardRecorder) -> tuple[np.ndarray, Grads]:
    """The layer's output and the gradients of Σ(output ⊙ dout) for every weight and for x."""
    n, d = cfg.tokens, cfg.d_model
    x2 = x.reshape(n, d)
    act = cfg.base_activation
    g: Grads = {}
    ln_cache = None
    src = x2
    if cfg.norm == "pre":
        src, ln_cache = _layernorm_forward(x2, p["ln_gamma"], p["ln_beta"])

    def lin(z: np.ndarray, w: str, b: str) -> np.ndarray:
        out = z @ p[w]
        return out + p[b] if b in p else out

    if cfg.is_glu:
        if cfg.fused:
            gu = lin(src, "W_gate_up", "b_gate_up")
            gate, up = gu[:, : cfg.d_ff], gu[:, cfg.d_ff :]
        else:
            gate, up = lin(src, "W_gate", "b_gate"), lin(src, "W_up", "b_up")
        a = activation_values(act, gate) * up
        y = lin(a, "W_down", "b_down")
        last, w_last, b_last = "down", "W_down", "b_down"
    else:
        h = lin(src, "W1", "b1")
        a = activation_values(act, h)
        y = lin(a, "W2", "b2")
        last, w_last, b_last = "linear2", "W2", "b2"
    out = y
    post_cache = None
    if cfg.norm != "none":
        out = x2 + y
        if cfg.norm == "post":
            out, post_cache = _layernorm_forward(out, p["ln_gamma"], p["ln_beta"])

    # --- backward, last stage first ---
    dy = dout.reshape(n, d)
    if post_cache is not None:
        dy = _layernorm_backward(rec, dy, post_cache, p["ln_gamma"], g)
    d_res = dy if cfg.norm != "none" else None  # the residual's share of dx

    def lin_back(stage: str, z: np.ndarray, dz: np.ndarray, w: str, b: str) -> np.ndarray:
        g[w] = rec.matmul(stage, "weight-grad", z.T, dz)
        if b in p:
            g[b] = dz.sum(axis=0)
            rec.flops(stage, "bias-grad", dz.size * conv.BIAS_GRAD_FLOPS_PER_ELEMENT)
        return rec.matmul(stage, "input-grad", dz, p[w].T)

    da = lin_back(last, a, dy, w_last, b_last)
    if cfg.is_glu:
        dgate = da * up * activation_derivative(act, gate)
        dup = da * activation_values(act, gate)
        per = conv.ACTIVATION_BACKWARD_FLOPS_PER_ELEMENT[act] + conv.ACTIVATION_FLOPS_PER_ELEMENT[act] + conv.GLU_BACKWARD_EXTRA_FLOPS_PER_ELEMENT
        rec.flops("glu", "elementwise", per * da.size)
        if cfg.fused:
            dsrc = lin_back("gate_up", src, np.concatenate([dgate, dup], axis=1), "W_gate_up", "b_gate_up")
        else:
            dsrc = lin_back("gate", src, dgate, "W_gate", "b_gate") + lin_back("up", src, dup, "W_up", "b_up")
            rec.flops("layernorm" if cfg.norm == "pre" else "input", "grad-sum", dsrc.size * conv.GRADIENT_SUM_FLOPS_PER_ELEMENT)
    else:
        dh = da * activation_derivative(act, h)
        rec.flops("activation", "elementwise", dh.size * conv.ACTIVATION_BACKWARD_FLOPS_PER_ELEMENT[act])
        dsrc = lin_back("linear1", src, dh, "W1", "b1")
    dx = _layernorm_backward(rec, dsrc, ln_cache, p["ln_gamma"], g) if ln_cache is not None else dsrc
    if d_res is not None:
        dx = dx + d_res
        rec.flops("input", "grad-sum", dx.size * conv.GRADIENT_SUM_FLOPS_PER_ELEMENT)
    g["x"] = dx.reshape(x.shape)
    return out.reshape(x.shape), g


def gradient_check(cfg: FFNConfig, p: Params, x: np.ndarray, dout: np.ndarray, samples: int = 40, seed: int = 0) -> float:
    """Largest relative error between the analytic gradients and central finite differences of
    L = Σ(output ⊙ dout), over up to `samples` entries of every weight and of x (float64)."""
    _, grads = forward_backward(cfg, p, x, dout, BackwardRecorder())
    rng = np.random.default_rng(seed)
    worst = 0.0
    eps = 1e-6

    def loss() -> float:
        out, _ = forward_backward(cfg, p, x, dout, BackwardRecorder())
        return float((out * dout).sum())

    targets: dict[str, Any] = {**p, "x": x}
    for name, array in targets.items():
        flat = array.reshape(-1)
        for i in rng.choice(flat.size, size=min(samples, flat.size), replace=False):
            keep = flat[i]
            flat[i] = keep + eps
            up = loss()
            flat[i] = keep - eps
            down = loss()
            flat[i] = keep
            numeric = (up - down) / (2 * eps)
            analytic = float(grads[name].reshape(-1)[i])
            worst = max(worst, abs(numeric - analytic) / max(1.0, abs(numeric), abs(analytic)))
    return worst
