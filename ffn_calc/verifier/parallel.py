"""`verify --tp N`: Megatron tensor parallelism simulated rank by rank."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ffn_calc.model import structure as names
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.norms import WEIGHTS as NORM_WEIGHTS
from ffn_calc.verifier.forward import Params, forward
from ffn_calc.verifier.properties import _close
from ffn_calc.verifier.recorder import Recorder, Silent
from ffn_calc.verifier.report import Check


def shard(cfg: FFNConfig, p: Params, rank: int, ranks: int) -> Params:
    """Rank `rank`'s weights: every first linear (W1, gate, up; a fused [gate | up] half by half)
    split by columns, every second linear (W2, down) by rows — in the dense layer, in every
    expert and in the shared experts alike; the router is replicated. The second linears'
    biases are held by every rank but applied by rank 0 only (the others hold zeros), so the
    all-reduce sums them once, as adding them once after it does."""
    out: Params = {}
    for name, w in p.items():
        spec = names.linear_of(name)
        if spec is None:  # the router: replicated
            out[name] = w
        elif spec.first and spec.fused:
            half = w.shape[-1] // 2
            f = half // ranks
            out[name] = np.concatenate([w[..., rank * f : (rank + 1) * f], w[..., half + rank * f : half + (rank + 1) * f]], axis=-1)
        elif spec.first:
            f = w.shape[-1] // ranks
            out[name] = w[..., rank * f : (rank + 1) * f]
        elif name.endswith(spec.weight):
            f = w.shape[-2] // ranks
            out[name] = w[..., rank * f : (rank + 1) * f, :]
        else:  # the output linear's bias
            out[name] = w if rank == 0 else np.zeros_like(w)
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def tensor_parallel_checks(cfg: FFNConfig, p: Params, x: np.ndarray, ranks: int, rtol: float) -> list[Check]:
    """Megatron tensor parallelism simulated: shard the weights N ways, run every rank, sum the
    partial outputs (the all-reduce), and compare with the whole layer."""
    from ffn_calc.model.parallel import tensor_parallel

    plan = tensor_parallel(cfg, ranks)
    rank_pred = analyze(replace(plan.per_rank, norm="none"))
    bare = replace(cfg, norm="none")
    ffn_params = {k: v for k, v in p.items() if k not in NORM_WEIGHTS}
    checks: list[Check] = []
    total = None
    for r in range(ranks):
        shard_params = shard(cfg, ffn_params, r, ranks)
        rec = Recorder()
        partial = forward(rec, replace(bare, d_ff=plan.per_rank.d_ff), shard_params, x)
        observed = sum(m * k * n for o in rec.stages.values() for m, k, n in o.matmuls)
        checks.append(Check("parallel", f"rank {r} MACs", rank_pred.totals.macs, observed, observed == rank_pred.totals.macs))
        rank_params = sum(a.size for a in shard_params.values())
        checks.append(Check("parallel", f"rank {r} parameters (second biases replicated)", rank_pred.totals.params, rank_params,
                            rank_params == rank_pred.totals.params))  # fmt: skip
        total = partial.astype(np.float64) if total is None else total + partial
    assert total is not None
    reduce = plan.collectives[0]
    checks.append(Check("parallel", "all-reduce tensor bytes", reduce.tensor_bytes, partial.nbytes, partial.nbytes == reduce.tensor_bytes))
    ok, diff = _close(total, forward(Silent(), bare, ffn_params, x), rtol)
    checks.append(Check("parallel", f"Σ of {ranks} ranks' partial outputs = the whole layer's", "equal", f"max |Δ| {diff:.2e}", ok, "tolerance"))
    return checks
