"""`verify --tp N`: Megatron tensor parallelism simulated rank by rank; `verify --ep N`: expert
parallelism, the all-to-alls built explicitly from each rank's routing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ffn_calc.model import conventions as conv
from ffn_calc.model import structure as names
from ffn_calc.model.conventions import MULTIPLY_ADD
from ffn_calc.model.expert_parallel import ExpertParallel, all_to_all_bytes, expert_parallel
from ffn_calc.model.forward import FFNReport, analyze
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.norms import WEIGHTS as NORM_WEIGHTS
from ffn_calc.model.training import TrainingOptions
from ffn_calc.verifier.forward import Dropout, Params, ffn, forward, route, shared_expert_gate
from ffn_calc.verifier.properties import _close
from ffn_calc.verifier.recorder import Recorder, Silent
from ffn_calc.verifier.report import Check
from ffn_calc.verifier.rings import all_gather, reduce_scatter
from ffn_calc.verifier.rings import split as _split


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


def _collective_rows(plan: object, phase: str, observed: dict[str, list[int]], even: dict[str, bool], ranks: int) -> list[Check]:
    """Each rank's bytes sent per collective of `phase`, observed in the ring, against
    `train --tp`'s collectives of that phase (matched by op); an observed collective the
    prediction lacks, or a predicted one nobody ran, fails."""
    from ffn_calc.model.parallel import TensorParallel

    assert isinstance(plan, TensorParallel)
    checks: list[Check] = []
    predicted = {c.op: c for c in plan.collectives if c.phase == phase}
    for op, sent in observed.items():
        c = predicted.get(op)
        label = f"{phase} {op}"
        if c is None:
            checks.append(Check("parallel", f"{label}: run by the ring, predicted by train --tp", "none predicted",
                                f"{sum(sent):,} bytes sent in all", False))  # fmt: skip
            continue
        if even[op]:
            for r, b in enumerate(sent):
                checks.append(Check("parallel", f"rank {r} {label} bytes sent (ring, .nbytes of each chunk sent)",
                                    c.bytes_sent_per_rank, b, b == c.bytes_sent_per_rank))  # fmt: skip
        else:
            mean = sum(sent) / ranks
            ok = 0 <= c.bytes_sent_per_rank - mean < 1
            checks.append(Check("parallel", f"{label} bytes sent per rank, mean of {ranks} (uneven chunks; the prediction rounds up)",
                                c.bytes_sent_per_rank, f"{mean:g}", ok, "tolerance",
                                f"not {ranks} equal chunks: each rank sent {', '.join(f'{b:,}' for b in sent)}"))  # fmt: skip
    for op, c in predicted.items():
        if op not in observed:
            checks.append(Check("parallel", f"{phase} {op}: predicted by train --tp, run by the ring", c.bytes_sent_per_rank, "not run", False))
    return checks


def tensor_parallel_checks(
    cfg: FFNConfig,
    p: Params,
    x: np.ndarray,
    ranks: int,
    rtol: float,
    sequence_parallel: bool = False,
    backward: bool = False,
    training: TrainingOptions | None = None,
    rng: np.random.Generator | None = None,
) -> list[Check]:
    """Megatron tensor parallelism simulated: shard the weights N ways, run every rank, and run
    the collectives as a ring does, with real buffers — the all-reduce of the partial outputs
    as a reduce-scatter and an all-gather (N − 1 steps each, one chunk sent per rank per step);
    with sequence parallelism the all-gather of the input's sequence shards before the first
    linear and the reduce-scatter of the partial outputs into sequence shards after the last.
    Every rank's weight shapes, parameters, MACs and FLOPs, the bytes each rank sends per
    collective and the result against the whole layer's are checked. With `backward`, the
    backward collectives run too (the input gradient's all-reduce; with sequence parallelism
    the output gradient's all-gather and the input gradient's reduce-scatter) and every rank's
    training step (`training`: train's options), checked against `train --tp`."""
    from ffn_calc.model.parallel import tensor_parallel

    rng = rng if rng is not None else np.random.default_rng(ranks)

    plan = tensor_parallel(cfg, ranks, sequence_parallel)
    rank_cfg = replace(plan.per_rank, norm="none")
    rank_pred = analyze(rank_cfg)
    bare = replace(cfg, norm="none")
    ffn_params = {k: v for k, v in p.items() if k not in NORM_WEIGHTS}
    checks: list[Check] = []
    seq_axis = 1 if sequence_parallel else None
    sent: dict[str, dict[str, list[int]]] = {"forward": {}, "backward": {}}
    even: dict[str, bool] = {}
    # Sequence parallelism: each rank holds its sequence shard of x; the all-gather rebuilds x.
    inputs = [x] * ranks
    if sequence_parallel:
        bufs = [[x_r if q == r else np.empty(0, x.dtype) for q, x_r in enumerate(_split(x, ranks, 1))] for r in range(ranks)]
        gathered = sent["forward"]["all-gather"] = [0] * ranks
        all_gather(bufs, gathered)
        even["all-gather"] = True
        inputs = [np.concatenate(b, axis=1) for b in bufs]
        same = all(np.array_equal(g, x) for g in inputs)
        checks.append(Check("parallel", f"all-gather of {ranks} sequence shards = the layer input, on every rank", "equal",
                            "equal" if same else "different", same))  # fmt: skip
    want = sorted(f"{t.name} {tuple(t.shape)}" for t in rank_pred.weights)
    shards: list[Params] = []
    partials: list[np.ndarray] = []
    for r in range(ranks):
        shard_params = shard(cfg, ffn_params, r, ranks)
        shards.append(shard_params)
        seen = sorted(f"{n} {w.shape}" for n, w in shard_params.items())
        checks.append(Check("parallel", f"rank {r} weight shapes (d_ff {plan.per_rank.d_ff} per rank)", "; ".join(want), "; ".join(seen),
                            want == seen))  # fmt: skip
        rec = Recorder()
        partials.append(forward(rec, replace(bare, d_ff=plan.per_rank.d_ff), shard_params, inputs[r]))
        macs = _macs(rec)
        flops = MULTIPLY_ADD.flops * macs + sum(o.elementwise_flops for o in rec.stages.values())
        checks.append(Check("parallel", f"rank {r} MACs", rank_pred.totals.macs, macs, macs == rank_pred.totals.macs))
        checks.append(Check("parallel", f"rank {r} FLOPs", rank_pred.totals.flops, flops, flops == rank_pred.totals.flops))
        rank_params = sum(a.size for a in shard_params.values())
        checks.append(Check("parallel", f"rank {r} parameters (second biases replicated)", rank_pred.totals.params, rank_params,
                            rank_params == rank_pred.totals.params))  # fmt: skip
    tensor = partials[0]
    forward_ops = [c for c in plan.collectives if c.phase == "forward"]
    checks.append(Check("parallel", "collective tensor shape (a rank's partial output)", tuple(forward_ops[-1].shape), tuple(tensor.shape),
                        tuple(forward_ops[-1].shape) == tuple(tensor.shape)))  # fmt: skip
    reduced = forward_ops[-1]
    checks.append(Check("parallel", "collective tensor bytes", reduced.tensor_bytes, tensor.nbytes, tensor.nbytes == reduced.tensor_bytes))
    whole = forward(Silent(), bare, ffn_params, x)
    reduce_checks, outputs = _reduce(partials, whole, ranks, seq_axis, sent["forward"], even, rtol, "partial outputs", "the whole layer's output")
    checks.extend(reduce_checks)
    checks.extend(_collective_rows(plan, "forward", sent["forward"], even, ranks))
    if backward:
        checks.extend(_backward_collectives(cfg, plan, shards, ffn_params, x, seq_axis, sent["backward"], even, rtol))
        checks.extend(_rank_steps(bare, plan, shards, x, outputs, training or TrainingOptions(), rng))
        checks.extend(_collective_rows(plan, "backward", sent["backward"], even, ranks))
    else:
        for c in plan.collectives:
            if c.phase == "backward":
                checks.append(Check("parallel", f"backward {c.op} bytes sent per rank (of {c.where})", c.bytes_sent_per_rank, "not run", True,
                                    "info", "modelled as the forward's mirror; --backward runs it"))  # fmt: skip
    return checks


def _reduce(
    partials: list[np.ndarray],
    whole: np.ndarray,
    ranks: int,
    axis: int | None,
    sent: dict[str, list[int]],
    even: dict[str, bool],
    rtol: float,
    what: str,
    against: str,
) -> tuple[list[Check], list[np.ndarray]]:
    """Sum the ranks' partial tensors in the ring: a reduce-scatter, then (without sequence
    parallelism) an all-gather — the all-reduce; each rank's result against `whole`. Returns
    the checks and what each rank holds after it (its shard, or the whole sum)."""
    bufs = [_split(part, ranks, axis) for part in partials]
    scattered = [0] * ranks
    reduce_scatter(bufs, scattered)
    checks: list[Check] = []
    if axis is not None:  # sequence parallelism: rank r keeps sequence shard r
        sent["reduce-scatter"] = scattered
        even["reduce-scatter"] = True
        target = np.split(whole, ranks, axis=axis)
        diffs = [_close(bufs[r][r], target[r], rtol) for r in range(ranks)]
        checks.append(Check("parallel", f"reduce-scatter of {ranks} ranks' {what}: rank r's shard = {against}'s shard r", "equal",
                            f"max |Δ| {max(d for _, d in diffs):.2e}", all(ok for ok, _ in diffs), "tolerance"))  # fmt: skip
        return checks, [bufs[r][r] for r in range(ranks)]
    gathered = [0] * ranks
    all_gather(bufs, gathered)
    sent["all-reduce"] = [a + b for a, b in zip(scattered, gathered, strict=True)]
    even["all-reduce"] = whole.size % ranks == 0
    results = [np.concatenate(b).reshape(whole.shape) for b in bufs]
    same = all(np.array_equal(results[0], other) for other in results[1:])
    ok, diff = _close(results[0], whole, rtol)
    checks.append(Check("parallel", f"ring all-reduce of {ranks} ranks' {what} = {against}, the same on every rank", "equal",
                        f"max |Δ| {diff:.2e}" + ("" if same else "; ranks differ"), ok and same, "tolerance"))  # fmt: skip
    return checks, results


def _backward_collectives(
    cfg: FFNConfig,
    plan: object,
    shards: list[Params],
    p: Params,
    x: np.ndarray,
    axis: int | None,
    sent: dict[str, list[int]],
    even: dict[str, bool],
    rtol: float,
) -> list[Check]:
    """The backward collectives run: a random output gradient (with sequence parallelism held
    in sequence shards and all-gathered first), each rank's partial input gradient from its
    shard's backward, and their sum in the ring against the whole layer's input gradient."""
    from ffn_calc.model.parallel import TensorParallel
    from ffn_calc.verifier.backward import forward_backward

    assert isinstance(plan, TensorParallel)
    ranks = plan.ranks
    bare = replace(cfg, norm="none")
    rank_cfg = replace(bare, d_ff=plan.per_rank.d_ff)
    dout = np.random.default_rng(ranks).standard_normal(x.shape).astype(x.dtype)
    checks: list[Check] = []
    grads = [dout] * ranks
    if axis is not None:
        bufs = [[g if q == r else np.empty(0, x.dtype) for q, g in enumerate(_split(dout, ranks, axis))] for r in range(ranks)]
        sent["all-gather"] = [0] * ranks
        even["all-gather"] = True
        all_gather(bufs, sent["all-gather"])
        grads = [np.concatenate(b, axis=axis) for b in bufs]
        same = all(np.array_equal(g, dout) for g in grads)
        checks.append(Check("parallel", f"backward all-gather of {ranks} output-gradient shards = the output gradient, on every rank",
                            "equal", "equal" if same else "different", same))  # fmt: skip
    partial_dx = [forward_backward(rank_cfg, shards[r], x, grads[r])[1]["x"] for r in range(ranks)]
    whole_dx = forward_backward(bare, p, x, dout)[1]["x"]
    checks.extend(_reduce(partial_dx, whole_dx, ranks, axis, sent, even, rtol, "partial input gradients", "the whole layer's input gradient")[0])
    return checks


def _rank_steps(
    bare: FFNConfig, plan: object, shards: list[Params], x: np.ndarray, outputs: list[np.ndarray], options: TrainingOptions, rng: np.random.Generator
) -> list[Check]:
    """Every rank's training step, checked against `train --tp N` (one rank's figures): the
    rank's layer (d_ff / N) on its weight shards. With sequence parallelism the rank saves its
    own sequence shard of the input, and a ring all-gather rebuilds the input for the backward;
    dropout then acts on the rank's shard of the reduce-scattered output (`outputs[r]`), so it
    runs here, forward and backward on that shard, its mask and FLOPs observed apart."""
    from ffn_calc.model.parallel import TensorParallel
    from ffn_calc.model.training import train
    from ffn_calc.verifier.training_step import InputShards, step_checks

    assert isinstance(plan, TensorParallel)
    ranks, sp = plan.ranks, plan.sequence_parallel
    step_options = replace(options, dropout=options.dropout and not sp)
    pred = train(bare, step_options, ranks, sp)
    rank_cfg = replace(bare, d_ff=plan.per_rank.d_ff)
    x_shards = _split(x, ranks, 1) if sp else []

    def gather(_: np.ndarray) -> np.ndarray:
        bufs = [[s if q == r else np.empty(0, x.dtype) for q, s in enumerate(x_shards)] for r in range(ranks)]
        all_gather(bufs, [0] * ranks)
        return np.concatenate(bufs[0], axis=1)

    checks: list[Check] = []
    for r in range(ranks):
        held = InputShards(lambda _, r=r: x_shards[r], gather) if sp else None  # type: ignore[misc]
        steps = step_checks(rank_cfg, shards[r], x, rng, step_options, pred, held)
        checks.extend(replace(c, group="parallel", name=f"rank {r} step: {c.name}") for c in steps)
    if options.dropout and sp:
        with_dropout = train(bare, options, ranks, sp)
        mask_pred = next((t for t in with_dropout.saved if t.name == names.DROPOUT_MASK), None)  # None: regenerated (full recompute)
        for r, shard_out in enumerate(outputs):
            dropout = Dropout(rng.random(shard_out.shape) >= 0.1)
            dropout.apply(shard_out)  # forward, on the rank's shard of the reduced output
            dropout.apply(rng.standard_normal(shard_out.shape).astype(shard_out.dtype), conv.DROPOUT_BACKWARD)  # backward, on its gradient's shard
            if mask_pred is not None:
                checks.append(Check("parallel", f"rank {r} dropout mask bytes (on its sequence shard, .nbytes)", mask_pred.bytes,
                                    dropout.mask.nbytes, dropout.mask.nbytes == mask_pred.bytes))  # fmt: skip
            checks.append(Check("parallel", f"rank {r} dropout FLOPs (convention × elements written, forward and backward)",
                                with_dropout.totals.dropout_flops, dropout.flops, dropout.flops == with_dropout.totals.dropout_flops))  # fmt: skip
    return checks


def _token_shards(x: np.ndarray, how: str, ranks: int) -> list[np.ndarray]:
    """Each rank's tokens: BATCH / N sequences, or SEQ_LEN / N of each (as expert_parallel splits them)."""
    axis = 0 if how == "batch" else 1
    return [np.ascontiguousarray(part) for part in np.split(x, ranks, axis=axis)]


def _macs(rec: Recorder) -> int:
    return sum(m * k * n for o in rec.stages.values() for m, k, n in o.matmuls)


Sent = list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]]


def _exchange(
    rank_cfg: FFNConfig, shards: list[Params], flat_x: list[np.ndarray], indices: list[np.ndarray], recs: list[Recorder], local: int
) -> tuple[Sent, list[list[np.ndarray]], int]:
    """The dispatch all-to-all, each rank's experts and the combine all-to-all for the routing
    `indices` (one (T, k) array per rank): send[r][q] the rows rank r sends rank q (with their
    local expert and their (token, slot) pair), back[r][q] the outputs rank q sends back to r,
    and the rows all experts ran."""
    ranks, k, d = len(shards), rank_cfg.top_k, rank_cfg.d_model
    send: Sent = []
    for r in range(ranks):
        flat = indices[r].reshape(-1)  # the T·k (token, slot) pairs, token-major
        row = []
        for q in range(ranks):
            pairs = np.flatnonzero(flat // local == q)
            row.append((flat_x[r][pairs // k], flat[pairs] % local, pairs))
        send.append(row)
    back: list[list[np.ndarray]] = [[np.empty((0, d), flat_x[0].dtype)] * ranks for _ in range(ranks)]
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
    return send, back, received_rows


def balanced_routing(tokens: int, k: int, ranks: int, local: int) -> np.ndarray:
    """A routing forced to be exactly balanced: pair p = t·k + j goes to rank p mod N, expert
    (p // N) mod E/N there — k distinct experts per token (k ≤ E), and T·k/N pairs to every rank
    when N divides T·k."""
    p = np.arange(tokens * k, dtype=np.int64)
    return ((p % ranks) * local + (p // ranks) % local).reshape(tokens, k)


def expert_parallel_checks(cfg: FFNConfig, p: Params, x: np.ndarray, ranks: int, rtol: float) -> list[Check]:
    """Expert parallelism simulated: the experts split E/N per rank, the tokens N ways; each
    rank routes its tokens, builds one send buffer per rank from its routing (dispatch
    all-to-all), runs its experts on what it received, sends the outputs back (combine
    all-to-all) and combines. The bytes are read off the buffers built (`.nbytes` of the rows
    bound for another rank) and judged against the model's all_to_all_bytes fed the observed
    routing histogram; a second exchange under a routing forced to be exactly balanced judges
    the balanced prediction itself. Each rank's active experts per token are observed from the
    routing."""
    plan = expert_parallel(cfg, ranks)
    bare = replace(cfg, norm="none")
    rank_pred = plan.shard(analyze(replace(plan.per_rank, norm="none")))
    # The ranks run on the token shards actually cut from the input, never on the predicted split:
    # a wrong prediction is a failed check below, not a run of the wrong shape.
    xs = _token_shards(x, plan.token_split, ranks)
    rank_cfg = replace(bare, batch=xs[0].shape[0], seq_len=xs[0].shape[1])
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
    want_tokens = (plan.per_rank.batch, plan.per_rank.seq_len, d)
    for r in range(ranks):
        checks.append(Check("parallel", f"rank {r} tokens (the shape of its input shard)", want_tokens, xs[r].shape, xs[r].shape == want_tokens))
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
    indices = [index for _, index in routed]
    send, back, received_rows = _exchange(rank_cfg, shards, flat_x, indices, recs, local)
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
    # Bytes each rank sends, read off the buffers, against the model fed the observed histogram.
    histogram = [np.bincount(index.reshape(-1), minlength=cfg.experts).tolist() for index in indices]
    exchange = all_to_all_bytes(histogram, local, d, cfg.dtype_bytes)
    for r in range(ranks):
        sent = sum(send[r][q][0].nbytes for q in range(ranks) if q != r)
        returned = sum(back[q][r].nbytes for q in range(ranks) if q != r)
        ex = exchange[r]
        checks.append(Check("parallel", f"rank {r} dispatch bytes sent (the model's all-to-all of the observed routing histogram)",
                            ex.dispatch_bytes, sent, sent == ex.dispatch_bytes, detail=f"{ex.dispatch_rows} rows predicted"))  # fmt: skip
        checks.append(Check("parallel", f"rank {r} combine bytes sent (the model's all-to-all of the observed routing histogram)",
                            ex.combine_bytes, returned, returned == ex.combine_bytes, detail=f"{ex.combine_rows} rows predicted"))  # fmt: skip
    checks.extend(_balanced_exchange(plan, rank_cfg, shards, flat_x, local))
    checks.extend(_active_experts(rank_pred, shards, indices, local))
    observed_macs = sum(_macs(rec) for rec in recs)
    predicted = ranks * rank_pred.totals.macs
    checks.append(Check("parallel", f"Σ of {ranks} ranks' MACs = {ranks} × a rank's under balanced routing", predicted, observed_macs,
                        observed_macs == predicted, detail="each rank's own varies with the routing; the sum does not"))  # fmt: skip
    for r, rec in enumerate(recs):
        checks.append(Check("parallel", f"rank {r} MACs, against balanced routing", rank_pred.totals.macs, _macs(rec), True, "info"))
    return checks


def _balanced_exchange(plan: ExpertParallel, rank_cfg: FFNConfig, shards: list[Params], flat_x: list[np.ndarray], local: int) -> list[Check]:
    """The balanced prediction judged: the exchange run again under a routing forced to be
    exactly balanced (balanced_routing), its buffers' bytes against all_to_alls' figure, and
    its experts' MACs against a rank's predicted. Refused in one info row when N does not
    divide T·k (no routing is exactly balanced then)."""
    ranks, k, tokens = plan.expert_ranks, rank_cfg.top_k, rank_cfg.tokens
    dispatch, combine, *_ = plan.all_to_all
    if (tokens * k) % ranks or k > plan.experts_per_rank * ranks:
        return [Check("parallel", "all-to-all bytes under exactly balanced routing", dispatch.bytes_sent_per_rank, "not run", True, "info",
                      f"{ranks} ranks do not divide a rank's {tokens}·{k} routed rows: no routing is exactly balanced")]  # fmt: skip
    recs = [Recorder() for _ in range(ranks)]
    forced = [balanced_routing(tokens, k, ranks, local) for _ in range(ranks)]
    send, back, _ = _exchange(rank_cfg, shards, flat_x, forced, recs, local)
    checks = []
    for r in range(ranks):
        sent = sum(send[r][q][0].nbytes for q in range(ranks) if q != r)
        returned = sum(back[q][r].nbytes for q in range(ranks) if q != r)
        checks.append(Check("parallel", f"rank {r} dispatch bytes sent, routing forced exactly balanced (the balanced formula)",
                            dispatch.bytes_sent_per_rank, sent, sent == dispatch.bytes_sent_per_rank))  # fmt: skip
        checks.append(Check("parallel", f"rank {r} combine bytes sent, routing forced exactly balanced (the balanced formula)",
                            combine.bytes_sent_per_rank, returned, returned == combine.bytes_sent_per_rank))  # fmt: skip
    return checks


def _active_experts(rank_pred: FFNReport, shards: list[Params], indices: list[np.ndarray], local: int) -> list[Check]:
    """Each rank's active expert parameters per token: the most of its experts one token (of
    any rank) was routed to, observed from the routing, × one expert's parameters read off the
    rank's arrays. When no token of this routing reached the ceiling (the rank's expert count
    or k, both read off arrays), the prediction is held to the ceiling instead."""
    predicted = rank_pred.totals.active_expert_params
    every = np.concatenate([index.reshape(index.shape[0], -1) for index in indices])
    checks = []
    for q, shard in enumerate(shards):
        arrays = [w for n, w in shard.items() if n.startswith(names.EXPERT)]
        per_expert = sum(w[0].size for w in arrays)
        held = arrays[0].shape[0]
        most = int(np.count_nonzero(every // local == q, axis=1).max())
        ceiling = min(every.shape[1], held)
        observed = most * per_expert
        if most == ceiling:
            ok, detail = observed == predicted, f"{most} experts of rank {q} serve some token (observed from the routing)"
        else:
            observed = ceiling * per_expert
            ok, detail = observed == predicted, f"no token reached the ceiling min(k, experts held) = {ceiling}; the most was {most}"
        checks.append(Check("parallel", f"rank {q} active expert parameters per token", predicted, observed, ok, detail=detail))
    return checks
