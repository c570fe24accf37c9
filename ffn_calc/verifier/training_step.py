"""`verify --backward`: a real training step of the layer in NumPy, checked against `train`.

The step runs as the model accounts for it: the optimizer's states (and float32 master
weights under mixed precision) exist before it starts; the forward pass — verify's own,
forward.py — keeps exactly the tensors `train` lists as saved, by name, through its recorder's
Keep hook (everything else is dropped as the pass goes); the backward pass reads
every tensor it needs from that store by name, recomputing first what the recompute mode says
(selective: the activation and gate stages from their saved inputs; full: the whole forward
from the saved input); a dropout mask of 1-byte booleans is saved and applied both ways; then
the optimizer updates the weights. Every figure of `train`'s totals is observed: FLOPs from
the operand shapes of the products that ran and the elements written (× the convention),
bytes from the arrays' `.nbytes`, the peak from tracemalloc. Gradients are checked against
finite differences in float64, on the layer itself when it is small, else on a slice of it.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, replace
from math import prod
from typing import Any

import numpy as np

from ffn_calc.model import structure as names
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.training import TrainingOptions, TrainingReport, train
from ffn_calc.model.training_options import RECOMPUTE
from ffn_calc.verifier import optimizer
from ffn_calc.verifier.backward import MissingTensor, Reads, gradient_check, layer_backward
from ffn_calc.verifier.compare import _grouped, conv_flops
from ffn_calc.verifier.forward import Dropout, Params, activation_stage, forward, make_params
from ffn_calc.verifier.kernels import kernel
from ffn_calc.verifier.memory import scratch_allowance
from ffn_calc.verifier.optimizer import Optimizer
from ffn_calc.verifier.recorder import FORWARD, Keep, Recorder
from ffn_calc.verifier.report import CONVENTION_X_OBSERVED, Check

FD_MAX_TOKENS = 64  # finite differences on the layer itself up to this many tokens
FD_MAX_WEIGHTS = 4096  # and d_model · d_ff up to this; else on a slice of it
SLICE_TOKENS, SLICE_D_MODEL, SLICE_D_FF = 4, 8, 12
# The NumPy step holds a few arrays that the model's accounting (persistent state + saved
# activations + recomputed tensors + the most gradients alive at once) leaves out: an output
# gradient kept until the function that read it returns, a GLU's two input gradients and their
# sum, the layer's own gradients while its blocks run, what a full recompute regenerated and
# nothing read. The peak's allowance is what this step held of those, measured as it held them
# (step_checks), plus the scratch that does not scale with the layer; the peak must not fall
# below the prediction (the least seen over 126 random layers: +7.9 KB).

# Each figure of `train`'s totals and the check that observes it (a test holds this to TrainingTotals).
TOTALS_CHECKS = {
    "forward_flops": "forward_flops",
    "backward_flops": "backward_flops",
    "recompute_flops": "recompute_flops",
    "dropout_flops": "dropout_flops",
    "step_flops": "step_flops",
    "forward_matmul_flops": "forward_matmul_flops",
    "backward_matmul_flops": "backward_matmul_flops",
    "backward_macs": "backward_macs",
    "backward_elementwise_flops": "backward_elementwise_flops",
    "recompute_matmul_flops": "recompute_matmul_flops",
    "step_matmul_flops": "step_matmul_flops",
    "saved_activation_bytes": "saved_activation_bytes",
    "weight_bytes": "weight_bytes",
    "gradient_bytes": "gradient_bytes",
    "optimizer_state_bytes": "optimizer_state_bytes",
    "master_weight_bytes": "master_weight_bytes",
    "backward_transient_bytes": "backward_transient_bytes",
    "recomputed_bytes": "recomputed_bytes",
    "peak_bytes": "peak_bytes",
    "bytes_per_param": "bytes_per_param",
}


def backward_checks(
    cfg: FFNConfig, p: Params, x: np.ndarray, rng: np.random.Generator, input_grad: bool = True, options: TrainingOptions | None = None
) -> list[Check]:
    """One training step of the layer (`options` as `train` takes them), every figure of
    `train`'s totals observed, and the gradients against finite differences."""
    options = replace(options or TrainingOptions(), input_grad=input_grad)
    predicted = train(cfg, options)
    checks = step_checks(cfg, p, x, rng, options, predicted)
    checks.append(_finite_differences(cfg, p, x, input_grad))
    return checks


@dataclass(frozen=True)
class InputShards:
    """How a rank of sequence parallelism holds the layer input it saves: `hold` gives the
    rank's own sequence shard (the array it keeps), `gather` the whole input rebuilt from
    every rank's shard by a ring all-gather, run before the recompute and the backward."""

    hold: Callable[[np.ndarray], np.ndarray]
    gather: Callable[[np.ndarray], np.ndarray]


def step_checks(
    cfg: FFNConfig,
    p: Params,
    x: np.ndarray,
    rng: np.random.Generator,
    options: TrainingOptions,
    pred: TrainingReport,
    shards: InputShards | None = None,
) -> list[Check]:
    """One training step of the layer `cfg` with weights `p` on input `x`, every figure of
    `pred` (train's report of it) observed. With `shards`, the saved layer input is the rank's
    sequence shard, all-gathered again for the backward (sequence parallelism)."""
    checks: list[Check] = []
    t = pred.totals
    options = pred.options  # as train resolved them (mixed precision by default for a 16-bit dtype)
    weights = dict(p)
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    # --- the step: optimizer state first (persistent), then forward, backward, update ---
    opt = Optimizer(weights, options.optimizer, bool(options.mixed_precision))
    seed = int(rng.integers(1 << 31))
    run = run_pass(cfg, p, x, options, pred, lambda: rng.standard_normal((cfg.tokens, cfg.d_model)).astype(x.dtype), seed, shards)
    saved, reads, grads, transient, recomputed, missing = run.saved, run.reads, run.grads, run.transient, run.recomputed, run.missing
    never_read = run.never_read
    frec, rrec, brec, dropout, dropout_redo = run.frec, run.rrec, run.brec, run.dropout, run.dropout_redo
    checks.append(Check("training", "backward ran from the saved and recomputed tensors only", "every tensor it reads",
                        f"{missing} was not saved" if missing else "yes", not missing))  # fmt: skip
    if not missing:
        unread = sorted(set(saved) - reads.read)
        checks.append(Check("training", "every saved tensor is read by the recompute or the backward", "all of them",
                            f"never read: {', '.join(unread)}" if unread else "yes", not unread))  # fmt: skip
    checks.append(Check("backward", "input gradient computed", options.input_grad, "x" in grads, ("x" in grads) == options.input_grad))
    for name, array in p.items():
        shape = tuple(grads[name].shape) if name in grads else None
        checks.append(Check("backward", f"d{name} shape", tuple(array.shape), shape, shape == array.shape))
    grad_bytes = sum(grads[k].nbytes for k in p if k in grads)
    if not missing:
        opt.step({k: grads[k] for k in p if k in grads})  # a weight with no gradient fails its dW shape check above
    peak = tracemalloc.get_traced_memory()[1] - base
    if started:
        tracemalloc.stop()
    persistent_before = sum(a.nbytes for a in p.values()) + x.nbytes  # allocated before the step: the weights and the input
    observed_peak = peak + persistent_before
    # --- saved tensors, row by row ---
    for s in pred.saved:
        arr = saved.get(s.name)
        if arr is None:
            checks.append(Check("training", f"saved {s.name} bytes", s.bytes, "not produced", False))
            continue
        shape = arr.reshape(s.shape).shape if arr.size == prod(s.shape) else arr.shape
        checks.append(Check("training", f"saved {s.name} shape", s.shape, tuple(shape), tuple(shape) == s.shape))
        checks.append(Check("training", f"saved {s.name} bytes ({arr.dtype}, .nbytes)", s.bytes, arr.nbytes, arr.nbytes == s.bytes))
    saved_bytes = sum(a.nbytes for a in saved.values())
    # --- FLOPs ---
    f_mm, f_el = frec.flops(FORWARD)
    r_mm, r_el = rrec.flops(FORWARD)
    b_mm = sum(o.matmul_flops for o in brec.stages.values())
    b_el = sum(o.elementwise_flops for o in brec.stages.values())
    b_macs = sum(m * k * n for o in brec.stages.values() for (m, k, n) in o.matmuls)
    d_fl = dropout.flops if dropout is not None else 0  # forward and backward; a full recompute's re-application is reported apart
    for op in pred.backward:
        obs = brec.stages.get((op.stage, op.kind))
        products = obs.matmuls if obs is not None else []
        flops = conv_flops(products) + (obs.elementwise_flops if obs is not None else 0)
        if op.matmul:
            grouped = _grouped(products, axis=1 if op.kind == "weight-grad" else 0)
            checks.append(Check("backward", f"{op.stage} {op.kind} (M, K, N)", op.matmul, grouped, grouped == op.matmul))
        checks.append(Check("backward", f"{op.stage} {op.kind} FLOPs", op.flops, flops, flops == op.flops))
    params = sum(a.size for a in p.values())
    weight_bytes = sum(a.nbytes for a in p.values())
    observed: dict[str, tuple[int, str]] = {
        "forward_flops": (f_mm + f_el, "the step's forward: operand shapes of its products + convention × elements written"),
        "forward_matmul_flops": (f_mm, "2·M·K·N of the forward products that ran"),
        "backward_flops": (b_mm + b_el, "all backward work that ran"),
        "backward_matmul_flops": (b_mm, "2·M·K·N of every backward product that ran"),
        "backward_macs": (b_macs, "M·K·N of every backward product that ran"),
        "backward_elementwise_flops": (b_el, "convention × elements written, backward"),
        "recompute_flops": (r_mm + r_el, "the work the recompute ran"),
        "recompute_matmul_flops": (r_mm, "2·M·K·N of the recomputed products"),
        "dropout_flops": (d_fl, "convention × elements the mask was applied to, forward and backward"),
        "step_flops": (f_mm + f_el + b_mm + b_el + r_mm + r_el + d_fl, "forward + backward + recompute + dropout, as run"),
        "step_matmul_flops": (f_mm + b_mm + r_mm, "every product of the step"),
        "saved_activation_bytes": (saved_bytes, ".nbytes of the tensors kept from the forward pass"),
        "weight_bytes": (weight_bytes, ".nbytes of the weights"),
        "gradient_bytes": (grad_bytes, ".nbytes of the weights' gradients"),
        "optimizer_state_bytes": (opt.state_bytes, f".nbytes of {options.optimizer}'s states"),
        "master_weight_bytes": (opt.master_bytes, ".nbytes of the master weights"),
        "backward_transient_bytes": (transient, "largest output + input gradients of a product or an activation, .nbytes"),
        "recomputed_bytes": (recomputed, ".nbytes of the regenerated tensors the backward read"),
        "bytes_per_param": ((weight_bytes + grad_bytes + opt.state_bytes + opt.master_bytes) // max(1, params), "persistent bytes ÷ parameters"),
    }
    for figure, (value, how) in observed.items():
        want = getattr(t, figure)
        checks.append(Check("training", f"{TOTALS_CHECKS[figure]} ({how})", want, value, value == want))
    # The step's peak as the model defines it, from the observed parts: everything that persists,
    # what was saved, what the recompute regenerated, and the most gradients alive at once.
    parts = ("weight_bytes", "gradient_bytes", "optimizer_state_bytes", "master_weight_bytes", "saved_activation_bytes", "recomputed_bytes",
             "backward_transient_bytes")  # fmt: skip
    summed = sum(observed[part][0] for part in parts)
    checks.append(Check("training", "peak_bytes as defined: weights + gradients + states + masters + saved + recomputed + transient, each observed",
                        t.peak_bytes, summed, summed == t.peak_bytes, how=CONVENTION_X_OBSERVED,
                        detail="the model's peak is this sum (a definition); each part is observed above"))  # fmt: skip
    if dropout_redo:
        checks.append(Check("training", "dropout re-applied by the full recompute (not in dropout_flops)", 0, dropout_redo, True, "info"))
    # The allowance above the prediction, from what this step held beyond the model's count, each
    # measured as it was held (.nbytes): the gradients the backward held at once beyond the model's
    # most alive at once (backward.py notes them: Recorder.held), what a recompute regenerated that
    # nothing read, and the scratch that does not scale with the layer (the interpreter's objects,
    # the elementwise threads' blocks, the routing's integers, a narrow product's tiles,
    # memory.scratch_allowance; the optimizer's blocks). One activation more than that fails.
    beyond = max(0, brec.held.most - transient)
    scratch = scratch_allowance(pred.forward) + optimizer.SCRATCH_BYTES
    allowance = beyond + never_read + scratch
    diff = observed_peak - t.peak_bytes
    checks.append(Check("training", "peak_bytes (tracemalloc, step + weights + input; ≥ predicted, ≤ + its measured temporaries + scratch)",
                        t.peak_bytes, observed_peak, 0 <= diff <= allowance, "tolerance",
                        f"{diff:+,} bytes ({diff / t.peak_bytes:+.1%}); allowance {allowance:,}: gradients held beyond the model's "
                        f"{beyond:,} + regenerated, never read {never_read:,} + scratch {scratch:,}"))  # fmt: skip
    # The update ran over every weight: a non-zero step for each element with a non-zero gradient
    # (a step below a 16-bit weight's spacing still counts: it moves the master, or is rounded away
    # in storage as it would be on a GPU).
    moving = sum(int(np.count_nonzero(grads[k])) for k in p if k in grads)
    stepped = sum(opt.stepped.get(k, 0) for k in p)
    every = set(opt.stepped) == set(p)
    checks.append(Check("training", f"{options.optimizer} update: elements stepped = elements with a non-zero gradient, every weight",
                        moving, stepped if every else f"{stepped:,}; weights not stepped: {', '.join(sorted(set(p) - set(opt.stepped)))}",
                        every and stepped == moving and bool(grads)))  # fmt: skip
    return checks


def dropout_mask(seed: int, tokens: int, d_model: int) -> np.ndarray:
    """The dropout mask of a step, drawn from its seed (and drawn again from it by a full recompute)."""
    return np.random.default_rng(seed).random((tokens, d_model)) >= 0.1


@dataclass
class Pass:
    """What one forward + recompute + backward of a training step left: the saved tensors (by
    name), the names the recompute and backward read, the gradients, the largest transient pair,
    the regenerated bytes read and those never read, the tensor found missing (empty: none), and the recorders."""

    saved: dict[str, np.ndarray]
    reads: Reads
    grads: dict[str, np.ndarray]
    transient: int
    recomputed: int
    never_read: int
    missing: str
    frec: Recorder
    rrec: Recorder
    brec: Recorder
    dropout: Dropout | None
    dropout_redo: int


def run_pass(
    cfg: FFNConfig,
    p: Params,
    x: np.ndarray,
    options: TrainingOptions,
    pred: TrainingReport,
    dout: Callable[[], np.ndarray],
    seed: int,
    shards: InputShards | None = None,
    p_backward: Params | None = None,
    mask: Callable[[int], np.ndarray] | None = None,
) -> Pass:
    """The forward pass keeping what `pred` lists as saved, the recompute `options` asks for and
    the backward of Σ(output ⊙ dout()) (drawn after the forward), reading only the saved and regenerated tensors. The
    recompute and the backward run on `p_backward` (default `p`: ZeRO-3 gathers the weights
    again for them); `mask(seed)` draws the dropout mask (default: from the seed alone)."""
    mode = RECOMPUTE[options.recompute]
    pb = p if p_backward is None else p_backward
    draw = mask or (lambda s: dropout_mask(s, cfg.tokens, cfg.d_model))
    mask_run = Dropout(draw(seed)) if options.dropout else None
    # verify's forward pass, its recorder's hook keeping what train lists as saved (nothing else outlives it)
    kept = {s.name for s in pred.saved}
    hook = Keep(kept)
    frec, brec = Recorder(keep=hook, einsum=False), Recorder(einsum=False)
    forward(frec, cfg, p, x, mask_run)
    saved: dict[str, np.ndarray] = hook.store
    if shards is not None and names.INPUT in saved:
        saved[names.INPUT] = shards.hold(saved[names.INPUT])
    if mask_run is not None and names.DROPOUT_MASK in kept:
        saved[names.DROPOUT_MASK] = mask_run.mask
    forward_dropout_flops = mask_run.flops if mask_run is not None else 0
    del mask_run  # only the saved tensors outlive the forward pass (the mask too)
    out_grad = dout()  # drawn after the forward pass, as the loss's gradient is
    reads = Reads(saved)  # notes every name the recompute and the backward read from the saved tensors
    work: Reads = reads
    if shards is not None and names.INPUT in saved:  # the harness's own read: not the backward's
        work[names.INPUT] = shards.gather(dict.__getitem__(reads, names.INPUT)).reshape(cfg.tokens, cfg.d_model)
        reads.gathered.add(names.INPUT)
    missing = ""
    dropout: Dropout | None = None
    regenerated = Keep() if mode.forward else None  # a full recompute keeps everything it runs
    rrec = Recorder(keep=regenerated, einsum=False)
    try:
        if mode.forward:  # run the whole forward again from the saved input (the mask from its seed)
            redo = Dropout(draw(seed)) if options.dropout else None
            forward(rrec, cfg, pb, work[names.INPUT].reshape(cfg.batch, cfg.seq_len, cfg.d_model), redo)
            assert regenerated is not None
            work = Reads(regenerated.store, gathered=reads.gathered)  # its own reads: the backward's
            rrec.keep = regenerated = None
            if redo is not None:
                work[names.DROPOUT_MASK] = redo.mask  # regenerated from its seed, for the backward
            dropout_redo = redo.flops if redo is not None else 0
        else:
            dropout_redo = 0
            if mode.activations:  # the activation and gate stages from their saved inputs
                *first, _ = names.linears(cfg.is_glu, cfg.fused)
                for prefix in ([names.SHARED] * bool(cfg.shared_experts) + [names.EXPERT]) if cfg.is_moe else [""]:
                    stage = prefix + (names.GLU if cfg.is_glu else names.ACTIVATION)
                    if stage not in work and all(prefix + spec.stage in work for spec in first):
                        work[stage] = activation_stage(rrec, cfg, prefix, [work[prefix + spec.stage] for spec in first])
        # The backward applies the mask it finds: saved, or regenerated by the recompute.
        dropout = Dropout(work[names.DROPOUT_MASK], flops=forward_dropout_flops) if options.dropout else None
        grads, transient = layer_backward(cfg, pb, work, out_grad, brec, options.input_grad, dropout)
    except MissingTensor as e:
        missing = str(e)
        grads, transient, dropout_redo = {}, 0, 0
    # What the recompute regenerated and the backward read: every name read that was not saved.
    recomputed = sum(dict.__getitem__(work, name).nbytes for name in work.read - set(saved) if name in work)
    # ... and what it regenerated that nothing read, held through the backward all the same.
    never_read = sum(dict.__getitem__(work, name).nbytes for name in set(work) - work.read - set(saved))
    del work
    return Pass(saved, reads, grads, transient, recomputed, never_read, missing, frec, rrec, brec, dropout, dropout_redo)


def _finite_differences(cfg: FFNConfig, p: Params, x: np.ndarray, input_grad: bool) -> Check:
    """Gradients against central finite differences in float64: on the layer itself when it is
    small (≤ FD_MAX_TOKENS tokens, d_model·d_ff ≤ FD_MAX_WEIGHTS), else on a slice of it — its
    first tokens and the leading d_model and d_ff of its own weights."""
    whole = cfg.tokens <= FD_MAX_TOKENS and cfg.d_model * cfg.d_ff <= FD_MAX_WEIGHTS
    sizes: dict[str, Any] = {"batch": 1, "seq_len": min(cfg.tokens, SLICE_TOKENS)}
    sizes |= {"d_model": min(cfg.d_model, SLICE_D_MODEL), "d_ff": min(cfg.d_ff, SLICE_D_FF)}
    small = replace(cfg, dtype="float64") if whole else replace(cfg, dtype="float64", **sizes)
    shapes = make_params(np.random.default_rng(1), small, np.float64)
    small_p: Params = {k: np.array(p[k][tuple(slice(0, n) for n in v.shape)], np.float64) for k, v in shapes.items()}
    if small.norm != "none":  # exercise γ (and LayerNorm's β) away from 1 and 0 too
        for seed, name in enumerate(small.norm_kind.weights if small.norm_kind else (), start=2):
            small_p[name] += 0.1 * np.random.default_rng(seed).standard_normal(small.d_model)
    rows = x.reshape(cfg.tokens, cfg.d_model)[: small.tokens, : small.d_model]
    small_x = np.array(rows, np.float64).reshape(small.batch, small.seq_len, small.d_model)
    jitter = cfg.dtype not in ("float32", "float64")
    if jitter:  # 8- and 16-bit values put pre-activations exactly on ReLU's kink, logits exactly on a routing tie
        noise = np.random.default_rng(4)
        for a in (*small_p.values(), small_x):
            a += 1e-3 * noise.standard_normal(a.shape) * np.maximum(np.abs(a), 1e-2)
    err = gradient_check(small, small_p, small_x, np.random.default_rng(5).standard_normal(small_x.shape), input_grad=input_grad)
    where = (f"the layer itself, {cfg.tokens} tokens" if whole else
             f"a slice: {small.tokens} of {cfg.tokens} tokens, d_model {small.d_model} of {cfg.d_model}, "
             f"d_ff {small.d_ff} of {cfg.d_ff}") + (", its values jittered by 0.1% off ties and kinks" if jitter else "")  # fmt: skip
    # 1e-5, or 1e-4 for an activation the forward only approximates: NumPy has no erf, and the
    # approximation used (error < 1.5e-7) differs from erf's derivative, which the backward
    # uses, by up to about 1e-5 in places (1.6e-5 seen on a bfloat16 GeGLU with RMSNorm).
    tol = 1e-4 if kernel(cfg.base_activation).approx_error else 1e-5
    return Check("backward", f"gradients = finite differences (float64, {where})", f"≤ {tol:.0e}", f"{err:.1e}", err <= tol, "tolerance")
