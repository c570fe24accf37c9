"""Training: the backward pass op by op, the tensors saved for it, and the memory of a step.

Standard library only; built on the forward stages of `forward.py`, every backward cost read
from the table in `conventions.py`. A matmul (M, K)·(K, N) has two backward products, each 2·M·K·N
FLOPs, so the backward matmul FLOPs are exactly twice the forward's and a step's (without
recomputation) three times — the "6·N per token" of Kaplan et al. 2020.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from math import prod

from ffn_calc.errors import ConfigError
from ffn_calc.json_fields import JsonForm, json_key
from ffn_calc.model import conventions as conv
from ffn_calc.model import structure as names
from ffn_calc.model.data_parallel import DataParallel, data_parallel
from ffn_calc.model.data_parallel import stack as dp_stack
from ffn_calc.model.dtypes import SIXTEEN_BIT
from ffn_calc.model.expert_parallel import ExpertParallel, expert_parallel
from ffn_calc.model.forward import FFNReport, Stage, analyze
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.norms import BY_STAGE
from ffn_calc.model.parallel import TensorParallel, tensor_parallel
from ffn_calc.model.pipeline import Pipeline, layer_kind, pipeline
from ffn_calc.model.step_totals import TrainingTotals
from ffn_calc.model.training_options import MASTER_BYTES, OPTIMIZERS, RECOMPUTE, STATE_BYTES_MIXED, state_bytes
from ffn_calc.schemas import schema


@dataclass(frozen=True)
class TrainingOptions:
    """How a step trains: recomputation, optimizer, mixed precision (16-bit weights and
    gradients with float32 master weights and states; None: as practised, mixed for a 16-bit
    dtype and plain otherwise; False: pure 16-bit), dropout on the FFN output, and whether
    the layer's input needs a gradient: False for the first layer of a stack or after a frozen
    embedding, when PyTorch skips every product whose only use is that gradient."""

    recompute: str = "none"
    optimizer: str = "adam"
    mixed_precision: bool | None = None
    dropout: bool = False
    input_grad: bool = True

    def __post_init__(self) -> None:
        if self.recompute not in RECOMPUTE:
            raise ConfigError("--recompute", f"unknown value {self.recompute!r}; choose one of {', '.join(RECOMPUTE)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError("--optimizer", f"unknown value {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class BackwardOp:
    """One piece of the backward pass. `matmul` is the (M, K, N) of the product computed, if any."""

    stage: str
    kind: str  # input-grad | weight-grad | bias-grad | elementwise
    formula: str
    output_shape: tuple[int, ...]
    matmul: tuple[int, int, int] | None = field(default=None, metadata=json_key("matmul_mkn", then=("macs",)))
    elementwise_flops: int = field(default=0, metadata=json_key(then=("flops",)))

    @property
    def macs(self) -> int:
        return prod(self.matmul) if self.matmul else 0

    @property
    def flops(self) -> int:
        return conv.MULTIPLY_ADD.flops * self.macs + self.elementwise_flops


@dataclass(frozen=True)
class SavedTensor:
    """A tensor kept from the forward pass for the backward one, and why."""

    name: str
    shape: tuple[int, ...]
    bytes: int
    reason: str


@dataclass(frozen=True)
class TrainingStackTotals:
    """A training step of the whole stack: every layer group (`layers` identical layers, and a
    mixed stack's dense layers) × its one-layer figures; one rank's under parallelism.

    FLOPs, parameters, weights, gradients, optimizer states and master weights add up over the
    layers. Each layer keeps its own saved activations from its forward pass until its own
    backward, so all of them are alive when the backward pass begins; what a recompute
    regenerates and the backward transient (an output gradient and an input gradient) belong to
    one layer at a time, during its backward, so the largest such sum counts once. The peak is
        peak = Σ layers × (weights + gradients + optimizer states + master weights + saved activations)
               + the largest one-layer (recomputed + backward transient),
    which for one layer is the layer's own peak."""

    layers: int
    params: int
    forward_flops: int
    backward_flops: int
    recompute_flops: int
    dropout_flops: int
    step_flops: int
    step_matmul_flops: int
    weight_bytes: int
    gradient_bytes: int
    optimizer_state_bytes: int
    master_weight_bytes: int
    saved_activation_bytes: int
    backward_transient_bytes: int  # one layer's: that of the layer whose recomputed + transient is the largest
    recomputed_bytes: int  # the same layer's
    peak_bytes: int


SUMMED = ("forward_flops", "backward_flops", "recompute_flops", "dropout_flops", "step_flops", "step_matmul_flops", "weight_bytes",
          "gradient_bytes", "optimizer_state_bytes", "master_weight_bytes", "saved_activation_bytes")  # fmt: skip


def stack_training_totals(groups: list[tuple[int, int, TrainingTotals]]) -> TrainingStackTotals:
    """The stack's step from its groups: (layers, parameters per layer, one layer's totals)."""
    sums = {name: sum(layers * getattr(t, name) for layers, _, t in groups) for name in SUMMED}
    busiest = max((t for _, _, t in groups), key=lambda t: t.recomputed_bytes + t.backward_transient_bytes)
    persistent = sums["weight_bytes"] + sums["gradient_bytes"] + sums["optimizer_state_bytes"] + sums["master_weight_bytes"]
    return TrainingStackTotals(
        layers=sum(layers for layers, _, _ in groups),
        params=sum(layers * params for layers, params, _ in groups),
        backward_transient_bytes=busiest.backward_transient_bytes,
        recomputed_bytes=busiest.recomputed_bytes,
        peak_bytes=persistent + sums["saved_activation_bytes"] + busiest.recomputed_bytes + busiest.backward_transient_bytes,
        **sums,
    )


@dataclass(frozen=True)
class TrainingReport(JsonForm):
    """One training step. With tensor or expert parallelism, every figure is one rank's
    (`forward` is the rank's layer: d_ff / N, or its tokens and experts) and `parallel` holds
    the collectives."""

    # JSON (`train -f json`): the layer's config first, its forward report last.

    forward: FFNReport = field(metadata=json_key(then=(("config", "forward.config"),)))
    options: TrainingOptions
    backward: tuple[BackwardOp, ...]
    saved: tuple[SavedTensor, ...]
    totals: TrainingTotals
    parallel: TensorParallel | ExpertParallel | None = None
    model: TrainingStackTotals | None = None  # None: a mixed stack under expert parallelism (not modelled)
    data_parallel: DataParallel | None = None  # `--dp N --zero S`: one data-parallel rank's share of the layer's step, or null without `--dp`
    pipeline: Pipeline | None = None  # `--pp N`: the stack's stages, bubble, activations per stage and boundary bytes, or null
    json_schema = schema("train")
    json_order = ("config", "options", "backward", "saved", "totals", "model", "parallel", "data_parallel", "pipeline", "forward")


def needs_grad(report: FFNReport, input_grad: bool = True) -> dict[str, bool]:
    """Which stage outputs need a gradient: the input as asked, a stage with weights always,
    any other stage when one of its inputs does (dispatch: its source; the routing indices
    carry none)."""
    needs: dict[str, bool] = {}
    for s in report.stages:
        if s.op == "input":
            needs[s.name] = input_grad
        elif s.op == "gather":
            needs[s.name] = needs[s.inputs[0]]
        else:
            needs[s.name] = bool(s.weights) or any(needs[i] for i in s.inputs)
    return needs


def _norm_backward_runs(stage: Stage, needs: dict[str, bool]) -> bool:
    """A norm's backward runs when its input needs a gradient or it has weights to train (a norm
    without weights before a layer input that needs none has nothing to compute, nor to keep)."""
    return needs[stage.inputs[0]] or bool(BY_STAGE[stage.op].weights)


def _backward_ops(report: FFNReport, input_grad: bool = True) -> list[BackwardOp]:
    """The backward pass, last forward stage first. Without `input_grad` the products and
    steps whose only use is the input's gradient are left out, as autograd leaves them."""
    cfg = report.config
    by_name = {s.name: s for s in report.stages}
    needs = needs_grad(report, input_grad)
    ops: list[BackwardOp] = []
    for s in reversed(report.stages):
        rows = prod(s.output_shape[:-1])
        width = s.output_shape[-1]
        if s.op == "matmul":
            m, k, n = s.matmul  # type: ignore[misc]
            src = by_name[s.inputs[0]]
            w = next(t for t in s.weights if t.role == "weight")
            if needs[src.name]:
                ops.append(BackwardOp(s.name, "input-grad", f"d{s.inputs[0]} = d{s.name}·{w.name}ᵀ", src.output_shape, (m, n, k)))
            ops.append(BackwardOp(s.name, "weight-grad", f"d{w.name} = {s.inputs[0]}ᵀ·d{s.name}", w.shape, (k, m, n)))
            if any(t.role == "bias" for t in s.weights):
                ops.append(BackwardOp(s.name, "bias-grad", f"db = Σ rows of d{s.name}", (n,),
                                      elementwise_flops=conv.BIAS_GRAD.flops * m * n))  # fmt: skip
        elif s.op == "activation":
            act = cfg.base_activation
            ops.append(BackwardOp(s.name, "elementwise", f"d{s.inputs[0]} = d{s.name} ⊙ {act}'({s.inputs[0]})", s.output_shape,
                                  elementwise_flops=conv.activation_backward_flops(cfg.activation) * rows * width))  # fmt: skip
        elif s.op == "glu":
            act = cfg.base_activation
            per = conv.activation_backward_flops(cfg.activation)
            ops.append(BackwardOp(s.name, "elementwise", f"dg = da ⊙ u ⊙ {act}'(g), du = da ⊙ {act}(g)", s.output_shape,
                                  elementwise_flops=per * rows * width))  # fmt: skip
        elif s.op == "router":  # the routing weights back to the router's logits
            n, e, k = cfg.tokens, cfg.experts, cfg.top_k
            flops = conv.ROUTER_SOFTMAX_BACKWARD.flops * n * e + conv.TOP_K_RENORM_BACKWARD.flops * n * k
            formula = "dlogits = p ⊙ (dp − Σ p·dp), through the renormalised top-k"
            ops.append(BackwardOp(s.name, "elementwise", formula, by_name[s.inputs[0]].output_shape, elementwise_flops=flops))
        elif s.op == "gather" and needs[s.name]:
            ops.append(BackwardOp(s.name, "elementwise", "each routed row's gradient added back into its token's", by_name[s.inputs[0]].output_shape,
                                  elementwise_flops=conv.DISPATCH_BACKWARD.flops * rows * width))  # fmt: skip
        elif s.op == "gate_scale":  # ys = σ ⊙ shared: back to the shared output and the gate's logit
            flops = conv.GATE_SCALE_BACKWARD.flops * rows * width + conv.GATE_SIGMOID_BACKWARD.flops * rows
            formula = f"d{s.inputs[1]} = σ·d{s.name}, dσ = Σ d{s.name}·{s.inputs[1]}, d{s.inputs[0]} = dσ·σ·(1 − σ)"
            ops.append(BackwardOp(s.name, "elementwise", formula, s.output_shape, elementwise_flops=flops))
        elif s.op == "combine":
            routed = cfg.tokens * cfg.top_k * cfg.d_model
            ops.append(BackwardOp(s.name, "elementwise", "dye = w·dy, dw = Σ dy·ye", s.output_shape,
                                  elementwise_flops=conv.COMBINE_BACKWARD.flops * routed))  # fmt: skip
        elif s.op in BY_STAGE and _norm_backward_runs(s, needs):  # a norm: dx and its weights' gradients
            kind = BY_STAGE[s.op]
            full = needs[s.inputs[0]]
            what = ", ".join(["dx"] * full + [f"d{w}" for w in ("γ", "β")[: kind.params_per_element]])
            flops = kind.backward_flops(rows, width) if full else kind.weight_grad_flops(rows, width)
            ops.append(BackwardOp(s.name, "elementwise", f"{what} of {kind.label}", s.output_shape, elementwise_flops=flops))
    # A tensor read by c stages gets c gradients, added together: (c − 1) adds per element
    # (x for the residual and the FFN; the FFN input for a GLU's gate and up).
    readers: dict[str, int] = {}
    for s in report.stages:
        for name in s.inputs:
            if not (s.op == "gather" and by_name[name].op == "router"):  # dispatch reads the routing as indices only
                readers[name] = readers.get(name, 0) + 1
    for s in report.stages:
        if readers.get(s.name, 0) > 1 and needs[s.name]:
            elements = prod(s.output_shape)
            ops.append(BackwardOp(s.name, "grad-sum", f"d{s.name} = sum of its {readers[s.name]} readers' gradients", s.output_shape,
                                  elementwise_flops=conv.GRADIENT_SUM.flops * (readers[s.name] - 1) * elements))  # fmt: skip
    return ops


def _sharded(saved: list[SavedTensor], shards: int) -> list[SavedTensor]:
    """Under sequence parallelism (`shards` ranks) the layer input and the dropout mask live in
    sequence shards (s / N) on each rank."""
    if shards == 1:
        return saved
    return [replace(t, shape=(t.shape[0], t.shape[1] // shards, *t.shape[2:]), bytes=t.bytes // shards, reason=t.reason + " (a sequence shard)")
            if t.name in (names.INPUT, names.DROPOUT_MASK) else t for t in saved]  # fmt: skip


def _saved(report: FFNReport, options: TrainingOptions) -> list[SavedTensor]:
    """What the forward pass keeps for backward (Korthikanti et al. 2022, §4.1), each once."""
    cfg = report.config
    by_name = {s.name: s for s in report.stages}
    needs = needs_grad(report, options.input_grad)
    saved: dict[str, SavedTensor] = {}

    def keep(stage: str, reason: str) -> None:
        s = by_name[stage]
        if stage in saved:
            saved[stage] = replace(saved[stage], reason=saved[stage].reason + "; " + reason)
        else:
            saved[stage] = SavedTensor(stage, s.output_shape, s.output.bytes, reason)

    mode = RECOMPUTE[options.recompute]
    if mode.forward:
        keep(names.INPUT, "the layer input: everything else is recomputed from it in backward")
    else:
        # An activation whose backward reads its own output (ReLU) keeps nothing of its own:
        # the next linear keeps that output anyway, and selective recompute has nothing to redo.
        reads_output = not cfg.is_glu and cfg.nonlinearity.backward_reads == "output"
        for s in report.stages:
            if s.op == "matmul":
                src = s.inputs[0]
                if mode.activations and by_name[src].op in ("activation", "glu") and not (reads_output and by_name[src].op == "activation"):
                    continue  # recomputed from the activation's own saved inputs
                keep(src, f"input of {s.name}, for its weight gradient")
            elif s.op == "activation":
                if reads_output:
                    keep(s.name, f"{cfg.nonlinearity.label}'s output, for its backward (the same tensor the next linear keeps)")
                else:
                    keep(s.inputs[0], f"input of {cfg.base_activation}, for its derivative")
            elif s.op == "glu":
                for src in s.inputs:
                    keep(src, "gate and up projections, for the gated product's backward")
            elif s.op in BY_STAGE and _norm_backward_runs(s, needs):
                keep(s.inputs[0], f"{BY_STAGE[s.op].label}'s input, for its backward")
            elif s.op == "router":
                keep(s.inputs[0], "the router's logits, for the softmax backward")
            elif s.op == "gate_scale":
                keep(s.inputs[0], "the shared-expert gate's logit, for the sigmoid's backward")
                keep(s.inputs[1], "the shared experts' output, for the gate's gradient")
            elif s.op == "combine":
                keep(s.inputs[0], "the routing weights, for the experts' output gradients")
                keep(s.inputs[1], "the experts' outputs, for the routing weights' gradient")
        if cfg.is_moe:
            rows = cfg.tokens * cfg.top_k
            saved[names.ROUTING_INDICES] = SavedTensor(names.ROUTING_INDICES, (cfg.tokens, cfg.top_k), rows * conv.ROUTING_INDEX_BYTES,
                                                   "which experts each token went to (int64), to send gradients back")  # fmt: skip
        for s in report.stages:
            if s.op in BY_STAGE and _norm_backward_runs(s, needs):
                kind, rows = BY_STAGE[s.op], prod(s.output_shape[:-1])
                saved[kind.stats_tensor] = SavedTensor(kind.stats_tensor, (rows, len(kind.stats)), rows * kind.saved_bytes_per_row,
                                                       f"{' and '.join(kind.stats)} per row, float32")  # fmt: skip
    if options.dropout and not mode.forward:
        out = next(s for s in reversed(report.stages) if s.op in ("matmul", "combine"))  # the FFN's output
        elements = prod(out.output_shape)
        saved[names.DROPOUT_MASK] = SavedTensor(names.DROPOUT_MASK, out.output_shape, elements * conv.DROPOUT_MASK_BYTES_PER_ELEMENT,
                                            "dropout mask on the FFN output, 1 byte per element")  # fmt: skip
    return list(saved.values())


def train(
    cfg: FFNConfig, options: TrainingOptions, tp: int = 1, sequence_parallel: bool = False, ep: int = 1,
    dp: int = 1, zero: str = "0", node_size: int | None = None,
    pp: int = 1, microbatches: int | None = None, schedule: str | None = None, chunks: int | None = None,
) -> TrainingReport:  # fmt: skip
    """One training step of the layer: forward, backward, recomputation and memory — of one
    rank when `tp` > 1 (Megatron tensor parallelism, optionally with sequence parallelism)
    or `ep` > 1 (expert parallelism, expert_parallel.py: the rank's tokens and experts).
    `model` holds the whole stack's step (TrainingStackTotals): the layers of each group ×
    the group's one-layer figures, a mixed stack's dense layers trained as layers of their own.
    With `dp` > 1 (or a `zero` stage), `data_parallel` holds the share of one of `dp` data-parallel
    ranks of this (tensor/expert-parallel) rank's layer, ZeRO/FSDP sharded (data_parallel.py).
    With `pp` > 1, `pipeline` holds the stack over `pp` stages with `microbatches` (default 1)
    under `schedule` (default 1f1b; interleaved with `chunks` v, default 2), pipeline.py."""
    if pp > 1 or microbatches is not None or schedule is not None or chunks is not None:
        report = train(cfg, options, tp, sequence_parallel, ep, dp, zero, node_size)
        dps = (dp, zero, node_size) if dp > 1 or zero != "0" or node_size is not None else None
        return replace(report, pipeline=_pipeline(cfg, report, pp, microbatches, schedule, chunks, tp, sequence_parallel, ep, dps))
    if dp > 1 or zero != "0" or node_size is not None:
        report = train(cfg, options, tp, sequence_parallel, ep)
        dpr = _sharded_dp(report, dp, zero, node_size, ep)
        shards = [(cfg.layers, dpr, report.totals.recomputed_bytes + report.totals.backward_transient_bytes)]
        if len(cfg.groups) > 1 and ep == 1:  # a mixed stack: its dense layers on the same ranks
            dense = train(cfg.groups[0], options, tp, sequence_parallel)
            t = dense.totals
            shards.append((cfg.groups[0].layers, data_parallel(dense, dp, zero, node_size), t.recomputed_bytes + t.backward_transient_bytes))
        if report.model is not None:
            state, peak = dp_stack(shards)
            dpr = replace(dpr, model_state_bytes=state, model_peak_bytes=peak)
        return replace(report, data_parallel=dpr)
    groups = cfg.groups
    parallel: TensorParallel | ExpertParallel | None = None
    if ep > 1:
        parallel = expert_parallel(cfg, ep, tp, sequence_parallel)
        cfg = parallel.per_rank
    elif tp > 1 or sequence_parallel:
        parallel = tensor_parallel(cfg, tp, sequence_parallel)
        cfg = parallel.per_rank
    if cfg.expert_capacity is not None:
        raise ConfigError("--capacity-factor", "training with capacity buffers (dropped tokens) is not modelled; train models dropless routing")
    if options.mixed_precision is None:  # as practised: a 16-bit dtype trains in mixed precision
        options = replace(options, mixed_precision=cfg.dtype in SIXTEEN_BIT)
    if options.mixed_precision and cfg.dtype not in SIXTEEN_BIT:
        raise ConfigError("--mixed-precision", f"needs --dtype {' or '.join(SIXTEEN_BIT)} (16-bit weights and gradients), got {cfg.dtype}")
    fwd = analyze(cfg)
    if isinstance(parallel, ExpertParallel):
        fwd = parallel.shard(fwd)  # only the rank's experts' weights
    ops = _backward_ops(fwd, options.input_grad)
    sequence_shards = tp if parallel is not None and parallel.sequence_parallel else 1
    saved = _sharded(_saved(fwd, options), sequence_shards)
    # The recompute regenerates, for the layer's own backward, what no recompute would have saved:
    # alive from the recompute until the backward has read it, so during the layer's backward.
    kept = {t.name for t in saved}
    unsaved = [t for t in _sharded(_saved(fwd, replace(options, recompute="none")), sequence_shards) if t.name not in kept]
    act_stages = [s for s in fwd.stages if s.op in ("activation", "glu")]
    mode = RECOMPUTE[options.recompute]
    recompute = 0
    if mode.forward:
        recompute = fwd.totals.flops
    elif mode.activations:  # an activation whose backward reads its own output needs nothing redone
        recompute = sum(s.flops for s in act_stages if not (s.op == "activation" and cfg.nonlinearity.backward_reads == "output"))
    recompute_matmul = fwd.totals.matmul_flops if mode.forward else 0
    out_elements = prod(fwd.stages[-1].output_shape)
    if sequence_shards > 1:
        out_elements //= tp  # dropout acts on the rank's sequence shard, after the reduce-scatter (its mask is sharded above)
    dropout = (conv.DROPOUT.flops + conv.DROPOUT_BACKWARD.flops) * out_elements if options.dropout else 0
    backward = sum(op.flops for op in ops)
    backward_macs = sum(op.macs for op in ops)
    backward_matmul = conv.MULTIPLY_ADD.flops * backward_macs
    params = fwd.totals.params
    mixed = options.mixed_precision
    weight_bytes = fwd.totals.weight_bytes
    gradient_bytes = weight_bytes  # gradients in the weights' dtype (Megatron keeps float32 ones: 18 B/param with Adam)
    states = _state_bytes(fwd, options.optimizer, bool(mixed))
    master_bytes = params * MASTER_BYTES if mixed else 0
    saved_bytes = sum(t.bytes for t in saved)
    recomputed_bytes = sum(t.bytes for t in unsaved)
    by_name = {s.name: s for s in fwd.stages}
    # The gradients alive together at one step of the backward: a product's output gradient and
    # its input gradient, or an activation's (a GLU's) output gradient and its inputs' gradients.
    pairs = [by_name[op.stage].output.bytes + prod(op.output_shape) * cfg.dtype_bytes for op in ops if op.kind == "input-grad"]
    pairs += [by_name[op.stage].output.bytes + sum(by_name[i].output.bytes for i in by_name[op.stage].inputs)
              for op in ops if op.kind == "elementwise" and by_name[op.stage].op in ("activation", "glu")]  # fmt: skip
    if sequence_shards > 1 and not cfg.is_moe:
        # Megatron keeps only the rank's sequence shard of the first linears' input and gathers the
        # whole input again in the backward, for their weight gradients: alive beside that
        # product's output gradient (and input gradient, when it is computed).
        first = {spec.stage for spec in names.linears(cfg.is_glu, cfg.fused) if spec.first}
        grads = {op.stage: prod(op.output_shape) * cfg.dtype_bytes for op in ops if op.kind == "input-grad"}
        pairs += [by_name[op.stage].output.bytes + grads.get(op.stage, 0) + sum(by_name[i].output.bytes for i in by_name[op.stage].inputs)
                  for op in ops if op.kind == "weight-grad" and op.stage in first]  # fmt: skip
    transient = max(pairs, default=0)
    persistent = weight_bytes + gradient_bytes + states + master_bytes
    totals = TrainingTotals(
        forward_flops=fwd.totals.flops,
        backward_flops=backward,
        recompute_flops=recompute,
        dropout_flops=dropout,
        step_flops=fwd.totals.flops + backward + recompute + dropout,
        forward_matmul_flops=fwd.totals.matmul_flops,
        backward_matmul_flops=backward_matmul,
        backward_macs=backward_macs,
        backward_elementwise_flops=sum(op.elementwise_flops for op in ops),
        recompute_matmul_flops=recompute_matmul,
        step_matmul_flops=fwd.totals.matmul_flops + backward_matmul + recompute_matmul,
        saved_activation_bytes=saved_bytes,
        weight_bytes=weight_bytes,
        gradient_bytes=gradient_bytes,
        optimizer_state_bytes=states,
        master_weight_bytes=master_bytes,
        backward_transient_bytes=transient,
        recomputed_bytes=recomputed_bytes,
        peak_bytes=persistent + saved_bytes + recomputed_bytes + transient,
        bytes_per_param=persistent // params if params else 0,
    )
    model: TrainingStackTotals | None = None
    if len(groups) == 1:
        model = stack_training_totals([(cfg.layers, params, totals)])
    elif ep == 1:  # a mixed stack: the dense layers' step, on the same ranks
        dense = train(groups[0], options, tp, sequence_parallel)
        model = stack_training_totals([(groups[0].layers, dense.forward.totals.params, dense.totals), (cfg.layers, params, totals)])
    return TrainingReport(fwd, options, tuple(ops), tuple(saved), totals, parallel, model)


def _state_bytes(fwd: FFNReport, optimizer: str, mixed: bool) -> int:
    """Optimizer state bytes of the layer's weights, per weight tensor (one per expert for a
    mixture's stacked experts): 8-bit states count blocks per tensor."""
    element = STATE_BYTES_MIXED if mixed else fwd.config.dtype_bytes
    return sum(max(w.experts, 1) * state_bytes(optimizer, w.elements // max(w.experts, 1), element)
               for s in fwd.stages for w in s.weights)  # fmt: skip


def _sharded_dp(report: TrainingReport, dp: int, zero: str, node_size: int | None, ep: int) -> DataParallel:
    """One data-parallel rank's share of `report`'s step; under --ep its routed experts over dp/ep ranks."""
    return data_parallel(report, dp, zero, node_size, ep)


def _pipeline(
    cfg: FFNConfig, report: TrainingReport, pp: int, microbatches: int | None, schedule: str | None, chunks: int | None,
    tp: int, sequence_parallel: bool, ep: int, dps: tuple[int, str, int | None] | None = None,
) -> Pipeline:  # fmt: skip
    """The stack of `cfg` over `pp` stages: each layer kind trained on a microbatch of b/m sequences;
    with `dps` (--dp, --zero, --node-size), each layer's state is one data-parallel rank's, its
    buffers sharded layer by layer, and ZeRO-3's gathered weights (ZeRO-2's unsharded gradient)
    are one layer's at a time, beside its backward transient."""
    if pp < 2:
        raise ConfigError("--pp", "--microbatches, --schedule and --chunks describe a pipeline; add --pp N (N ≥ 2)")
    m = 1 if microbatches is None else microbatches
    schedule = schedule or "1f1b"
    v = (2 if schedule == "interleaved" else 1) if chunks is None else chunks
    if cfg.batch % m:
        raise ConfigError("--microbatches", f"splits the batch into equal microbatches: {m} does not divide BATCH {cfg.batch}")
    if ep > 1 and len(cfg.groups) > 1:
        raise ConfigError("--pp", "a mixed dense/MoE stack under --ep is not modelled (its dense layers' ranks); drop --ep or --dense-layers")
    micro = replace(cfg, batch=cfg.batch // m)
    kinds = []
    for group in micro.groups:
        r = train(group, report.options, tp, sequence_parallel, ep)
        sharded = _sharded_dp(r, *dps, ep) if dps else None
        kinds.append((layer_kind("moe" if group.is_moe else "dense", r.forward.totals.params, r.totals, sharded), group.layers))
    shape = r.forward.stages[0].output_shape
    if sequence_parallel and len(shape) == 3:
        shape = (shape[0], shape[1] // tp, shape[2])
    return pipeline(kinds, pp, m, schedule, v, micro.batch, tuple(shape), micro.dtype_bytes)
