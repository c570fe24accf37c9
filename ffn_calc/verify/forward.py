"""The FFN layer in NumPy, written out by hand, with a recorder that notes what really ran.

The pass runs out of place, the way an eager framework runs inference: each stage allocates
its output, and a tensor is dropped as soon as nothing later needs it. Elementwise work runs
in blocks of BLOCK_ELEMENTS, on up to THREADS threads, so its scratch stays bounded whatever
the size of the layer.
Weights are made from the configuration alone, never from the core's prediction.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.conventions import (
    ACTIVATION_FLOPS_PER_ELEMENT,
    BIAS_ADD_FLOPS_PER_ELEMENT,
    GLU_MULTIPLY_FLOPS_PER_ELEMENT,
    RESIDUAL_ADD_FLOPS_PER_ELEMENT,
    ROUTER_SOFTMAX_FLOPS_PER_LOGIT,
    layernorm_flops,
)

BLOCK_ELEMENTS = 1 << 14
LN_EPS = 1e-5
Params = dict[str, np.ndarray]


def blocks(total: int, step: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, step):
        yield start, min(total, start + step)


# NumPy multiplies float16 matrices in a plain loop, without BLAS (about 0.4 GFLOP/s on the
# project's machine, against about 190 in float32). A float16 product therefore runs through
# float32 BLAS a block at a time, products summed in float32 and rounded to float16 once, as
# half-precision GEMMs on GPUs accumulate; the float32 copies of the operand blocks and of the
# result block are scratch of at most HALF_BLOCK_BYTES each.
HALF_BLOCK_BYTES = 2 << 20


def _half_blocks(m: int, k: int, n: int) -> tuple[int, int]:
    """Rows and columns per block of a float16 (m, k)·(k, n) run in float32."""
    cols = max(1, min(n, HALF_BLOCK_BYTES // (4 * k)))
    rows = max(1, min(m, HALF_BLOCK_BYTES // (4 * k), HALF_BLOCK_BYTES // (4 * cols)))
    return rows, cols


def half_scratch_bytes(m: int, k: int, n: int) -> int:
    """The float32 scratch of a float16 (m, k)·(k, n): one block of each operand and of the result."""
    rows, cols = _half_blocks(m, k, n)
    return 4 * (rows * k + k * cols + rows * cols)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a·b for 2-D operands; float16 through float32 BLAS, block by block (see above)."""
    if a.dtype != np.float16 or a.ndim != 2 or b.ndim != 2:
        return np.matmul(a, b, out=out)
    (m, k), n = a.shape, b.shape[1]
    if out is None:
        out = np.empty((m, n), np.float16)
    rows, cols = _half_blocks(m, k, n)
    for j, j_end in blocks(n, cols):
        right = b[:, j:j_end].astype(np.float32)
        for i, i_end in blocks(m, rows):
            out[i:i_end, j:j_end] = a[i:i_end].astype(np.float32) @ right
    return out


@dataclass
class Observed:
    shape: tuple[int, ...] = ()
    nbytes: int = 0
    matmuls: list[tuple[int, int, int]] = field(default_factory=list)
    einsum_flops: list[float] = field(default_factory=list)
    elementwise_flops: int = 0


class Recorder:
    """Collects what the forward pass really did, stage by stage."""

    def __init__(self, first_shapes: bool = False) -> None:
        self.stages: dict[str, Observed] = {}
        self.relu_zero_fraction: float | None = None
        self.expert_rows: list[int] | None = None
        self.first_shapes = first_shapes  # in a chunked pass, keep the first chunk's shapes
        self.zeros = self.seen = 0
        self.overhead_s = 0.0  # time spent observing (einsum_path, counting zeros), not computing

    def stage(self, name: str) -> Observed:
        return self.stages.setdefault(name, Observed())

    def output(self, name: str, array: np.ndarray) -> np.ndarray:
        obs = self.stage(name)
        if not (self.first_shapes and obs.shape):
            obs.shape, obs.nbytes = tuple(array.shape), array.nbytes
        return array

    def matmul(self, name: str, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        obs = self.stage(name)
        (m, k), (k2, n) = a.shape, b.shape
        assert k == k2
        obs.matmuls.append((m, k, n))
        start = time.perf_counter()
        obs.einsum_flops.append(_einsum_path_flops(a, b))
        self.overhead_s += time.perf_counter() - start
        return matmul(a, b, out=out)

    def elementwise(self, name: str, flops: int) -> None:
        self.stage(name).elementwise_flops += flops

    def zeros_after_relu(self, a: np.ndarray) -> None:
        start = time.perf_counter()
        self.zeros += a.size - np.count_nonzero(a)
        self.seen += a.size
        self.overhead_s += time.perf_counter() - start
        self.relu_zero_fraction = self.zeros / self.seen


class Silent(Recorder):
    """For the extra forward passes of the structural checks: observes nothing."""

    def output(self, name: str, array: np.ndarray) -> np.ndarray:
        return array

    def matmul(self, name: str, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return matmul(a, b, out=out)

    def elementwise(self, name: str, flops: int) -> None:
        pass

    def zeros_after_relu(self, a: np.ndarray) -> None:
        pass


_NAIVE_FLOPS = re.compile(r"Naive FLOP count:\s*([0-9.eE+-]+)")


def _einsum_path_flops(a: np.ndarray, b: np.ndarray) -> float:
    """numpy.einsum_path's own FLOP count for a·b (printed to 4 significant digits)."""
    _, text = np.einsum_path("ij,jk->ik", a, b, optimize=False)
    match = _NAIVE_FLOPS.search(text)
    return float(match.group(1)) if match else float("nan")


# --- elementwise pieces ----------------------------------------------------------------------
#
# Elementwise work runs block by block, the blocks dealt out to THREADS threads in contiguous
# runs (NumPy lets go of the GIL inside its loops, so the threads really run at once; BLAS
# already uses every core for the matmuls). Every block writes only its own rows of an output
# made before the threads start, so the result is bit for bit that of a serial loop. Each
# thread holds at most SCRATCH_BLOCKS block-sized float64 temporaries at a time.

THREADS = min(4, os.cpu_count() or 1)  # past a few threads, memory bandwidth is the limit
SCRATCH_BLOCKS = 4
SCRATCH_BYTES = THREADS * SCRATCH_BLOCKS * BLOCK_ELEMENTS * 8

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(1, THREADS - 1), thread_name_prefix="ffn-calc-elementwise")
    return _pool


def _close_pool() -> None:
    """Stop the idle threads, so that a fork (sweep's workers) copies a one-thread process."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None


os.register_at_fork(before=_close_pool)


def _compute_type(dtype: np.dtype) -> Any:
    """Elementwise math runs in at least float32 (float16 blocks are upcast, then stored)."""
    return np.float64 if dtype == np.float64 else np.float32


def each_block(total: int, step: int, fn: Callable[[int, int], object]) -> None:
    """fn(i, j) for every block [i, j) of range(total), `step` long, split between up to THREADS
    threads in contiguous runs; the calling thread runs the first run itself. If any block
    raises (or Ctrl-C arrives), the other runs stop at their next block and it is re-raised."""
    count = -(-total // step)
    threads = min(THREADS, count)
    if threads <= 1:
        for i, j in blocks(total, step):
            fn(i, j)
        return
    per = -(-count // threads) * step
    stop = threading.Event()

    def run(lo: int, hi: int) -> None:
        for i, j in blocks(hi - lo, step):
            if stop.is_set():
                return
            fn(lo + i, lo + j)

    runs = list(blocks(total, per))
    futures = [_executor().submit(run, lo, hi) for lo, hi in runs[1:]]
    try:
        run(*runs[0])
        for future in futures:
            future.result()
    except BaseException:
        stop.set()
        raise


def row_step(rows: int, width: int) -> int:
    """Rows per block for a one-pass operation with no scratch (bias, ReLU, residual): one block
    per thread, but never less than BLOCK_ELEMENTS elements, so small tensors stay serial."""
    return max(-(-rows // THREADS), -(-BLOCK_ELEMENTS // max(1, width)))


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


def _activation_into(kind: str, h: np.ndarray, out: np.ndarray) -> None:
    """out = act(h) for one block of the compute dtype; h is left as it was."""
    if kind == "relu":
        np.maximum(h, 0, out=out)
    elif kind == "gelu":  # 0.5·h·(1 + erf(h/√2))
        erf(np.multiply(h, 1.0 / math.sqrt(2.0)), out=out)
        out += 1.0
        out *= h
        out *= 0.5
    elif kind == "gelu_tanh":  # 0.5·h·(1 + tanh(√(2/π)·(h + 0.044715·h³)))
        z = np.multiply(h, h)
        z *= h
        z *= 0.044715
        z += h
        z *= math.sqrt(2.0 / math.pi)
        np.tanh(z, out=out)
        out += 1.0
        out *= h
        out *= 0.5
    elif kind == "silu":  # h / (1 + exp(−h))
        np.negative(h, out=out)
        np.exp(out, out=out)
        out += 1.0
        np.divide(h, out, out=out)
    else:
        raise ValueError(kind)


def activation_values(kind: str, h: np.ndarray) -> np.ndarray:
    """The nonlinearity on one block (a new array of h's dtype)."""
    out = np.empty_like(h)
    _activation_into(kind, h, out)
    return out


def _activation_block(kind: str, src: np.ndarray, dst: np.ndarray) -> None:
    """dst = act(src), straight into dst, or through float32 for a float16 block."""
    ct = _compute_type(src.dtype)
    if src.dtype == ct or kind == "relu":
        _activation_into(kind, src, dst)
    else:
        dst[...] = activation_values(kind, src.astype(ct))


def activation(rec: Recorder, name: str, kind: str, h: np.ndarray) -> np.ndarray:
    out = np.empty_like(h)
    src, dst = h.reshape(-1), out.reshape(-1)
    step = row_step(src.size, 1) if kind == "relu" else BLOCK_ELEMENTS
    each_block(src.size, step, lambda i, j: _activation_block(kind, src[i:j], dst[i:j]))
    rec.elementwise(name, h.size * ACTIVATION_FLOPS_PER_ELEMENT[kind])
    return rec.output(name, out)


def glu(rec: Recorder, name: str, kind: str, g: np.ndarray, u: np.ndarray) -> np.ndarray:
    """act(g) ⊙ u into one new array; g and u may be the two halves (views) of a fused output."""
    out = np.empty(g.shape, g.dtype)
    width = g.shape[-1]
    gs, us, dst = g.reshape(-1, width), u.reshape(-1, width), out.reshape(-1, width)

    def block(i: int, j: int) -> None:
        _activation_block(kind, gs[i:j], dst[i:j])
        dst[i:j] *= us[i:j]

    each_block(gs.shape[0], max(1, BLOCK_ELEMENTS // width), block)
    rec.elementwise(name, g.size * (ACTIVATION_FLOPS_PER_ELEMENT[kind] + GLU_MULTIPLY_FLOPS_PER_ELEMENT))
    return rec.output(name, out)


def add_bias(y: np.ndarray, b: np.ndarray) -> None:
    """y += b on a (rows, width) array, in place."""
    each_block(y.shape[0], row_step(*y.shape), lambda i, j: np.add(y[i:j], b, out=y[i:j]))


def add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x + y into a new array."""
    out = np.empty_like(x)
    width = x.shape[-1]
    xs, ys, dst = x.reshape(-1, width), y.reshape(-1, width), out.reshape(-1, width)
    each_block(dst.shape[0], row_step(*dst.shape), lambda i, j: np.add(xs[i:j], ys[i:j], out=dst[i:j]))
    return out


def linear(rec: Recorder, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """x·W + b as one output buffer (the bias is added in place, as a fused addmm does)."""
    lead = x.shape[:-1]
    y = rec.matmul(name, x.reshape(-1, x.shape[-1]), w)
    if b is not None:
        add_bias(y, b)
        rec.elementwise(name, y.size * BIAS_ADD_FLOPS_PER_ELEMENT)
    return rec.output(name, y.reshape(*lead, w.shape[1]))


def expert_linear(rec: Recorder, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, bounds: list[tuple[int, int]]) -> np.ndarray:
    """Each expert e multiplies its own rows x[lo:hi] by W[e] into one shared output buffer."""
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty((rows.shape[0], w.shape[2]), x.dtype)
    for e, (lo, hi) in enumerate(bounds):
        if hi > lo:
            rec.matmul(name, rows[lo:hi], w[e], out=out[lo:hi])
            if b is not None:
                add_bias(out[lo:hi], b[e])
    if b is not None:
        rec.elementwise(name, out.size * BIAS_ADD_FLOPS_PER_ELEMENT)
    return rec.output(name, out.reshape(*x.shape[:-1], w.shape[2]))


def layernorm(rec: Recorder, name: str, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    width = x.shape[-1]
    src, dst, ct = x.reshape(-1, width), out.reshape(-1, width), _compute_type(x.dtype)

    def block(i: int, j: int) -> None:
        blk = src[i:j].astype(ct)
        blk -= blk.mean(axis=1, keepdims=True)
        blk /= np.sqrt((blk * blk).mean(axis=1, keepdims=True) + LN_EPS)
        blk *= gamma
        blk += beta
        dst[i:j] = blk

    each_block(src.shape[0], max(1, BLOCK_ELEMENTS // width), block)
    rec.elementwise(name, layernorm_flops(src.shape[0], width))
    return rec.output(name, out)


# --- the layer ---------------------------------------------------------------------------------


def ffn(rec: Recorder, cfg: FFNConfig, p: Params, prefix: str, box: list[np.ndarray], bounds: list[tuple[int, int]] | None = None) -> np.ndarray:
    """The feed-forward core under `prefix` ("", "shared_" or "expert_"); expert stages take
    `bounds`, each expert's slice of the rows. The input comes in a one-item list that this
    function empties, so that it holds the only reference and can free it after last use
    (an argument passed directly stays referenced by the caller until the call returns)."""
    act = cfg.base_activation
    src = box.pop()

    def lin(stage: str, x: np.ndarray, w: str, b: str) -> np.ndarray:
        if bounds is None:
            return linear(rec, prefix + stage, x, p[prefix + w], p.get(prefix + b))
        return expert_linear(rec, prefix + stage, x, p[prefix + w], p.get(prefix + b), bounds)

    if not cfg.is_glu:
        h = lin("linear1", src, "W1", "b1")
        del src
        a = activation(rec, prefix + "activation", act, h)
        del h
        if cfg.activation == "relu" and not prefix:
            rec.zeros_after_relu(a)
        return lin("linear2", a, "W2", "b2")
    if cfg.fused:
        gu = lin("gate_up", src, "W_gate_up", "b_gate_up")
        del src
        half = gu.shape[-1] // 2
        a = glu(rec, prefix + "glu", act, gu[..., :half], gu[..., half:])
        del gu
    else:
        g = lin("gate", src, "W_gate", "b_gate")
        u = lin("up", src, "W_up", "b_up")
        del src
        a = glu(rec, prefix + "glu", act, g, u)
        del g, u
    return lin("down", a, "W_down", "b_down")


def route(rec: Recorder, cfg: FFNConfig, p: Params, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Router logits, then softmax over the experts, top-k, and the top-k weights renormalised."""
    logits = linear(rec, "router", src, p["W_router"], None)
    n, e, k = cfg.tokens, cfg.experts, cfg.top_k
    flat = logits.reshape(n, e)
    weights = np.empty((n, k), src.dtype)
    index = np.empty((n, k), np.int64)
    ct = _compute_type(src.dtype)

    def block(i: int, j: int) -> None:
        z = flat[i:j].astype(ct)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        z /= z.sum(axis=1, keepdims=True)
        top = np.argsort(-z, axis=1, kind="stable")[:, :k]
        chosen = np.take_along_axis(z, top, axis=1)
        weights[i:j] = chosen / chosen.sum(axis=1, keepdims=True)
        index[i:j] = top

    each_block(n, max(1, BLOCK_ELEMENTS // e), block)
    del logits
    rec.elementwise("routing", ROUTER_SOFTMAX_FLOPS_PER_LOGIT * n * e + (2 * k - 1) * n)
    rec.output("routing", weights.reshape(cfg.batch, cfg.seq_len, k))
    return weights, index


def moe(rec: Recorder, cfg: FFNConfig, p: Params, box: list[np.ndarray]) -> np.ndarray:
    """Shared experts, router, dispatch (dropless, or into capacity buffers), experts, combine."""
    n, d, e, k = cfg.tokens, cfg.d_model, cfg.experts, cfg.top_k
    src = box.pop()
    shared = ffn(rec, cfg, p, "shared_", [src]) if cfg.shared_experts else None
    weights, index = route(rec, cfg, p, src)
    flat = index.reshape(-1)  # expert of each (token, slot) pair, token-major
    order = np.argsort(flat, kind="stable")  # pairs grouped by expert, tokens in order
    counts = np.bincount(flat, minlength=e)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(n * k) - np.repeat(starts, counts)  # place of each sorted pair in its expert
    slot = np.empty(n * k, np.int64)  # where each pair's row lives in the dispatch buffer
    cap = cfg.expert_capacity
    if cap is None:
        slot[order] = np.arange(n * k)
        bounds = [(int(lo), int(lo + c)) for lo, c in zip(starts, counts, strict=True)]
        kept = np.ones(n * k, bool)
        xe = src.reshape(n, d)[order // k]
    else:
        kept = np.zeros(n * k, bool)
        kept[order] = rank < cap
        slot[order] = np.where(rank < cap, flat[order] * cap + rank, 0)  # dropped pairs: masked later
        bounds = [(i * cap, (i + 1) * cap) for i in range(e)]
        xe = np.zeros((e * cap, d), src.dtype)
        xe[slot[kept]] = src.reshape(n, d)[np.flatnonzero(kept) // k]
        xe = xe.reshape(e, cap, d)
    rows = [int(min(c, cap)) if cap is not None else int(c) for c in counts]
    rec.expert_rows = rows if rec.expert_rows is None else [a + b for a, b in zip(rec.expert_rows, rows, strict=True)]
    del src
    rec.output("dispatch", xe)
    box = [xe]
    del xe
    ye = ffn(rec, cfg, p, "expert_", box, bounds)
    y = combine(rec, cfg, weights, slot.reshape(n, k), kept.reshape(n, k), ye.reshape(-1, d), shared)
    return y


def combine(
    rec: Recorder, cfg: FFNConfig, w: np.ndarray, slot: np.ndarray, kept: np.ndarray, ye: np.ndarray, shared: np.ndarray | None
) -> np.ndarray:
    """y[t] = Σ_j w[t, j]·ye[slot[t, j]] (+ shared[t]), block by block; dropped pairs add nothing."""
    n, d, k = cfg.tokens, cfg.d_model, cfg.top_k
    y = np.empty((n, d), ye.dtype)
    sh = shared.reshape(n, d) if shared is not None else None

    def block(i: int, j: int) -> None:
        acc = np.zeros((j - i, d), _compute_type(ye.dtype))
        for slot_j in range(k):
            rows = ye[slot[i:j, slot_j]] * w[i:j, slot_j, None]
            acc += np.where(kept[i:j, slot_j, None], rows, 0)
        if sh is not None:
            acc += sh[i:j]
        y[i:j] = acc

    each_block(n, max(1, BLOCK_ELEMENTS // d), block)
    rec.elementwise("combine", (2 * k - 1) * n * d + (RESIDUAL_ADD_FLOPS_PER_ELEMENT * n * d if sh is not None else 0))
    return rec.output("combine", y.reshape(cfg.batch, cfg.seq_len, d))


def forward(rec: Recorder, cfg: FFNConfig, p: Params, x: np.ndarray) -> np.ndarray:
    """The whole layer: the bare FFN, pre-LN x + FFN(LN(x)), or post-LN LN(x + FFN(x))."""
    rec.output("input", x)
    box = [layernorm(rec, "layernorm", x, p["ln_gamma"], p["ln_beta"]) if cfg.norm == "pre" else x]
    y = moe(rec, cfg, p, box) if cfg.is_moe else ffn(rec, cfg, p, "", box)
    if cfg.norm == "none":
        return y
    r = add(x, y)
    rec.elementwise("residual", r.size * RESIDUAL_ADD_FLOPS_PER_ELEMENT)
    rec.output("residual", r)
    del y
    if cfg.norm == "post":
        r = layernorm(rec, "layernorm", r, p["ln_gamma"], p["ln_beta"])
    return r


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

    def conv(src: np.ndarray, w: str, b: str) -> np.ndarray:
        return conv1d(src, p[w].T[:, :, None], p.get(b))

    xc = np.ascontiguousarray(x.transpose(0, 2, 1))
    if not cfg.is_glu:
        a = activation(silent, "activation", act, conv(xc, "W1", "b1"))
        y = conv(a, "W2", "b2")
    else:
        if cfg.fused:
            gu = conv(xc, "W_gate_up", "b_gate_up")
            g, u = gu[:, : cfg.d_ff], gu[:, cfg.d_ff :]
        else:
            g, u = conv(xc, "W_gate", "b_gate"), conv(xc, "W_up", "b_up")
        a = activation(silent, "glu", act, g) * u
        y = conv(a, "W_down", "b_down")
    return np.ascontiguousarray(y.transpose(0, 2, 1))


# --- weights ----------------------------------------------------------------------------------


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, scale: float) -> np.ndarray:
    """Normal(0, scale²) made in `dtype` directly (float16 in blocks), with no full-size copy."""
    if dtype in (np.float32, np.float64):
        out = rng.standard_normal(shape, dtype=dtype)
        out *= scale
        return out
    out = np.empty(shape, dtype)
    flat = out.reshape(-1)
    for i, j in blocks(flat.size, BLOCK_ELEMENTS):
        flat[i:j] = rng.standard_normal(j - i, dtype=np.float32) * scale
    return out


def make_params(rng: np.random.Generator, cfg: FFNConfig, dtype: Any) -> Params:
    """The layer's weights, built from the config alone (never from the core's prediction, so a
    wrong predicted shape is caught): matrices scaled by 1/√fan_in so activations stay O(1),
    biases likewise, LayerNorm γ = 1 and β = 0 as frameworks initialise them."""
    d, f = cfg.d_model, cfg.d_ff
    params: Params = {}

    def add(name: str, shape: tuple[int, ...], fan_in: int) -> None:
        params[name] = random_array(rng, shape, dtype, 1.0 / math.sqrt(fan_in))

    def core(prefix: str, width: int, lead: tuple[int, ...]) -> None:
        ins = ("W_gate_up",) if cfg.fused else ("W_gate", "W_up")
        if not cfg.is_glu:
            ins = ("W1",)
        out = "W2" if not cfg.is_glu else "W_down"
        for w in ins:
            cols = 2 * width if w == "W_gate_up" else width
            add(prefix + w, (*lead, d, cols), d)
            if cfg.bias:
                add(prefix + w.replace("W", "b", 1), (*lead, cols), d)
        add(prefix + out, (*lead, width, d), width)
        if cfg.bias:
            add(prefix + out.replace("W", "b", 1), (*lead, d), width)

    if cfg.is_moe:
        if cfg.shared_experts:
            core("shared_", cfg.shared_experts * f, ())
        add("W_router", (d, cfg.experts), d)
        core("expert_", f, (cfg.experts,))
    else:
        core("", f, ())
    if cfg.norm != "none":
        params["ln_gamma"] = np.ones(d, dtype)
        params["ln_beta"] = np.zeros(d, dtype)
    return params
