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
from ffn_calc.model.norms import norm_type
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


NormCache = tuple[np.ndarray, np.ndarray]  # x̂ and 1/σ (or 1/rms) per row


def _layernorm_forward(x: np.ndarray, p: Params) -> tuple[np.ndarray, NormCache]:
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    inv = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + LN_EPS)
    xhat = xc * inv
    return xhat * p[names.LN_GAMMA] + p[names.LN_BETA], (xhat, inv)


def _layernorm_backward(dy: np.ndarray, cache: NormCache, p: Params, g: Grads) -> np.ndarray:
    xhat, inv = cache
    g[names.LN_GAMMA] = (dy * xhat).sum(axis=0)
    g[names.LN_BETA] = dy.sum(axis=0)
    dxhat = dy * p[names.LN_GAMMA]
    return inv * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))


def _rmsnorm_forward(x: np.ndarray, p: Params) -> tuple[np.ndarray, NormCache]:
    inv = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + LN_EPS)
    xhat = x * inv
    return xhat * p[names.RMS_GAMMA], (xhat, inv)


def _rmsnorm_backward(dy: np.ndarray, cache: NormCache, p: Params, g: Grads) -> np.ndarray:
    xhat, inv = cache
    g[names.RMS_GAMMA] = (dy * xhat).sum(axis=0)
    dxhat = dy * p[names.RMS_GAMMA]
    return inv * (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))


# Each registered norm's forward (with its cache) and backward, by the registry's name.
NormForward = Callable[[np.ndarray, Params], tuple[np.ndarray, NormCache]]
NormBackward = Callable[[np.ndarray, NormCache, Params, Grads], np.ndarray]
NORM_PASSES: dict[str, tuple[NormForward, NormBackward]] = {
    "layer": (_layernorm_forward, _layernorm_backward),
    "rms": (_rmsnorm_forward, _rmsnorm_backward),
}


def _norm_forward(cfg: FFNConfig, x: np.ndarray, p: Params) -> tuple[np.ndarray, NormCache]:
    return NORM_PASSES[cfg.norm_type][0](x, p)


def _norm_backward(
    cfg: FFNConfig, rec: BackwardRecorder, dy: np.ndarray, cache: NormCache, p: Params, g: Grads, input_grad: bool = True
) -> np.ndarray | None:
    """The norm's weight gradients into `g`, and its input's gradient (None without `input_grad`:
    then only the weight gradients' work is done and counted)."""
    kind = norm_type(cfg.norm_type)
    rows, width = dy.shape
    if not input_grad:
        xhat = cache[0]
        for w, grad in zip(kind.weights, ((dy * xhat).sum(axis=0), dy.sum(axis=0)), strict=False):  # dγ = Σ dy·x̂, dβ = Σ dy
            g[w] = grad
        rec.flops(kind.stage, "elementwise", kind.weight_grad_flops(rows, width))
        return None
    rec.flops(kind.stage, "elementwise", kind.backward_flops(rows, width))
    return NORM_PASSES[kind.name][1](dy, cache, p, g)


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

    def lin_back(self, z: np.ndarray, dz: np.ndarray, spec: names.Linear, input_grad: bool = True) -> np.ndarray:
        """The weight (and bias) gradients into g; returns dz·Wᵀ, or zeros, not computed and not
        counted, when the input needs no gradient."""
        stage, w, b = self.prefix + spec.stage, self.prefix + spec.weight, self.prefix + spec.bias
        weight = self.p[w]
        if self.bounds is None:
            self.g[w] = self.rec.matmul(stage, "weight-grad", z.T, dz)
            if b in self.p:
                self.g[b] = dz.sum(axis=0)
            dz_in = self.rec.matmul(stage, "input-grad", dz, weight.T) if input_grad else np.zeros((dz.shape[0], weight.shape[-2]), dz.dtype)
        else:
            self.g[w] = np.zeros_like(weight)
            dz_in = np.zeros((dz.shape[0], weight.shape[-2]), dz.dtype)
            if b in self.p:
                self.g[b] = np.zeros_like(self.p[b])
            for e, (lo, hi) in enumerate(self.bounds):
                if hi > lo:
                    self.g[w][e] = self.rec.matmul(stage, "weight-grad", z[lo:hi].T, dz[lo:hi])
                    if input_grad:
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

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray:
        """The gradient of the block's input (zeros, not computed, without `input_grad`); a GLU's
        gate and up gradients are summed into it (counted as the grad-sum of whichever stage
        feeds the block)."""
        cfg, act, rec, pre = self.cfg, self.cfg.base_activation, self.rec, self.prefix
        da = self.lin_back(self.a, dy, self.last)
        per = conv.activation_backward_flops(cfg.activation)
        if not cfg.is_glu:
            dh = da * kernel(act).derivative(self.h)
            rec.flops(pre + names.ACTIVATION, "elementwise", per * dh.size)
            return self.lin_back(self.src, dh, self.first[0], input_grad)
        dgate = da * self.up * kernel(act).derivative(self.gate)
        dup = da * activation_values(act, self.gate)
        rec.flops(pre + names.GLU, "elementwise", per * da.size)
        if cfg.fused:
            return self.lin_back(self.src, np.concatenate([dgate, dup], axis=1), self.first[0], input_grad)
        dsrc = self.lin_back(self.src, dgate, self.first[0], input_grad) + self.lin_back(self.src, dup, self.first[1], input_grad)
        self.extra_sums = dsrc.size if input_grad else 0
        return dsrc

    extra_sums = 0  # elements of the gate + up gradient sum, charged to the block's input stage


MoEBackward = Callable[[np.ndarray, bool], tuple[list[np.ndarray], int]]


def _moe(cfg: FFNConfig, p: Params, g: Grads, rec: BackwardRecorder, src: np.ndarray) -> tuple[np.ndarray, MoEBackward]:
    """The dropless routed layer forward, and a function that runs its backward."""
    n, d, e, k = cfg.tokens, cfg.d_model, cfg.experts, cfg.top_k
    shared = _Block(cfg, p, g, rec, names.SHARED) if cfg.shared_experts else None
    ys = shared.forward(src) if shared else None
    gated = ys is not None and cfg.shared_expert_gate
    if gated:  # Qwen2-MoE: the shared output scaled by σ = sigmoid(x·w_s), one per token
        assert ys is not None
        sig = 1.0 / (1.0 + np.exp(-matmul(src, p[names.W_SHARED_EXPERT_GATE])))
        ys_raw, ys = ys, sig * ys
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

    def backward(dy: np.ndarray, input_grad: bool = True) -> tuple[list[np.ndarray], int]:
        """The parts of the gradient of the layer's input, and the inner gradient sums; without
        `input_grad` only the weights' gradients are computed (the parts are zeros)."""
        dye = np.zeros_like(ye)
        dw = np.empty_like(w)
        for j in range(k):
            dye[slot[:, j]] = w[:, j, None] * dy
            dw[:, j] = (dy * ye[slot[:, j]]).sum(axis=1)
        rec.flops(names.COMBINE, "elementwise", conv.COMBINE_BACKWARD_FLOPS_PER_ELEMENT * n * k * d)
        dxe = experts.backward(dye, input_grad)
        dsrc = np.zeros_like(src)
        if input_grad:
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
        dshared, gate_part = dy, None
        if gated:  # dys = σ·dy, dσ = Σ dy·ys over the row, dg = dσ·σ·(1 − σ); then g = x·w_s's backward
            dshared = sig * dy
            dgate = (dy * ys_raw).sum(axis=1, keepdims=True) * sig * (1.0 - sig)
            rec.flops(names.SHARED_EXPERT_SCALE, "elementwise",
                      conv.GATE_SCALE_BACKWARD_FLOPS_PER_ELEMENT * dy.size + conv.SIGMOID_BACKWARD_FLOPS * n)  # fmt: skip
            g[names.W_SHARED_EXPERT_GATE] = rec.matmul(names.SHARED_EXPERT_GATE, "weight-grad", src.T, dgate)
            if input_grad:
                gate_part = rec.matmul(names.SHARED_EXPERT_GATE, "input-grad", dgate, p[names.W_SHARED_EXPERT_GATE].T)
        if not input_grad:
            if shared is not None:
                shared.backward(dshared, input_grad=False)
            return [dsrc], 0
        parts = [dsrc, rec.matmul(names.ROUTER, "input-grad", dlogits, p[names.W_ROUTER].T)]
        if shared is not None:
            parts.append(shared.backward(dshared))
        if gate_part is not None:
            parts.append(gate_part)
        return parts, (shared.extra_sums if shared else 0)

    return y, backward


def forward_backward(
    cfg: FFNConfig, p: Params, x: np.ndarray, dout: np.ndarray, rec: BackwardRecorder, input_grad: bool = True
) -> tuple[np.ndarray, Grads]:
    """The layer's output and the gradients of Σ(output ⊙ dout) for every weight and for x
    (not for x without `input_grad`: then nothing whose only use is dx is computed)."""
    n, d = cfg.tokens, cfg.d_model
    x2 = x.reshape(n, d)
    g: Grads = {}
    ln_cache = None
    src = x2
    if cfg.norm == "pre":
        src, ln_cache = _norm_forward(cfg, x2, p)
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
            out, post_cache = _norm_forward(cfg, out, p)

    # --- backward, last stage first ---
    dy = dout.reshape(n, d)
    if post_cache is not None:  # the residual before it always needs a gradient (y does)
        d_post = _norm_backward(cfg, rec, dy, post_cache, p, g)
        assert d_post is not None
        dy = d_post
    d_res = dy if cfg.norm != "none" else None  # the residual's share of dx
    src_stage = norm_type(cfg.norm_type).stage if cfg.norm == "pre" else names.INPUT
    # The FFN's input needs a gradient when x does, or when it is a pre-norm's output (γ needs one).
    block_grad = input_grad or cfg.norm == "pre"
    if cfg.is_moe:
        parts, inner_sums = moe_backward(dy, block_grad)
        dsrc = parts[0]
        for part in parts[1:]:
            dsrc = dsrc + part
        sums = (len(parts) - 1) * dsrc.size + inner_sums
    else:
        dsrc = block.backward(dy, block_grad)
        sums = block.extra_sums
    if sums:
        rec.flops(src_stage, "grad-sum", sums * conv.GRADIENT_SUM_FLOPS_PER_ELEMENT)
    dx = _norm_backward(cfg, rec, dsrc, ln_cache, p, g, input_grad) if ln_cache is not None else dsrc
    if not input_grad:
        return out.reshape(x.shape), g
    assert dx is not None
    if d_res is not None:
        dx = dx + d_res
        rec.flops(names.INPUT, "grad-sum", dx.size * conv.GRADIENT_SUM_FLOPS_PER_ELEMENT)
    g["x"] = dx.reshape(x.shape)
    return out.reshape(x.shape), g


def gradient_check(cfg: FFNConfig, p: Params, x: np.ndarray, dout: np.ndarray, samples: int = 40, seed: int = 0, input_grad: bool = True) -> float:
    """Largest relative error between the analytic gradients and central finite differences of
    L = Σ(output ⊙ dout), over up to `samples` entries of every weight and of x (of x only
    with `input_grad`) (float64)."""
    _, grads = forward_backward(cfg, p, x, dout, BackwardRecorder(), input_grad)
    rng = np.random.default_rng(seed)
    worst = 0.0
    eps = 1e-6

    def loss() -> float:
        out, _ = forward_backward(cfg, p, x, dout, BackwardRecorder())
        return float((out * dout).sum())

    targets: dict[str, Any] = {**p, "x": x} if input_grad else dict(p)
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
