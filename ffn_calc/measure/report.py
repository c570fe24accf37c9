"""What `roofline --measure` found: the measured device, each GEMM's measured time beside its
bound, and the knee sweep; with the JSON form (schema ffn-calc/roofline-measured/1), which is the
roofline's own JSON with the measurements added. Standard library only.

Units: seconds, FLOP/s, bytes/s (decimal: 1 GB/s = 10⁹ bytes/s). A GEMM's bound is the
roofline's lower bound, max(FLOPs / peak, bytes / bandwidth), drawn with the MEASURED peak and
bandwidth (no datasheet); its measured time is the median of its timed calls; achieved rates
are its FLOPs and its bytes (the roofline's count: operands and result once) over that median;
achieved ÷ bound is bound / measured, 1 on the roofline, below 1 under it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ffn_calc.measure.knee import KNEE_DEFINITION, KneeEstimate
from ffn_calc.model.roofline import GPU, Roofline
from ffn_calc.schemas import schema

MEASURED_SCHEMA = schema("roofline-measured")


@dataclass(frozen=True)
class Timed:
    """How a figure was timed: calls timed after `warmups` warm-up calls; seconds."""

    calls: int
    warmups: int
    median_seconds: float
    best_seconds: float


@dataclass(frozen=True)
class GemmRate:
    """One GEMM timed for the peak: its shape and its best rate (FLOP/s, from its best call)."""

    what: str  # square | layer
    mkn: tuple[int, int, int]
    flops: int
    timed: Timed
    best_flops_per_s: float


@dataclass(frozen=True)
class StreamRate:
    """One STREAM kernel: bytes per call as counted in `formula`, the best call's rate (bytes/s)."""

    kernel: str  # copy | triad
    formula: str
    bytes_per_call: int
    timed: Timed
    best_bytes_per_s: float


@dataclass(frozen=True)
class MeasuredDevice:
    """A device as measured, in place of a datasheet: the best matmul rate for `dtype` (the best
    call of every GEMM in `gemms`) and the memory bandwidth (the best STREAM kernel)."""

    device: str  # cpu | cuda
    name: str  # the processor or GPU
    library: str  # what ran the GEMMs: BLAS or cuBLAS, version, kernels, threads, the variables that steer it
    threads: int | None
    dtype: str
    peak_flops_per_s: float
    bandwidth_bytes_per_s: float
    peak_from: str  # which GEMM gave the peak
    gemms: tuple[GemmRate, ...]
    stream: tuple[StreamRate, ...]
    stream_array_bytes: int  # each STREAM array
    last_level_cache_bytes: int | None  # as the device reports it (a virtual machine may report its host's)
    measured_at: str  # ISO 8601, UTC
    load_average: float | None  # the 1-minute load average when the measurement began (other processes share the cores)

    def gpu(self) -> GPU:
        """The roofline's hardware record: these two figures, for this dtype only."""
        source = f"measured on this machine {self.measured_at}, no datasheet: {self.library}"
        return GPU(f"measured {self.device}", {self.dtype: self.peak_flops_per_s / 1e12}, self.bandwidth_bytes_per_s / 1e9, source)


@dataclass(frozen=True)
class GemmTiming:
    """One GEMM of the layer (or of the sweep) timed beside its roofline bound."""

    phase: str  # prefill | decode | sweep
    stage: str
    mkn: tuple[int, int, int]
    flops: int
    bytes: int  # the roofline's count: b·(M·K + K·N + M·N)
    bound: str  # compute | memory, against the measured ridge
    bound_seconds: float
    measured_seconds: float  # the median of the timed calls
    timed: Timed
    copies: int  # operand sets the calls rotate through (more than 1 when one set fits in the caches)
    achieved_flops_per_s: float = field(init=False)
    achieved_bytes_per_s: float = field(init=False)
    achieved_over_bound: float = field(init=False)  # bound_seconds / measured_seconds

    def __post_init__(self) -> None:
        object.__setattr__(self, "achieved_flops_per_s", self.flops / self.measured_seconds)
        object.__setattr__(self, "achieved_bytes_per_s", self.bytes / self.measured_seconds)
        object.__setattr__(self, "achieved_over_bound", self.bound_seconds / self.measured_seconds)

    def figures(self) -> dict[str, Any]:
        """The measured figures, for JSON beside the roofline's own of this GEMM."""
        return {
            "bound_seconds": self.bound_seconds, "measured_seconds": self.measured_seconds,
            "achieved_flops_per_s": self.achieved_flops_per_s, "achieved_bytes_per_s": self.achieved_bytes_per_s,
            "achieved_over_bound": self.achieved_over_bound, "timed": asdict(self.timed), "copies": self.copies,
        }  # fmt: skip


@dataclass(frozen=True)
class Knee:
    """The sweep of one GEMM's M across its predicted crossover, and the measured knee."""

    stage: str
    k: int
    n: int
    predicted_m: int | None  # the roofline's crossover, from the measured peak and bandwidth (None: never compute-bound)
    estimate: KneeEstimate  # on the measured times
    predicted: KneeEstimate  # the same construction on the bounds of the swept M
    points: tuple[GemmTiming, ...]
    definition: str = KNEE_DEFINITION

    @property
    def ratio(self) -> float | None:
        """The measured knee ÷ the predicted one (the same construction on the bounds)."""
        if self.estimate.m is None or not self.predicted.m:
            return None
        return self.estimate.m / self.predicted.m


@dataclass(frozen=True)
class MeasuredRoofline:
    """The roofline drawn with the measured device, and the layer's GEMMs timed on it."""

    roofline: Roofline
    device: MeasuredDevice
    gemms: tuple[GemmTiming, ...]  # prefill's, then decode's, in the roofline's order
    knee: Knee
    budget_seconds: float  # the time the repeats were fitted into
    seconds: float  # the whole measurement took

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (schema ffn-calc/roofline-measured/1): the roofline's, its `gpu` the
        measured device, with `measured_peak_flops_per_s` and `measured_bandwidth_bytes_per_s`,
        every GEMM's measured figures beside its own, the device's measurement and the knee."""
        base = self.roofline.to_dict()
        timings = iter(self.gemms)
        for phase in base["phases"]:
            for gemm in phase["gemms"]:
                gemm.update(next(timings).figures())
        d = self.device
        device = {k: v for k, v in asdict(d).items() if k not in ("gemms", "stream", "peak_flops_per_s", "bandwidth_bytes_per_s")}
        device["gemms"] = [{**asdict(g), "mkn": list(g.mkn)} for g in d.gemms]
        device["stream"] = [asdict(s) for s in d.stream]
        k = self.knee
        return {
            "schema": MEASURED_SCHEMA,
            "config": base["config"],
            "gpu": base["gpu"],
            "measured_peak_flops_per_s": d.peak_flops_per_s,
            "measured_bandwidth_bytes_per_s": d.bandwidth_bytes_per_s,
            "measured_device": device,
            "ridge_flops_per_byte": base["ridge_flops_per_byte"],
            "expert_ranks": base["expert_ranks"],
            "phases": base["phases"],
            "knee": {
                "stage": k.stage,
                "k": k.k,
                "n": k.n,
                "predicted_m": k.predicted_m,
                "predicted_knee_m": k.predicted.m,
                "measured_m": k.estimate.m,
                "measured_over_predicted": k.ratio,
                "inside_sweep": k.estimate.inside,
                "definition": k.definition,
                "flat_m": k.estimate.flat_m,
                "flat_seconds": k.estimate.flat_seconds,
                "last_m": k.estimate.last_m,
                "last_seconds": k.estimate.last_seconds,
                "points": [{"m": p.mkn[0], "flops": p.flops, "bytes": p.bytes, "bound": p.bound, **p.figures()} for p in k.points],
            },
            "budget_seconds": self.budget_seconds,
            "measure_seconds": self.seconds,
        }
