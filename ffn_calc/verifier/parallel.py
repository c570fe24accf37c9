"""`verify --tp N`: Megatron tensor parallelism simulated rank by rank; `verify --ep N`: expert
parallelism, the all-to-alls built explicitly from each rank's routing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ffn_calc.model import structure as names
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.norms import WEIGHTS as NORM_WEIGHTS
from ffn_calc.verifier.forward import Params, ffn, forward, route, shared_expert_gate
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


def _token_shards(x: np.ndarray, how: str, ranks: int) -> list[np.ndarray]:
    """Each rank's tokens: BATCH / N sequences, or SEQ_LEN / N of each (as expert_parallel splits them)."""
    axis = 0 if how == "batch" else 1
    return [np.ascontiguousarray(part) for part in np.split(x, ranks, axis=axis)]


def _macs(rec: Recorder) -> int:
    return sum(m * k * n for o in rec.stages.values() for m, k, n in o.matmuls)


def expert_parallel_checks(cfg: FFNConfig, p: Params, x: np.ndarray, ranks: int, rtol: float) -> list[Check]:
    """Expert parallelism simulated: the experts split E/N per rank, the tokens N ways; each
    rank routes its tokens, builds one send buffer per rank from its routing (dispatch
    all-to-all), runs its experts on what it received, sends the outputs back (combine
    all-to-all) and combines. The bytes are read off the buffers built (`.nbytes` of the rows
    bound for another rank), and checked against the routed (token, expert) pairs whose expert
    lives on another rank, counted straight from the routing indices; the balanced-routing
    prediction (an expectation) is reported beside them, not judged."""
    from ffn_calc.model.expert_parallel import expert_parallel

    plan = expert_parallel(cfg, ranks)
    bare = replace(cfg, norm="none")
    rank_cfg = replace(plan.per_rank, norm="none")
    rank_pred = plan.shard(analyze(rank_cfg))
    ffn_params = {k: v for k, v in p.items() if k not in NORM_WEIGHTS}
    local, k, d = plan.experts_per_rank, cfg.top_k, cfg.d_model
    checks: list[Check] = []
    shards: list[Params] = []
    for r in range(ranks):
        shard_params = {n: (w[r * local : (r + 1) * local] if n.startswith(names.EXPERT) else w) for n, w in ffn_params.items()}
        shards.append(shard_params)
        want = "; ".join(f"{t.name} {tuple(t.shape)}" for t in rank_pred.weights if t.experts)
        seen = "; ".join(f"{n} {w.shape}" for n, w in shard_params.items() if n.startswith(names.EXPERT))
        checks.append(Check("parallel", f"rank {r} expert weight shapes ({local} of {cfg.experts} experts)", want, seen, want == seen))
        count = sum(w.size for w in shard_params.values())
        checks.append(Check("parallel", f"rank {r} parameters", rank_pred.totals.params, count, count == rank_pred.totals.params))
    # Each rank: its tokens, the replicated router and shared experts, its routing.
    xs = _token_shards(x, plan.token_split, ranks)
    recs = [Recorder() for _ in range(ranks)]
    routed, shared, flat_x = [], [], []
    for r in range(ranks):
        weights, index = route(recs[r], rank_cfg, shards[r], xs[r])
        routed.append((weights, index))
        shared_out = ffn(recs[r], rank_cfg, shards[r], names.SHARED, [xs[r]]) if cfg.shared_experts else None
        if shared_out is not None and cfg.shared_expert_gate:  # Qwen2-MoE's gate, replicated like the router
            shared_out = shared_expert_gate(recs[r], shards[r], xs[r], [shared_out])
        shared.append(shared_out)
        flat_x.append(xs[r].reshape(-1, d))
    # Dispatch: rank r's send buffer to rank q holds its routed rows whose expert lives on q.
    send: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
    for r in range(ranks):
        flat = routed[r][1].reshape(-1)  # the T·k (token, slot) pairs, token-major
        row = []
        for q in range(ranks):
            pairs = np.flatnonzero(flat // local == q)
            row.append((flat_x[r][pairs // k], flat[pairs] % local, pairs))
        send.append(row)
    # Each rank runs its experts on what it received, and sends every output back to its source.
    back: list[list[np.ndarray]] = [[np.empty((0, d), x.dtype)] * ranks for _ in range(ranks)]
    received_rows = 0
    for q in range(ranks):
        rows = np.concatenate([send[r][q][0] for r in range(ranks)])
        experts = np.concatenate([send[r][q][1] for r in range(ranks)])
        received_rows += rows.shape[0]
        order = np.argsort(experts, kind="stable")
        counts = np.bincount(experts, minlength=local)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        bounds = [(int(lo), int(lo + c)) for lo, c in zip(starts, counts, strict=True)]
        out = np.empty_like(rows)
        if rows.shape[0]:
            out[order] = ffn(recs[q], rank_cfg, shards[q], names.EXPERT, [np.ascontiguousarray(rows[order])], bounds)
        sizes = np.cumsum([send[r][q][0].shape[0] for r in range(ranks)])[:-1]
        for r, part in enumerate(np.split(out, sizes)):
            back[r][q] = part
    # Combine on each token's rank: y = Σₖ w·ye (+ shared), in the token order it started in.
    outs = []
    for r in range(ranks):
        weights, index = routed[r]
        ye = np.zeros((index.size, d), np.float64)
        for q in range(ranks):
            ye[send[r][q][2]] = back[r][q]
        y = np.einsum("tk,tkd->td", weights.astype(np.float64), ye.reshape(-1, k, d))
        shared_out = shared[r]
        if shared_out is not None:
            y += shared_out.reshape(-1, d)
        outs.append(y.reshape(xs[r].shape))
    whole = np.concatenate(outs, axis=0 if plan.token_split == "batch" else 1)
    ok, diff = _close(whole, forward(Silent(), bare, ffn_params, x), rtol)
    checks.append(Check("parallel", f"{ranks} ranks' dispatch, experts, combine = the whole layer's output", "equal", f"max |Δ| {diff:.2e}",
                        ok, "tolerance"))  # fmt: skip
    rows_all = cfg.tokens * k
    checks.append(Check("parallel", "routed rows run by all ranks' experts (each pair once)", rows_all, received_rows, received_rows == rows_all))
    # Bytes each rank sends, read off the buffers, against the pairs counted from the indices.
    dispatch, combine, *_ = plan.all_to_all
    for r in range(ranks):
        sent = sum(send[r][q][0].nbytes for q in range(ranks) if q != r)
        returned = sum(back[q][r].nbytes for q in range(ranks) if q != r)
        index = routed[r][1]
        away = int(np.count_nonzero(index // local != r)) * d * x.itemsize
        home = sum(int(np.count_nonzero(routed[s][1] // local == r)) for s in range(ranks) if s != r) * d * x.itemsize
        checks.append(Check("parallel", f"rank {r} dispatch bytes sent = its routed pairs on other ranks × d × bytes", away, sent, sent == away))
        checks.append(Check("parallel", f"rank {r} combine bytes sent = other ranks' pairs on its experts × d × bytes", home, returned,
                            returned == home))  # fmt: skip
        checks.append(Check("parallel", f"rank {r} dispatch bytes sent, against balanced routing's expectation", dispatch.bytes_sent_per_rank,
                            sent, True, "info", "the prediction assumes T·k/N rows to every rank; real routing varies"))  # fmt: skip
        checks.append(Check("parallel", f"rank {r} combine bytes sent, against balanced routing's expectation", combine.bytes_sent_per_rank,
                            returned, True, "info", "the backward all-to-alls move the same rows the other way"))  # fmt: skip
    observed_macs = sum(_macs(rec) for rec in recs)
    predicted = ranks * rank_pred.totals.macs
    checks.append(Check("parallel", f"Σ of {ranks} ranks' MACs = {ranks} × a rank's under balanced routing", predicted, observed_macs,
                        observed_macs == predicted, detail="each rank's own varies with the routing; the sum does not"))  # fmt: skip
    for r, rec in enumerate(recs):
        checks.append(Check("parallel", f"rank {r} MACs, against balanced routing", rank_pred.totals.macs, _macs(rec), True, "info"))
    return checks
