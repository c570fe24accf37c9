"""The backward pass in NumPy, with explicit matmuls, for `verify --backward`.

The forward keeps what backward needs; backward computes every gradient by hand (no autograd)
and records the operand shapes of each product and the elements of each elementwise step, as
the forward recorder does. A finite-difference check on a small float64 layer shows that the
gradients are right, so that the FLOPs observed are those of a correct backward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ffn_calc.model import conventions as conv
from ffn_calc.model import structure as names
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.norms import norm_type
from ffn_calc.verifier import routing
from ffn_calc.verifier.arrays import BLOCK_ELEMENTS, each_block, matmul
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
    if not input_grad:
        xhat = cache[0]
        for w, grad in zip(kind.weights, ((dy * xhat).sum(axis=0), dy.sum(axis=0)), strict=False):  # dγ = Σ dy·x̂, dβ = Σ dy
            g[w] = grad
        rec.flops(kind.stage, "elementwise", kind.weight_grad_flops_per_element * dy.size)  # per element of dy read
        return None
    dx = NORM_PASSES[kind.name][1](dy, cache, p, g)
    rec.flops(kind.stage, "elementwise", kind.backward_flops_per_element * dx.size + kind.backward_flops_per_row * dx.shape[0])
    return dx


# --- the layer as a training step runs it ------------------------------------------------------
#
# The forward pass puts every stage's output into a Store under the model's stage names
# (structure.py), with a norm's per-row statistics in float32 under its `stats_tensor` name and
# the routing's expert indices (int64) under ROUTING_INDICES. A training step then keeps only
# what `train` says is saved; the backward pass reads every tensor it needs from the store by
# name, so a tensor the model says is not kept (and was not recomputed) stops it with a KeyError.

Store = dict[str, np.ndarray]


class MissingTensor(Exception):
    """The backward pass needed a tensor that was neither saved nor recomputed."""


class Reads(dict):  # type: ignore[type-arg]
    """A store that notes every name read from it (into `read`) and whose missing names raise
    MissingTensor, naming the tensor. `gathered` names the tensors rebuilt from shards for the
    backward (sequence parallelism's layer input), not kept: alive only while it runs."""

    def __init__(self, store: Store, read: set[str] | None = None, gathered: Iterable[str] = ()) -> None:
        super().__init__(store)
        self.read = read if read is not None else set()
        self.gathered = set(gathered)

    def __getitem__(self, name: str) -> np.ndarray:
        self.read.add(name)
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:
        self.read.add(name)
        return super().get(name, default)

    def __missing__(self, name: str) -> np.ndarray:
        raise MissingTensor(name)


@dataclass
class Dropout:
    """Dropout on the FFN output: a real mask of 1-byte booleans, kept where True, the kept
    values scaled by 1/(1 − rate); FLOPs counted as the convention × elements written."""

    mask: np.ndarray
    rate: float = 0.1
    flops: int = 0

    def apply(self, y: np.ndarray, cost: conv.Cost = conv.DROPOUT) -> np.ndarray:
        """The mask on `y` (forward) or on its gradient (cost conv.DROPOUT_BACKWARD)."""
        out = (y * self.mask.reshape(y.shape) * (1.0 / (1.0 - self.rate))).astype(y.dtype)
        self.flops += cost.flops * out.size
        return out


def _act_stage(cfg: FFNConfig, prefix: str) -> str:
    return prefix + (names.GLU if cfg.is_glu else names.ACTIVATION)


def _gate_up(cfg: FFNConfig, store: Store, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    *first, _ = names.linears(cfg.is_glu, cfg.fused)
    if cfg.fused:
        both = store[prefix + first[0].stage]
        half = both.shape[1] // 2
        return both[:, :half], both[:, half:]
    return store[prefix + first[0].stage], store[prefix + first[1].stage]


def activate(cfg: FFNConfig, rec: BackwardRecorder, store: Store, prefix: str, kind: str = "forward") -> np.ndarray:
    """The activation (or GLU) stage from its inputs in the store, into the store; its FLOPs
    the convention × the elements written, recorded under (stage, kind)."""
    act, stage = cfg.base_activation, _act_stage(cfg, prefix)
    if cfg.is_glu:
        gate, up = _gate_up(cfg, store, prefix)
        a = (activation_values(act, gate) * up).astype(gate.dtype)
    else:
        *first, _ = names.linears(cfg.is_glu, cfg.fused)
        h = store[prefix + first[0].stage]
        a = activation_values(act, h).astype(h.dtype)
    rec.flops(stage, kind, conv.activation_flops(cfg.activation) * a.size)
    store[stage] = a
    return a


class _Block:
    """One feed-forward block — the dense layer, the shared experts, or the routed experts
    (`bounds`: each expert's rows). `src` names the block's input in the store."""

    def __init__(self, cfg: FFNConfig, p: Params, rec: BackwardRecorder, prefix: str, src: str, bounds: list[tuple[int, int]] | None = None):
        self.cfg, self.p, self.rec, self.prefix, self.src, self.bounds = cfg, p, rec, prefix, src, bounds
        *self.first, self.last = names.linears(cfg.is_glu, cfg.fused)
        self.extra_sums = 0  # elements of the gate + up gradient sum, charged to the block's input stage
        self.gathered = 0  # bytes of the block's input when it was gathered for the backward, not kept
        self.transient = 0  # the most gradients alive at once: a product's or the activation's output + input gradients

    def lin(self, z: np.ndarray, spec: names.Linear) -> np.ndarray:
        stage, w, b = self.prefix + spec.stage, self.p[self.prefix + spec.weight], self.prefix + spec.bias
        if self.bounds is None:
            out = self.rec.matmul(stage, "forward", z, w)
        else:
            out = np.zeros((z.shape[0], w.shape[-1]), z.dtype)
            for e, (lo, hi) in enumerate(self.bounds):
                if hi > lo:
                    out[lo:hi] = self.rec.matmul(stage, "forward", z[lo:hi], w[e])
        if b in self.p:
            bias = self.p[b]
            if self.bounds is not None:
                bias = np.concatenate([np.repeat(bias[e : e + 1], hi - lo, axis=0) for e, (lo, hi) in enumerate(self.bounds)])
            out = (out + bias).astype(z.dtype)
            self.rec.flops(stage, "forward", conv.BIAS_ADD.flops * out.size)
        return out

    def forward(self, store: Store) -> np.ndarray:
        src = store[self.src]
        for spec in self.first:
            store[self.prefix + spec.stage] = self.lin(src, spec)
        a = activate(self.cfg, self.rec, store, self.prefix)
        y = self.lin(a, self.last)
        store[self.prefix + self.last.stage] = y
        return y

    def lin_back(self, z: np.ndarray, dz: np.ndarray, spec: names.Linear, g: Grads, input_grad: bool = True) -> np.ndarray:
        """The weight (and bias) gradients into g; returns dz·Wᵀ, or zeros, not computed and not
        counted, when the input needs no gradient."""
        stage, w, b = self.prefix + spec.stage, self.prefix + spec.weight, self.prefix + spec.bias
        weight = self.p[w]
        if self.bounds is None:
            g[w] = self.rec.matmul(stage, "weight-grad", z.T, dz)
            if b in self.p:
                g[b] = dz.sum(axis=0)
            dz_in = self.rec.matmul(stage, "input-grad", dz, weight.T) if input_grad else np.zeros((dz.shape[0], weight.shape[-2]), dz.dtype)
        else:
            g[w] = np.zeros_like(weight)
            dz_in = np.zeros((dz.shape[0], weight.shape[-2]), dz.dtype)
            if b in self.p:
                g[b] = np.zeros_like(self.p[b])
            for e, (lo, hi) in enumerate(self.bounds):
                if hi > lo:
                    g[w][e] = self.rec.matmul(stage, "weight-grad", z[lo:hi].T, dz[lo:hi])
                    if input_grad:
                        dz_in[lo:hi] = self.rec.matmul(stage, "input-grad", dz[lo:hi], weight[e].T)
                    if b in self.p:
                        g[b][e] = dz[lo:hi].sum(axis=0)
        if b in self.p:
            self.rec.flops(stage, "bias-grad", dz.size * conv.BIAS_GRAD.flops)
        gathered = self.gathered if spec.first else 0  # the first linears' weight gradients read it
        if input_grad or gathered:
            self.transient = max(self.transient, dz.nbytes + (dz_in.nbytes if input_grad else 0) + gathered)
        return dz_in

    def backward(self, store: Store, dy: np.ndarray, g: Grads, input_grad: bool = True) -> np.ndarray:
        """The gradient of the block's input (zeros, not computed, without `input_grad`), every
        tensor read from the store; a GLU's gate and up gradients are summed into it."""
        cfg, act, rec, pre = self.cfg, self.cfg.base_activation, self.rec, self.prefix
        a = store[_act_stage(cfg, pre)]
        da = self.lin_back(a, dy, self.last, g)
        per = conv.activation_backward_flops(cfg.activation)
        src = store[self.src]
        self.gathered = src.nbytes if self.src in getattr(store, "gathered", ()) else 0  # read by the first linears below
        step = max(1, BLOCK_ELEMENTS // max(1, da.shape[1]))  # rows per block: the derivatives' scratch stays a block
        if not cfg.is_glu:
            dh = np.empty_like(da)
            if cfg.nonlinearity.backward_reads == "output":  # ReLU: act'(h) = [act(h) > 0], from the saved output
                each_block(da.shape[0], step, lambda i, j: np.multiply(da[i:j], a[i:j] > 0, out=dh[i:j], casting="unsafe"))
            else:
                h = store[pre + self.first[0].stage]
                derivative = kernel(act).derivative
                each_block(da.shape[0], step, lambda i, j: np.multiply(da[i:j], derivative(h[i:j]), out=dh[i:j], casting="unsafe"))
            rec.flops(pre + names.ACTIVATION, "elementwise", per * dh.size)
            self.transient = max(self.transient, da.nbytes + dh.nbytes)
            return self.lin_back(src, dh, self.first[0], g, input_grad)
        gate, up = _gate_up(cfg, store, pre)
        if cfg.fused:  # [dgate | dup] in one array, as the fused first linear takes it
            both = np.empty((da.shape[0], 2 * da.shape[1]), da.dtype)
            dgate, dup = both[:, : da.shape[1]], both[:, da.shape[1] :]
        else:
            dgate, dup = np.empty_like(da), np.empty_like(da)

        def glu_block(i: int, j: int) -> None:
            np.multiply(da[i:j] * up[i:j], kernel(act).derivative(gate[i:j]), out=dgate[i:j], casting="unsafe")
            np.multiply(da[i:j], activation_values(act, gate[i:j]), out=dup[i:j], casting="unsafe")

        each_block(da.shape[0], step, glu_block)
        rec.flops(pre + names.GLU, "elementwise", per * da.size)
        self.transient = max(self.transient, da.nbytes + (both.nbytes if cfg.fused else dgate.nbytes + dup.nbytes))
        if cfg.fused:
            return self.lin_back(src, both, self.first[0], g, input_grad)
        dsrc = self.lin_back(src, dgate, self.first[0], g, input_grad) + self.lin_back(src, dup, self.first[1], g, input_grad)
        self.extra_sums = dsrc.size if input_grad else 0
        return dsrc


def _norm_stats(kind: str, x: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """A norm's per-row statistics as `train` saves them: float32, LayerNorm's mean and 1/σ,
    RMSNorm's 1/rms."""
    columns = [x.mean(axis=-1, keepdims=True), inv] if kind == "layer" else [inv]
    return np.concatenate([np.asarray(c, np.float32) for c in columns], axis=1)


def _norm_cache(kind: str, x: np.ndarray, stats: np.ndarray) -> NormCache:
    """x̂ and 1/σ again from the norm's saved input and statistics."""
    ct: Any = np.float64 if x.dtype == np.float64 else np.float32
    xf = x.astype(ct)
    inv = stats[:, -1:].astype(ct)
    return ((xf - stats[:, :1].astype(ct)) * inv if kind == "layer" else xf * inv), inv


def _store_norm(cfg: FFNConfig, p: Params, rec: BackwardRecorder, store: Store, src: str) -> np.ndarray:
    nt = norm_type(cfg.norm_type)
    x = store[src]
    out, (_, inv) = _norm_forward(cfg, x, p)
    store[nt.stats_tensor] = _norm_stats(cfg.norm_type, x, inv)
    out = np.asarray(out).astype(x.dtype)
    rec.flops(nt.stage, "forward", nt.flops_per_element * out.size + nt.flops_per_row * out.shape[0])  # per element and row written
    return out


def layer_forward(cfg: FFNConfig, p: Params, x: np.ndarray, rec: BackwardRecorder, dropout: Dropout | None = None) -> tuple[np.ndarray, Store]:
    """The layer's output (tokens, d_model) and the store of every stage's output; forward
    products and elementwise work recorded under (stage, "forward")."""
    n, d, e, k = cfg.tokens, cfg.d_model, cfg.experts, cfg.top_k
    store: Store = {names.INPUT: x.reshape(n, d)}
    src = names.INPUT
    nt = norm_type(cfg.norm_type)
    if cfg.norm == "pre":
        store[nt.stage] = _store_norm(cfg, p, rec, store, names.INPUT)
        src = nt.stage
    if cfg.is_moe:
        s = store[src]
        ys = _Block(cfg, p, rec, names.SHARED, src).forward(store) if cfg.shared_experts else None
        if ys is not None and cfg.shared_expert_gate:
            logit = rec.matmul(names.SHARED_EXPERT_GATE, "forward", s, p[names.W_SHARED_EXPERT_GATE])
            store[names.SHARED_EXPERT_GATE] = logit
            sig = 1.0 / (1.0 + np.exp(np.negative(logit, dtype=np.float64 if s.dtype == np.float64 else np.float32)))
            ys = (sig * ys).astype(s.dtype)
            store[names.SHARED_EXPERT_SCALE] = ys
            rec.flops(names.SHARED_EXPERT_SCALE, "forward", conv.GATE_SIGMOID.flops * sig.size + conv.GATE_SCALE.flops * ys.size)
        logits = rec.matmul(names.ROUTER, "forward", s, p[names.W_ROUTER])
        store[names.ROUTER] = logits
        probs = routing.softmax(logits.astype(np.float64 if s.dtype == np.float64 else np.float32))
        top, chosen, total = routing.top_k(probs, k)
        w = (chosen / total).astype(s.dtype)
        store[names.ROUTING] = w
        store[names.ROUTING_INDICES] = top.astype(np.int64)
        rec.flops(
            names.ROUTING, "forward", conv.ROUTER_SOFTMAX.flops * probs.size + conv.TOP_K_RENORM.at(k).flops * w.shape[0]
        )  # per logit, per token
        del probs
        groups = routing.group(top, e)
        slot = groups.slots().reshape(n, k)
        store[names.DISPATCH] = s[groups.order // k]
        ye = _Block(cfg, p, rec, names.EXPERT, names.DISPATCH, groups.bounds).forward(store)
        y = sum(w[:, j, None] * ye[slot[:, j]] for j in range(k))
        if ys is not None:
            y = y + ys
        y = np.asarray(y).astype(s.dtype)
        flops = conv.COMBINE.at(k).flops * y.size + (conv.SHARED_ADD.flops * y.size if ys is not None else 0)  # per element written
        store[names.COMBINE] = y
        rec.flops(names.COMBINE, "forward", flops)
    else:
        y = _Block(cfg, p, rec, "", src).forward(store)
    if dropout is not None:
        y = dropout.apply(y)
    if cfg.norm == "none":
        return y, store
    out = (store[names.INPUT] + y).astype(y.dtype)
    store[names.RESIDUAL] = out
    rec.flops(names.RESIDUAL, "forward", conv.RESIDUAL_ADD.flops * out.size)
    if cfg.norm == "post":
        out = _store_norm(cfg, p, rec, store, names.RESIDUAL)
    return out, store


def layer_backward(
    cfg: FFNConfig, p: Params, store: Store, dout: np.ndarray, rec: BackwardRecorder, input_grad: bool = True, dropout: Dropout | None = None
) -> tuple[Grads, int]:
    """Every weight's gradient (and x's, as "x", with `input_grad`) of Σ(output ⊙ dout), each
    tensor read from `store` by name; and the largest output-gradient + input-gradient pair
    of a product (bytes). Raises MissingTensor when the store lacks a tensor it needs."""
    store = Reads(store, store.read, store.gathered) if isinstance(store, Reads) else Reads(store)
    n, d, e, k = cfg.tokens, cfg.d_model, cfg.experts, cfg.top_k
    g: Grads = {}
    nt = norm_type(cfg.norm_type)
    transient = 0
    dy = dout.reshape(n, d)
    if cfg.norm == "post":
        d_post = _norm_backward(cfg, rec, dy, _norm_cache(cfg.norm_type, store[names.RESIDUAL], store[nt.stats_tensor]), p, g)
        assert d_post is not None
        dy = d_post.astype(dout.dtype)
    d_res = dy if cfg.norm != "none" else None
    if dropout is not None:
        dy = dropout.apply(dy, conv.DROPOUT_BACKWARD)
    src = nt.stage if cfg.norm == "pre" else names.INPUT
    block_grad = input_grad or cfg.norm == "pre"
    if cfg.is_moe:
        s = store[src]
        w, top, ye = store[names.ROUTING], store[names.ROUTING_INDICES], store[names.EXPERT + names.linears(cfg.is_glu, cfg.fused)[-1].stage]
        ct = np.float64 if s.dtype == np.float64 else np.float32
        probs = routing.softmax(store[names.ROUTER].astype(ct))  # from the saved logits
        total = np.take_along_axis(probs, top, axis=1).sum(axis=1, keepdims=True)
        groups = routing.group(top, e)
        slot = groups.slots().reshape(n, k)
        token = groups.order // k
        dye = np.zeros_like(ye)
        dw = np.empty(w.shape, ct)
        written = 0
        for j in range(k):
            dye[slot[:, j]] = w[:, j, None] * dy
            dw[:, j] = (dy.astype(ct) * ye[slot[:, j]]).sum(axis=1)
            written += dy.size  # the rows of dye this slot wrote
        rec.flops(names.COMBINE, "elementwise", conv.COMBINE_BACKWARD.flops * written)
        experts = _Block(cfg, p, rec, names.EXPERT, names.DISPATCH, groups.bounds)
        dxe = experts.backward(store, dye, g, block_grad)
        transient = max(transient, experts.transient)
        dsrc = np.zeros_like(s)
        if block_grad:
            np.add.at(dsrc, token, dxe)
            rec.flops(names.DISPATCH, "elementwise", conv.DISPATCH_BACKWARD.flops * dxe.size)
            rec.flops(names.DISPATCH, "grad-sum", experts.extra_sums * conv.GRADIENT_SUM.flops)
        dchosen = (dw - (dw * w).sum(axis=1, keepdims=True)) / total
        dprobs = np.zeros_like(probs)
        np.put_along_axis(dprobs, top, dchosen, axis=1)
        dlogits = (probs * (dprobs - (probs * dprobs).sum(axis=1, keepdims=True))).astype(s.dtype)
        per_logit, per_weight = conv.ROUTER_SOFTMAX_BACKWARD.flops, conv.TOP_K_RENORM_BACKWARD.flops
        rec.flops(names.ROUTING, "elementwise", per_logit * dlogits.size + per_weight * dchosen.size)
        g[names.W_ROUTER] = rec.matmul(names.ROUTER, "weight-grad", s.T, dlogits)
        shared = _Block(cfg, p, rec, names.SHARED, src) if cfg.shared_experts else None
        dshared, gate_part = dy, None
        if shared is not None and cfg.shared_expert_gate:
            sig = 1.0 / (1.0 + np.exp(np.negative(store[names.SHARED_EXPERT_GATE].astype(ct))))
            ys_raw = store[names.SHARED + names.linears(cfg.is_glu, cfg.fused)[-1].stage]
            dshared = (sig * dy).astype(dy.dtype)
            dgate = ((dy.astype(ct) * ys_raw).sum(axis=1, keepdims=True) * sig * (1.0 - sig)).astype(s.dtype)
            rec.flops(names.SHARED_EXPERT_SCALE, "elementwise",
                      conv.GATE_SCALE_BACKWARD.flops * dshared.size + conv.GATE_SIGMOID_BACKWARD.flops * dgate.size)  # fmt: skip
            g[names.W_SHARED_EXPERT_GATE] = rec.matmul(names.SHARED_EXPERT_GATE, "weight-grad", s.T, dgate)
            if block_grad:
                gate_part = rec.matmul(names.SHARED_EXPERT_GATE, "input-grad", dgate, p[names.W_SHARED_EXPERT_GATE].T)
                transient = max(transient, dgate.nbytes + gate_part.nbytes)
        if not block_grad:
            if shared is not None:
                shared.backward(store, dshared, g, input_grad=False)
            parts, inner = [dsrc], 0
        else:
            parts = [dsrc, rec.matmul(names.ROUTER, "input-grad", dlogits, p[names.W_ROUTER].T)]
            transient = max(transient, dlogits.nbytes + parts[-1].nbytes)
            if shared is not None:
                parts.append(shared.backward(store, dshared, g))
                transient = max(transient, shared.transient)
            if gate_part is not None:
                parts.append(gate_part)
            inner = shared.extra_sums if shared else 0
        dsrc = parts[0]
        for part in parts[1:]:
            dsrc = dsrc + part
        sums = (len(parts) - 1) * dsrc.size + inner if block_grad else 0
    else:
        block = _Block(cfg, p, rec, "", src)
        dsrc = block.backward(store, dy, g, block_grad)
        transient = block.transient
        sums = block.extra_sums
    if sums:
        rec.flops(src, "grad-sum", sums * conv.GRADIENT_SUM.flops)
    dx: np.ndarray | None = dsrc
    if cfg.norm == "pre":
        dx = _norm_backward(cfg, rec, dsrc, _norm_cache(cfg.norm_type, store[names.INPUT], store[nt.stats_tensor]), p, g, input_grad)
    for name, grad in g.items():  # gradients in the weights' dtype, as autograd keeps them
        if grad.dtype != p[name].dtype:
            g[name] = grad.astype(p[name].dtype)
    if not input_grad:
        return g, transient
    assert dx is not None
    if d_res is not None:
        dx = dx + d_res
        rec.flops(names.INPUT, "grad-sum", dx.size * conv.GRADIENT_SUM.flops)
    g["x"] = np.asarray(dx).astype(dout.dtype).reshape(dout.shape)
    return g, transient


def forward_backward(
    cfg: FFNConfig, p: Params, x: np.ndarray, dout: np.ndarray, rec: BackwardRecorder, input_grad: bool = True
) -> tuple[np.ndarray, Grads]:
    """The layer's output and the gradients of Σ(output ⊙ dout) for every weight and for x
    (not for x without `input_grad`: then nothing whose only use is dx is computed), every
    stage kept (no recomputation)."""
    out, store = layer_forward(cfg, p, x, rec)
    grads, _ = layer_backward(cfg, p, store, dout, rec, input_grad)
    return out.reshape(x.shape), grads


def gradient_check(cfg: FFNConfig, p: Params, x: np.ndarray, dout: np.ndarray, samples: int = 40, seed: int = 0, input_grad: bool = True) -> float:
    """Largest relative error between the analytic gradients and central finite differences of
    L = Σ(output ⊙ dout), over up to `samples` entries of every weight and of x (of x only
    with `input_grad`) (float64)."""
    _, grads = forward_backward(cfg, p, x, dout, BackwardRecorder(), input_grad)
    rng = np.random.default_rng(seed)
    worst = 0.0
    eps = 1e-6

    def loss() -> float:
        out, _ = layer_forward(cfg, p, x, BackwardRecorder())
        return float((out.reshape(dout.shape) * dout).sum())

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
