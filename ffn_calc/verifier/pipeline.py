"""`verify --pp N`: the stack's layers run as a pipeline, microbatch by microbatch, in the
schedule's order, and what `train --pp` predicts observed from the run.

The layers are placed on stages as the model's plan says (`Pipeline.per_stage[s].layers`);
everything else comes from the run. Each stage has its own list of operations, written from
the schedule's definition (GPipe: every forward, then every backward; 1F1B: p − s − 1 warm-up
forwards, then one forward one backward; interleaved: Megatron's order of chunk-microbatches),
not from the model's formulas. The ops run in time slots of one unit each: in a slot every
stage runs its next op when what it needs has arrived (the previous chunk's activation, the
next chunk's gradient) in an earlier slot, else it idles. So:

- the stage assignment is read from which layers' weights each stage's ops multiplied;
- the bytes crossing a stage boundary are the `.nbytes` of the arrays handed from one stage's
  ops to the next (activations forward, gradients backward, with --backward);
- the microbatches a stage holds are counted: a forward op keeps the tensors `train` lists as
  saved (verify's own forward pass, its Keep hook), its backward op releases them; the most
  alive at once, and their `.nbytes`, are the observed peak;
- the bubble is the idle slots over all slots of the run (unit costs: a definition);
- the output (and with --backward every weight's gradient summed over the microbatches and the
  input's gradient) equals the stack run whole, unpipelined.

Without --backward the backward ops compute nothing: they release what their forward kept,
in the schedule's order, so the held microbatches are still observed; no gradient crosses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np

from ffn_calc.errors import ConfigError, VerifyRefused
from ffn_calc.model import structure as names
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.pipeline import Pipeline
from ffn_calc.model.training import TrainingOptions, train
from ffn_calc.verifier.backward import layer_backward
from ffn_calc.verifier.forward import Params, forward, make_params
from ffn_calc.verifier.observe import random_norm_weights
from ffn_calc.verifier.recorder import Keep, Recorder
from ffn_calc.verifier.report import Check, Definition

FORWARD, BACKWARD = "F", "B"
MAX_PIPELINE_FLOPS = 10**10  # the pipelined and the whole stack's passes together, at most this many FLOPs
RUNS = 2  # the stack runs twice: pipelined, and whole for the comparison
PIPELINE_MEMORY_SHARE = 4  # the stack's weights and its saved activations within 1/4 of the memory limit

Op = tuple[str, int, int]  # (F or B, microbatch, global chunk index: chunk c lives on stage c mod p)


def op_order(schedule: str, p: int, m: int, v: int) -> list[list[Op]]:
    """Each stage's ops in the order the schedule runs them (its definition, not the model's)."""
    stages: list[list[Op]] = []
    for s in range(p):
        ops: list[Op] = []
        if schedule == "gpipe":
            ops = [(FORWARD, i, s) for i in range(m)] + [(BACKWARD, i, s) for i in range(m)]
        elif schedule == "1f1b":  # PipeDream-flush: warm up, then one forward one backward, then drain
            warm = min(p - s - 1, m)
            ops = [(FORWARD, i, s) for i in range(warm)]
            for i in range(m - warm):
                ops += [(FORWARD, warm + i, s), (BACKWARD, i, s)]
            ops += [(BACKWARD, i, s) for i in range(m - warm, m)]
        else:  # Megatron's interleaved 1F1B (schedules.py): virtual microbatch k of the stage
            total = m * v

            def forward_op(k: int, s: int = s) -> Op:
                return (FORWARD, (k // (p * v)) * p + k % p, ((k // p) % v) * p + s)

            def backward_op(k: int, s: int = s) -> Op:
                return (BACKWARD, (k // (p * v)) * p + k % p, (v - 1 - (k // p) % v) * p + s)

            warm = min(2 * (p - s - 1) + (v - 1) * p, total)
            ops = [forward_op(k) for k in range(warm)]
            for i in range(total - warm):
                ops += [forward_op(warm + i), backward_op(i)]
            ops += [backward_op(k) for k in range(total - warm, total)]
        stages.append(ops)
    return stages


@dataclass
class Timeline:
    """What the slots of a run held: per stage, the op it ran in each slot (None: idle)."""

    slots: list[list[Op | None]] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.slots[0]) if self.slots else 0

    @property
    def idle(self) -> int:
        return sum(op is None for row in self.slots for op in row)


def run_schedule(order: list[list[Op]], chunks: int, run: Callable[[int, Op], None]) -> Timeline:
    """Run `order` in unit slots: each stage runs its next op in a slot when its inputs were
    produced in an earlier slot (a forward needs the previous chunk's forward of the microbatch,
    a backward the next chunk's backward, or the last chunk's own forward). `run(stage, op)` does
    the op's work. Raises RuntimeError on an order that can never finish."""
    done: set[Op] = set()
    nxt = [0] * len(order)
    line = Timeline([[] for _ in order])
    while any(i < len(ops) for i, ops in zip(nxt, order, strict=True)):
        ran: list[Op] = []
        for s, ops in enumerate(order):
            op = ops[nxt[s]] if nxt[s] < len(ops) else None
            if op is not None:
                kind, mb, c = op
                need = (FORWARD, mb, c - 1) if kind == FORWARD else (BACKWARD, mb, c + 1) if c + 1 < chunks else (FORWARD, mb, c)
                if kind == FORWARD and c == 0 or need in done:
                    run(s, op)
                    ran.append(op)
                    nxt[s] += 1
                else:
                    op = None
            line.slots[s].append(op)
        if not ran:
            raise RuntimeError(f"the schedule stalls: every stage waits ({[ops[i] for i, ops in zip(nxt, order, strict=False) if i < len(ops)]})")
        done.update(ran)  # produced in this slot: usable from the next
    return line


def plan(cfg: FFNConfig, options: TrainingOptions, pp: int, microbatches: int | None, schedule: str | None, chunks: int | None,
         backward: bool, limit: int, parallel: dict[str, bool]) -> Pipeline:  # fmt: skip
    """`train --pp`'s plan of the stack, after refusing in one line what the run cannot simulate
    (`parallel`: the other parallel flags given, by name); VerifyRefused when it would not fit."""
    given = [flag for flag, on in parallel.items() if on]
    if given:
        raise ConfigError(
            "--pp", f"verify runs the pipeline on whole layers, one rank per stage; drop {', '.join(given)} (train --pp predicts them together)"
        )
    if cfg.weight_packing is not None:
        raise ConfigError("--pp", "verify runs the pipeline in --dtype; drop --weight-dtype")
    kept_apart = [flag for flag, on in (("--recompute", options.recompute != "none"), ("--dropout", options.dropout),
                                        ("--no-input-grad", not options.input_grad)) if on]  # fmt: skip
    if kept_apart:
        raise ConfigError("--pp", f"verify's pipeline keeps what train saves without recompute or dropout, and every stage after the "
                          f"first needs its input's gradient; drop {', '.join(kept_apart)}")  # fmt: skip
    report = train(cfg, options, pp=pp, microbatches=microbatches, schedule=schedule, chunks=chunks)
    assert report.pipeline is not None and report.model is not None
    whole = train(cfg, options).model
    assert whole is not None
    # the stack's weights, its saved activations twice (pipelined and whole), and two float64 gradient sums
    need = whole.weight_bytes + 2 * whole.saved_activation_bytes + (2 * 8 * whole.params if backward else 0)
    flops = RUNS * (whole.step_flops if backward else whole.forward_flops)
    if need * PIPELINE_MEMORY_SHARE > limit:
        raise VerifyRefused(f"verify --pp runs all {whole.layers} layers: {need:,} bytes, more than 1/{PIPELINE_MEMORY_SHARE} of the limit "
                            f"{limit:,}; use smaller sizes or fewer --layers")  # fmt: skip
    if flops > MAX_PIPELINE_FLOPS:
        raise VerifyRefused(f"verify --pp runs all {whole.layers} layers {RUNS} times (pipelined and whole): {flops:,} FLOPs, more than the "
                            f"{MAX_PIPELINE_FLOPS:.0e} it spends on them; use smaller sizes or fewer --layers")  # fmt: skip
    return report.pipeline


@dataclass
class _Stage:
    """What one stage's ops did: the layers whose weights they multiplied, the bytes they handed
    on, and the tensors they keep for the backward (by microbatch and chunk)."""

    layers: set[int] = field(default_factory=set)
    sent: int = 0
    forward_sent: int = 0
    live: dict[tuple[int, int], list[dict[str, np.ndarray]]] = field(default_factory=dict)
    most_held: int = 0
    most_bytes: int = 0
    chunk_bytes: dict[int, int] = field(default_factory=dict)  # what one microbatch's forward of each chunk keeps


def _close(a: np.ndarray, b: np.ndarray, tol: float) -> tuple[bool, float]:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    err = float(np.max(np.abs(a64 - b64))) if a.size else 0.0
    scale = max(1.0, float(np.max(np.abs(b64)))) if b.size else 1.0
    return err <= tol * scale, err / scale


def pipeline_checks(
    cfg: FFNConfig, pred: Pipeline, options: TrainingOptions, np_dtype: Any, rtol: float, rng: np.random.Generator, backward: bool,
) -> tuple[list[Check], list[Definition]]:  # fmt: skip
    """Run the stack of `cfg` as the pipeline `pred` plans it and observe every figure of it."""
    p, m, v = pred.stages, pred.microbatches, pred.chunks
    n_chunks = p * v
    bm = cfg.batch // m
    groups = cfg.groups
    kinds = [group for group in groups for _ in range(group.layers)]  # layer i's config (a mixed stack's dense layers first)
    micro = [replace(k, batch=bm) for k in kinds]
    whole_cfg = [replace(k, batch=cfg.batch) for k in kinds]
    saved = {id(g): frozenset(t.name for t in train(replace(g, batch=bm), options).saved) for g in groups}
    params: list[Params] = []
    for k in kinds:
        w = make_params(rng, k, np_dtype)
        random_norm_weights(rng, k, w)
        params.append(w)
    x = rng.standard_normal((cfg.batch, cfg.seq_len, cfg.d_model)).astype(np_dtype)
    dout = rng.standard_normal((cfg.batch, cfg.seq_len, cfg.d_model)).astype(np_dtype) if backward else None
    # the model's plan: chunk c is the run per_stage[c mod p].layers[c div p]
    runs = [pred.per_stage[c % p].layers[c // p] for c in range(n_chunks)]
    stages = [_Stage() for _ in range(p)]
    to_next: dict[tuple[int, int], np.ndarray] = {}  # (microbatch, chunk): the activation chunk c hands to chunk c + 1
    to_prev: dict[tuple[int, int], np.ndarray] = {}  # the gradient chunk c hands to chunk c − 1
    crossings: list[tuple[int, tuple[int, ...], int]] = []  # forward: (microbatch, shape, nbytes) of each array handed on
    grad_crossings: list[tuple[int, tuple[int, ...], int]] = []
    paths: dict[int, list[int]] = {i: [] for i in range(m)}
    outputs: dict[int, np.ndarray] = {}
    dxs: dict[int, np.ndarray] = {}
    sums: list[dict[str, np.ndarray]] = [{} for _ in kinds]
    sizes: set[int] = set()

    def run(s: int, op: Op) -> None:
        kind, mb, c = op
        first, last = runs[c]
        st = stages[s]
        if kind == FORWARD:
            h = x[mb * bm : (mb + 1) * bm] if c == 0 else to_next.pop((mb, c - 1))
            sizes.add(h.shape[0])
            stores = []
            for i in range(first, last + 1):
                keep = Keep(saved[id(kinds[i])])
                h = forward(Recorder(keep=keep, einsum=False), micro[i], params[i], h)
                stores.append(keep.store)
                st.layers.add(i)
                paths[mb].append(i)
            st.live[(mb, c)] = stores
            st.chunk_bytes[c] = sum(a.nbytes for store in stores for a in store.values())
            st.most_held = max(st.most_held, len(st.live))
            st.most_bytes = max(st.most_bytes, sum(a.nbytes for ss in st.live.values() for store in ss for a in store.values()))
            if c + 1 < n_chunks:
                to_next[(mb, c)] = h
                crossings.append((mb, tuple(h.shape), h.nbytes))
                st.sent += h.nbytes
                st.forward_sent += h.nbytes
            else:
                outputs[mb] = h
            return
        stores = st.live.pop((mb, c))
        if dout is None:
            return
        g = dout[mb * bm : (mb + 1) * bm] if c + 1 == n_chunks else to_prev.pop((mb, c + 1))
        for i, store in zip(range(last, first - 1, -1), reversed(stores), strict=True):
            grads, _ = layer_backward(micro[i], params[i], store, g, Recorder(einsum=False))
            for name, grad in grads.items():
                if name != "x":
                    sums[i][name] = sums[i].get(name, 0) + grad.astype(np.float64)
            g = grads["x"]
        if c > 0:
            to_prev[(mb, c)] = g
            grad_crossings.append((mb, tuple(g.shape), g.nbytes))
            st.sent += g.nbytes
        else:
            dxs[mb] = g

    line = run_schedule(op_order(pred.schedule, p, m, v), n_chunks, run)
    checks = _plan_checks(pred, stages, params, paths, len(kinds), sizes)
    checks += _boundary_checks(pred, stages, crossings, grad_crossings, backward)
    observed = Fraction(line.idle, p * line.length)
    predicted = Fraction(pred.bubble_numerator, pred.bubble_denominator)
    checks.append(Check("pipeline", "bubble fraction (idle slots of the schedule's ops run in unit slots)", f"{predicted}", f"{observed}",
                        observed == predicted, detail=f"{line.idle} idle of {p} stages × {line.length} slots"))  # fmt: skip
    checks += _result_checks(cfg, whole_cfg, params, x, dout, outputs, dxs, sums, rtol, m)
    definitions = [
        Definition("pipeline op cost", "one slot per forward or backward op of a chunk",
                   "the bubble fraction is a property of the schedule under equal op costs; the run counts the idle slots of its op "
                   "order under these costs, not time measured"),
        Definition("pipeline stage state and peak bytes", "not run per stage",
                   "weights, gradients and optimizer states are observed one layer at a time by verify --backward; the pipeline run "
                   "observes what the schedule changes: the held activations and the bytes between stages"),
    ]  # fmt: skip
    return checks, definitions


def _compress(layers: set[int]) -> tuple[tuple[int, int], ...]:
    """Sorted layer indices as runs [first, last]."""
    out: list[tuple[int, int]] = []
    for i in sorted(layers):
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return tuple(out)


def _plan_checks(
    pred: Pipeline, stages: list[_Stage], params: list[Params], paths: dict[int, list[int]], layers: int, sizes: set[int]
) -> list[Check]:
    checks = [Check("pipeline", "microbatch sequences (the input rows each forward op of the first chunk read)", pred.microbatch_sequences,
                    sorted(sizes)[0] if len(sizes) == 1 else sorted(sizes), sizes == {pred.microbatch_sequences})]  # fmt: skip
    order = list(range(layers))
    wrong = [mb for mb, path in paths.items() if path != order]
    checks.append(Check("pipeline", "every microbatch ran through every layer once, in order", f"layers 0-{layers - 1}",
                        "yes" if not wrong else f"microbatch {wrong[0]}: {paths[wrong[0]]}", not wrong))  # fmt: skip
    for s, (st, want) in enumerate(zip(stages, pred.per_stage, strict=True)):
        mine = sorted(st.layers)
        moe = sum(any(name.startswith(names.EXPERT) for name in params[i]) for i in mine)
        # the runs of a stage in the plan's order of its chunks (sorted: the same for contiguous chunks)
        checks += [
            Check("pipeline", f"stage {s} layers (the layers its ops multiplied)", _compress(set().union(*(range(a, b + 1) for a, b in want.layers))),
                  _compress(st.layers), _compress(st.layers) == _compress(set().union(*(range(a, b + 1) for a, b in want.layers)))),
            Check("pipeline", f"stage {s} layer count", want.layer_count, len(mine), want.layer_count == len(mine)),
            Check("pipeline", f"stage {s} mixture-of-experts layers (with expert weights)", want.moe_layers, moe, want.moe_layers == moe),
            Check("pipeline", f"stage {s} dense layers", want.dense_layers, len(mine) - moe, want.dense_layers == len(mine) - moe),
            Check("pipeline", f"stage {s} parameters (its layers' array sizes)", want.params, sum(a.size for i in mine for a in params[i].values()),
                  want.params == sum(a.size for i in mine for a in params[i].values())),
            Check("pipeline", f"stage {s} held microbatches (most kept at once)", want.held_microbatches, st.most_held,
                  want.held_microbatches == st.most_held),
        ]  # fmt: skip
        if len(set(st.chunk_bytes.values())) > 1:  # the model's held × its largest chunk's: a bound when its chunks differ
            checks.append(Check("pipeline", f"stage {s} held activation bytes at most the prediction (its chunks keep "
                                f"{' and '.join(f'{b:,}' for b in st.chunk_bytes.values())} bytes)", want.saved_activation_bytes,
                                st.most_bytes, st.most_bytes <= want.saved_activation_bytes, "tolerance",
                                "predicted: held × the largest chunk's saved bytes"))  # fmt: skip
        else:
            checks.append(Check("pipeline", f"stage {s} held activation bytes (their .nbytes at the most)", want.saved_activation_bytes,
                                st.most_bytes, want.saved_activation_bytes == st.most_bytes))  # fmt: skip
    return checks


def _boundary_checks(
    pred: Pipeline, stages: list[_Stage], crossings: list[tuple[int, tuple[int, ...], int]],
    grad_crossings: list[tuple[int, tuple[int, ...], int]], backward: bool,
) -> list[Check]:  # fmt: skip
    shapes = sorted({shape for _, shape, _ in crossings})
    sizes = sorted({b for _, _, b in crossings})
    checks = [
        Check("pipeline", "activation crossing a stage boundary: shape", pred.boundary_shape, shapes[0] if len(shapes) == 1 else shapes,
              shapes == [pred.boundary_shape]),
        Check("pipeline", "activation crossing a stage boundary: bytes (each array handed on)", pred.boundary_bytes,
              sizes[0] if len(sizes) == 1 else sizes, sizes == [pred.boundary_bytes]),
    ]  # fmt: skip
    if not backward:
        for s, st in enumerate(stages):
            checks.append(Check("pipeline", f"stage {s} forward bytes sent (the backward's gradients not run: add --backward)",
                                pred.per_stage[s].sent_bytes, st.forward_sent, True, "info"))  # fmt: skip
        return checks
    first = [b for mb, _, b in crossings if mb == 0][:1] + [b for mb, _, b in grad_crossings if mb == 0][-1:]
    checks.append(Check("pipeline", "point-to-point bytes per microbatch and boundary (activation + gradient, microbatch 0's first boundary)",
                        pred.p2p_bytes_per_microbatch, sum(first), sum(first) == pred.p2p_bytes_per_microbatch))  # fmt: skip
    for s, st in enumerate(stages):
        checks.append(Check("pipeline", f"stage {s} bytes sent per step (activations and gradients handed on)", pred.per_stage[s].sent_bytes,
                            st.sent, st.sent == pred.per_stage[s].sent_bytes))  # fmt: skip
    return checks


def _result_checks(
    cfg: FFNConfig, whole_cfg: list[FFNConfig], params: list[Params], x: np.ndarray, dout: np.ndarray | None, outputs: dict[int, np.ndarray],
    dxs: dict[int, np.ndarray], sums: list[dict[str, np.ndarray]], rtol: float, m: int,
) -> list[Check]:  # fmt: skip
    """The pipelined result against the stack run whole, layer after layer, unpipelined."""
    stores = []
    h = x
    for k, w in zip(whole_cfg, params, strict=True):
        keep = Keep() if dout is not None else None
        h = forward(Recorder(keep=keep, einsum=False), k, w, h)
        stores.append(keep.store if keep is not None else {})
    out = np.concatenate([outputs[i] for i in range(m)], axis=0)
    ok, err = _close(out, h, rtol)
    checks = [Check("pipeline", f"output equals the stack run whole (within {rtol:g} of max |y|)", "equal", f"max error {err:.2e}", ok,
                    "tolerance")]  # fmt: skip
    if dout is None:
        return checks
    g = dout
    worst = 0.0
    good = True
    tol = rtol * m  # each microbatch's gradients are rounded to the weights' dtype before they are summed
    for i in range(len(params) - 1, -1, -1):
        grads, _ = layer_backward(whole_cfg[i], params[i], stores[i], g, Recorder(einsum=False))
        for name, grad in grads.items():
            if name != "x":
                ok, err = _close(sums[i][name], grad, tol)
                good, worst = good and ok, max(worst, err)
        g = grads["x"]
    dx = np.concatenate([dxs[i] for i in range(m)], axis=0)
    ok, err = _close(dx, g, tol)
    checks.append(Check("pipeline", f"every weight's gradient, summed over the microbatches, equals the whole stack's (within {tol:g})",
                        "equal", f"max error {worst:.2e}", good, "tolerance"))  # fmt: skip
    checks.append(Check("pipeline", f"input gradient equals the whole stack's (within {tol:g})", "equal", f"max error {err:.2e}", ok, "tolerance"))
    return checks
