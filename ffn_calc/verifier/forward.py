"""The FFN layer in NumPy, written out by hand, reporting what really ran to a Recorder.

The pass runs out of place, the way an eager framework runs inference: each stage allocates
its output, and a tensor is dropped as soon as nothing later needs it. Elementwise work runs
block by block (arrays.py), so its scratch stays bounded whatever the size of the layer.
Weights are made from the configuration alone, never from the core's prediction. A training
step (training_step.py) runs this same pass, its recorder's Keep hook holding the tensors the
backward needs; the norms are their kernel records' (kernels.py).

Elementwise work is counted from what it wrote: every elementwise step adds the size (or the
rows) of each block of output it writes to its Tally (recorder.py), so a step that is skipped
counts nothing. Only the per-element costs (conventions.Cost) come from the cost table and the
registries, read when the pass runs: they are definitions, not observations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ffn_calc.model import conventions as conv
from ffn_calc.model import structure as names
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.norms import norm_type
from ffn_calc.verifier import routing
from ffn_calc.verifier.arrays import BLOCK_ELEMENTS, blocks, compute_type, each_block, matmul, random_array, row_step
from ffn_calc.verifier.kernels import activation_values, kernel, norm_kernel
from ffn_calc.verifier.packed import quantize
from ffn_calc.verifier.recorder import Recorder, Silent, Tally

Params = dict[str, np.ndarray]


class NotedReads(dict):  # type: ignore[type-arg]
    """The weights as the kernels read them: every name read (by [] or .get) is noted in `read`,
    so that a weight the layer declares but no kernel reads is seen (observe_forward)."""

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> np.ndarray:
        self.read.add(name)
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:
        if name in self:
            self.read.add(name)
        return super().get(name, default)


def _activation_block(kind: str, src: np.ndarray, dst: np.ndarray, tally: Tally) -> None:
    """dst = act(src), straight into dst, or through float32 for a float16 block; counted."""
    ct = compute_type(src.dtype)
    k = kernel(kind)
    if src.dtype == ct or k.exact_in_storage:
        k.into(src, dst)
    else:
        dst[...] = activation_values(kind, src.astype(ct))
    tally.elements(dst)


def activation(rec: Recorder, name: str, kind: str, h: np.ndarray) -> np.ndarray:
    out = np.empty_like(h)
    src, dst = h.reshape(-1), out.reshape(-1)
    step = row_step(src.size, 1) if kernel(kind).exact_in_storage else BLOCK_ELEMENTS
    tally = rec.tally(name, conv.activation_cost(kind))
    each_block(src.size, step, lambda i, j: _activation_block(kind, src[i:j], dst[i:j], tally))
    return rec.output(name, out)


def glu(rec: Recorder, name: str, kind: str, g: np.ndarray, u: np.ndarray) -> np.ndarray:
    """act(g) ⊙ u into one new array; g and u may be the two halves (views) of a fused output."""
    out = np.empty(g.shape, g.dtype)
    width = g.shape[-1]
    gs, us, dst = g.reshape(-1, width), u.reshape(-1, width), out.reshape(-1, width)

    act, multiply = rec.tally(name, conv.activation_cost(kind)), rec.tally(name, conv.GLU_MULTIPLY)

    def block(i: int, j: int) -> None:
        _activation_block(kind, gs[i:j], dst[i:j], act)
        np.multiply(dst[i:j], us[i:j], out=dst[i:j])
        multiply.elements(dst[i:j])

    each_block(gs.shape[0], max(1, BLOCK_ELEMENTS // width), block)
    return rec.output(name, out)


def add_bias(y: np.ndarray, b: np.ndarray, tally: Tally) -> None:
    """y += b on a (rows, width) array, in place, each block written counted in `tally`."""

    def block(i: int, j: int) -> None:
        np.add(y[i:j], b, out=y[i:j])
        tally.elements(y[i:j])

    each_block(y.shape[0], row_step(*y.shape), block)


def add(x: np.ndarray, y: np.ndarray, tally: Tally) -> np.ndarray:
    """x + y into a new array, each block written counted in `tally`."""
    out = np.empty_like(x)
    width = x.shape[-1]
    xs, ys, dst = x.reshape(-1, width), y.reshape(-1, width), out.reshape(-1, width)

    def block(i: int, j: int) -> None:
        np.add(xs[i:j], ys[i:j], out=dst[i:j])
        tally.elements(dst[i:j])

    each_block(dst.shape[0], row_step(*dst.shape), block)
    return out


def linear(rec: Recorder, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """x·W + b as one output buffer (the bias is added in place, as a fused addmm does)."""
    lead = x.shape[:-1]
    y = rec.matmul(name, x.reshape(-1, x.shape[-1]), w)
    if b is not None:
        add_bias(y, b, rec.tally(name, conv.BIAS_ADD))
    return rec.output(name, y.reshape(*lead, w.shape[1]))


def expert_linear(rec: Recorder, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, bounds: list[tuple[int, int]]) -> np.ndarray:
    """Each expert e multiplies its own rows x[lo:hi] by W[e] into one shared output buffer."""
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty((rows.shape[0], w.shape[2]), x.dtype)
    tally = rec.tally(name, conv.BIAS_ADD) if b is not None else None
    for e, (lo, hi) in enumerate(bounds):
        if hi > lo:
            rec.matmul(name, rows[lo:hi], w[e], out=out[lo:hi])
            if b is not None and tally is not None:
                add_bias(out[lo:hi], b[e], tally)
    return rec.output(name, out.reshape(*x.shape[:-1], w.shape[2]))


def norm(rec: Recorder, kind: str, x: np.ndarray, p: Params) -> np.ndarray:
    """The norm `kind` (norms.py; its kernel, kernels.py) over each row of x, into a new array,
    block by block; its per-row statistics too (float32), when a training step keeps them."""
    entry, kernel_ = norm_type(kind), norm_kernel(kind)
    out = np.empty_like(x)
    width = x.shape[-1]
    src, dst, ct = x.reshape(-1, width), out.reshape(-1, width), compute_type(x.dtype)
    stats = np.empty((src.shape[0], len(entry.stats)), np.float32) if rec.keeps(entry.stats_tensor) else None
    per_element, per_row = (rec.tally(entry.stage, cost) for cost in conv.norm_costs(kind))

    def block(i: int, j: int) -> None:
        blk = src[i:j].astype(ct)
        kernel_.rows(blk, p, None if stats is None else stats[i:j])
        dst[i:j] = blk
        per_element.elements(dst[i:j])
        per_row.rows(dst[i:j])

    each_block(src.shape[0], max(1, BLOCK_ELEMENTS // width), block)
    if stats is not None:
        rec.offer(entry.stats_tensor, stats)
    return rec.output(entry.stage, out)


# --- the layer ---------------------------------------------------------------------------------


def ffn(rec: Recorder, cfg: FFNConfig, p: Params, prefix: str, box: list[np.ndarray], bounds: list[tuple[int, int]] | None = None) -> np.ndarray:
    """The feed-forward core under `prefix` ("", "shared_" or "expert_"); expert stages take
    `bounds`, each expert's slice of the rows. The input comes in a one-item list that this
    function empties, so that it holds the only reference and can free it after last use
    (an argument passed directly stays referenced by the caller until the call returns)."""
    *first, last = names.linears(cfg.is_glu, cfg.fused)
    src = box.pop()

    def lin(spec: names.Linear, x: np.ndarray) -> np.ndarray:
        w, b = p[prefix + spec.weight], p.get(prefix + spec.bias)
        if bounds is None:
            return linear(rec, prefix + spec.stage, x, w, b)
        return expert_linear(rec, prefix + spec.stage, x, w, b, bounds)

    ins = [lin(spec, src) for spec in first]
    del src
    a = activation_stage(rec, cfg, prefix, ins)
    if not cfg.is_glu and kernel(cfg.base_activation).zeros and not prefix:
        rec.zeros_after_activation(a)
    return lin(last, a)


def activation_stage(rec: Recorder, cfg: FFNConfig, prefix: str, ins: list[np.ndarray]) -> np.ndarray:
    """The activation stage under `prefix` from the first linears' outputs (a list this function
    empties): act(h), or the GLU act(g) ⊙ u, g and u the halves of a fused output. The forward
    pass runs it, and a selective recompute runs it again on the saved outputs."""
    act = cfg.base_activation
    if not cfg.is_glu:
        return activation(rec, prefix + names.ACTIVATION, act, ins.pop())
    if cfg.fused:
        both = ins.pop()
        half = both.shape[-1] // 2
        return glu(rec, prefix + names.GLU, act, both[..., :half], both[..., half:])
    up, gate = ins.pop(), ins.pop()
    return glu(rec, prefix + names.GLU, act, gate, up)


def route(rec: Recorder, cfg: FFNConfig, p: Params, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Router logits, then softmax over the experts, top-k, and the top-k weights renormalised."""
    logits = linear(rec, names.ROUTER, src, p[names.W_ROUTER], None)
    n, e, k = cfg.tokens, cfg.experts, cfg.top_k
    flat = logits.reshape(n, e)
    weights = np.empty((n, k), src.dtype)
    index = np.empty((n, k), np.int64)
    ct = compute_type(src.dtype)
    soft, renorm = rec.tally(names.ROUTING, conv.ROUTER_SOFTMAX), rec.tally(names.ROUTING, conv.TOP_K_RENORM.at(k))

    def block(i: int, j: int) -> None:
        probs = routing.softmax(flat[i:j].astype(ct))
        soft.elements(probs)
        top, chosen, total = routing.top_k(probs, k)
        weights[i:j] = chosen / total
        renorm.rows(weights[i:j])
        index[i:j] = top

    each_block(n, max(1, BLOCK_ELEMENTS // e), block)
    del logits
    if rec.keeps(names.ROUTING_INDICES):
        rec.offer(names.ROUTING_INDICES, index)
    rec.output(names.ROUTING, weights.reshape(cfg.batch, cfg.seq_len, k))
    return weights, index


def route_tokens(cfg: FFNConfig, p: Params, xs: np.ndarray) -> np.ndarray:
    """The experts the pass routes each row of `xs` (tokens, d_model) to (tokens × k): its norm
    (when pre) and router on those tokens alone, which route each as the whole pass did."""
    x = xs.reshape(1, -1, cfg.d_model)
    src = norm(Silent(), cfg.norm_type, x, p) if cfg.norm == "pre" else x
    return route(Silent(), replace(cfg, batch=1, seq_len=xs.shape[0]), p, src)[1]


def sigmoid(g: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(−g)), a new array (in float32 for a 16-bit g)."""
    z = np.negative(g.astype(compute_type(g.dtype)))
    np.exp(z, out=z)
    z += 1.0
    return np.reciprocal(z, out=z)


def shared_expert_gate(rec: Recorder, p: Params, src: np.ndarray, box: list[np.ndarray]) -> np.ndarray:
    """Qwen2-MoE's gate: g = x·w_s, one logit per token, then the shared output (the one item of
    `box`, freed here after use) scaled by sigmoid(g) into a new array."""
    g = linear(rec, names.SHARED_EXPERT_GATE, src, p[names.W_SHARED_EXPERT_GATE], None)
    shared = box.pop()
    width = shared.shape[-1]
    gs, ys = g.reshape(-1, 1), shared.reshape(-1, width)
    out = np.empty_like(shared)
    dst = out.reshape(-1, width)
    sig, scale = rec.tally(names.SHARED_EXPERT_SCALE, conv.GATE_SIGMOID), rec.tally(names.SHARED_EXPERT_SCALE, conv.GATE_SCALE)

    def block(i: int, j: int) -> None:
        s = sigmoid(gs[i:j])
        sig.rows(s)
        dst[i:j] = s * ys[i:j]
        scale.elements(dst[i:j])

    each_block(ys.shape[0], max(1, BLOCK_ELEMENTS // width), block)
    del g, shared
    return rec.output(names.SHARED_EXPERT_SCALE, out)


def moe(rec: Recorder, cfg: FFNConfig, p: Params, box: list[np.ndarray]) -> np.ndarray:
    """Shared experts, router, dispatch (dropless, or into capacity buffers), experts, combine."""
    n, d, e, k = cfg.tokens, cfg.d_model, cfg.experts, cfg.top_k
    src = box.pop()
    shared = ffn(rec, cfg, p, names.SHARED, [src]) if cfg.shared_experts else None
    if shared is not None and cfg.shared_expert_gate:
        shared = shared_expert_gate(rec, p, src, [shared])
    weights, index = route(rec, cfg, p, src)
    groups = routing.group(index, e)
    order, counts = groups.order, groups.counts
    cap = cfg.expert_capacity
    if cap is None:
        slot = groups.slots()  # where each pair's row lives in the dispatch buffer
        bounds = groups.bounds
        kept = np.ones(n * k, bool)
        xe = src.reshape(n, d)[order // k]
    else:
        rank = groups.rank
        slot = np.empty(n * k, np.int64)
        kept = np.zeros(n * k, bool)
        kept[order] = rank < cap
        slot[order] = np.where(rank < cap, index.reshape(-1)[order] * cap + rank, 0)  # dropped pairs: masked later
        bounds = [(i * cap, (i + 1) * cap) for i in range(e)]
        xe = np.zeros((e * cap, d), src.dtype)
        pairs, flat = np.flatnonzero(kept), src.reshape(n, d)
        for i, j in blocks(pairs.size, max(1, BLOCK_ELEMENTS // d)):  # scattered a block of rows at a time
            xe[slot[pairs[i:j]]] = flat[pairs[i:j] // k]
        del pairs, flat
        xe = xe.reshape(e, cap, d)
    rec.routing_arrays(index, order, counts, groups.starts, slot, kept, *([] if cap is None else [rank]))
    rows = [int(min(c, cap)) if cap is not None else int(c) for c in counts]
    rec.expert_rows = rows if rec.expert_rows is None else [a + b for a, b in zip(rec.expert_rows, rows, strict=True)]
    rec.routed(index, None if cap is None else kept.reshape(n, k))
    del src
    rec.output(names.DISPATCH, xe)
    box = [xe]
    del xe
    ye = ffn(rec, cfg, p, names.EXPERT, box, bounds)
    y = combine(rec, cfg, weights, slot.reshape(n, k), kept.reshape(n, k), ye.reshape(-1, d), shared)
    return y


def combine(
    rec: Recorder, cfg: FFNConfig, w: np.ndarray, slot: np.ndarray, kept: np.ndarray, ye: np.ndarray, shared: np.ndarray | None
) -> np.ndarray:
    """y[t] = Σ_j w[t, j]·ye[slot[t, j]] (+ shared[t]), block by block; dropped pairs add nothing."""
    n, d, k = cfg.tokens, cfg.d_model, cfg.top_k
    y = np.empty((n, d), ye.dtype)
    sh = shared.reshape(n, d) if shared is not None else None
    weighted = rec.tally(names.COMBINE, conv.COMBINE.at(k))
    plus_shared = rec.tally(names.COMBINE, conv.SHARED_ADD) if sh is not None else None

    def block(i: int, j: int) -> None:
        acc = np.zeros((j - i, d), compute_type(ye.dtype))
        for slot_j in range(k):
            rows = ye[slot[i:j, slot_j]] * w[i:j, slot_j, None]
            acc += np.where(kept[i:j, slot_j, None], rows, 0)
        if sh is not None and plus_shared is not None:
            acc += sh[i:j]
            plus_shared.elements(acc)
        y[i:j] = acc
        weighted.elements(y[i:j])

    each_block(n, max(1, BLOCK_ELEMENTS // d), block)
    return rec.output(names.COMBINE, y.reshape(cfg.batch, cfg.seq_len, d))


def forward(rec: Recorder, cfg: FFNConfig, p: Params, x: np.ndarray, dropout: Dropout | None = None) -> np.ndarray:
    """The whole layer: the bare FFN, pre-norm x + FFN(N(x)), or post-norm N(x + FFN(x)),
    N being the config's norm (cfg.norm_type); `dropout` (a training step's) on the FFN's output."""
    rec.output(names.INPUT, x)
    box = [norm(rec, cfg.norm_type, x, p) if cfg.norm == "pre" else x]
    y = moe(rec, cfg, p, box) if cfg.is_moe else ffn(rec, cfg, p, "", box)
    if dropout is not None:
        y = dropout.apply(y)
    if cfg.norm == "none":
        return y
    r = add(x, y, rec.tally(names.RESIDUAL, conv.RESIDUAL_ADD))
    rec.output(names.RESIDUAL, r)
    del y
    if cfg.norm == "post":
        r = norm(rec, cfg.norm_type, r, p)
    return r


@dataclass
class Dropout:
    """Dropout on the FFN output, for a training step: a real mask of 1-byte booleans, kept where
    True, the kept values scaled by 1/(1 − rate); its FLOPs the convention × elements written."""

    mask: np.ndarray
    rate: float = 0.1
    flops: int = 0

    def apply(self, y: np.ndarray, cost: conv.Cost = conv.DROPOUT) -> np.ndarray:
        """The mask on `y` (forward) or on its gradient (cost conv.DROPOUT_BACKWARD)."""
        out = (y * self.mask.reshape(y.shape) * (1.0 / (1.0 - self.rate))).astype(y.dtype)
        self.flops += cost.flops * out.size
        return out


# --- the Conv1d form ---------------------------------------------------------------------------


def conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """A general Conv1d, stride 1, no padding: x (B, C_in, L), w (C_out, C_in, k) → (B, C_out, L−k+1)."""
    k = w.shape[2]
    length = x.shape[2] - k + 1
    out = np.zeros((x.shape[0], w.shape[0], length), dtype=x.dtype)
    for b_i in range(x.shape[0]):
        for tap in range(k):  # out[b] += W[:, :, tap] · x[b, :, tap : tap + length]
            out[b_i] += matmul(w[:, :, tap], x[b_i, :, tap : tap + length])
    if b is not None:
        out += b[None, :, None]
    return out


def ffn_as_conv1d(cfg: FFNConfig, p: Params, x: np.ndarray) -> np.ndarray:
    """The dense FFN core as Conv1d layers of kernel size 1 on channels-first input."""
    silent = Silent()
    act = cfg.base_activation
    *first, last = names.linears(cfg.is_glu, cfg.fused)

    def conv(src: np.ndarray, spec: names.Linear) -> np.ndarray:
        return conv1d(src, p[spec.weight].T[:, :, None], p.get(spec.bias))

    xc = np.ascontiguousarray(x.transpose(0, 2, 1))
    ins = [conv(xc, spec) for spec in first]
    if not cfg.is_glu:
        a = activation(silent, names.ACTIVATION, act, ins[0])
    else:
        g, u = (ins[0][:, : cfg.d_ff], ins[0][:, cfg.d_ff :]) if cfg.fused else ins
        a = activation(silent, names.GLU, act, g) * u
    return np.ascontiguousarray(conv(a, last).transpose(0, 2, 1))


# --- weights ----------------------------------------------------------------------------------


def make_params(rng: np.random.Generator, cfg: FFNConfig, dtype: Any) -> Params:
    """The layer's weights, built from the config alone (never from the core's prediction, so a
    wrong predicted shape is caught): matrices scaled by 1/√fan_in so activations stay O(1),
    biases likewise, a norm's γ = 1 (and LayerNorm's β = 0) as frameworks initialise them."""
    d, f = cfg.d_model, cfg.d_ff
    params: Params = {}

    def add(name: str, shape: tuple[int, ...], fan_in: int) -> None:
        params[name] = random_array(rng, shape, dtype, 1.0 / math.sqrt(fan_in))

    packing = cfg.weight_packing

    def matrix(name: str, shape: tuple[int, ...], fan_in: int) -> None:
        """A weight matrix: in `dtype`, or quantized and packed as --weight-dtype stores it (packed.py)."""
        if packing is None:
            return add(name, shape, fan_in)
        params[name] = quantize(random_array(rng, shape, np.float32, 1.0 / math.sqrt(fan_in)), packing)  # type: ignore[assignment]

    def core(prefix: str, width: int, lead: tuple[int, ...]) -> None:
        *first, last = names.linears(cfg.is_glu, cfg.fused)
        for spec in first:
            cols = 2 * width if spec.fused else width
            matrix(prefix + spec.weight, (*lead, d, cols), d)
            if cfg.bias:
                add(prefix + spec.bias, (*lead, cols), d)
        matrix(prefix + last.weight, (*lead, width, d), width)
        if cfg.bias:
            add(prefix + last.bias, (*lead, d), width)

    if cfg.is_moe:
        if cfg.shared_experts:
            core(names.SHARED, cfg.shared_experts * f, ())
        if cfg.shared_expert_gate:
            add(names.W_SHARED_EXPERT_GATE, (d, 1), d)
        add(names.W_ROUTER, (d, cfg.experts), d)
        core(names.EXPERT, f, (cfg.experts,))
    else:
        core("", f, ())
    if cfg.norm_kind is not None:  # γ = 1 and β = 0, as frameworks initialise them (the registry's weights, γ first)
        for i, name in enumerate(cfg.norm_kind.weights):
            params[name] = np.ones(d, dtype) if i == 0 else np.zeros(d, dtype)
    return params
