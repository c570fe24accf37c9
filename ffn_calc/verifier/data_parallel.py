"""`verify --backward --dp N --zero S`: data parallelism with ZeRO / FSDP sharding, run rank by rank.

The whole batch is N micro-batches of BATCH sequences, one a rank (`train --dp` counts BATCH as one
rank's). The layer's weights are one flat buffer, padded with zeros to a multiple of the ranks a
shard is split over (FSDP's FlatParameter: `numel_to_pad = world_size · ⌈Ψ/N⌉ − Ψ`) and cut into
equal shards. Each rank holds what its stage keeps — ZeRO 0 everything; 1 its shard's float32
master weights and optimizer states; 2 its gradient shard too; 3 its weight shard only, the whole
weights all-gathered before the forward and again before the backward — and runs the real
forward and backward (training_step.run_pass) on its micro-batch. Its gradient is scaled by 1/N
(the loss is the mean over the whole batch; the gradient of each rank's micro-batch mean is N
times its share) and reduced in rings on real buffers (rings.py): all-reduced at ZeRO 0 (its
chunks as np.array_split cuts them: NCCL pads nothing), reduce-scattered into the shards from
ZeRO 1 (HYBRID_SHARD: within a node, then each shard all-reduced across the nodes). The optimizer
(optimizer.py) steps each rank's shard as one tensor, and ZeRO 1 and 2 all-gather the updated
weight shards. Every figure of `train`'s DataParallel is read off the rank's arrays (`.nbytes`)
and every byte sent off the ring's send buffers; the reduced gradients and the weights after the
step must equal one rank's step on the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ffn_calc.model.data_parallel import DataParallel
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.training import TrainingOptions, TrainingReport, train
from ffn_calc.verifier.forward import Params
from ffn_calc.verifier.optimizer import LR, Optimizer
from ffn_calc.verifier.report import CONVENTION_X_OBSERVED, Check
from ffn_calc.verifier.rings import all_gather, reduce_scatter, split
from ffn_calc.verifier.training_step import Pass, dropout_mask, run_pass

SHARD = "flat shard"  # the one tensor a sharded rank's optimizer steps
ADAM_LIKE = ("adam", "adamw", "adam8bit")  # a first step of LR·m̂/(√v̂ + ε) ≈ LR·sign(g)


@dataclass(frozen=True)
class Flat:
    """The layer's weights as one flat buffer, in the order of `p`, padded to `group` equal shards."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    group: int

    @staticmethod
    def of(p: Params, group: int) -> Flat:
        return Flat(tuple(p), tuple(tuple(a.shape) for a in p.values()), group)

    @property
    def elements(self) -> int:
        return sum(int(np.prod(s)) for s in self.shapes)

    def flatten(self, arrays: Params) -> np.ndarray:
        return np.concatenate([arrays[n].reshape(-1) for n in self.names])

    def padded(self, flat: np.ndarray) -> np.ndarray:
        """`flat` with zeros appended to a multiple of the group (FSDP's padding)."""
        pad = -flat.size % self.group
        return np.concatenate([flat, np.zeros(pad, flat.dtype)]) if pad else flat

    def shards(self, flat: np.ndarray) -> list[np.ndarray]:
        return [part.copy() for part in np.split(self.padded(flat), self.group)]

    def unflatten(self, flat: np.ndarray) -> Params:
        out: Params = {}
        at = 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            size = int(np.prod(shape))
            out[name] = flat[at : at + size].reshape(shape).copy()
            at += size
        return out


def _scaled(g: np.ndarray, ranks: int) -> np.ndarray:
    """g / N in the compute type, stored in g's dtype (as DDP and FSDP divide before reducing)."""
    wide: np.ndarray = g.astype(np.float64 if g.dtype == np.float64 else np.float32)
    return np.divide(wide, ranks).astype(g.dtype)


def _gather(shards: list[np.ndarray], groups: list[list[int]], sent: list[int]) -> list[np.ndarray]:
    """Every rank's whole flat buffer, all-gathered in a ring within its group from the group's shards."""
    out: list[np.ndarray] = [np.empty(0)] * len(shards)
    for ranks in groups:
        bufs = [[shards[q] if i == j else np.empty(0, shards[q].dtype) for j, q in enumerate(ranks)] for i, _ in enumerate(ranks)]
        group_sent = [0] * len(ranks)
        all_gather(bufs, group_sent)
        for i, r in enumerate(ranks):
            sent[r] += group_sent[i]
            out[r] = np.concatenate(bufs[i])
    return out


def _reduce_scatter(chunks: list[list[np.ndarray]], groups: list[list[int]], sent: list[int]) -> list[np.ndarray]:
    """Each rank's chunk (its place in its group) summed over the group, by a ring reduce-scatter."""
    out: list[np.ndarray] = [np.empty(0)] * len(chunks)
    for ranks in groups:
        bufs = [chunks[r] for r in ranks]
        group_sent = [0] * len(ranks)
        reduce_scatter(bufs, group_sent)
        for i, r in enumerate(ranks):
            sent[r] += group_sent[i]
            out[r] = bufs[i][i]
    return out


def _all_reduce(tensors: list[np.ndarray], groups: list[list[int]], sent_rs: list[int], sent_ag: list[int]) -> list[np.ndarray]:
    """Each rank's tensor summed over its group: a ring reduce-scatter then all-gather, on the
    tensor's elements cut by np.array_split (uneven when the group does not divide them)."""
    out: list[np.ndarray] = [np.empty(0)] * len(tensors)
    for ranks in groups:
        bufs = [split(tensors[r], len(ranks), None) for r in ranks]
        rs, ag = [0] * len(ranks), [0] * len(ranks)
        reduce_scatter(bufs, rs)
        all_gather(bufs, ag)
        for i, r in enumerate(ranks):
            sent_rs[r] += rs[i]
            sent_ag[r] += ag[i]
            out[r] = np.concatenate(bufs[i])
    return out


@dataclass
class RankSeen:
    """What one data-parallel rank held and sent, each figure read off its arrays or its send buffers."""

    weight_bytes: int = 0
    gradient_bytes: int = 0
    master_weight_bytes: int = 0
    optimizer_state_bytes: int = 0
    saved_activation_bytes: int = 0
    gathered_bytes: int = 0
    recomputed_bytes: int = 0
    backward_transient_bytes: int = 0
    gradient_sent_bytes: int = 0
    weight_gather_sent_bytes: int = 0
    missing: str = ""


def data_parallel_checks(
    cfg: FFNConfig,
    p: Params,
    x: np.ndarray,
    ranks: int,
    zero: str,
    node_size: int | None,
    options: TrainingOptions,
    rtol: float,
    rng: np.random.Generator,
    plant: Callable[[str, object], None] | None = None,
) -> list[Check]:
    """The sharded training step of `ranks` data-parallel ranks (module docstring), every figure of
    `train --dp ranks --zero zero`'s DataParallel observed per rank, and the result against one
    rank's step on the whole batch. `plant(where, value)` lets a test alter a buffer in flight."""
    pred = train(cfg, options, dp=ranks, zero=zero, node_size=node_size)
    one = train(cfg, options)  # one rank's step on its micro-batch: what each rank's pass keeps
    dp = pred.data_parallel
    assert dp is not None
    opts = one.options  # as train resolved them (mixed precision by default for a 16-bit dtype)
    stage, n = dp.zero, dp.shard_ranks
    nodes = ranks // n
    within = [[node * n + i for i in range(n)] for node in range(nodes)]  # a shard's group: a node, or all N
    across = [[node * n + i for node in range(nodes)] for i in range(n)]  # hybrid: the same shard on every node
    everyone = [list(range(ranks))]
    flat = Flat.of(p, n)
    psi = flat.elements
    dtype = x.dtype
    mixed = bool(opts.mixed_precision)
    seen = [RankSeen() for _ in range(ranks)]
    grad_sent, gather_sent = [0] * ranks, [0] * ranks
    checks: list[Check] = []

    # --- each rank's persistent state, allocated before the step (as in every step after the first) ---
    whole = flat.flatten(p)
    shards = flat.shards(whole)
    weights: list[Params] = [{k: v.copy() for k, v in p.items()} for _ in range(ranks)] if stage < 3 else []
    weight_shards = [shards[r % n].copy() for r in range(ranks)] if stage >= 1 else []
    opts_r = [Optimizer({SHARD: weight_shards[r]} if stage >= 1 else weights[r], opts.optimizer, mixed) for r in range(ranks)]

    # --- the micro-batches, their output gradients and dropout seeds; rank 0's is the verified input ---
    xs = [x] + [rng.standard_normal(x.shape).astype(dtype) for _ in range(ranks - 1)]
    douts = [rng.standard_normal((cfg.tokens, cfg.d_model)).astype(dtype) for _ in range(ranks)]
    seeds = [int(rng.integers(1 << 31)) for _ in range(ranks)]

    # --- ZeRO-3: the weights all-gathered before the forward, and again before the backward ---
    run_weights: list[Params] = weights
    back_weights: list[Params | None] = [None] * ranks
    if stage >= 3:
        fwd = _gather(weight_shards, within, gather_sent)
        bwd = _gather(weight_shards, within, gather_sent)
        run_weights = [flat.unflatten(f[:psi]) for f in fwd]
        back_weights = [flat.unflatten(b[:psi]) for b in bwd]
        for label, got in (("forward", fwd), ("backward", bwd)):
            same = all(np.array_equal(g[:psi], whole) for g in got)
            checks.append(Check("data parallel", f"{label} all-gather of the {n} weight shards = the layer's weights, on every rank",
                                "equal", "equal" if same else "different", same))  # fmt: skip

    # --- each rank's forward and backward on its micro-batch ---
    passes: list[Pass] = []
    for r in range(ranks):
        run = run_pass(cfg, run_weights[r], xs[r], opts, one, lambda r=r: douts[r], seeds[r], p_backward=back_weights[r])  # type: ignore[misc]
        passes.append(run)
        s = seen[r]
        s.missing = run.missing
        s.saved_activation_bytes = sum(a.nbytes for a in run.saved.values())
        s.recomputed_bytes, s.backward_transient_bytes = run.recomputed, run.transient
        held = back_weights[r]
        if held is not None:  # ZeRO-3's weights, gathered for the backward
            s.gathered_bytes += sum(a.nbytes for a in held.values())
    if any(s.missing for s in seen):
        missing = next(s.missing for s in seen if s.missing)
        return [*checks, Check("data parallel", "every rank's backward ran from its saved tensors", "yes", f"{missing} was not saved", False)]
    local = [_scaled(flat.flatten(run.grads), ranks) for run in passes]
    if plant is not None:
        plant("local gradients", local)
    for r, run in enumerate(passes):
        full_grads = sum(run.grads[k].nbytes for k in p)
        if stage >= 2:
            seen[r].gathered_bytes += full_grads  # the whole gradient, alive until its reduce-scatter
        else:
            seen[r].gradient_bytes = full_grads
    del passes

    # --- the gradients reduced: all-reduce (ZeRO 0), else reduce-scatter into shards (+ hybrid's all-reduce across nodes) ---
    if stage == 0:
        reduced = _all_reduce(local, everyone, grad_sent, gather_sent)
        grad_shards = reduced
    else:
        chunked = [[c.copy() for c in np.split(flat.padded(g), n)] for g in local]
        if plant is not None:
            plant("gradient chunks", chunked)
        grad_shards = _reduce_scatter(chunked, within, grad_sent)
        if nodes > 1:
            grad_shards = _all_reduce(grad_shards, across, grad_sent, grad_sent)
        if stage >= 2:
            for r in range(ranks):
                seen[r].gradient_bytes = grad_shards[r].nbytes

    # --- the reference: one rank's step on the whole batch (N·BATCH sequences), the loss its mean ---
    big = replace(cfg, batch=ranks * cfg.batch)
    ref_p = {k: v.copy() for k, v in p.items()}
    ref_opt = Optimizer(ref_p, opts.optimizer, mixed)
    # the whole batch's mean loss: every output gradient / N (computed here apart from the ranks' _scaled, which a test plants bugs in)
    dout_whole = (np.concatenate(douts).astype(np.float64) / ranks).astype(dtype)
    masks = np.concatenate([dropout_mask(sd, cfg.tokens, cfg.d_model) for sd in seeds])  # each rank's rows, in batch order

    def whole_mask(_: int) -> np.ndarray:
        return masks

    ref = run_pass(big, ref_p, np.concatenate(xs, axis=0), opts, train(big, opts), lambda: dout_whole, seeds[0], mask=whole_mask)
    ref_grad = flat.flatten(ref.grads)
    ref_shards = flat.shards(ref_grad)
    checks.extend(_gradient_rows(grad_shards, ref_grad, ref_shards, stage, n, rtol))
    if any(g.shape != (ref_grad if stage == 0 else ref_shards[r % n]).shape for r, g in enumerate(grad_shards)):
        for r in range(ranks):  # no optimizer steps a shard of the wrong size: the bytes sent so far, and stop
            seen[r].gradient_sent_bytes = grad_sent[r]
        return checks + _figure_rows(dp, seen, stage, psi, n, nodes, ranks, cfg.dtype_bytes, ("gradient_sent_bytes",))

    # --- the optimizer steps each rank's state; ZeRO 1 and 2 all-gather the updated weight shards ---
    for r in range(ranks):
        if stage == 0:
            opts_r[r].step(flat.unflatten(grad_shards[r][:psi]))
        else:
            opts_r[r].step({SHARD: grad_shards[r]})
        seen[r].master_weight_bytes, seen[r].optimizer_state_bytes = opts_r[r].master_bytes, opts_r[r].state_bytes
    moving = [int(np.count_nonzero(g)) for g in grad_shards]
    stepped = [sum(o.stepped.values()) for o in opts_r]
    checks.append(Check("data parallel", f"{opts.optimizer} update on every rank: elements stepped = non-zero elements of its gradient (shard)",
                        ", ".join(f"{m:,}" for m in moving), ", ".join(f"{s:,}" for s in stepped), moving == stepped))  # fmt: skip
    if plant is not None and weight_shards:
        plant("weight shards", weight_shards)
    if stage in (1, 2):
        updated = _gather(weight_shards, within, gather_sent)
        weights = [flat.unflatten(u[:psi]) for u in updated]
    for r in range(ranks):
        seen[r].weight_bytes = weight_shards[r].nbytes if stage >= 3 else sum(a.nbytes for a in weights[r].values())
        seen[r].gradient_sent_bytes, seen[r].weight_gather_sent_bytes = grad_sent[r], gather_sent[r]
    ref_opt.step(ref.grads)
    if stage >= 3:  # gathered for the check only (the next step's forward would): not counted as sent
        weights = [flat.unflatten(w[:psi]) for w in _gather(weight_shards, within, [0] * ranks)]
    checks.append(_weights_row([flat.flatten(w) for w in weights], flat.flatten(ref_p), ref_grad, opts.optimizer, rtol))

    checks.extend(_figure_rows(dp, seen, stage, psi, n, nodes, ranks, cfg.dtype_bytes))
    checks.extend(_stack_rows(pred, dp, seen[0]))
    return checks


def _gradient_rows(grad_shards: list[np.ndarray], ref_grad: np.ndarray, ref_shards: list[np.ndarray], stage: int, n: int,
                   rtol: float) -> list[Check]:  # fmt: skip
    """Each rank's reduced gradient (whole at ZeRO 0, its shard from 1) against the whole batch's."""
    scale = max(1.0, float(np.max(np.abs(ref_grad.astype(np.float64))))) if ref_grad.size else 1.0
    worst, ok = 0.0, True
    for r, got in enumerate(grad_shards):
        want = ref_grad if stage == 0 else ref_shards[r % n]
        if got.shape != want.shape:
            return [Check("data parallel", f"rank {r} reduced gradient shape", want.shape, got.shape, False)]
        diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if got.size else 0.0
        worst, ok = max(worst, diff), ok and diff <= rtol * scale
    what = "the all-reduced gradient" if stage == 0 else "each rank's reduced gradient shard"
    return [Check("data parallel", f"{what} = the whole batch's gradient (its shard), every rank (1/N scaled; within {rtol:g}·max(1, |g|))",
                  "equal", f"max |Δ| {worst:.2e}", ok, "tolerance")]  # fmt: skip


def _weights_row(after: list[np.ndarray], ref_w: np.ndarray, ref_grad: np.ndarray, optimizer: str, rtol: float) -> Check:
    """The weights after the step, on every rank, against one rank's step on the whole batch. Adam's
    first step is about LR·sign(g): an element whose gradient is within the gradient's tolerance of
    0 may step either way, so there it may differ by up to 2·LR."""
    ref64 = ref_w.astype(np.float64)
    tol = rtol * max(1.0, float(np.max(np.abs(ref64))))
    g64 = np.abs(ref_grad.astype(np.float64))
    near_zero = g64 <= rtol * max(1.0, float(np.max(g64)))
    worst, ok, flips = 0.0, True, 0
    for got in after:
        if got.shape != ref_w.shape:
            return Check("data parallel", "weights after the step, gathered", ref_w.shape, got.shape, False)
        diff = np.abs(got.astype(np.float64) - ref64)
        off = diff > tol
        if optimizer in ADAM_LIKE:
            flips = max(flips, int(np.count_nonzero(off & near_zero)))
            off &= ~(near_zero & (diff <= 2 * LR * 1.01 + tol))
        worst, ok = max(worst, float(diff.max()) if diff.size else 0.0), ok and not off.any()
    note = f"; {flips} element(s) with |g| within tolerance of 0 stepped the other way (≤ 2·LR)" if flips else ""
    return Check("data parallel", f"weights after the step, gathered on every rank = one step on the whole batch (within {rtol:g}·max(1, |w|))",
                 "equal", f"max |Δ| {worst:.2e}{note}", ok, "tolerance")  # fmt: skip


# Each per-rank figure of DataParallel and how the run observes it.
FIGURES = {
    "weight_bytes": ".nbytes of the rank's weights (its flat shard at ZeRO-3)",
    "gradient_bytes": ".nbytes of the rank's gradients (its reduced shard from ZeRO-2)",
    "master_weight_bytes": ".nbytes of its optimizer's float32 master weights",
    "optimizer_state_bytes": ".nbytes of its optimizer's states",
    "saved_activation_bytes": ".nbytes of the tensors its forward kept",
    "gathered_bytes": ".nbytes of the gathered weights its layer ran on + its whole gradient before the reduce-scatter",
    "gradient_sent_bytes": "ring: .nbytes of the gradient chunks it sent",
    "weight_gather_sent_bytes": "ring: .nbytes of the chunks it sent in all-gathers",
}


def _figure_rows(
    dp: DataParallel, seen: list[RankSeen], stage: int, psi: int, n: int, nodes: int, ranks: int, b: int, only: tuple[str, ...] = ()
) -> list[Check]:
    """Every figure of the prediction (or those `only` names) against each rank's observed one; the bytes sent of an
    uneven all-reduce (chunks cut by np.array_split) as their mean over the ranks, which the
    prediction's ⌈·/N⌉ chunks may exceed by less than one element per uneven ring step."""
    uneven = {"gradient_sent_bytes": 0, "weight_gather_sent_bytes": 0}
    if stage == 0 and psi % ranks:
        uneven = {"gradient_sent_bytes": ranks - 1, "weight_gather_sent_bytes": ranks - 1}
    elif nodes > 1 and -(-psi // n) % nodes:
        uneven["gradient_sent_bytes"] = 2 * (nodes - 1)
    checks: list[Check] = []
    for figure, how in FIGURES.items():
        if only and figure not in only:
            continue
        want = getattr(dp, figure)
        values = [getattr(s, figure) for s in seen]
        if uneven.get(figure):
            checks.append(_mean_row(figure, want, values, uneven[figure] * b, how))
            continue
        checks.extend(Check("data parallel", f"rank {r} {figure} ({how})", want, v, v == want) for r, v in enumerate(values))
    if only:
        return checks
    sent = [s.gradient_sent_bytes + s.weight_gather_sent_bytes for s in seen]
    slack = (uneven["gradient_sent_bytes"] + uneven["weight_gather_sent_bytes"]) * b
    if slack:
        checks.append(_mean_row("sent_bytes", dp.sent_bytes, sent, slack, "gradients + all-gathers, as sent"))
    else:
        checks.extend(Check("data parallel", f"rank {r} sent_bytes (gradients + all-gathers, as sent)", dp.sent_bytes, v, v == dp.sent_bytes)
                      for r, v in enumerate(sent))  # fmt: skip
    parts = ("weight_bytes", "gradient_bytes", "master_weight_bytes", "optimizer_state_bytes", "saved_activation_bytes", "gathered_bytes",
             "recomputed_bytes", "backward_transient_bytes")  # fmt: skip
    for r, s in enumerate(seen):
        total = sum(getattr(s, part) for part in parts)
        checks.append(Check("data parallel", f"rank {r} peak_bytes as defined: state + saved + gathered + recomputed + transient, each observed",
                            dp.peak_bytes, total, total == dp.peak_bytes, how=CONVENTION_X_OBSERVED,
                            detail="the model's peak is this sum (a definition); each part is observed"))  # fmt: skip
    return checks


def _mean_row(figure: str, want: int, values: list[int], slack: int, how: str) -> Check:
    mean = sum(values) / len(values)
    ok = 0 <= want - mean < slack and max(values) <= want
    return Check("data parallel", f"{figure} per rank, mean of {len(values)} (uneven ring chunks; the prediction rounds each up) ({how})",
                 want, f"{mean:g}", ok, "tolerance", f"each rank: {', '.join(f'{v:,}' for v in values)}; allowed below by < {slack:,}")  # fmt: skip


def _stack_rows(pred: TrainingReport, dp: DataParallel, s: RankSeen) -> list[Check]:
    """The whole stack on a rank (--layers L), from rank 0's observed layer: L × its state, L × its
    saved activations, and one layer's gathered, recomputed and transient bytes at a time."""
    layers = pred.forward.config.layers
    if dp.model_state_bytes is None or dp.model_peak_bytes is None or layers == 1 or len(pred.forward.config.groups) > 1:
        return []
    state = layers * (s.weight_bytes + s.gradient_bytes + s.master_weight_bytes + s.optimizer_state_bytes)
    peak = state + layers * s.saved_activation_bytes + s.gathered_bytes + s.recomputed_bytes + s.backward_transient_bytes
    return [
        Check("data parallel", f"model_state_bytes = {layers} layers × rank 0's observed state", dp.model_state_bytes, state,
              state == dp.model_state_bytes, detail="each layer's buffers sharded on their own"),
        Check("data parallel", f"model_peak_bytes = {layers} × (state + saved) + one layer's gathered, recomputed and transient, observed",
              dp.model_peak_bytes, peak, peak == dp.model_peak_bytes, how=CONVENTION_X_OBSERVED),
    ]  # fmt: skip
