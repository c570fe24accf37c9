"""The verifier: run the layer in NumPy with random weights and observe every predicted number.

Nothing here recomputes a formula from the model. Shapes are read off the arrays, parameters
off the weight arrays' sizes, bytes off `.nbytes`, matmul FLOPs off the operand shapes of
the products actually computed (and, independently, numpy.einsum_path's FLOP count), and
the peak memory off tracemalloc, to which NumPy reports its allocations. Only the
per-element cost of elementwise work is taken from the model's conventions, because it is a
convention; the element counts it multiplies are observed.

The steps: plan the memory (memory.py), observe the forward pass (observe.py), compare it
with the prediction (compare.py), then the properties of the layer (properties.py) and, when
asked, the backward pass (training_step.py), tensor or expert parallelism (parallel.py) and
sharded data parallelism (data_parallel.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from ffn_calc.errors import ConfigError, VerifyRefused
from ffn_calc.model.forward import FFNReport, analyze, chunked_peak
from ffn_calc.model.layer import FFNConfig
from ffn_calc.verifier import arrays
from ffn_calc.verifier.compare import (
    ForwardSeen,
    StackSeen,
    compare_forward,
    compare_model,
    definitions,
    excess_check,
    observations,
    peak_check,
)
from ffn_calc.verifier.memory import check_backward_fits, peak_allowance, plan_chunks
from ffn_calc.verifier.observe import observe_forward, observe_stack, stack_from_pass, stack_refusal
from ffn_calc.verifier.packed import VERIFIED, prepare, stored_checks
from ffn_calc.verifier.properties import RTOL, structural_checks
from ffn_calc.verifier.report import CONVENTION_X_OBSERVED, Check, VerifyReport

# Every dtype the verifier stores tensors in (arrays.NUMPY_DTYPES): bfloat16 and float8 come from
# ml_dtypes, imported only when one of them is asked for; their products and elementwise work
# run in float32 and are stored in the dtype (arrays.py).
NUMPY_DTYPES = arrays.NUMPY_DTYPES
DTYPE_NOTES = {
    "int8": "int8 storage of activations needs quantization scales (per tensor or per channel) that the model does not define, "
    "and an int8 product accumulates in int32 then is rescaled: computed in float32, so the byte checks use 4 bytes per element "
    "(int8 figures are a quarter)",
}


def verify(
    cfg: FFNConfig,
    seed: int = 0,
    max_memory_bytes: int | None = None,
    progress: Callable[[int, int, str], Any] | None = None,
    backward: bool = False,
    tp: int = 1,
    input_grad: bool = True,
    ep: int = 1,
    sequence_parallel: bool = False,
    training: Any = None,
    dp: tuple[int, str, int | None] | None = None,
    pp: int = 1,
    microbatches: int | None = None,
    schedule: str | None = None,
    chunks: int | None = None,
) -> VerifyReport:
    """Run the layer in NumPy and compare everything observed with the prediction.

    When the whole pass would not fit under `max_memory_bytes` (default: a share of the
    memory available), it runs in chunks of tokens and the peak prediction is the chunked
    one. Raises VerifyRefused, before allocating anything, when even that would not fit.
    `progress(done_tokens, total_tokens, "tokens")` is called as chunks finish, then
    `progress(0, 0, step)` as each later step starts.

    A mixed stack (dense layers beside the MoE ones) runs one layer of each group, each checked
    as a layer of its own, and the model totals are checked as the arithmetic of the observed
    layers: Σ layers × observed per-layer figures. `dp` (ranks, ZeRO stage, node size) runs the
    sharded training step rank by rank (data_parallel.py).

    With `pp` > 1 (or a pipeline option), the whole stack also runs as `train --pp` plans it,
    microbatch by microbatch in the schedule's order (pipeline.py), planned (and refused) first."""
    piped = pp > 1 or microbatches is not None or schedule is not None or chunks is not None
    if piped:
        from ffn_calc.model.training import TrainingOptions
        from ffn_calc.verifier.memory import memory_limit
        from ffn_calc.verifier.pipeline import plan

        options = replace(training or TrainingOptions(), input_grad=input_grad)
        computed = replace(cfg, dtype=cfg.dtype if cfg.dtype in NUMPY_DTYPES else "float32")
        others = {"--tp": tp > 1, "--ep": ep > 1, "--sequence-parallel": sequence_parallel, "--dp": dp is not None}
        planned = plan(computed, options, pp, microbatches, schedule, chunks, backward, memory_limit(max_memory_bytes)[0], others)
    if cfg.dense_layers:
        report = _verify_groups(cfg, seed, max_memory_bytes, progress, backward, tp, input_grad, ep, sequence_parallel, training, dp)
    else:
        report = _verify_one(cfg, seed, max_memory_bytes, progress, backward, tp, input_grad, ep, sequence_parallel, training, dp)[0]
        if backward and cfg.layers > 1:  # `train`'s stack totals and peak from the one layer's observed step, as a mixed stack's
            pred = report.prediction
            extra = group_training_checks(pred.config, pred, training, input_grad, {pred.groups[0].name: report})
            report = replace(report, checks=report.checks + tuple(extra))
    if not piped:
        return report
    from ffn_calc.verifier.pipeline import pipeline_checks

    if progress is not None:
        progress(0, 0, f"{planned.stages} pipeline stages, {planned.microbatches} microbatches")
    started = time.perf_counter()
    rng = np.random.default_rng([seed, 2])
    checks, defs = pipeline_checks(computed, planned, options, NUMPY_DTYPES[computed.dtype], RTOL[computed.dtype], rng, backward)
    seconds = report.seconds + time.perf_counter() - started
    return replace(report, checks=report.checks + tuple(checks), definitions=report.definitions + tuple(defs), seconds=seconds)


def _verify_one(
    cfg: FFNConfig,
    seed: int,
    max_memory_bytes: int | None,
    progress: Callable[[int, int, str], Any] | None,
    backward: bool,
    tp: int,
    input_grad: bool,
    ep: int,
    sequence_parallel: bool,
    training: Any,
    dp: tuple[int, str, int | None] | None = None,
) -> tuple[VerifyReport, StackSeen]:
    """verify(), and what its main pass observed of one layer (for a mixed stack's sums)."""
    started = time.perf_counter()
    computed, run_cfg, pred, chunk, limit = _plan(cfg, max_memory_bytes, backward, tp, ep, sequence_parallel, dp, training)
    # What each stage looks like in the pass as run: the whole layer, or its first chunk.
    shape_pred = analyze(replace(run_cfg, batch=1, seq_len=chunk)) if chunk else pred
    peak_pred = chunked_peak(run_cfg, chunk) if chunk else pred.totals.peak_bytes
    np_dtype = NUMPY_DTYPES[computed]
    rng = np.random.default_rng(seed)
    done = 0

    def advance(tokens: int) -> None:
        nonlocal done
        done += tokens
        if progress is not None:
            progress(done, cfg.tokens, "tokens")

    def step(what: str) -> None:
        if progress is not None:
            progress(0, 0, what)

    products = [s.matmul for s in shape_pred.stages if s.matmul]
    prepare(cfg.weight_packing)
    step("drawing the random weights and input")  # the bar names it, instead of sitting at 0 tokens
    seen, params, x, sample = observe_forward(run_cfg, rng, np_dtype, chunk, advance, products)
    checks: list[Check] = compare_forward(pred, shape_pred, peak_pred, seen, peak_allowance(pred), chunk, limit)
    checks.extend(stored_checks(pred, params))
    step(f"checks on {sample.positions.size} sampled tokens")
    checks.extend(structural_checks(run_cfg, params, sample, rng, RTOL[computed]))
    if pred.model.layers > 1:
        step(f"the model's {pred.model.layers} layers")
    checks.extend(_model_checks(pred, seen, seed, np_dtype, chunk, limit))
    if backward:
        from ffn_calc.verifier.training_step import backward_checks

        step("the training step")

        checks.extend(backward_checks(run_cfg, params, x, rng, input_grad, training))  # training: TrainingOptions (train's)
    if tp > 1:
        from ffn_calc.verifier.parallel import tensor_parallel_checks

        step(f"{tp} tensor-parallel ranks")

        checks.extend(tensor_parallel_checks(run_cfg, params, x, tp, RTOL[computed], sequence_parallel, backward, training, rng))
    if ep > 1:
        from ffn_calc.verifier.parallel import expert_parallel_checks

        step(f"{ep} expert-parallel ranks")

        checks.extend(expert_parallel_checks(run_cfg, params, x, ep, RTOL[computed]))
    if dp is not None:
        from ffn_calc.model.training import TrainingOptions
        from ffn_calc.verifier.data_parallel import data_parallel_checks

        step(f"{dp[0]} data-parallel ranks")

        options = replace(training or TrainingOptions(), input_grad=input_grad)
        checks.extend(data_parallel_checks(run_cfg, params, x, *dp, options, RTOL[computed], rng))
    checks.extend(observations(pred, seen))
    seconds = time.perf_counter() - started  # the whole verification: weights, passes, every check
    rate = seen.flops / seconds / 1e9 if seconds > 0 else float("inf")
    chunks = -(-cfg.tokens // chunk) if chunk else 1
    report = VerifyReport(cfg, computed, DTYPE_NOTES.get(cfg.dtype, ""), pred, tuple(checks), seconds, rate, seed, chunk, chunks, limit,
                          seen.seconds, tuple(definitions(pred, seen, backward)))  # fmt: skip
    return report, stack_from_pass(pred, seen, bool(chunk))


def _plan(
    cfg: FFNConfig,
    max_memory_bytes: int | None,
    backward: bool,
    tp: int,
    ep: int,
    sequence_parallel: bool,
    dp: tuple[int, str, int | None] | None = None,
    training: Any = None,
) -> tuple[str, FFNConfig, FFNReport, int, int]:
    """Everything decided before anything is allocated: the dtype computed in, the prediction,
    the chunk of tokens (0: the whole pass) and the memory limit; raises VerifyRefused or
    ConfigError for a run that would not fit or is not simulated (a mixed stack plans every
    group with it before any group runs)."""
    packing = cfg.weight_packing
    if packing is not None and packing.format not in VERIFIED:
        raise VerifyRefused(
            f"verify stores --weight-dtype in a checkpoint format ({', '.join(VERIFIED)}), not {cfg.weight_dtype} apart from --dtype: "
            "a plain dtype's weights are not built apart, so their bytes are not observed; give the same --dtype, or drop --weight-dtype"
        )
    if packing is not None and (backward or tp > 1 or ep > 1):
        raise VerifyRefused("verify runs packed weights (--weight-dtype) in the forward pass only; drop --backward, --tp and --ep with it")
    if cfg.router_bias or cfg.activation == "swiglu_clamped":
        raise VerifyRefused(
            "verify does not run a router bias or gpt-oss's clamped SwiGLU (its up's clamp and + 1) yet; "
            "verify the same shapes with -a swiglu and no router bias"
        )
    computed = cfg.dtype if cfg.dtype in NUMPY_DTYPES else "float32"
    run_cfg = replace(cfg, dtype=computed)
    pred = analyze(run_cfg)
    chunk, limit = plan_chunks(pred, max_memory_bytes)
    if backward:
        check_backward_fits(pred, limit)
    if sequence_parallel and tp < 2:
        raise ConfigError("--sequence-parallel", "applies to tensor parallelism; add --tp N (N > 1)")
    if tp > 1:
        from ffn_calc.model.parallel import tensor_parallel

        tensor_parallel(run_cfg, tp, sequence_parallel)  # the same refusals as `train --tp`, before anything runs
        if chunk:
            raise VerifyRefused("verify --tp runs the whole layer on every simulated rank; it does not fit here, use smaller sizes")
    if ep > 1:
        from ffn_calc.model.expert_parallel import expert_parallel

        if tp > 1:
            raise ConfigError(
                "--ep", "verify simulates --tp and --ep one at a time (docs/verify.md says why); verify each alone, train --ep N --tp M predicts both"
            )
        expert_parallel(run_cfg, ep)  # the same refusals as `train --ep`, before anything runs
        if chunk:
            raise VerifyRefused("verify --ep runs every simulated rank's share in memory; it does not fit here, use smaller sizes")
    if dp is not None:
        _plan_dp(run_cfg, pred, dp, backward, tp, ep, training, chunk, limit)
    return computed, run_cfg, pred, chunk, limit


def _plan_dp(
    run_cfg: FFNConfig, pred: FFNReport, dp: tuple[int, str, int | None], backward: bool, tp: int, ep: int, training: Any, chunk: int, limit: int
) -> None:
    """Refuse, before anything runs, a sharded step verify does not simulate or that does not fit."""
    from ffn_calc.model.training import TrainingOptions, train

    ranks, zero, node_size = dp
    if not backward:
        raise ConfigError("--dp", "verify simulates data parallelism as a training step; add --backward")
    if tp > 1 or ep > 1:
        flag = "--tp" if tp > 1 else "--ep"
        raise ConfigError(flag, f"verify simulates --dp alone (docs/verify.md says why); drop {flag} (train --dp N {flag} M predicts both)")
    train(run_cfg, training or TrainingOptions(), dp=ranks, zero=zero, node_size=node_size)  # train's refusals, before anything runs
    # Every rank's weights or shards, state and step, and a step on the whole batch of N micro-batches
    need = (ranks + 2) * (4 * pred.totals.weight_bytes + 8 * pred.totals.peak_bytes)
    if chunk or need > limit:
        raise VerifyRefused(f"verify --dp {ranks} runs {ranks} ranks' steps and one on the whole batch at once: too big here, use smaller sizes")


def _model_checks(pred: FFNReport, seen: ForwardSeen, seed: int, np_dtype: Any, chunk: int, limit: int) -> list[Check]:
    """The model totals (`--layers L`): the main pass for one layer, else the L layers run one
    after the other with their own weights when they fit (observe.stack_refusal), else one row
    saying why not."""
    if pred.model.layers == 1:
        stack: StackSeen | str = stack_from_pass(pred, seen, bool(chunk))
    else:
        stack = stack_refusal(pred, chunk, limit) or observe_stack(pred, np.random.default_rng([seed, 1]), np_dtype)
    return compare_model(pred, stack, peak_allowance(pred), stack_from_pass(pred, seen))


def _verify_groups(
    cfg: FFNConfig,
    seed: int,
    max_memory_bytes: int | None,
    progress: Callable[[int, int, str], Any] | None,
    backward: bool,
    tp: int,
    input_grad: bool,
    ep: int,
    sequence_parallel: bool = False,
    training: Any = None,
    dp: tuple[int, str, int | None] | None = None,
) -> VerifyReport:
    """One layer of each group of a mixed stack, the checks of each prefixed by its group, and
    the model's figures checked against the observed layers (group_model_checks). Refused,
    naming the group and its size, when a group's layer does not fit."""
    started = time.perf_counter()
    pred = analyze(cfg)
    # expert parallelism leaves a dense layer whole: the MoE group's run covers --ep
    runs = [(g, g.config if g.name == "dense" else replace(cfg, dense_layers=0, dense_d_ff=0)) for g in pred.groups if g.name != "dense" or ep == 1]
    for group, one in runs:  # every group planned before any allocates: a refusal comes first, at once
        try:
            _plan(one, max_memory_bytes, backward, tp, ep, sequence_parallel, dp, training)
        except VerifyRefused as e:
            raise VerifyRefused(f"the {group.name} group's layer ({group.totals.params:,} parameters): {e}") from None
    reports: list[tuple[str, VerifyReport, StackSeen]] = []
    for group, one in runs:
        r, seen = _verify_one(one, seed, max_memory_bytes, progress, backward, tp, input_grad, ep, sequence_parallel, training, dp)
        reports.append((group.name, r, seen))
    checks: list[Check] = [replace(c, name=f"{name} layer: {c.name}") for name, r, _ in reports for c in r.checks]
    checks.extend(group_model_checks(pred, {name: seen for name, _, seen in reports}))
    if tp > 1:
        checks.extend(group_rank_checks(cfg, tp, sequence_parallel, {name: r for name, r, _ in reports}))
    if backward and tp == 1 and ep == 1:
        checks.extend(group_training_checks(cfg, pred, training, input_grad, {name: r for name, r, _ in reports}))
    if backward and dp is not None:
        checks.extend(group_dp_checks(cfg, pred, training, input_grad, dp, {name: r for name, r, _ in reports}))
    main = reports[-1][1]
    seconds = time.perf_counter() - started
    kept = {(d.name, repr(d.value)): d for _, r, _ in reports for d in r.definitions}  # each group's, once
    return replace(main, config=cfg, prediction=pred, checks=tuple(checks), seconds=seconds, definitions=tuple(kept.values()))


def group_model_checks(pred: FFNReport, seen: dict[str, StackSeen]) -> list[Check]:
    """A mixed stack's model figures against its groups' observed layers: each sum as
    Σ layers × the group's observed figure, and the peak as every layer's observed weight
    bytes plus the largest observed one-layer peak above its own weights (its workspace set
    aside). Groups not run (the dense group under --ep) leave one info row."""
    if len(seen) != len(pred.groups):
        missing = ", ".join(g.name for g in pred.groups if g.name not in seen)
        return [Check("totals", "model totals of the mixed stack", pred.model.params, "not run", True, "info", f"the {missing} group not run")]
    groups = [(g.config.layers, seen[g.name], g.name) for g in pred.groups]
    model = pred.model
    checks = []
    for name, predicted, field in (
        ("parameters", model.params, "params"),
        ("active parameters per token", model.active_params, "active_params"),
        ("weight bytes", model.weight_bytes, "weight_bytes"),
        ("MACs", model.macs, "macs"),
        ("FLOPs", model.flops, "flops"),
    ):
        values = [getattr(s, field) for _, s, _ in groups]
        if None in values:
            continue
        terms = " + ".join(f"{n}·{v}" for (n, _, _), v in zip(groups, values, strict=True))
        total = sum(n * v for (n, _, _), v in zip(groups, values, strict=True))
        excess = sum(n * s.weight_excess for n, s, _ in groups) if field == "weight_bytes" else 0
        if excess:  # nf4_dq's nested_offset digits beyond the model's count, observed per layer
            checks.append(excess_check(f"model {name} = {terms}", predicted, total, excess, "totals"))
            continue
        checks.append(Check("totals", f"model {name} = {terms}", predicted, total, predicted == total,
                            detail="Σ layers × each group's observed layer"))  # fmt: skip
    peaks = [(s.peak_bytes - s.weight_bytes - s.workspace_bytes, g) for _, s, g in groups if s.peak_bytes is not None]
    if len(peaks) == len(groups):
        weights = sum(n * s.weight_bytes for n, s, _ in groups)
        top, which = max(peaks)
        routing = max(s.routing_bytes for _, s, _ in groups)
        where = f"Σ layers × observed weight bytes {weights:,} + the {which} layer's observed peak above its weights {top:,}"
        checks.append(peak_check("model peak bytes", model.peak_bytes, weights + top, 0, routing, peak_allowance(pred), where))
    else:
        checks.append(Check("totals", "model peak bytes", model.peak_bytes, "not run", True, "info", "a group's layer ran in chunks"))
    return checks


def _observed(report: VerifyReport, group: str, start: str) -> int | None:
    """The observed figure of `report`'s row in `group` whose name starts with `start` (None: no such row, or not a count)."""
    row = next((c for c in report.checks if c.group == group and c.name.startswith(start)), None)
    return row.observed if row is not None and isinstance(row.observed, int) else None


def group_training_checks(cfg: FFNConfig, pred: FFNReport, training: Any, input_grad: bool, reports: dict[str, VerifyReport]) -> list[Check]:
    """A stack's training step (`train`'s model totals; a mixed stack or L like layers) against Σ layers × each group's
    observed one-layer step (its training rows' observed figures), and its peak as the summed
    persistent and saved bytes plus the largest observed one-layer recomputed + transient."""
    from ffn_calc.model.training import SUMMED, TrainingOptions, train
    from ffn_calc.verifier.training_step import TOTALS_CHECKS

    model = train(cfg, replace(training or TrainingOptions(), input_grad=input_grad)).model
    if model is None or len(reports) != len(pred.groups):
        return []
    layers = {g.name: g.config.layers for g in pred.groups}

    def seen(report: VerifyReport, figure: str) -> int | None:
        return _observed(report, "training", f"{TOTALS_CHECKS.get(figure, figure)} (")

    checks = []
    observed: dict[str, int] = {}
    for figure in SUMMED:
        values = {g: seen(r, figure) for g, r in reports.items()}
        if any(v is None for v in values.values()):
            continue
        total = sum(layers[g] * v for g, v in values.items() if v is not None)
        observed[figure] = total
        terms = " + ".join(f"{layers[g]}·{v}" for g, v in values.items())
        want = getattr(model, figure)
        checks.append(Check("training", f"model {figure} = {terms}", want, total, want == total, detail="Σ layers × each group's observed step"))
    one = [(seen(r, "recomputed_bytes"), seen(r, "backward_transient_bytes")) for r in reports.values()]
    parts = ("weight_bytes", "gradient_bytes", "optimizer_state_bytes", "master_weight_bytes", "saved_activation_bytes")
    if all(a is not None and b is not None for a, b in one) and all(p in observed for p in parts):
        busiest = max((a or 0) + (b or 0) for a, b in one)
        total = sum(observed[p] for p in parts) + busiest
        checks.append(Check("training", "model peak_bytes = Σ persistent + saved + the largest one-layer recomputed + transient, each observed",
                            model.peak_bytes, total, total == model.peak_bytes, detail="from the groups' observed steps"))  # fmt: skip
    return checks


def group_dp_checks(
    cfg: FFNConfig, pred: FFNReport, training: Any, input_grad: bool, dp: tuple[int, str, int | None], reports: dict[str, VerifyReport]
) -> list[Check]:
    """A mixed stack on one data-parallel rank (`train --dp`'s model_state_bytes and
    model_peak_bytes) from each group's observed rank 0: Σ layers × its state, Σ layers × its saved
    activations, and the largest one layer's gathered, recomputed and transient bytes."""
    from ffn_calc.model.training import TrainingOptions, train

    ranks, zero, node_size = dp
    want = train(cfg, replace(training or TrainingOptions(), input_grad=input_grad), dp=ranks, zero=zero, node_size=node_size).data_parallel
    if want is None or want.model_state_bytes is None or want.model_peak_bytes is None or len(reports) != len(pred.groups):
        return []

    state = saved = one = 0
    for g in pred.groups:
        r = reports[g.name]
        figures = ("weight_bytes", "gradient_bytes", "master_weight_bytes", "optimizer_state_bytes", "saved_activation_bytes", "gathered_bytes")
        parts = [_observed(r, "data parallel", f"rank 0 {f} (") for f in figures]
        transient = [_observed(r, "training", f"{f} (") for f in ("recomputed_bytes", "backward_transient_bytes")]
        if None in parts or None in transient:
            return []
        w, gr, m, st, sv, ga = (v or 0 for v in parts)
        state += g.config.layers * (w + gr + m + st)
        saved += g.config.layers * sv
        one = max(one, ga + sum(v or 0 for v in transient))
    peak = state + saved + one
    how = "from each group's observed rank 0"
    return [
        Check("data parallel", "model_state_bytes = Σ layers × each group's rank-0 state, observed", want.model_state_bytes, state,
              state == want.model_state_bytes, detail=how),
        Check("data parallel", "model_peak_bytes = state + Σ layers × saved + the largest one layer's gathered, recomputed and transient",
              want.model_peak_bytes, peak, peak == want.model_peak_bytes, how=CONVENTION_X_OBSERVED, detail=how),
    ]  # fmt: skip


def group_rank_checks(cfg: FFNConfig, tp: int, sequence_parallel: bool, reports: dict[str, VerifyReport]) -> list[Check]:
    """A mixed stack under --tp: the per-rank figures the plan gives each group (from the
    mixed config, dense_d_ff split too) against that group's observed rank 0 (the bare FFN, as
    the rank checks run it)."""
    from ffn_calc.model.parallel import tensor_parallel

    plan = analyze(tensor_parallel(replace(cfg, norm="none"), tp, sequence_parallel).per_rank)
    checks = []
    for group in plan.groups:
        report = reports.get(group.name)
        if report is None:
            continue
        for label, predicted in (("parameters", group.totals.params), ("MACs", group.totals.macs), ("FLOPs", group.totals.flops)):
            row = next((c for c in report.checks if c.group == "parallel" and c.name.startswith(f"rank 0 {label}")), None)
            if row is None:
                continue
            checks.append(Check("parallel", f"{group.name} group's rank {label} (the mixed stack's --tp plan)", predicted, row.observed,
                                predicted == row.observed, detail=f"observed: the {group.name} layer's rank 0"))  # fmt: skip
    return checks
