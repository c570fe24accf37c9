"""Prediction against observation, as checks: pure comparison of numbers the model predicted
with numbers the NumPy run observed. Nothing here runs the layer or imports NumPy."""

from __future__ import annotations

from dataclasses import dataclass, field

from ffn_calc.model.conventions import FLOPS_PER_MAC
from ffn_calc.model.forward import FFNReport
from ffn_calc.verifier.report import Check

PEAK_TOLERANCE = 0.10


@dataclass(frozen=True)
class StageSeen:
    """What the run saw of one stage: its output's shape and bytes, the (M, K, N) of each
    product it computed, numpy.einsum_path's FLOP count of each, and its elementwise FLOPs."""

    shape: tuple[int, ...] = ()
    nbytes: int = 0
    matmuls: tuple[tuple[int, int, int], ...] = ()
    einsum_flops: tuple[float, ...] = ()
    elementwise_flops: int = 0


@dataclass(frozen=True)
class ArraySeen:
    """A weight array as the run made it."""

    shape: tuple[int, ...]
    size: int
    nbytes: int


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
    flops: int = field(init=False)

    def __post_init__(self) -> None:
        macs = sum(m * k * n for s in self.stages.values() for m, k, n in s.matmuls)
        object.__setattr__(self, "flops", FLOPS_PER_MAC * macs + sum(s.elementwise_flops for s in self.stages.values()))


def conv_flops(products: list[tuple[int, int, int]]) -> int:
    return FLOPS_PER_MAC * sum(m * k * n for m, k, n in products)


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


def compare_forward(
    pred: FFNReport, shape_pred: FFNReport, peak_pred: int, seen: ForwardSeen, scratch: int, chunk: int = 0, limit: int = 0
) -> list[Check]:
    """Every forward figure of `pred` against `seen`. `shape_pred` is the layer as run (its
    first chunk when the pass ran in chunks), `peak_pred` the peak of the pass as run, and
    `scratch` the allowance for what the pass holds beyond the tensors the model counts."""
    cfg = pred.config
    checks: list[Check] = []

    def exact(group: str, name: str, predicted: object, observed: object) -> None:
        checks.append(Check(group, name, predicted, observed, predicted == observed))

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
                )
            )
        exact("flops", f"{stage.name} FLOPs", stage.flops, FLOPS_PER_MAC * observed_macs + obs.elementwise_flops)

    exact("params", "weight tensors", tuple(sorted(t.name for t in pred.weights)), tuple(sorted(seen.weights)))
    for t in pred.weights:
        arr = seen.weights.get(t.name)
        exact("params", f"{t.name} {t.role} shape", t.shape, None if arr is None else arr.shape)
        exact("params", f"{t.name} parameters", t.elements, None if arr is None else arr.size)
        exact("memory", f"{t.name} bytes", t.bytes, None if arr is None else arr.nbytes)

    observed_macs = sum(m * k * n for o in seen.stages.values() for m, k, n in o.matmuls)
    totals = pred.totals
    exact("totals", "parameters", totals.params, sum(a.size for a in seen.weights.values()))
    exact("totals", "weight bytes", totals.weight_bytes, sum(a.nbytes for a in seen.weights.values()))
    exact("totals", "MACs", totals.macs, observed_macs)
    exact("totals", "FLOPs", totals.flops, seen.flops)
    allowance = max(PEAK_TOLERANCE * peak_pred, scratch)
    how = f"in chunks of {chunk:,} tokens, " if chunk else ""
    observed_peak = seen.peak_bytes
    checks.append(
        Check(
            "totals",
            f"peak bytes ({how}tracemalloc; within {PEAK_TOLERANCE:.0%} or {scratch / 2**20:.3g} MiB scratch)",
            peak_pred,
            observed_peak,
            abs(observed_peak - peak_pred) <= allowance,
            "tolerance",
            f"{(observed_peak - peak_pred) / peak_pred:+.2%}",
        )
    )
    if chunk:
        checks.append(Check("totals", "peak stays under the memory limit", f"≤ {limit:,}", observed_peak, observed_peak <= limit, "tolerance"))
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
