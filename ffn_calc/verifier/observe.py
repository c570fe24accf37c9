"""Running the forward pass and observing it: random weights and input made from the layer's
configuration alone, the pass run whole or in chunks of tokens under tracemalloc, and what
it did read off the arrays and the recorder into a `ForwardSeen`. A few sampled tokens'
inputs and outputs are kept for the checks that follow (properties.py), which run on them
instead of on further full passes."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ffn_calc.model.layer import FFNConfig
from ffn_calc.verifier.arrays import random_array
from ffn_calc.verifier.compare import ArraySeen, ForwardSeen, StageSeen
from ffn_calc.verifier.forward import NORM_PARAMS, Params, forward, make_params
from ffn_calc.verifier.recorder import Recorder

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
    if cfg.norm == "none":
        return
    gamma, *beta = NORM_PARAMS[cfg.norm_type]
    p[gamma] = (0.5 + rng.random(cfg.d_model)).astype(p[gamma].dtype)
    for name in beta:
        p[name] = (0.5 * rng.standard_normal(cfg.d_model)).astype(p[name].dtype)


def observe_forward(
    cfg: FFNConfig, rng: np.random.Generator, np_dtype: Any, chunk: int = 0, advance: Callable[[int], None] | None = None
) -> tuple[ForwardSeen, Params, np.ndarray, Sample]:
    """Make the weights (the norm's γ and β random) and the input, run the pass (in chunks of
    `chunk` tokens when not 0) and return what it observed, with the weights, the input and a
    sample of SAMPLE_TOKENS tokens' outputs for the checks that follow; the rest of the
    output is dropped."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        params = make_params(rng, cfg, np_dtype)
        random_norm_weights(rng, cfg, params)
        x = random_array(rng, (cfg.batch, cfg.seq_len, cfg.d_model), np_dtype, 1.0)
        rec = Recorder(first_shapes=bool(chunk))
        tracemalloc.reset_peak()
        start = time.perf_counter()
        if chunk:
            out = run_chunked(rec, cfg, params, x, chunk, advance)
        else:
            out = forward(rec, cfg, params, x)
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
        {name: StageSeen(o.shape, o.nbytes, tuple(o.matmuls), tuple(o.einsum_flops), o.elementwise_flops) for name, o in rec.stages.items()},
        {name: ArraySeen(tuple(a.shape), a.size, a.nbytes) for name, a in params.items()},
        peak,
        seconds,
        tuple(rec.expert_rows) if rec.expert_rows is not None else None,
        rec.zero_fraction,
    )
    del out
    return seen, params, x, sample
