"""Running the forward pass and observing it: random weights and input made from the layer's
configuration alone, the pass run whole or in chunks of tokens under tracemalloc, and what
it did read off the arrays and the recorder into a `ForwardSeen`. A few sampled tokens'
inputs and outputs are kept for the checks that follow (properties.py), which run on them
instead of on further full passes."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ffn_calc.model import structure as names
from ffn_calc.model.conventions import MULTIPLY_ADD
from ffn_calc.model.forward import FFNReport
from ffn_calc.model.layer import FFNConfig
from ffn_calc.verifier.arrays import Workspace, random_array
from ffn_calc.verifier.compare import ActiveSeen, ArraySeen, ForwardSeen, StackSeen, StageSeen, active_per_token
from ffn_calc.verifier.forward import NotedReads, Params, forward, make_params, route_tokens
from ffn_calc.verifier.recorder import Recorder, expert_params_read

SAMPLE_TOKENS = 8  # tokens whose outputs the structural and reference checks look at


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


@dataclass(frozen=True)
class Sample:
    """Tokens of the main pass kept for the checks: their flat positions (batch-major), their
    inputs (rows of x) and the outputs the main pass gave them, each (tokens, d_model)."""

    positions: np.ndarray
    inputs: np.ndarray
    outputs: np.ndarray


def random_norm_weights(rng: np.random.Generator, cfg: FFNConfig, p: Params) -> None:
    """Replace the norm's γ = 1 (and β = 0) by random values, γ in [0.5, 1.5) and β of scale
    0.5, so that a norm that skips its γ or β gives different values (the shapes are the same)."""
    if cfg.norm_kind is None:
        return
    for i, name in enumerate(cfg.norm_kind.weights):  # γ first (the registry's order)
        values = 0.5 + rng.random(cfg.d_model) if i == 0 else 0.5 * rng.standard_normal(cfg.d_model)
        p[name] = values.astype(p[name].dtype)


def observe_forward(
    cfg: FFNConfig,
    rng: np.random.Generator,
    np_dtype: Any,
    chunk: int = 0,
    advance: Callable[[int], None] | None = None,
    products: Iterable[tuple[int, int, int]] = (),
) -> tuple[ForwardSeen, Params, np.ndarray, Sample]:
    """Make the weights (the norm's γ and β random) and the input, run the pass (in chunks of
    `chunk` tokens when not 0) and return what it observed, with the weights, the input and a
    sample of SAMPLE_TOKENS tokens' outputs for the checks that follow; the rest of the
    output is dropped. The narrow products' workspace is made before the pass, sized for the
    largest of `products` (a product it cannot hold makes its own tiles, which the peak shows)."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        params = make_params(rng, cfg, np_dtype)
        random_norm_weights(rng, cfg, params)
        x = random_array(rng, (cfg.batch, cfg.seq_len, cfg.d_model), np_dtype, 1.0)
        workspace = Workspace(products, np.dtype(np_dtype).name, cfg.weight_dtype)
        rec = Recorder(first_shapes=bool(chunk), workspace=workspace)
        rec.expert_sizes = expert_sizes(cfg, params)
        noted = NotedReads(params)
        tracemalloc.reset_peak()
        start = time.perf_counter()
        if chunk:
            out = run_chunked(rec, cfg, noted, x, chunk, advance)
        else:
            out = forward(rec, cfg, noted, x)
            if advance is not None:
                advance(cfg.tokens)
        seconds = time.perf_counter() - start - rec.overhead_s  # the layer's work, not the recorder's
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    positions = np.sort(rng.choice(cfg.tokens, size=min(SAMPLE_TOKENS, cfg.tokens), replace=False))
    rows = x.reshape(-1, cfg.d_model)
    sample = Sample(positions, rows[positions], out.reshape(-1, cfg.d_model)[positions])
    seen = ForwardSeen(
        tuple(out.shape),
        {name: StageSeen(o.shape, o.nbytes, tuple(o.matmuls), tuple(o.einsum_flops), o.counted()) for name, o in rec.phase().items()},
        {name: ArraySeen(tuple(a.shape), a.size, a.nbytes, getattr(a, "offset_excess", 0)) for name, a in params.items()},
        peak,
        seconds,
        tuple(rec.expert_rows) if rec.expert_rows is not None else None,
        rec.zero_fraction,
        active_seen(cfg, params, rec, sample.inputs),
        workspace.nbytes,
        rec.routing_bytes,
        tuple(sorted(noted.read)),
    )
    del out, workspace, noted
    return seen, params, x, sample


def expert_sizes(cfg: FFNConfig, p: Params) -> np.ndarray | None:
    """The parameters each routed expert holds: Σ p[name][e].size over its weights and biases."""
    if not cfg.is_moe:
        return None
    experts = [w for n, w in p.items() if n.startswith(names.EXPERT)]
    return np.array([sum(w[e].size for w in experts) for e in range(cfg.experts)], np.int64)


def active_seen(cfg: FFNConfig, p: Params, rec: Recorder, sampled: np.ndarray) -> ActiveSeen:
    """What the pass read: every array but the routed experts' for every token, and for each
    token the experts it was routed to — from the pass's own routing when it reported it to the
    recorder (Recorder.routed), else from the sampled tokens routed again (a second call of
    the router on them, as the structural checks run them alone)."""
    shared = sum(w.size for n, w in p.items() if not n.startswith(names.EXPERT))
    sizes = expert_sizes(cfg, p)
    if sizes is None:
        return ActiveSeen(shared, how="every array of the layer, each read by the pass")
    every = int(sizes.sum())
    if rec.token_params is not None:
        lo, hi = rec.token_params
        return ActiveSeen(shared, every, lo, hi, rec.routed_tokens, f"the pass's routing of all {rec.routed_tokens:,} tokens")
    index = route_tokens(cfg, p, sampled)
    read = expert_params_read(index, None, sizes)
    how = f"the {read.size} sampled tokens routed again (the pass does not report its routing to the recorder)"
    return ActiveSeen(shared, every, int(read.min()), int(read.max()), read.size, how)


MAX_STACK_LAYERS = 4  # verify runs the model's layers only up to this many ...
STACK_MEMORY_SHARE = 4  # ... when their weights and one layer's activations fit in 1/4 of the limit ...
MAX_STACK_FLOPS = 10**10  # ... and their forward passes stay under this many FLOPs (a few seconds)


def stack_refusal(pred: FFNReport, chunk: int, limit: int) -> str | None:
    """Why the model's L layers are not run (None when they are)."""
    model = pred.model
    if model.layers > MAX_STACK_LAYERS:
        return f"{model.layers} layers: verify runs at most {MAX_STACK_LAYERS} (the model totals are the layer's × {model.layers})"
    if chunk:
        return "the layer alone runs in chunks to fit; its layers together are not run"
    if model.peak_bytes * STACK_MEMORY_SHARE > limit:
        return f"{model.layers} layers need {model.peak_bytes:,} bytes, more than 1/{STACK_MEMORY_SHARE} of the limit {limit:,}"
    if model.flops > MAX_STACK_FLOPS:
        return f"{model.layers} layers are {model.flops:,} FLOPs, more than the {MAX_STACK_FLOPS:.0e} verify spends on them"
    return None


def stack_from_pass(pred: FFNReport, seen: ForwardSeen, chunked: bool = False) -> StackSeen:
    """One layer: the model is the main pass (its peak not compared when it ran in chunks)."""
    macs = sum(m * k * n for s in seen.stages.values() for m, k, n in s.matmuls)
    active = active_per_token(pred, seen.active) if seen.active is not None else None
    params = sum(a.size for a in seen.weights.values())
    weight_bytes = sum(a.nbytes for a in seen.weights.values())
    peak = None if chunked else seen.peak_bytes
    excess = sum(a.excess for a in seen.weights.values())
    return StackSeen(1, params, active, weight_bytes, macs, seen.flops, peak, "the main pass", seen.workspace_bytes, seen.routing_bytes, excess)


def observe_stack(pred: FFNReport, rng: np.random.Generator, np_dtype: Any) -> StackSeen:
    """The model's layers run one after the other, each with its own random weights, all held
    at once as a model's are; the input is made here and dropped as soon as the first layer has
    read it. Parameters and bytes are summed over the layers' arrays, MACs and FLOPs over what
    each pass ran, active parameters over what each layer's tokens read; the peak is
    tracemalloc's over the run, above what was allocated before it."""
    cfg = pred.config
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        layers = []
        for _ in range(cfg.layers):
            p = make_params(rng, cfg, np_dtype)
            random_norm_weights(rng, cfg, p)
            layers.append(p)
        h = random_array(rng, (cfg.batch, cfg.seq_len, cfg.d_model), np_dtype, 1.0)
        workspace = Workspace((s.matmul for s in pred.stages if s.matmul), np.dtype(np_dtype).name, cfg.weight_dtype)
        tracemalloc.reset_peak()
        macs = flops = 0
        actives: list[int | None] = []
        routing_bytes = 0
        for p in layers:
            sampled = h.reshape(-1, cfg.d_model)[:SAMPLE_TOKENS].copy()
            rec = Recorder(workspace=workspace)
            rec.expert_sizes = expert_sizes(cfg, p)
            h = forward(rec, cfg, p, h)
            layer_macs = sum(m * k * n for o in rec.stages.values() for m, k, n in o.matmuls)
            macs += layer_macs
            flops += MULTIPLY_ADD.flops * layer_macs + sum(o.elementwise_flops for o in rec.stages.values())
            actives.append(active_per_token(pred, active_seen(cfg, p, rec, sampled)))
            routing_bytes = max(routing_bytes, rec.routing_bytes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    del h
    active = None if None in actives else sum(a for a in actives if a is not None)
    params = sum(w.size for p in layers for w in p.values())
    weight_bytes = sum(w.nbytes for p in layers for w in p.values())
    excess = sum(getattr(w, "offset_excess", 0) for p in layers for w in p.values())
    return StackSeen(cfg.layers, params, active, weight_bytes, macs, flops, peak - base, "run one after the other", workspace.nbytes, routing_bytes,
                     excess)  # fmt: skip
