"""The backward pass in NumPy, with explicit matmuls, for `verify --backward`.

The forward pass is verify's own (forward.py): a training step runs it with a Keep hook on its
recorder, which holds the tensors the backward needs. The backward computes every gradient by
hand (no autograd), reading each tensor from that store by name, and reports to a Recorder
(recorder.py) under the kinds of `train`'s backward ops: the operand shapes of each product
(input-grad, weight-grad), and each elementwise step's units written, counted by a Tally, at its
cost in the cost table or a registry (bias-grad, elementwise, grad-sum). A finite-difference
check on a small float64 layer shows that the gradients are right, so that the FLOPs observed
are those of a correct backward pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ffn_calc.model import conventions as conv
from ffn_calc.model import structure as names
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.norms import norm_type
from ffn_calc.verifier import routing
from ffn_calc.verifier.arrays import BLOCK_ELEMENTS, each_block
from ffn_calc.verifier.forward import Dropout, Params, forward
from ffn_calc.verifier.kernels import activation_values, kernel, norm_kernel
from ffn_calc.verifier.recorder import Keep, Recorder, Silent

Grads = dict[str, np.ndarray]
# The phases of the backward's work: the kinds of train's backward ops (training.BackwardOp).
INPUT_GRAD, WEIGHT_GRAD, BIAS_GRAD, ELEMENTWISE, GRAD_SUM = "input-grad", "weight-grad", "bias-grad", "elementwise", "grad-sum"


def _norm_backward(
    cfg: FFNConfig, rec: Recorder, dy: np.ndarray, x: np.ndarray, stats: np.ndarray, p: Params, g: Grads, input_grad: bool = True
) -> np.ndarray | None:
    """The norm's weight gradients into `g` and its input's gradient, from its input `x` and its
    saved statistics (kernels.py); None without `input_grad`: then only its weights' gradients
    are computed and counted (per element of dy they read)."""
    stage, record = norm_type(cfg.norm_type).stage, norm_kernel(cfg.norm_type)
    xhat, inv = record.xhat(x, stats)
    dx = record.backward(dy, xhat, inv, p, g, input_grad)
    costs = conv.norm_backward_costs(cfg.norm_type, input_grad)
    if dx is None:
        rec.tally(stage, costs[0], ELEMENTWISE).elements(dy)
        return None
    rec.tally(stage, costs[0], ELEMENTWISE).elements(dx)
    rec.tally(stage, costs[1], ELEMENTWISE).rows(dx)
    return dx


# --- the layer as a training step runs it ------------------------------------------------------
#
# The forward pass offers every stage's output to its recorder's Keep hook under the model's
# stage names (structure.py), with a norm's per-row statistics (float32) under its
# `stats_tensor` name and the routing's expert indices (int64) under ROUTING_INDICES. A training
# step keeps only what `train` says is saved; the backward pass reads every tensor it needs from
# the store by name, so a tensor the model says is not kept (and was not recomputed) stops it.

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


def _act_stage(cfg: FFNConfig, prefix: str) -> str:
    return prefix + (names.GLU if cfg.is_glu else names.ACTIVATION)


def _gate_up(cfg: FFNConfig, store: Store, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    *first, _ = names.linears(cfg.is_glu, cfg.fused)
    if cfg.fused:
        both = store[prefix + first[0].stage]
        half = both.shape[1] // 2
        return both[:, :half], both[:, half:]
    return store[prefix + first[0].stage], store[prefix + first[1].stage]


class _Block:
    """The backward of one feed-forward block — the dense layer, the shared experts, or the routed
    experts (`bounds`: each expert's rows). `src` names the block's input in the store."""

    def __init__(self, cfg: FFNConfig, p: Params, rec: Recorder, prefix: str, src: str, bounds: list[tuple[int, int]] | None = None):
        self.cfg, self.p, self.rec, self.prefix, self.src, self.bounds = cfg, p, rec, prefix, src, bounds
        *self.first, self.last = names.linears(cfg.is_glu, cfg.fused)
        self.gathered = 0  # bytes of the block's input when it was gathered for the backward, not kept
        self.transient = 0  # the most gradients alive at once: a product's or the activation's output + input gradients
        self.alive: list[np.ndarray] = []  # the block's gradients alive while it runs (rec.held notes them)
        self.gathered_input: np.ndarray | None = None

    def lin_back(self, z: np.ndarray, dz: np.ndarray, spec: names.Linear, g: Grads, input_grad: bool = True) -> np.ndarray:
        """The weight (and bias) gradients into g; returns dz·Wᵀ, or zeros, not computed and not
        counted, when the input needs no gradient."""
        stage, w, b = self.prefix + spec.stage, self.prefix + spec.weight, self.prefix + spec.bias
        weight, rec = self.p[w], self.rec
        if self.bounds is None:
            g[w] = rec.matmul(stage, z.T, dz, phase=WEIGHT_GRAD)
            if b in self.p:
                g[b] = dz.sum(axis=0)
            dz_in = rec.matmul(stage, dz, weight.T, phase=INPUT_GRAD) if input_grad else np.zeros((dz.shape[0], weight.shape[-2]), dz.dtype)
        else:
            g[w] = np.zeros_like(weight)
            dz_in = np.zeros((dz.shape[0], weight.shape[-2]), dz.dtype)
            if b in self.p:
                g[b] = np.zeros_like(self.p[b])
            for e, (lo, hi) in enumerate(self.bounds):
                if hi > lo:
                    g[w][e] = rec.matmul(stage, z[lo:hi].T, dz[lo:hi], phase=WEIGHT_GRAD)
                    if input_grad:
                        dz_in[lo:hi] = rec.matmul(stage, dz[lo:hi], weight[e].T, phase=INPUT_GRAD)
                    if b in self.p:
                        g[b][e] = dz[lo:hi].sum(axis=0)
        if b in self.p:
            rec.tally(stage, conv.BIAS_GRAD, BIAS_GRAD).elements(dz)  # each element of dz summed into db
        gathered = self.gathered if spec.first else 0  # the first linears' weight gradients read it
        if input_grad or gathered:
            self.transient = max(self.transient, dz.nbytes + (dz_in.nbytes if input_grad else 0) + gathered)
        rec.held.note(*self.alive, dz, dz_in if input_grad else None, self.gathered_input if spec.first else None)
        return dz_in

    def backward(self, store: Store, dy: np.ndarray, g: Grads, input_grad: bool = True) -> np.ndarray:
        """The gradient of the block's input (zeros, not computed, without `input_grad`), every
        tensor read from the store; a GLU's gate and up gradients are summed into it, that sum
        counted under the block's input stage."""
        cfg, act, rec, pre = self.cfg, self.cfg.base_activation, self.rec, self.prefix
        a = store[_act_stage(cfg, pre)]
        self.alive = [dy]
        da = self.lin_back(a, dy, self.last, g)
        self.alive.append(da)
        src = store[self.src]
        self.gathered = src.nbytes if self.src in getattr(store, "gathered", ()) else 0  # read by the first linears below
        self.gathered_input = src if self.gathered else None
        step = max(1, BLOCK_ELEMENTS // max(1, da.shape[1]))  # rows per block: the derivatives' scratch stays a block
        costs = conv.activation_backward_costs(cfg.activation)
        if not cfg.is_glu:
            dh = np.empty_like(da)
            tally = rec.tally(pre + names.ACTIVATION, costs[0], ELEMENTWISE)
            if cfg.nonlinearity.backward_reads == "output":  # ReLU: act'(h) = [act(h) > 0], from the saved output

                def plain_block(i: int, j: int) -> None:
                    np.multiply(da[i:j], a[i:j] > 0, out=dh[i:j], casting="unsafe")
                    tally.elements(dh[i:j])
            else:
                h = store[pre + self.first[0].stage]
                derivative = kernel(act).derivative

                def plain_block(i: int, j: int) -> None:
                    np.multiply(da[i:j], derivative(h[i:j]), out=dh[i:j], casting="unsafe")
                    tally.elements(dh[i:j])

            each_block(da.shape[0], step, plain_block)
            self.transient = max(self.transient, da.nbytes + dh.nbytes)
            self.alive.append(dh)
            dx = self.lin_back(src, dh, self.first[0], g, input_grad)
            self.alive, self.gathered_input = [], None
            return dx
        gate, up = _gate_up(cfg, store, pre)
        if cfg.fused:  # [dgate | dup] in one array, as the fused first linear takes it
            both = np.empty((da.shape[0], 2 * da.shape[1]), da.dtype)
            dgate, dup = both[:, : da.shape[1]], both[:, da.shape[1] :]
        else:
            dgate, dup = np.empty_like(da), np.empty_like(da)
        # act'(g) for dg; act(g) again for du; the GLU's multiplies by u and by da
        of_derivative, of_again, of_multiplies = (rec.tally(pre + names.GLU, cost, ELEMENTWISE) for cost in costs)

        def glu_block(i: int, j: int) -> None:
            np.multiply(da[i:j] * up[i:j], kernel(act).derivative(gate[i:j]), out=dgate[i:j], casting="unsafe")
            of_derivative.elements(dgate[i:j])
            np.multiply(da[i:j], activation_values(act, gate[i:j]), out=dup[i:j], casting="unsafe")
            of_again.elements(dup[i:j])
            of_multiplies.elements(da[i:j])

        each_block(da.shape[0], step, glu_block)
        self.transient = max(self.transient, da.nbytes + (both.nbytes if cfg.fused else dgate.nbytes + dup.nbytes))
        if cfg.fused:
            self.alive.append(both)
            dx = self.lin_back(src, both, self.first[0], g, input_grad)
            self.alive, self.gathered_input = [], None
            return dx
        self.alive += [dgate, dup]
        from_gate = self.lin_back(src, dgate, self.first[0], g, input_grad)
        self.alive.append(from_gate)
        from_up = self.lin_back(src, dup, self.first[1], g, input_grad)
        dsrc = from_gate + from_up
        rec.held.note(*self.alive, from_up, dsrc)
        self.alive, self.gathered_input = [], None
        if input_grad:
            rec.tally(self.src, conv.GRADIENT_SUM, GRAD_SUM).elements(dsrc)
        return dsrc


def layer_backward(
    cfg: FFNConfig, p: Params, store: Store, dout: np.ndarray, rec: Recorder, input_grad: bool = True, dropout: Dropout | None = None
) -> tuple[Grads, int]:
    """Every weight's gradient (and x's, as "x", with `input_grad`) of Σ(output ⊙ dout), each
    tensor read from `store` by name; and the largest output-gradient + input-gradient pair
    of a product (bytes). Raises MissingTensor when the store lacks a tensor it needs."""
    store = Reads(store, store.read, store.gathered) if isinstance(store, Reads) else Reads(store)
    n, d, e, k = cfg.tokens, cfg.d_model, cfg.experts, cfg.top_k
    g: Grads = {}
    nt = norm_type(cfg.norm_type)
    transient = 0
    held = rec.held
    dy = dout.reshape(n, d)
    d_post = None
    if cfg.norm == "post":
        d_post = _norm_backward(cfg, rec, dy, store[names.RESIDUAL], store[nt.stats_tensor], p, g)
        assert d_post is not None
        dy = d_post.astype(dout.dtype)
    d_res = dy if cfg.norm != "none" else None
    if dropout is not None:
        dy = dropout.apply(dy, conv.DROPOUT_BACKWARD)
    held.outer = [a for a in (dout, d_post, d_res) if a is not None]  # the layer's gradients alive while its blocks run
    src = nt.stage if cfg.norm == "pre" else names.INPUT
    pre_backward = cfg.norm == "pre" and (input_grad or bool(nt.weights))  # the pre-norm's backward runs: dx, or its weights' gradients
    block_grad = input_grad or pre_backward
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
        combined = rec.tally(names.COMBINE, conv.COMBINE_BACKWARD, ELEMENTWISE)
        for j in range(k):
            dye[slot[:, j]] = w[:, j, None] * dy
            dw[:, j] = (dy.astype(ct) * ye[slot[:, j]]).sum(axis=1)
            combined.elements(dy)  # the rows of dye this slot wrote
        experts = _Block(cfg, p, rec, names.EXPERT, names.DISPATCH, groups.bounds)
        held.outer += [dy, dw, probs]
        dxe = experts.backward(store, dye, g, block_grad)
        transient = max(transient, experts.transient)
        dsrc = np.zeros_like(s)
        held.outer += [dye, dxe, dsrc]
        if block_grad:
            np.add.at(dsrc, token, dxe)
            rec.tally(names.DISPATCH, conv.DISPATCH_BACKWARD, ELEMENTWISE).elements(dxe)
        dchosen = (dw - (dw * w).sum(axis=1, keepdims=True)) / total
        dprobs = np.zeros_like(probs)
        np.put_along_axis(dprobs, top, dchosen, axis=1)
        dlogits = (probs * (dprobs - (probs * dprobs).sum(axis=1, keepdims=True))).astype(s.dtype)
        rec.tally(names.ROUTING, conv.ROUTER_SOFTMAX_BACKWARD, ELEMENTWISE).elements(dlogits)
        rec.tally(names.ROUTING, conv.TOP_K_RENORM_BACKWARD, ELEMENTWISE).elements(dchosen)
        g[names.W_ROUTER] = rec.matmul(names.ROUTER, s.T, dlogits, phase=WEIGHT_GRAD)
        shared = _Block(cfg, p, rec, names.SHARED, src) if cfg.shared_experts else None
        dshared, gate_part = dy, None
        if shared is not None and cfg.shared_expert_gate:
            sig = 1.0 / (1.0 + np.exp(np.negative(store[names.SHARED_EXPERT_GATE].astype(ct))))
            ys_raw = store[names.SHARED + names.linears(cfg.is_glu, cfg.fused)[-1].stage]
            dshared = (sig * dy).astype(dy.dtype)
            dgate = ((dy.astype(ct) * ys_raw).sum(axis=1, keepdims=True) * sig * (1.0 - sig)).astype(s.dtype)
            rec.tally(names.SHARED_EXPERT_SCALE, conv.GATE_SCALE_BACKWARD, ELEMENTWISE).elements(dshared)
            rec.tally(names.SHARED_EXPERT_SCALE, conv.GATE_SIGMOID_BACKWARD, ELEMENTWISE).rows(dgate)
            g[names.W_SHARED_EXPERT_GATE] = rec.matmul(names.SHARED_EXPERT_GATE, s.T, dgate, phase=WEIGHT_GRAD)
            if block_grad:
                gate_part = rec.matmul(names.SHARED_EXPERT_GATE, dgate, p[names.W_SHARED_EXPERT_GATE].T, phase=INPUT_GRAD)
                transient = max(transient, dgate.nbytes + gate_part.nbytes)
        held.outer += [dshared] + ([gate_part] if gate_part is not None else [])
        if not block_grad:
            if shared is not None:
                shared.backward(store, dshared, g, input_grad=False)
            parts = [dsrc]
        else:
            parts = [dsrc, rec.matmul(names.ROUTER, dlogits, p[names.W_ROUTER].T, phase=INPUT_GRAD)]
            transient = max(transient, dlogits.nbytes + parts[-1].nbytes)
            held.outer.append(parts[-1])
            if shared is not None:
                parts.append(shared.backward(store, dshared, g))
                transient = max(transient, shared.transient)
            if gate_part is not None:
                parts.append(gate_part)
        dsrc = parts[0]
        for part in parts[1:]:  # the block input's gradients added together
            dsrc = dsrc + part
            held.note(*parts, dsrc)
            rec.tally(src, conv.GRADIENT_SUM, GRAD_SUM).elements(dsrc)
    else:
        block = _Block(cfg, p, rec, "", src)
        dsrc = block.backward(store, dy, g, block_grad)
        transient = block.transient
    held.outer = []
    dx: np.ndarray | None = dsrc
    if pre_backward:
        dx = _norm_backward(cfg, rec, dsrc, store[names.INPUT], store[nt.stats_tensor], p, g, input_grad)
    for name, grad in g.items():  # gradients in the weights' dtype, as autograd keeps them
        if grad.dtype != p[name].dtype:
            g[name] = grad.astype(p[name].dtype)
    if not input_grad:
        return g, transient
    assert dx is not None
    if d_res is not None:
        dx = dx + d_res
        rec.tally(names.INPUT, conv.GRADIENT_SUM, GRAD_SUM).elements(dx)
    g["x"] = np.asarray(dx).astype(dout.dtype).reshape(dout.shape)
    return g, transient


def forward_backward(cfg: FFNConfig, p: Params, x: np.ndarray, dout: np.ndarray, input_grad: bool = True) -> tuple[np.ndarray, Grads]:
    """The layer's output and the gradients of Σ(output ⊙ dout) for every weight and for x
    (not for x without `input_grad`: then nothing whose only use is dx is computed), every
    stage kept (no recomputation): verify's forward pass, its hook keeping everything."""
    keep = Keep()
    rec = Recorder(keep=keep, einsum=False)
    out = forward(rec, cfg, p, x)
    grads, _ = layer_backward(cfg, p, keep.store, dout, rec, input_grad)
    return out.reshape(x.shape), grads


def gradient_check(cfg: FFNConfig, p: Params, x: np.ndarray, dout: np.ndarray, samples: int = 40, seed: int = 0, input_grad: bool = True) -> float:
    """Largest relative error between the analytic gradients and central finite differences of
    L = Σ(output ⊙ dout), over up to `samples` entries of every weight and of x (of x only
    with `input_grad`) (float64)."""
    _, grads = forward_backward(cfg, p, x, dout, input_grad)
    rng = np.random.default_rng(seed)
    worst = 0.0
    eps = 1e-6

    def loss() -> float:
        out = forward(Silent(), cfg, p, x)
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
            analytic = float(grads[name].reshape(-1)[i]) if name in grads else 0.0  # none computed: its dW shape check fails
            worst = max(worst, abs(numeric - analytic) / max(1.0, abs(numeric), abs(analytic)))
    return worst
