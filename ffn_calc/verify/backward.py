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

from ffn_calc.model import conventions as conv
from ffn_calc.model.layer import FFNConfig
from ffn_calc.verify.forward import LN_EPS, Params, activation_values, erf, matmul

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
        return matmul(a, b)

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


class _Block:
    """One feed-forward block — the dense layer, the shared experts, or the routed experts
    (`bounds`: each expert's rows) — run forward with its cache, then backward."""

    def __init__(self, cfg: FFNConfig, p: Params, g: Grads, rec: BackwardRecorder, prefix: str, bounds: list[tuple[int, int]] | None = None):
        self.cfg, self.p, self.g, self.rec, self.prefix, self.bounds = cfg, p, g, rec, prefix, bounds

    def _mm(self, z: np.ndarray, w: str) -> np.ndarray:
        weight = self.p[self.prefix + w]
        if self.bounds is None:
            return matmul(z, weight)
        out = np.zeros((z.shape[0], weight.shape[-1]), z.dtype)
        for e, (lo, hi) in enumerate(self.bounds):
            matmul(z[lo:hi], weight[e], out=out[lo:hi])
        return out

    def _bias(self, z: np.ndarray, b: str) -> np.ndarray:
        if self.prefix + b not in self.p:
            return z
        bias = self.p[self.prefix + b]
        if self.bounds is None:
            return z + bias
        rows = np.concatenate([np.repeat(bias[e : e + 1], hi - lo, axis=0) for e, (lo, hi) in enumerate(self.bounds)])
        return z + rows

    def lin(self, z: np.ndarray, w: str, b: str) -> np.ndarray:
        return self._bias(self._mm(z, w), b)

    def lin_back(self, stage: str, z: np.ndarray, dz: np.ndarray, w: str, b: str) -> np.ndarray:
        stage, w, b = self.prefix + stage, self.prefix + w, self.prefix + b
        weight = self.p[w]
        if self.bounds is None:
            self.g[w] = self.rec.matmul(stage, "weight-grad", z.T, dz)
            if b in self.p:
                self.g[b] = dz.sum(axis=0)
            dz_in = self.rec.matmul(stage, "input-grad", dz, weight.T)
        else:
            self.g[w] = np.zeros_like(weight)
            dz_in = np.zeros((dz.shape[0], weight.shape[-2]), dz.dtype)
            if b in self.p:
                self.g[b] = np.zeros_like(self.p[b])
            for e, (lo, hi) in enumerate(self.bounds):
                if hi > lo:
                    self.g[w][e] = self.rec.matmul(stage, "weight-grad", z[lo:hi].T, dz[lo:hi])
                    dz_in[lo:hi] = self.rec.matmul(stage, "input-grad", dz[lo:hi], weight[e].T)
                    if b in self.p:
                        self.g[b][e] = dz[lo:hi].sum(axis=0)
        if b in self.p:
            self.rec.flops(stage, "bias-grad", dz.size * conv.BIAS_GRAD_FLOPS_PER_ELEMENT)
        return dz_in

    def forward(self, src: np.ndarray) -> np.ndarray:
        cfg, act = self.cfg, self.cfg.base_activation
        self.src = src
        if cfg.is_glu:
            if cfg.fused:
                gu = self.lin(src, "W_gate_up", "b_gate_up")
                half = gu.shape[1] // 2
                self.gate, self.up = gu[:, :half], gu[:, half:]
            else:
                self.gate, self.up = self.lin(src, "W_gate", "b_gate"), self.lin(src, "W_up", "b_up")
            self.a = activation_values(act, self.gate) * self.up
            return self.lin(self.a, "W_down", "b_down")
        self.h = self.lin(src, "W1", "b1")
        self.a = activation_values(act, self.h)
        return self.lin(self.a, "W2", "b2")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """The gradient of the block's input; a GLU's gate and up gradients are summed into it
        (counted as the grad-sum of whichever stage feeds the block)."""
        cfg, act, rec, pre = self.cfg, self.cfg.base_activation, self.rec, self.prefix
        if cfg.is_glu:
            da = self.lin_back("down", self.a, dy, "W_down", "b_down")
            dgate = da * self.up * activation_derivative(act, self.gate)
            dup = da * activation_values(act, self.gate)
            per = conv.ACTIVATION_BACKWARD_FLOPS_PER_ELEMENT[act] + conv.ACTIVATION_FLOPS_PER_ELEMENT[act] + conv.GLU_BACKWARD_EXTRA_FLOPS_PER_ELEMENT
            rec.flops(pre + "glu", "elementwise", per * da.size)
            if cfg.fused:
                return self.lin_back("gate_up", self.src, np.concatenate([dgate, dup], axis=1), "W_gate_up", "b_gate_up")
            dsrc = self.lin_back("gate", self.src, dgate, "W_gate", "b_gate") + self.lin_back("up", self.src, dup, "W_up", "b_up")
            self.extra_sums = dsrc.size
            return dsrc
        da = self.lin_back("linear2", self.a, dy, "W2", "b2")
        dh = da * activation_derivative(act, self.h)
        rec.flops(pre + "activation", "elementwise", dh.size * conv.ACTIVATION_BACKWARD_FLOPS_PER_ELEMENT[act])
        return self.lin_back("linear1", self.src, dh, "W1", "b1")

    extra_sums = 0  # elements of the gate + up gradient sum, charged to the block's input stage


def _moe(cfg: FFNConfig, p: Params, g: Grads, rec: BackwardRecorder, src: np.ndarray) -> tuple[np.ndarray, Any]:
    """The dropless routed layer forward, and a function that runs its backward."""
    n, d, e, k = cfg.tokens, cfg.d_model, cfg.experts, cfg.top_k
    shared = _Block(cfg, p, g, rec, "shared_") if cfg.shared_experts else None
    ys = shared.forward(src) if shared else None
    logits = matmul(src, p["W_router"])
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(probs, top, axis=1)
    total = chosen.sum(axis=1, keepdims=True)
    w = chosen / total
    flat = top.reshape(-1)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=e)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    bounds = [(int(lo), int(lo + c)) for lo, c in zip(starts, counts, strict=True)]
    slot = np.empty(n * k, np.int64)
    slot[order] = np.arange(n * k)
    slot = slot.reshape(n, k)
    token = order // k
    experts = _Block(cfg, p, g, rec, "expert_", bounds)
    ye = experts.forward(src[token])
    y = sum(w[:, j, None] * ye[slot[:, j]] for j in range(k))
    if ys is not None:
        y = y + ys

    def backward(dy: np.ndarray) -> np.ndarray:
        dye = np.zeros_like(ye)
        dw = np.empty_like(w)
        for j in range(k):
            dye[slot[:, j]] = w[:, j, None] * dy
            dw[:, j] = (dy * ye[slot[:, j]]).sum(axis=1)
        rec.flops("combine", "elementwise", conv.COMBINE_BACKWARD_FLOPS_PER_ELEMENT * n * k * d)
        dxe = experts.backward(dye)
        dsrc = np.zeros_like(src)
        np.add.at(dsrc, token, dxe)
        rec.flops("dispatch", "elementwise", conv.GATHER_BACKWARD_FLOPS_PER_ELEMENT * dxe.size)
        rec.flops("dispatch", "grad-sum", experts.extra_sums * conv.GRADIENT_SUM_FLOPS_PER_ELEMENT)
        # w = chosen / Σ chosen, chosen = the top-k of softmax(logits)
        dchosen = (dw - (dw * w).sum(axis=1, keepdims=True)) / total
        dprobs = np.zeros_like(probs)
        np.put_along_axis(dprobs, top, dchosen, axis=1)
        dlogits = probs * (dprobs - (probs * dprobs).sum(axis=1, keepdims=True))
        rec.flops("routing", "elementwise", conv.ROUTING_BACKWARD_FLOPS_PER_LOGIT * n * e + conv.RENORM_BACKWARD_FLOPS_PER_WEIGHT * n * k)
        g["W_router"] = rec.matmul("router", "weight-grad", src.T, dlogits)
        parts = [dsrc, rec.matmul("router", "input-grad", dlogits, p["W_router"].T)]
        if shared is not None:
            parts.append(shared.backward(dy))
        return parts, (shared.extra_sums if shared else 0)

    return y, backward


def forward_backward(cfg: FFNConfig, p: Params, x: np.ndarray, dout: np.ndarray, rec: BackwardRecorder) -> tuple[np.ndarray, Grads]:
    """The layer's output and the gradients of Σ(output ⊙ dout) for every weight and for x."""
    n, d = cfg.tokens, cfg.d_model
    x2 = x.reshape(n, d)
    g: Grads = {}
    ln_cache = None
    src = x2
    if cfg.norm == "pre":
        src, ln_cache = _layernorm_forward(x2, p["ln_gamma"], p["ln_beta"])
    if cfg.is_moe:
        y, moe_backward = _moe(cfg, p, g, rec, src)
    else:
        block = _Block(cfg, p, g, rec, "")
        y = block.forward(src)
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
    src_stage = "layernorm" if cfg.norm == "pre" else "input"
    if cfg.is_moe:
        parts, inner_sums = moe_backward(dy)
        dsrc = parts[0]
        for part in parts[1:]:
            dsrc = dsrc + part
        sums = (len(parts) - 1) * dsrc.size + inner_sums
    else:
        dsrc = block.backward(dy)
        sums = block.extra_sums
    if sums:
        rec.flops(src_stage, "grad-sum", sums * conv.GRADIENT_SUM_FLOPS_PER_ELEMENT)
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
