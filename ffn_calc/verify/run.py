"""The verifier: run the layer in NumPy with random weights and observe every predicted number.

Nothing here recomputes a formula from the core. Shapes are read off the arrays, parameters
off the weight arrays' sizes, bytes off `.nbytes`, matmul FLOPs off the operand shapes of
the products actually computed (and, independently, numpy.einsum_path's FLOP count), and
the peak memory off tracemalloc, to which NumPy reports its allocations. Only the
per-element cost of elementwise work is taken from `conventions.py`, because it is a
convention; the element counts it multiplies are observed. The forward pass itself is in
`numpy_ffn.py`.
"""

from __future__ import annotations

import math
import os
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from ffn_calc.verify.report import Check, VerifyRefused, VerifyReport
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.conventions import FLOPS_PER_MAC
from ffn_calc.model.forward import FFNReport, analyze, chunked_peak
from ffn_calc.verify.forward import (
    LN_EPS,
    SCRATCH_BYTES,
    Observed,
    Params,
    Recorder,
    Silent,
    activation_values,
    ffn_as_conv1d,
    forward,
    half_scratch_bytes,
    layernorm,
    make_params,
    random_array,
)

INTERPRETER_NOISE_BYTES = 1 << 20
PEAK_TOLERANCE = 0.10
MEMORY_SHARE = 0.8  # of the memory the OS reports available

NUMPY_DTYPES: dict[str, Any] = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
DTYPE_NOTES = {
    "bfloat16": "NumPy has no bfloat16: computed in float32, so the byte checks use 4 bytes per element (the bfloat16 figures are exactly half)",
    "int8": "NumPy has no int8 matmul that accumulates in int32 (int8 products overflow): "
    "computed in float32, so the byte checks use 4 bytes per element (int8 figures are a quarter)",
}
# Relative tolerance of value comparisons in each computed dtype.
RTOL = {"float64": 1e-9, "float32": 1e-4, "float16": 2e-2}


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo, else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def scratch_allowance(prediction: FFNReport) -> int:
    """What the pass may hold beyond the tensors the prediction counts: 1 MiB of interpreter
    noise, the elementwise threads' blocks (numpy_ffn.SCRATCH_BYTES) and, in float16, the
    float32 blocks of the largest product (numpy_ffn.half_scratch_bytes)."""
    half = 0
    if prediction.config.dtype == "float16":
        half = max((half_scratch_bytes(*s.matmul) for s in prediction.stages if s.matmul), default=0)
    return INTERPRETER_NOISE_BYTES + SCRATCH_BYTES + half


def required_bytes(prediction: FFNReport, chunk_tokens: int = 0) -> int:
    """What a verify run allocates at most: the forward peak (whole, or run `chunk_tokens`
    tokens at a time), the structural checks (a few passes over at most one sequence, or one
    chunk of it), and the scratch allowance."""
    cfg = prediction.config
    check_len = min(cfg.seq_len, chunk_tokens) if chunk_tokens else cfg.seq_len
    one = analyze(replace(cfg, batch=1, seq_len=check_len))
    checks = one.totals.weight_bytes + 4 * one.peak.activation_bytes
    forward_peak = chunked_peak(cfg, chunk_tokens) if chunk_tokens else prediction.totals.peak_bytes
    return max(forward_peak, checks) + scratch_allowance(prediction)


def _size(n: int | float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n / 2**10:.2f} KiB"


def memory_limit(limit_bytes: int | None) -> tuple[int, str]:
    if limit_bytes is None:
        return int(available_memory_bytes() * MEMORY_SHARE), f"{MEMORY_SHARE:.0%} of the memory available"
    return limit_bytes, "--max-memory"


def plan_chunks(prediction: FFNReport, limit_bytes: int | None) -> tuple[int, int]:
    """(chunk_tokens, limit): 0 when the whole pass fits, else the most tokens per chunk that
    fit. Raises VerifyRefused, before anything is allocated, when even one token does not."""
    limit, where = memory_limit(limit_bytes)
    cfg = prediction.config
    need = required_bytes(prediction)
    if need <= limit:
        return 0, limit
    t = prediction.totals
    floor = required_bytes(prediction, 1)
    if floor > limit or cfg.expert_capacity is not None:
        why = (
            f"even one token at a time needs {_size(floor)} (weights {_size(t.weight_bytes)})"
            if floor > limit
            else f"the whole pass needs {_size(need)}, and capacity-factor routing cannot be split into chunks"
        )
        raise VerifyRefused(f"verify cannot run in {_size(limit)} ({where}): {why}; use smaller sizes or a smaller dtype")
    lo, hi = 1, cfg.tokens  # the largest chunk that fits: required_bytes grows with it
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if required_bytes(prediction, mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo, limit


def check_backward_fits(prediction: FFNReport, limit: int) -> None:
    """The backward check runs the whole layer at once and keeps its intermediates: the weights
    and their gradients, and about eight activation-sized arrays. Refuse it, before allocating,
    when that would not fit (the forward checks can still run in chunks)."""
    cfg = prediction.config
    if cfg.expert_capacity is not None:
        raise VerifyRefused("verify --backward: training with capacity buffers (dropped tokens) is not modelled; drop --capacity-factor")
    widest = cfg.tokens * max(cfg.d_ff * (2 if cfg.is_glu else 1), cfg.d_model) * cfg.dtype_bytes
    need = 2 * prediction.totals.weight_bytes + 8 * widest + scratch_allowance(prediction)
    if need > limit:
        raise VerifyRefused(f"verify --backward would need about {_size(need)} but the limit is {_size(limit)}; use smaller sizes")


# --- the checks ----------------------------------------------------------------------------


def _close(a: np.ndarray, b: np.ndarray, rtol: float) -> tuple[bool, float]:
    """Agreement relative to the scale of b; returns (ok, max abs difference)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = float(np.max(np.abs(a64 - b64))) if a.size else 0.0
    scale = float(np.max(np.abs(b64))) if b.size else 0.0
    return a.shape == b.shape and diff <= rtol * max(scale, 1.0), diff


def _reference_activation(kind: str, v: float) -> float:
    if kind == "relu":
        return max(0.0, v)
    if kind == "gelu":
        return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))
    if kind == "gelu_tanh":
        return 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))
    return v / (1.0 + math.exp(-v))


def _structural_checks(cfg: FFNConfig, p: Params, x: np.ndarray, rng: np.random.Generator, rtol: float) -> list[Check]:
    """Conv1d form, position-wise behaviour and the activation's formula, on the first sequence."""
    silent = Silent()
    one = replace(cfg, batch=1)
    x0 = x[:1]
    checks = []

    def row(name: str, ok: bool, diff: float) -> None:
        checks.append(Check("structure", name, "equal", f"max |Δ| {diff:.2e}", ok, "tolerance"))

    if not cfg.is_moe:
        ok, diff = _close(ffn_as_conv1d(one, p, x0), forward(silent, replace(one, norm="none"), p, x0), rtol)
        row("Conv1d(k=1) form = linear form", ok, diff)

    if cfg.expert_capacity is not None:
        checks.append(
            Check(
                "structure",
                "position-wise",
                "no",
                "capacity buffers fill in token order",
                True,
                "info",
                "which tokens an expert drops depends on their order",
            )
        )
    else:
        out = forward(silent, one, p, x0)
        perm = rng.permutation(cfg.seq_len)
        ok, diff = _close(forward(silent, one, p, x0[:, perm]), out[:, perm], rtol)
        row("position-wise: permuted input → permuted output", ok, diff)
        if cfg.seq_len >= 2:
            i, j = (int(v) for v in rng.choice(cfg.seq_len, size=2, replace=False))
            twin = x0.copy()
            twin[0, j] = twin[0, i]
            y = forward(silent, one, p, twin)
            ok, diff = _close(y[0, j], y[0, i], rtol)
            row(f"equal tokens → equal outputs (positions {i}, {j})", ok, diff)

    act = cfg.base_activation
    samples = rng.standard_normal(64).astype(x.dtype)
    ours = activation_values(act, samples.astype(np.float64 if x.dtype == np.float64 else np.float32)).astype(x.dtype)
    expected = np.array([_reference_activation(act, float(v)) for v in samples])
    diff = float(np.max(np.abs(ours.astype(np.float64) - expected)))
    bound = 1e-6 + rtol * float(np.max(np.abs(expected)))
    checks.append(
        Check(
            "structure",
            f"{act} matches its formula (math module, 64 samples)",
            f"|Δ| ≤ {bound:.1e}",
            f"max |Δ| {diff:.2e}",
            diff <= bound,
            "tolerance",
        )
    )

    if cfg.norm != "none":
        # With γ = 1 and β = 0 each row comes out with mean 0 and variance v / (v + eps),
        # where v is the row's variance going in (≈ 1 unless v is as small as eps).
        rows = layernorm(silent, "layernorm", x0, p["ln_gamma"], p["ln_beta"]).reshape(-1, cfg.d_model)
        v = x0.reshape(-1, cfg.d_model).astype(np.float64).var(axis=1)
        got = rows.astype(np.float64)
        mean_err = float(np.max(np.abs(got.mean(axis=1))))
        var_err = float(np.max(np.abs(got.var(axis=1) - v / (v + LN_EPS))))
        tol = max(10 * rtol, 1e-6)
        checks.append(
            Check(
                "structure",
                "LayerNorm rows: mean 0, variance v/(v + eps) (γ = 1, β = 0)",
                f"|Δ| ≤ {tol:.0e}",
                f"mean {mean_err:.1e}, var {var_err:.1e}",
                mean_err <= tol and var_err <= tol,
                "tolerance",
            )
        )
    return checks


def _backward_checks(cfg: FFNConfig, p: Params, x: np.ndarray, rng: np.random.Generator) -> list[Check]:
    """The backward pass with explicit matmuls, checked op by op against `train`'s prediction,
    and its gradients against finite differences on a small float64 layer of the same kind."""
    from ffn_calc.verify.backward import BackwardRecorder, forward_backward, gradient_check
    from ffn_calc.model.training import TrainingOptions, train

    checks: list[Check] = []
    predicted = train(cfg, TrainingOptions())
    rec = BackwardRecorder()
    dout = rng.standard_normal(x.shape).astype(x.dtype)
    _, grads = forward_backward(cfg, p, x, dout, rec)
    for name, array in p.items():
        checks.append(Check("backward", f"d{name} shape", tuple(array.shape), tuple(grads[name].shape), grads[name].shape == array.shape))
    observed_total = 0
    for op in predicted.backward:
        key = (op.stage, op.kind)
        products = rec.matmuls.get(key, [])
        flops = conv_flops(products) + rec.elementwise.get(key, 0)
        observed_total += flops
        if op.matmul:
            # The experts' products split the rows among them: M for an input gradient, the
            # middle dimension (the rows summed over) for a weight gradient.
            grouped = _grouped(products, axis=1 if op.kind == "weight-grad" else 0)
            checks.append(Check("backward", f"{op.stage} {op.kind} (M, K, N)", op.matmul, grouped, grouped == op.matmul))
        checks.append(Check("backward", f"{op.stage} {op.kind} FLOPs", op.flops, flops, flops == op.flops))
    t = predicted.totals
    checks.append(Check("backward", "backward FLOPs", t.backward_flops, observed_total, observed_total == t.backward_flops))
    observed_matmul = conv_flops([m for products in rec.matmuls.values() for m in products])
    checks.append(Check("backward", "backward matmul FLOPs = 2 × forward's", 2 * t.forward_matmul_flops, observed_matmul,
                        observed_matmul == 2 * t.forward_matmul_flops))  # fmt: skip
    small = replace(cfg, batch=2, seq_len=3, d_model=min(cfg.d_model, 5), d_ff=min(cfg.d_ff, 7), dtype="float64")
    small_p = make_params(np.random.default_rng(1), small, np.float64)
    if small.norm != "none":  # exercise γ and β too
        small_p["ln_gamma"] += 0.1 * np.random.default_rng(2).standard_normal(small.d_model)
        small_p["ln_beta"] += 0.1 * np.random.default_rng(3).standard_normal(small.d_model)
    small_x = np.random.default_rng(4).standard_normal((2, 3, small.d_model))
    err = gradient_check(small, small_p, small_x, np.random.default_rng(5).standard_normal(small_x.shape))
    # 1e-5: NumPy has no erf, and the approximation used (error < 1.5e-7) limits GELU to about 1e-6.
    checks.append(Check("backward", "gradients = finite differences (float64, 2 × 3 tokens)", "≤ 1e-5", f"{err:.1e}", err <= 1e-5, "tolerance"))
    return checks


def _shard(cfg: FFNConfig, p: Params, rank: int, ranks: int) -> Params:
    """Rank `rank`'s weights: every first linear (W1, gate, up; a fused [gate | up] half by half)
    split by columns, every second linear (W2, down) by rows — in the dense layer, in every
    expert and in the shared experts alike; the router is replicated. The second linears'
    biases are held by every rank but applied by rank 0 only (the others hold zeros), so the
    all-reduce sums them once, as adding them once after it does."""
    out: Params = {}
    for name, w in p.items():
        base = name.removeprefix("shared_").removeprefix("expert_")
        if base in ("W1", "W_gate", "W_up", "b1", "b_gate", "b_up"):
            f = w.shape[-1] // ranks
            out[name] = w[..., rank * f : (rank + 1) * f]
        elif base in ("W_gate_up", "b_gate_up"):
            half = w.shape[-1] // 2
            f = half // ranks
            out[name] = np.concatenate([w[..., rank * f : (rank + 1) * f], w[..., half + rank * f : half + (rank + 1) * f]], axis=-1)
        elif base in ("W2", "W_down"):
            f = w.shape[-2] // ranks
            out[name] = w[..., rank * f : (rank + 1) * f, :]
        elif base in ("b2", "b_down"):
            out[name] = w if rank == 0 else np.zeros_like(w)
        else:  # the router: replicated
            out[name] = w
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def _tensor_parallel_checks(cfg: FFNConfig, p: Params, x: np.ndarray, ranks: int, rtol: float) -> list[Check]:
    """Megatron tensor parallelism simulated: shard the weights N ways, run every rank, sum the
    partial outputs (the all-reduce), and compare with the whole layer."""
    from ffn_calc.model.parallel import tensor_parallel

    plan = tensor_parallel(cfg, ranks)
    rank_pred = analyze(replace(plan.per_rank, norm="none"))
    bare = replace(cfg, norm="none")
    ffn_params = {k: v for k, v in p.items() if not k.startswith("ln_")}
    checks: list[Check] = []
    total = None
    for r in range(ranks):
        shard = _shard(cfg, ffn_params, r, ranks)
        rec = Recorder()
        partial = forward(rec, replace(bare, d_ff=plan.per_rank.d_ff), shard, x)
        observed = sum(m * k * n for o in rec.stages.values() for m, k, n in o.matmuls)
        checks.append(Check("parallel", f"rank {r} MACs", rank_pred.totals.macs, observed, observed == rank_pred.totals.macs))
        rank_params = sum(a.size for a in shard.values())
        checks.append(Check("parallel", f"rank {r} parameters (second biases replicated)", rank_pred.totals.params, rank_params,
                            rank_params == rank_pred.totals.params))  # fmt: skip
        total = partial.astype(np.float64) if total is None else total + partial
    assert total is not None
    reduce = plan.collectives[0]
    checks.append(Check("parallel", "all-reduce tensor bytes", reduce.tensor_bytes, partial.nbytes, partial.nbytes == reduce.tensor_bytes))
    ok, diff = _close(total, forward(Silent(), bare, ffn_params, x), rtol)
    checks.append(Check("parallel", f"Σ of {ranks} ranks' partial outputs = the whole layer's", "equal", f"max |Δ| {diff:.2e}", ok, "tolerance"))
    return checks


def conv_flops(products: list[tuple[int, int, int]]) -> int:
    return FLOPS_PER_MAC * sum(m * k * n for m, k, n in products)


def _grouped(matmuls: list[tuple[int, int, int]], axis: int = 0) -> tuple[int, int, int] | None:
    """The products of one stage as one (M, K, N): the experts' products summed along `axis`
    (the rows they split), the other two dimensions the same for all."""
    if not matmuls:
        return None
    others = {tuple(dim for i, dim in enumerate(m) if i != axis) for m in matmuls}
    if len(others) != 1:
        return matmuls[0]
    grouped = list(matmuls[0])
    grouped[axis] = sum(m[axis] for m in matmuls)
    return (grouped[0], grouped[1], grouped[2])


def run_chunked(rec: Recorder, cfg: FFNConfig, p: Params, x: np.ndarray, chunk: int, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The forward pass `chunk` tokens at a time into one preallocated output (the layer is
    position-wise, and dropless routing is per token, so the result is the same)."""
    n, d = cfg.tokens, cfg.d_model
    flat = x.reshape(1, n, d)
    out = np.empty((1, n, d), x.dtype)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        y = forward(rec, replace(cfg, batch=1, seq_len=stop - start), p, flat[:, start:stop])
        out[:, start:stop] = y
        del y
        if progress is not None:
            progress(stop - start)
    return out.reshape(cfg.batch, cfg.seq_len, d)


def verify(
    cfg: FFNConfig,
    seed: int = 0,
    max_memory_bytes: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
    backward: bool = False,
    tp: int = 1,
) -> VerifyReport:
    """Run the layer in NumPy and compare everything observed with the prediction.

    When the whole pass would not fit under `max_memory_bytes` (default: a share of the
    memory available), it runs in chunks of tokens and the peak prediction is the chunked
    one. Raises VerifyRefused, before allocating anything, when even that would not fit.
    `progress(done_tokens, total_tokens)` is called as chunks finish."""
    computed = cfg.dtype if cfg.dtype in NUMPY_DTYPES else "float32"
    run_cfg = replace(cfg, dtype=computed)
    pred = analyze(run_cfg)
    chunk, limit = plan_chunks(pred, max_memory_bytes)
    if backward:
        check_backward_fits(pred, limit)
    if tp > 1:
        from ffn_calc.model.parallel import tensor_parallel

        tensor_parallel(run_cfg, tp)  # the same refusals as `train --tp`, before anything runs
        if chunk:
            raise VerifyRefused("verify --tp runs the whole layer on every simulated rank; it does not fit here, use smaller sizes")
    # What each stage looks like in the pass as run: the whole layer, or its first chunk.
    shape_pred = analyze(replace(run_cfg, batch=1, seq_len=chunk)) if chunk else pred
    peak_pred = chunked_peak(run_cfg, chunk) if chunk else pred.totals.peak_bytes
    np_dtype = NUMPY_DTYPES[computed]
    rng = np.random.default_rng(seed)
    checks: list[Check] = []
    done = 0

    def advance(tokens: int) -> None:
        nonlocal done
        done += tokens
        if progress is not None:
            progress(done, cfg.tokens)

    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        params = make_params(rng, run_cfg, np_dtype)
        x = random_array(rng, (cfg.batch, cfg.seq_len, cfg.d_model), np_dtype, 1.0)
        rec = Recorder(first_shapes=bool(chunk))
        tracemalloc.reset_peak()
        start = time.perf_counter()
        if chunk:
            out = run_chunked(rec, run_cfg, params, x, chunk, advance)
        else:
            out = forward(rec, run_cfg, params, x)
            advance(cfg.tokens)
        seconds = time.perf_counter() - start - rec.overhead_s  # the layer's work, not the recorder's
        _, observed_peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()

    def exact(group: str, name: str, predicted: object, observed: object) -> None:
        checks.append(Check(group, name, predicted, observed, predicted == observed))

    exact("shape", "layer output shape", (cfg.batch, cfg.seq_len, cfg.d_model), tuple(out.shape))
    del out
    by_name = {s.name: s for s in shape_pred.stages}
    where = " (first chunk)" if chunk else ""
    for stage in pred.stages:
        obs = rec.stages.get(stage.name, Observed())
        exact("shape", f"{stage.name} output shape{where}", by_name[stage.name].output_shape, obs.shape)
        exact("memory", f"{stage.name} output bytes{where}", by_name[stage.name].output_bytes, obs.nbytes)
        if stage.op == "input":
            continue
        observed_macs = sum(m * k * n for m, k, n in obs.matmuls)
        if stage.matmul:
            exact("flops", f"{stage.name} matmul (M, K, N)", stage.matmul, _grouped(obs.matmuls))
            exact("flops", f"{stage.name} MACs", stage.macs, observed_macs)
            einsum = sum(obs.einsum_flops)
            checks.append(
                Check(
                    "flops",
                    f"{stage.name} matmul FLOPs (einsum_path, 4 s.f.)",
                    stage.matmul_flops,
                    f"{einsum:.4g}",
                    abs(einsum - stage.matmul_flops) <= 5e-4 * stage.matmul_flops,
                    "tolerance",
                )
            )
        exact("flops", f"{stage.name} FLOPs", stage.flops, FLOPS_PER_MAC * observed_macs + obs.elementwise_flops)

    exact("params", "weight tensors", tuple(sorted(t.name for t in pred.weights)), tuple(sorted(params)))
    for t in pred.weights:
        arr = params.get(t.name)
        exact("params", f"{t.name} {t.role} shape", t.shape, None if arr is None else tuple(arr.shape))
        exact("params", f"{t.name} parameters", t.elements, None if arr is None else arr.size)
        exact("memory", f"{t.name} bytes", t.bytes, None if arr is None else arr.nbytes)

    observed_macs = sum(m * k * n for o in rec.stages.values() for m, k, n in o.matmuls)
    observed_flops = FLOPS_PER_MAC * observed_macs + sum(o.elementwise_flops for o in rec.stages.values())
    totals = pred.totals
    exact("totals", "parameters", totals.params, sum(a.size for a in params.values()))
    exact("totals", "weight bytes", totals.weight_bytes, sum(a.nbytes for a in params.values()))
    exact("totals", "MACs", totals.macs, observed_macs)
    exact("totals", "FLOPs", totals.flops, observed_flops)
    scratch = scratch_allowance(pred)
    allowance = max(PEAK_TOLERANCE * peak_pred, scratch)
    how = f"in chunks of {chunk:,} tokens, " if chunk else ""
    checks.append(
        Check(
            "totals",
            f"peak bytes ({how}tracemalloc; within {PEAK_TOLERANCE:.0%} or {scratch / 2**20:.3g} MiB scratch)",
            peak_pred,
            observed_peak,
            abs(observed_peak - peak_pred) <= allowance,
            "tolerance",
            f"{(observed_peak - peak_pred) / peak_pred:+.2%}",
        )
    )
    if chunk:
        checks.append(Check("totals", "peak stays under the memory limit", f"≤ {limit:,}", observed_peak, observed_peak <= limit, "tolerance"))

    check_x = x[:, : min(cfg.seq_len, chunk)] if chunk else x
    checks.extend(_structural_checks(replace(run_cfg, seq_len=check_x.shape[1]), params, check_x, rng, RTOL[computed]))
    if backward:
        checks.extend(_backward_checks(run_cfg, params, x, rng))
    if tp > 1:
        checks.extend(_tensor_parallel_checks(run_cfg, params, x, tp, RTOL[computed]))
    if rec.expert_rows is not None:
        rows = rec.expert_rows
        balanced = f"{cfg.tokens * cfg.top_k / cfg.experts:g} each if balanced"
        checks.append(
            Check(
                "structure",
                "rows each expert computed (min / mean / max)",
                balanced,
                f"{min(rows)} / {sum(rows) / len(rows):g} / {max(rows)}",
                True,
                "info",
            )
        )
    if rec.relu_zero_fraction is not None:
        checks.append(Check("structure", "fraction of zeros after ReLU", "", f"{rec.relu_zero_fraction:.4f}", True, "info"))

    rate = observed_flops / seconds / 1e9 if seconds > 0 else float("inf")
    chunks = -(-cfg.tokens // chunk) if chunk else 1
    return VerifyReport(cfg, computed, DTYPE_NOTES.get(cfg.dtype, ""), pred, tuple(checks), seconds, rate, seed, chunk, chunks, limit)
