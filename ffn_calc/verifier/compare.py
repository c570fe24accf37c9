"""Prediction against observation, as checks: pure comparison of numbers the model predicted
with numbers the NumPy run observed. Nothing here runs the layer or imports NumPy."""

from __future__ import annotations

from dataclasses import dataclass, field

from ffn_calc.model.conventions import MULTIPLY_ADD, Cost
from ffn_calc.model.forward import FFNReport
from ffn_calc.model.weight_formats import BNB_OFFSET_CHARS
from ffn_calc.verifier.report import CONVENTION_X_OBSERVED, OBSERVED, Check, Definition

PEAK_TOLERANCE = 0.02  # above the prediction, on a layer large enough (see peak_check)


@dataclass(frozen=True)
class Counted:
    """One operation of a stage: its cost (a convention, conventions.py or a registry) and the
    units it wrote (observed)."""

    cost: Cost
    count: int

    @property
    def flops(self) -> int:
        return self.cost.flops * self.count

    def describe(self) -> str:
        c = self.cost
        return f"{c.label} {c.flops} FLOPs/{c.unit} (convention) × {self.count:,} {c.unit}s written (observed)"


@dataclass(frozen=True)
class StageSeen:
    """What the run saw of one stage: its output's shape and bytes, the (M, K, N) of each
    product it computed, numpy.einsum_path's FLOP count of each, and each elementwise operation
    with the units (elements, rows) it wrote."""

    shape: tuple[int, ...] = ()
    nbytes: int = 0
    matmuls: tuple[tuple[int, int, int], ...] = ()
    einsum_flops: tuple[float, ...] = ()
    counted: tuple[Counted, ...] = ()

    @property
    def elementwise_flops(self) -> int:
        """Σ convention × observed units over the stage's elementwise operations."""
        return sum(c.flops for c in self.counted)


@dataclass(frozen=True)
class ArraySeen:
    """A weight array as the run made it."""

    shape: tuple[int, ...]
    size: int
    nbytes: int
    # bytes beyond the model's count that the model says it cannot know: nf4_dq's nested_offset
    # digits in its quant state's JSON (packed.PackedWeight.offset_excess); 0 for every other array
    excess: int = 0


@dataclass(frozen=True)
class ActiveSeen:
    """The parameters the pass read, from the arrays' sizes: `shared` every array that is not a
    routed expert's (router, shared experts, their gate, the norm; all of a dense layer), and,
    for a mixture, the fewest and most parameters of the experts one token was routed to, over
    `tokens` tokens (`how` says which)."""

    shared: int
    expert_params: int = 0
    token_min: int | None = None
    token_max: int | None = None
    tokens: int = 0
    how: str = ""


@dataclass(frozen=True)
class StackSeen:
    """The model's totals observed: `layers` layers run one after the other, each with its own
    random weights (or the main pass alone for one layer); sums over the layers' arrays and
    the operations they ran, and the peak of the whole run (None when not measured)."""

    layers: int
    params: int
    active_params: int | None
    weight_bytes: int
    macs: int
    flops: int
    peak_bytes: int | None
    how: str
    workspace_bytes: int = 0  # the narrow products' tiles, inside peak_bytes (arrays.Workspace)
    routing_bytes: int = 0  # the routing's integer arrays, inside peak_bytes (Recorder.routing_arrays)
    weight_excess: int = 0  # inside weight_bytes: nf4_dq's nested_offset digits beyond the model's count (ArraySeen.excess)


@dataclass(frozen=True)
class ForwardSeen:
    """Everything the forward pass observed: the output shape, each stage, the weights, the
    tracemalloc peak, and the time the layer's work took."""

    output_shape: tuple[int, ...]
    stages: dict[str, StageSeen]
    weights: dict[str, ArraySeen]
    peak_bytes: int
    seconds: float
    expert_rows: tuple[int, ...] | None = None
    zero_fraction: float | None = None
    active: ActiveSeen | None = None
    workspace_bytes: int = 0  # the narrow products' tiles, inside peak_bytes (arrays.Workspace)
    routing_bytes: int = 0  # the routing's integer arrays, inside peak_bytes (Recorder.routing_arrays)
    read: tuple[str, ...] | None = None  # the weights the pass's kernels read, by name (None: not noted)
    flops: int = field(init=False)

    def __post_init__(self) -> None:
        macs = sum(m * k * n for s in self.stages.values() for m, k, n in s.matmuls)
        object.__setattr__(self, "flops", MULTIPLY_ADD.flops * macs + sum(s.elementwise_flops for s in self.stages.values()))


def counted_detail(counted: tuple[Counted, ...]) -> str:
    """What the elementwise FLOPs are made of, the convention named as such."""
    return "; ".join(c.describe() for c in counted) or "nothing written (observed)"


def definitions(pred: FFNReport, seen: ForwardSeen, backward: bool = False) -> list[Definition]:
    """What verify cannot observe, with the reason: the counting conventions the run's FLOP rows
    multiply by (each cost it used, as read when it ran), how d_ff was reached, the datasheet
    figures of the roofline and, with the training step, how its peak is defined."""
    out = [
        Definition(f"FLOPs per {MULTIPLY_ADD.label}", MULTIPLY_ADD.flops,
                   f"a counting convention ({MULTIPLY_ADD.source}): the MACs are observed from the operand shapes, "
                   "the factor is how a multiply-add is counted"),
    ]  # fmt: skip
    costs: dict[Cost, None] = {}
    for stage in seen.stages.values():
        for c in stage.counted:
            costs.setdefault(c.cost, None)
    for cost in costs:
        out.append(Definition(f"{cost.label} FLOPs per {cost.unit}", cost.flops,
                              f"a counting convention ({cost.source}): the {cost.unit}s written are observed, "
                              f"what one {cost.unit} costs is how it is counted, not something a run can measure"))  # fmt: skip
    rule = pred.config.d_ff_rule
    if not rule.startswith("given"):
        out.append(Definition("d_ff rule", pred.config.d_ff,
                              f"{rule}: a rule or published figure of the architecture; the run observes the shapes made "
                              "from the d_ff it gives, not the rule that gave it"))  # fmt: skip
    out.append(Definition("GPU peak FLOP/s and memory bandwidth (roofline)", None,
                          "datasheet figures: verify runs on this machine's CPU and measures neither"))  # fmt: skip
    packing = pred.config.weight_packing
    spec = packing.spec if packing is not None else None
    if packing is not None and spec is not None and spec.computes_in:
        row = packing.input_row_bytes(pred.config.d_model)
        out.append(Definition(f"{packing.format}: products in {spec.computes_in}, input bytes per row of d_model", row,
                              f"{spec.input_layout}; on a GPU the product quantizes its input too (the roofline reads these "
                              "bytes and peak); the run dequantizes the weights only and multiplies in --dtype, so neither "
                              "is observed"))  # fmt: skip
    if packing is not None and packing.format == "nf4_dq":
        out.append(Definition("nf4_dq: characters of nested_offset in the quant state's JSON", BNB_OFFSET_CHARS,
                              "json.dumps writes absmax.mean() with as many digits as the float needs, which the weights "
                              "decide: the model counts this many, the run observes what it wrote (the rows name the difference)"))  # fmt: skip
    if backward:
        out.append(Definition("training peak = weights + gradients + states + masters + saved + recomputed + transient", None,
                              "an additive bound, as if every gradient existed at the busiest moment of the backward: each part "
                              "is observed, and the NumPy step's tracemalloc peak is held to it within an allowance for its "
                              "temporaries, not measured exactly"))  # fmt: skip
    return out


def conv_flops(products: list[tuple[int, int, int]]) -> int:
    return MULTIPLY_ADD.flops * sum(m * k * n for m, k, n in products)


def _grouped(matmuls: list[tuple[int, int, int]], axis: int = 0) -> tuple[int, int, int] | None:
    """The products of one stage as one (M, K, N): the experts' products summed along `axis`
    (the rows they split), the other two dimensions the same for all."""
    if not matmuls:
        return None
    others = {tuple(dim for i, dim in enumerate(m) if i != axis) for m in matmuls}
    if len(others) != 1:
        return matmuls[0]
    grouped = list(matmuls[0])
    grouped[axis] = sum(m[axis] for m in matmuls)
    return (grouped[0], grouped[1], grouped[2])


def excess_check(name: str, predicted: int, observed: int, excess: int, group: str = "memory") -> Check:
    """Bytes that must equal the model's but for `excess`, the characters nf4_dq's nested_offsets
    took beyond the model's count of them (observed from the JSON the run wrote)."""
    detail = f"observed − predicted must be {excess:+,}: the quant states' nested_offset digits beyond the model's count (see their rows)"
    return Check(group, name, predicted, observed, observed - predicted == excess, "tolerance", detail)


def compare_forward(
    pred: FFNReport, shape_pred: FFNReport, peak_pred: int, seen: ForwardSeen, absolute: int, chunk: int = 0, limit: int = 0
) -> list[Check]:
    """Every forward figure of `pred` against `seen`. `shape_pred` is the layer as run (its
    first chunk when the pass ran in chunks), `peak_pred` the peak of the pass as run, and
    `absolute` the peak's allowance on a small layer (peak_check)."""
    cfg = pred.config
    checks: list[Check] = []

    def exact(group: str, name: str, predicted: object, observed: object, how: str = OBSERVED, detail: str = "") -> None:
        checks.append(Check(group, name, predicted, observed, predicted == observed, detail=detail, how=how))

    exact("shape", "layer output shape", (cfg.batch, cfg.seq_len, cfg.d_model), seen.output_shape)
    by_name = {s.name: s for s in shape_pred.stages}
    where = " (first chunk)" if chunk else ""
    for stage in pred.stages:
        obs = seen.stages.get(stage.name, StageSeen())
        exact("shape", f"{stage.name} output shape{where}", by_name[stage.name].output_shape, obs.shape)
        exact("memory", f"{stage.name} output bytes{where}", by_name[stage.name].output_bytes, obs.nbytes)
        if stage.op == "input":
            continue
        observed_macs = sum(m * k * n for m, k, n in obs.matmuls)
        if stage.matmul:
            exact("flops", f"{stage.name} matmul (M, K, N)", stage.matmul, _grouped(list(obs.matmuls)))
            exact("flops", f"{stage.name} MACs", stage.macs, observed_macs)
            einsum = sum(obs.einsum_flops)
            checks.append(
                Check(
                    "flops",
                    f"{stage.name} matmul FLOPs (einsum_path, 4 s.f.)",
                    stage.matmul_flops,
                    f"{einsum:.4g}",
                    abs(einsum - stage.matmul_flops) <= 5e-4 * stage.matmul_flops,
                    "tolerance",
                    "numpy.einsum_path's own count of the products, independent of the convention",
                    OBSERVED,
                )
            )
            by_convention = MULTIPLY_ADD.flops * observed_macs
            exact("flops", f"{stage.name} matmul FLOPs ({MULTIPLY_ADD.flops} × MACs)", stage.matmul_flops, by_convention, CONVENTION_X_OBSERVED,
                  f"{MULTIPLY_ADD.flops} FLOPs per multiply-add (convention) × {observed_macs:,} MACs (observed)")  # fmt: skip
        if stage.elementwise_flops or obs.elementwise_flops:
            exact("flops", f"{stage.name} elementwise FLOPs (counted)", stage.elementwise_flops, obs.elementwise_flops, CONVENTION_X_OBSERVED,
                  counted_detail(obs.counted))  # fmt: skip
        exact("flops", f"{stage.name} FLOPs", stage.flops, MULTIPLY_ADD.flops * observed_macs + obs.elementwise_flops, CONVENTION_X_OBSERVED,
              "matmul FLOPs + elementwise FLOPs above")  # fmt: skip

    exact("params", "weight tensors", tuple(sorted(t.name for t in pred.weights)), tuple(sorted(seen.weights)))
    if seen.read is not None:  # a weight declared but read by no kernel holds parameters the layer never uses
        exact("params", "weight tensors read by the pass's kernels", tuple(sorted(t.name for t in pred.weights)), seen.read)
    for t in pred.weights:
        arr = seen.weights.get(t.name)
        exact("params", f"{t.name} {t.role} shape", t.shape, None if arr is None else arr.shape)
        exact("params", f"{t.name} parameters", t.elements, None if arr is None else arr.size)
        if arr is not None and arr.excess:
            checks.append(excess_check(f"{t.name} bytes", t.bytes, arr.nbytes, arr.excess))
        else:
            exact("memory", f"{t.name} bytes", t.bytes, None if arr is None else arr.nbytes)

    observed_macs = sum(m * k * n for o in seen.stages.values() for m, k, n in o.matmuls)
    totals = pred.totals
    exact("totals", "parameters", totals.params, sum(a.size for a in seen.weights.values()))
    excess = sum(a.excess for a in seen.weights.values())
    if excess:
        checks.append(excess_check("weight bytes", totals.weight_bytes, sum(a.nbytes for a in seen.weights.values()), excess, "totals"))
    else:
        exact("totals", "weight bytes", totals.weight_bytes, sum(a.nbytes for a in seen.weights.values()))
    exact("totals", "MACs", totals.macs, observed_macs)
    exact("totals", "FLOPs", totals.flops, seen.flops, CONVENTION_X_OBSERVED, "Σ the stages' FLOPs rows")
    # Per-token figures: the observed totals over the tokens the output has (its shape, observed).
    tokens = 1
    for size in seen.output_shape[:-1]:
        tokens *= size
    for name, predicted, observed_total in (
        ("FLOPs per token", totals.flops_per_token, seen.flops),
        ("matmul FLOPs per token", totals.matmul_flops_per_token, MULTIPLY_ADD.flops * observed_macs),
    ):
        per_token = observed_total // tokens if observed_total % tokens == 0 else None
        exact("totals", name, predicted, per_token, CONVENTION_X_OBSERVED, f"observed total ÷ {tokens:,} tokens of the output")
    if not chunk:  # every stage's output, none freed: the arrays the pass wrote, input included
        written = sum(s.nbytes for s in seen.stages.values())
        exact("totals", "activation bytes (every stage's output, none freed)", totals.activation_bytes, written)
    checks.extend(_active_checks(pred, seen.active))
    where = f"in chunks of {chunk:,} tokens" if chunk else ""
    checks.append(peak_check("peak bytes", peak_pred, seen.peak_bytes, seen.workspace_bytes, seen.routing_bytes, absolute, where))
    if chunk:
        checks.append(Check("totals", "peak stays under the memory limit", f"≤ {limit:,}", seen.peak_bytes, seen.peak_bytes <= limit, "tolerance",
                            "the whole tracemalloc peak, workspace included"))  # fmt: skip
    return checks


def active_per_token(pred: FFNReport, active: ActiveSeen) -> int | None:
    """The parameters one token read, when every token read the same (or, with capacity
    buffers, the most any token read: a dropped pair reads nothing); None when they differ."""
    if active.token_max is None:
        return active.shared
    if active.token_min != active.token_max and pred.config.expert_capacity is None:
        return None
    return active.shared + active.token_max


def _active_checks(pred: FFNReport, active: ActiveSeen | None) -> list[Check]:
    if active is None:
        return []
    totals = pred.totals
    if active.token_max is None:
        return [Check("totals", "active parameters (every array the pass read)", totals.active_params, active.shared,
                      totals.active_params == active.shared)]  # fmt: skip
    lo, hi = active.token_min, active.token_max
    assert lo is not None
    span = hi if lo == hi else f"{lo:,}–{hi:,}"
    capped = pred.config.expert_capacity is not None
    expert_ok = (hi if capped else lo if lo == hi else None) == totals.active_expert_params
    detail = f"{active.how}; tokens whose pairs a capacity buffer dropped read fewer" if capped else active.how
    per_token = active_per_token(pred, active)
    return [
        Check("params", "expert parameters (all experts' arrays)", totals.expert_params, active.expert_params,
              totals.expert_params == active.expert_params),
        Check("totals", "active expert parameters per token (its experts)", totals.active_expert_params, span,
              expert_ok, detail=detail),
        Check("totals", "active parameters per token (+ router, shared, norm)", totals.active_params,
              per_token if per_token is not None else f"{active.shared + lo:,}–{active.shared + hi:,}",
              per_token == totals.active_params and expert_ok, detail=detail),
    ]  # fmt: skip


def peak_check(name: str, predicted: int, peak: int, workspace: int, routing: int, absolute: int, where: str = "") -> Check:
    """The peak tracemalloc saw, less the narrow products' workspace (its arrays' .nbytes, made
    before the pass), against the prediction: the pass holds at least the tensors the model
    says are alive at once, and at most PEAK_TOLERANCE more — or, on a layer too small for that
    to cover them, `absolute` bytes (the interpreter's objects and the elementwise threads'
    blocks, memory.peak_allowance) plus the routing's integer arrays (their .nbytes), which the
    model does not count."""
    held = peak - workspace
    allowance = max(int(PEAK_TOLERANCE * predicted), absolute + routing)
    parts = [f"{(held - predicted) / predicted:+.2%}" if predicted else "n/a"]
    parts += [f"tracemalloc peak {peak:,}" + (f" − workspace {workspace:,} (.nbytes)" if workspace else "")]
    parts += [f"the routing's integer arrays, {routing:,} bytes (.nbytes), allowed for"] * bool(routing) + [where] * bool(where)
    parts += [f"allowed {predicted:,} to {predicted + allowance:,}"]
    rule = f"≥ predicted, ≤ +{PEAK_TOLERANCE:.0%} or +{absolute / 1024:,.0f} KiB"
    return Check("totals", f"{name} (tracemalloc; {rule})", predicted, held, predicted <= held <= predicted + allowance, "tolerance",
                 "; ".join(parts))  # fmt: skip


def compare_model(pred: FFNReport, stack: StackSeen | str, absolute: int, one: StackSeen | None = None) -> list[Check]:
    """The model totals (`--layers L`) against the L layers run; when they were not run, one
    info row saying why, and the model's sums against L × the one layer observed (`one`)."""
    model = pred.model
    if isinstance(stack, str):
        checks = [Check("totals", f"model totals ({model.layers} layers)", model.params, "not run", True, "info", stack)]
        if one is not None:
            for name, predicted, observed in (
                ("parameters", model.params, one.params),
                ("weight bytes", model.weight_bytes, one.weight_bytes),
                ("MACs", model.macs, one.macs),
                ("FLOPs", model.flops, one.flops),
            ):
                total = model.layers * observed
                if name == "weight bytes" and one.weight_excess:
                    checks.append(excess_check(f"model {name} = {model.layers} × the layer's", predicted, total,
                                                model.layers * one.weight_excess, "totals"))  # fmt: skip
                    continue
                checks.append(Check("totals", f"model {name} = {model.layers} × the layer's", predicted, total, predicted == total,
                                    detail="the layers not run: arithmetic on the one observed"))  # fmt: skip
        return checks
    checks = []
    how = f"{stack.layers} layer{'s' if stack.layers > 1 else ''}: {stack.how}"

    def exact(name: str, predicted: int, observed: int | None) -> None:
        checks.append(Check("totals", f"model {name}", predicted, observed, predicted == observed, detail=how))

    exact("layers run", model.layers, stack.layers)
    exact("parameters", model.params, stack.params)
    exact("active parameters per token", model.active_params, stack.active_params)
    if stack.weight_excess:
        checks.append(excess_check("model weight bytes", model.weight_bytes, stack.weight_bytes, stack.weight_excess, "totals"))
    else:
        exact("weight bytes", model.weight_bytes, stack.weight_bytes)
    exact("MACs", model.macs, stack.macs)
    exact("FLOPs", model.flops, stack.flops)
    if stack.peak_bytes is not None:
        checks.append(peak_check("model peak bytes", model.peak_bytes, stack.peak_bytes, stack.workspace_bytes, stack.routing_bytes, absolute, how))
    return checks


def observations(pred: FFNReport, seen: ForwardSeen) -> list[Check]:
    """What the run saw that is reported, not judged: the rows each expert computed, the
    fraction of exact zeros after the activation."""
    cfg = pred.config
    checks: list[Check] = []
    if seen.expert_rows is not None:
        rows = seen.expert_rows
        balanced = f"{cfg.tokens * cfg.top_k / cfg.experts:g} each if balanced"
        checks.append(
            Check("structure", "rows each expert computed (min / mean / max)", balanced,
                  f"{min(rows)} / {sum(rows) / len(rows):g} / {max(rows)}", True, "info")
        )  # fmt: skip
    if seen.zero_fraction is not None:
        label = cfg.nonlinearity.label
        checks.append(Check("structure", f"fraction of zeros after {label}", "", f"{seen.zero_fraction:.4f}", True, "info"))
    return checks
