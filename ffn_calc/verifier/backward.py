"""The backward pass in NumPy, with explicit matmuls, for `verify --backward`.

The forward keeps what backward needs; backward computes every gradient by hand (no autograd)
and records the operand shapes of each product and the elements of each elementwise step, as
the forward recorder does. A finite-difference check on a small float64 layer shows that the
gradients are right, so that the FLOPs observed are those of a correct backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ffn_calc.model import conventions as conv
from ffn_calc.model import structure as names
from ffn_calc.model.layer import FFNConfig
from ffn_calc.verifier import routing
from ffn_calc.verifier.arrays import matmul
from ffn_calc.verifier.forward import LN_EPS, Params
from ffn_calc.verifier.kernels import activation_values, kernel

Grads = dict[str, np.ndarray]


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
    g[names.LN_GAMMA] = (dy * xhat).sum(axis=0)
    g[names.LN_BETA] = dy.sum(axis=0)
    dxhat = dy * gamma
    dx = inv * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    rec.flops(names.LAYERNORM, "elementwise", rows * (conv.LAYERNORM_BACKWARD_FLOPS_PER_ELEMENT * width + conv.LAYERNORM_BACKWARD_FLOPS_PER_ROW))
    return dx


class _Block:
    """One feed-forward block — the dense layer, the shared experts, or the routed experts
    (`bounds`: each expert's rows) — run forward with its cache, then backward."""

    def __init__(self, cfg: FFNConfig, p: Params, g: Grads, rec: BackwardRecorder, prefix: str, bounds: list[tuple[int, int]] | None = None):
        self.cfg, self.p, self.g, self.rec, self.prefix, self.bounds = cfg, p, g, rec, prefix, bounds

    def _mm(self, z: np.ndarray, w: str) -> np.ndarray:
        weight = self.p[w]
        if self.bounds is None:
            return matmul(z, weight)
        out = np.zeros((z.shape[0], weight.shape[-1]), z.dtype)
        for e, (lo, hi) in enumerate(self.bounds):
            matmul(z[lo:hi], weight[e], out=out[lo:hi])
        return out

    def _bias(self, z: np.ndarray, b: str) -> np.ndarray:
        if b not in self.p:
            return z
        bias = self.p[b]
        if self.bounds is None:
            return z + bias
        rows = np.concatenate([np.repeat(bias[e : e + 1], hi - lo, axis=0) for e, (lo, hi) in enumerate(self.bounds)])
        return z + rows

    def lin(self, z: np.ndarray, spec: names.Linear) -> np.ndarray:
        return self._bias(self._mm(z, self.prefix + spec.weight), self.prefix + spec.bias)

    def lin_back(self, z: np.ndarray, dz: np.ndarray, spec: names.Linear) -> np.ndarray:
        stage, w, b = self.prefix + spec.stage, self.prefix + spec.weight, self.prefix + spec.bias
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
        *self.first, self.last = names.linears(cfg.is_glu, cfg.fused)
        self.src = src
        ins = [self.lin(src, spec) for spec in self.first]
        if cfg.is_glu:
            half = ins[0].shape[1] // 2
            self.gate, self.up = (ins[0][:, :half], ins[0][:, half:]) if cfg.fused else ins
            self.a = activation_values(act, self.gate) * self.up
        else:
            self.h = ins[0]
            self.a = activation_values(act, self.h)
        return self.lin(self.a, self.last)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """The gradient of the block's input; a GLU's gate and up gradients are summed into it
        (counted as the grad-sum of whichever stage feeds the block)."""
        cfg, act, rec, pre = self.cfg, self.cfg.base_activation, self.rec, self.prefix
        da = self.lin_back(self.a, dy, self.last)
        per = conv.activation_backward_flops(cfg.activation)
        if not cfg.is_glu:
            dh = da * kernel(act).derivative(self.h)
            rec.flops(pre + names.ACTIVATION, "elementwise", per * dh.size)
            return self.lin_back(self.src, dh, self.first[0])
        dgate = da * self.up * kernel(act).derivative(self.gate)
        dup = da * activation_values(act, self.gate)
        rec.flops(pre + names.GLU, "elementwise", per * da.size)
        if cfg.fused:
            return self.lin_back(self.src, np.concatenate([dgate, dup], axis=1), self.first[0])
        dsrc = self.lin_back(self.src, dgate, self.first[0]) + self.lin_back(self.src, dup, self.first[1])
        self.extra_sums = dsrc.size
        return dsrc

    extra_sums = 0  # elements of the gate + up gradient sum, charged to the block's input stage


MoEBackward = Callable[[np.ndarray], tuple[list[np.ndarray], int]]


def _moe(cfg: FFNConfig, p: Params, g: Grads, rec: BackwardRecorder, src: np.ndarray) -> tuple[np.ndarray, MoEBackward]:
    """The dropless routed layer forward, and a function that runs its backward."""
    n, d, e, k = cfg.tokens, cfg.d_model, cfg.experts, cfg.top_k
    shared = _Block(cfg, p, g, rec, names.SHARED) if cfg.shared_experts else None
    ys = shared.forward(src) if shared else None
    probs = routing.softmax(matmul(src, p[names.W_ROUTER]))
    top, chosen, total = routing.top_k(probs, k)
    w = chosen / total
    groups = routing.group(top, e)
    slot = groups.slots().reshape(n, k)
    token = groups.order // k
    experts = _Block(cfg, p, g, rec, names.EXPERT, groups.bounds)
    ye = experts.forward(src[token])
    y = sum(w[:, j, None] * ye[slot[:, j]] for j in range(k))
    if ys is not None:
        y = y + ys

    def backward(dy: np.ndarray) -> tuple[list[np.ndarray], int]:
        dye = np.zeros_like(ye)
        dw = np.empty_like(w)
        for j in range(k):
            dye[slot[:, j]] = w[:, j, None] * dy
            dw[:, j] = (dy * ye[slot[:, j]]).sum(axis=1)
        rec.flops(names.COMBINE, "elementwise", conv.COMBINE_BACKWARD_FLOPS_PER_ELEMENT * n * k * d)
        dxe = experts.backward(dye)
        dsrc = np.zeros_like(src)
        np.add.at(dsrc, token, dxe)
        rec.flops(names.DISPATCH, "elementwise", conv.GATHER_BACKWARD_FLOPS_PER_ELEMENT * dxe.size)
        rec.flops(names.DISPATCH, "grad-sum", experts.extra_sums * conv.GRADIENT_SUM_FLOPS_PER_ELEMENT)
        # w = chosen / Σ chosen, chosen = the top-k of softmax(logits)
        dchosen = (dw - (dw * w).sum(axis=1, keepdims=True)) / total
        dprobs = np.zeros_like(probs)
        np.put_along_axis(dprobs, top, dchosen, axis=1)
        dlogits = probs * (dprobs - (probs * dprobs).sum(axis=1, keepdims=True))
        rec.flops(names.ROUTING, "elementwise", conv.ROUTING_BACKWARD_FLOPS_PER_LOGIT * n * e + conv.RENORM_BACKWARD_FLOPS_PER_WEIGHT * n * k)
        g[names.W_ROUTER] = rec.matmul(names.ROUTER, "weight-grad", src.T, dlogits)
        parts = [dsrc, rec.matmul(names.ROUTER, "input-grad", dlogits, p[names.W_ROUTER].T)]
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
        src, ln_cache = _layernorm_forward(x2, p[names.LN_GAMMA], p[names.LN_BETA])
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
            out, post_cache = _layernorm_forward(out, p[names.LN_GAMMA], p[names.LN_BETA])

    # --- backward, last stage first ---
    dy = dout.reshape(n, d)
    if post_cache is not None:
        dy = _layernorm_backward(rec, dy, post_cache, p[names.LN_GAMMA], g)
    d_res = dy if cfg.norm != "none" else None  # the residual's share of dx
    src_stage = names.LAYERNORM if cfg.norm == "pre" else names.INPUT
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
    dx = _layernorm_backward(rec, dsrc, ln_cache, p[names.LN_GAMMA], g) if ln_cache is not None else dsrc
    if d_res is not None:
        dx = dx + d_res
        rec.flops(names.INPUT, "grad-sum", dx.size * conv.GRADIENT_SUM_FLOPS_PER_ELEMENT)
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
