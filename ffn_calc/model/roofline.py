"""Hardware and the roofline: per-GEMM arithmetic intensity, compute- or memory-bound, and a
lower-bound time, for prefill (every token of the input) and decode (one token per sequence).

Standard library only. Peak rates are the vendors' dense (no sparsity) datasheet figures.
A GEMM (M, K)·(K, N) moves at least its operands and its result once: b·(M·K + K·N + M·N)
bytes for b bytes per element, does 2·M·K·N FLOPs, and takes at least
max(FLOPs / peak, bytes / bandwidth). The ridge point is peak / bandwidth (FLOP per byte).
With --weight-dtype the K·N term is the bytes of the tensors the weight format stores
(weight_formats.py). A weight-only format (GPTQ, AWQ, NF4, MXFP4, a plain float8) is dequantized
on the fly: its products compute in --dtype, at --dtype's peak, and read --dtype inputs. A format
that quantizes each product's input too computes in its own type at that type's peak — FP8 for
fp8_block and fp8_row (W8A8, as DeepSeek-V3 and fbgemm run them), FP4 for nvfp4 (W4A4) — and the
product reads its input as the format lays it out (FP8 or E2M1 values with their scales): the
M·K term is M × the format's bytes per row. The router and the shared-expert gate, never
quantized, stay at --dtype's peak. `peak_dtype` names the peak used: the roofline's, for the FFN's
products, and each GEMM's.

A routed-expert GEMM (stage `expert_…`, M = T·k rows of T tokens over E experts, top-k) reads
the weights of every expert its rows reach, each in full, and each expert multiplies only its
own rows. Two routing assumptions, both given:

- uniform: each token picks k distinct experts uniformly, independently of the others, so an
  expert is missed by one token with probability 1 − k/E and the expected number of distinct
  experts touched is E·(1 − (1 − k/E)^T) — a float (the power is a float power), capped at
  min(E, T·k) against rounding; rows per touched expert T·k / that (a ratio of expectations);
  bytes are floats.
- worst case (for weight traffic): min(E, T·k) experts touched, the most the T·k rows can
  reach, so the most weight bytes and the longest time; the rows spread as evenly as possible
  (each touched expert floor or ceil of M / touched). Exact integers. (Load imbalance — every
  row on k experts — is the opposite case for traffic: fewest bytes, one expert's longest GEMM.)

With a capacity factor every expert's padded buffer of C rows is multiplied: all E experts are
read under both assumptions, C rows each. Bytes = b·(M·K + touched·K·N + M·N); FLOPs stay
2·M·K·N. The crossover is per expert: the rows one expert's GEMM needs to reach the ridge
point (the dense formula with M = rows per expert), and the routed tokens T from which uniform
routing gives each touched expert that many rows. An expert GEMM's top-level figures (and a
phase's) are the worst case's; the uniform ones sit beside them.

With expert parallelism (`ep` N, expert_parallel.py) every figure is one rank's: its T =
tokens / N tokens (decode: BATCH / N sequences), the replicated router and shared experts, and
its E/N experts, which receive T·k rows (balanced routing). Their rows come from every rank's
tokens, N·T in all, so under uniform routing (E/N)·(1 − (1 − k/E)^(N·T)) of them are touched,
and in the worst case min(E/N, T·k). Each phase lists its forward all-to-alls (dispatch and
combine, bytes each rank sends) beside the GEMMs; their time needs the interconnect's bandwidth
and is not in the totals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ffn_calc.errors import ConfigError
from ffn_calc.json_fields import JsonForm, json_key
from ffn_calc.model.conventions import MULTIPLY_ADD
from ffn_calc.model.expert_parallel import expert_parallel
from ffn_calc.model.forward import FFNReport, analyze
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.parallel import Collective
from ffn_calc.model.structure import EXPERT
from ffn_calc.schemas import schema


@dataclass(frozen=True)
class GPU(JsonForm):
    """Dense peak FLOP/s per dtype (TFLOP/s, or TOPS for int8) and memory bandwidth (GB/s),
    from the vendor's datasheet (`source`). A dtype the datasheet gives no peak for is absent."""

    name: str
    tflops: dict[str, float]
    bandwidth_gbs: float
    source: str


def peak_flops(gpu: GPU, dtype: str, argument: str = "--dtype") -> float:
    """The dense peak of `gpu` for `dtype`, in FLOP/s; ConfigError (naming `argument`, the
    option that chose the dtype) when its datasheet gives none."""
    if dtype not in gpu.tflops:
        has = ", ".join(gpu.tflops)
        raise ConfigError(argument, f"the {gpu.name} datasheet gives no dense {dtype} peak; choose one of {has}")
    return gpu.tflops[dtype] * 1e12


def product_peak(gpu: GPU, cfg: FFNConfig, dtype: str | None = None) -> float:
    """The dense peak, FLOP/s, of products computing in `dtype` (default: the FFN's products,
    cfg.product_dtype); ConfigError naming the option that chose it when the datasheet has none."""
    dtype = dtype or cfg.product_dtype
    if dtype != cfg.dtype and dtype not in gpu.tflops:
        raise ConfigError("--weight-dtype", f"{cfg.weight_dtype} products compute in {dtype} (their inputs are quantized too) and the "
                          f"{gpu.name} datasheet gives no dense {dtype} peak; choose a GPU that has one, or a weight-only format")  # fmt: skip
    return peak_flops(gpu, dtype)


UNIFORM = "uniform"
WORST_CASE = "worst_case"


@dataclass(frozen=True)
class ExpertSpread:
    """A routed-expert GEMM under one routing assumption. Integers in the worst case (exact);
    floats under uniform routing (expectations). Bytes in the config's dtype, times in seconds."""

    experts_touched: float | int  # experts whose weights are read, each in full
    rows_per_expert: float  # rows each touched expert multiplies: routed_rows / experts_touched
    weight_bytes: float | int  # experts_touched × K·N × bytes/element
    bytes: float | int  # activations in (M·K) + weights + activations out (M·N), × bytes/element
    intensity: float  # FLOP/byte
    bound: str  # compute | memory
    seconds: float  # max(FLOPs / peak, bytes / bandwidth)


@dataclass(frozen=True)
class ExpertRouting:
    """How a routed-expert GEMM's rows spread over the experts: both assumptions side by side."""

    experts: int  # E
    top_k: int  # k, experts per token
    routed_tokens: int  # T, the tokens of the phase (with --ep, every rank's: their rows reach each rank)
    routed_rows: int  # M, all experts' rows: T·k (dropless) or E·capacity
    expert_weight_bytes: int  # one expert's K·N matrix, bytes
    ridge_rows_per_expert: int | None  # rows one expert needs to be compute-bound (None: never)
    ridge_tokens_uniform: int | None  # least T whose uniform routing gives that many rows per expert
    uniform: ExpertSpread
    worst_case: ExpertSpread
    experts_on_rank: int = 0  # the experts this GEMM runs: E, or E/N with --ep N


@dataclass(frozen=True)
class GemmRoof:
    """One GEMM on the roofline. Times in seconds (lower bounds); intensity in FLOP/byte.

    For a routed-expert GEMM, `bytes`, `intensity`, `bound` and `seconds` are the worst case's,
    `ridge_tokens` is per expert (rows of one expert), and `routing` holds both assumptions."""

    stage: str
    mkn: tuple[int, int, int]
    flops: int
    bytes: int
    intensity: float
    bound: str  # compute | memory
    seconds: float
    ridge_tokens: int | None  # M from which this GEMM is compute-bound (None: never); per expert for experts
    routing: ExpertRouting | None = None  # None for a dense GEMM (router and shared experts included)
    peak_dtype: str = ""  # the dtype whose dense peak bounds it: what the product computes in


@dataclass(frozen=True)
class PhaseTraffic:
    """A phase's totals with its expert GEMMs under one routing assumption (dense GEMMs as they are)."""

    bytes: float | int
    intensity: float  # FLOP/byte
    seconds: float
    bound: str


@dataclass(frozen=True)
class Phase:
    """One phase's GEMMs and totals; with routed experts, the totals are the worst case's."""

    name: str  # prefill | decode
    tokens: int
    gemms: tuple[GemmRoof, ...]
    flops: int
    bytes: int
    intensity: float
    seconds: float
    bound: str
    uniform: PhaseTraffic | None = None  # None for a dense layer
    worst_case: PhaseTraffic | None = None  # = the totals above; None for a dense layer
    collectives: tuple[Collective, ...] = ()  # with --ep: the forward all-to-alls, bytes each rank sends
    json_order = ("name", "tokens", "flops", "bytes", "intensity", "seconds", "bound", "uniform", "worst_case", "gemms", "collectives")


@dataclass(frozen=True)
class Roofline(JsonForm):
    """Prefill and decode of `report`'s layer (its prefill shapes) on `gpu`."""

    # JSON (`roofline -f json`): the layer's config, and under gpu the peak, its dtype and the bandwidth used.
    report: FFNReport = field(metadata=json_key("config", get="report.config"))
    gpu: GPU = field(metadata=json_key(value=lambda r: {"name": r.gpu.name, "source": r.gpu.source, "peak_flops_per_s": r.peak_flops,
                                                          "peak_dtype": r.peak_dtype, "bandwidth_bytes_per_s": r.bandwidth}))  # fmt: skip
    peak_flops: float = field(metadata=json_key(omit=True))  # FLOP/s of the FFN's products: the dense peak for `peak_dtype`
    bandwidth: float = field(metadata=json_key(omit=True))  # bytes/s
    ridge: float = field(metadata=json_key(unit="flops_per_byte"))  # FLOP per byte, for that peak
    phases: tuple[Phase, ...]
    expert_ranks: int = 1  # --ep: every figure is one rank's
    peak_dtype: str = field(default="", metadata=json_key(omit=True))  # what the FFN's products compute in (FFNConfig.product_dtype)
    json_schema = schema("roofline")
    json_order = ("config", "gpu", "ridge_flops_per_byte", "expert_ranks", "phases")


def _ridge_tokens(k: int, n: int, nb: int, ridge: float, weight_bytes: int | None = None, in_row: int | None = None) -> int | None:
    """The least M with 2·M·K·N / (M·(a + nb·N) + W) ≥ ridge, or None if no M reaches it;
    W, the weight matrix's bytes, is nb·K·N unless --weight-dtype stores it apart; a, the bytes
    of one input row, nb·K unless the format quantizes the input."""
    w = nb * k * n if weight_bytes is None else weight_bytes
    a = nb * k if in_row is None else in_row
    denominator = MULTIPLY_ADD.flops * k * n - ridge * (a + nb * n)
    if denominator <= 0:
        return None
    return math.ceil(ridge * w / denominator)


def expected_experts_touched(tokens: int, experts: int, top_k: int) -> float:
    """E·(1 − (1 − k/E)^T): the expected distinct experts T tokens reach when each picks k of E
    uniformly and independently. A float (float power), capped at min(E, T·k), which it never
    exceeds but for rounding."""
    value = experts * (1.0 - (1.0 - top_k / experts) ** tokens)
    return min(value, float(worst_case_experts_touched(tokens, experts, top_k)))


def worst_case_experts_touched(tokens: int, experts: int, top_k: int) -> int:
    """min(E, T·k): the most experts T tokens' T·k routed rows can reach (exact)."""
    return min(experts, tokens * top_k)


def uniform_rows_per_expert(tokens: int, experts: int, top_k: int) -> float:
    """T·k / E·(1 − (1 − k/E)^T): rows per touched expert under uniform routing (a float)."""
    return tokens * top_k / expected_experts_touched(tokens, experts, top_k) if tokens else 0.0


def _uniform_ridge_tokens(rows: int | None, cfg: FFNConfig) -> int | None:
    """The least T from which each touched expert gets at least `rows` rows: under uniform
    routing (rows per expert rise with T: at T = 1 they are 1, and never below T·k/E), or with a
    capacity factor, the least T whose buffers hold that many rows."""
    if rows is None:
        return None
    e, k = cfg.experts, cfg.top_k

    def enough(t: int) -> bool:
        if cfg.expert_capacity is None:
            return uniform_rows_per_expert(t, e, k) >= rows
        return (replace(cfg, batch=t, seq_len=1).expert_capacity or 0) >= rows

    lo, hi = 1, max(1, math.ceil(rows * e / k))  # dropless: rows per expert ≥ T·k/E, so ≥ rows at hi
    while not enough(hi):
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid + 1, hi)
    return lo


def _spread(
    touched: float | int, mkn: tuple[int, int, int], flops: int, row: int, expert_bytes: int, peak: float, bandwidth: float, ridge: float
) -> ExpertSpread:
    """`row`: the bytes of one row's input and output."""
    m, k, n = mkn
    weights = touched * expert_bytes
    moved = m * row + weights
    intensity = flops / moved
    return ExpertSpread(touched, m / touched if touched else 0.0, weights, moved, intensity, "compute" if intensity >= ridge else "memory",
                        max(flops / peak, moved / bandwidth))  # fmt: skip


def _expert_gemm(
    stage: str,
    mkn: tuple[int, int, int],
    flops: int,
    cfg: FFNConfig,
    peak: float,
    bandwidth: float,
    ridge: float,
    ep: int = 1,
    expert_bytes: int | None = None,
    in_row: int | None = None,
) -> GemmRoof:
    """A routed-expert GEMM: per-expert rows and the weights of every expert reached (each
    `expert_bytes`: nb·K·N, or as --weight-dtype stores it; each input row `in_row` bytes, nb·K
    unless the format quantizes it); with `ep` N, of the rank's E/N experts, whose rows come from
    all N ranks' tokens."""
    m, k, n = mkn
    nb, e, t = cfg.dtype_bytes, cfg.experts, cfg.tokens * ep
    local = e // ep
    eb = nb * k * n if expert_bytes is None else expert_bytes
    row = (nb * k if in_row is None else in_row) + nb * n
    if cfg.expert_capacity is None:
        touched = expected_experts_touched(t, e, cfg.top_k)
        if ep > 1:  # each expert is touched with the same probability, wherever it lives
            touched = touched * local / e
        uniform = _spread(touched, mkn, flops, row, eb, peak, bandwidth, ridge)
        worst = _spread(min(local, m), mkn, flops, row, eb, peak, bandwidth, ridge)  # min(E, T·k) without --ep
    else:  # every expert's padded buffer runs, whatever the routing
        uniform = worst = _spread(e, mkn, flops, row, eb, peak, bandwidth, ridge)
    ridge_rows = _ridge_tokens(k, n, nb, ridge, eb, in_row)
    global_cfg = replace(cfg, batch=t, seq_len=1) if ep > 1 else cfg
    routing = ExpertRouting(e, cfg.top_k, t, m, eb, ridge_rows, _uniform_ridge_tokens(ridge_rows, global_cfg), uniform, worst, local)
    assert isinstance(worst.bytes, int)
    return GemmRoof(stage, mkn, flops, worst.bytes, worst.intensity, worst.bound, worst.seconds, ridge_rows, routing, cfg.product_dtype)


def _totals(flops: int, moved: float, seconds: float, ridge: float) -> PhaseTraffic:
    intensity = flops / moved if moved else 0.0
    return PhaseTraffic(moved, intensity, seconds, "compute" if intensity >= ridge else "memory")


def _phase(name: str, cfg: FFNConfig, gpu: GPU, bandwidth: float, ep: int = 1) -> Phase:
    collectives: tuple[Collective, ...] = ()
    if ep > 1:
        plan = expert_parallel(cfg, ep)
        report = plan.shard(analyze(plan.per_rank))
        cfg = plan.per_rank
        collectives = tuple(c for c in plan.all_to_all if c.phase == "forward")
    else:
        report = analyze(cfg)
    nb = cfg.dtype_bytes
    gemms = []
    for s in report.stages:
        if not s.matmul:
            continue
        matrix = next(t for t in s.weights if t.role == "weight")  # its bytes: nb·K·N, or packed (--weight-dtype)
        m, k, n = s.matmul
        # A product whose weight a format stores computes in cfg.product_dtype; the router's, in --dtype.
        dtype = cfg.product_dtype if matrix.packing is not None else cfg.dtype
        peak = product_peak(gpu, cfg, dtype)
        ridge = peak / bandwidth
        in_row = matrix.packing.input_row_bytes(k) if matrix.packing is not None else None
        if s.name.startswith(EXPERT):
            gemms.append(_expert_gemm(s.name, s.matmul, s.matmul_flops, cfg, peak, bandwidth, ridge, ep, matrix.bytes // matrix.experts, in_row))
            continue
        a = nb * k if in_row is None else in_row  # one input row's bytes
        moved = m * (a + nb * n) + matrix.bytes
        intensity = s.matmul_flops / moved
        seconds = max(s.matmul_flops / peak, moved / bandwidth)
        bound = "compute" if intensity >= ridge else "memory"
        gemms.append(GemmRoof(s.name, s.matmul, s.matmul_flops, moved, intensity, bound, seconds,
                              _ridge_tokens(k, n, nb, ridge, matrix.bytes, in_row), None, dtype))  # fmt: skip
    ridge = product_peak(gpu, cfg) / bandwidth
    flops = sum(g.flops for g in gemms)
    moved = sum(g.bytes for g in gemms)
    worst = _totals(flops, moved, sum(g.seconds for g in gemms), ridge)
    uniform = None
    if any(g.routing for g in gemms):
        spreads = [g.routing.uniform if g.routing else g for g in gemms]
        uniform = _totals(flops, sum(x.bytes for x in spreads), sum(x.seconds for x in spreads), ridge)
    return Phase(name, cfg.tokens, tuple(gemms), flops, moved, worst.intensity, worst.seconds, worst.bound,
                 uniform, worst if uniform else None, collectives)  # fmt: skip


def roofline(cfg: FFNConfig, gpu: GPU, ep: int = 1) -> Roofline:
    """Prefill (batch × seq_len tokens) and decode (one new token per sequence) on `gpu`; with
    `ep` > 1, of one expert-parallel rank (its tokens and its E/N experts)."""
    peak = product_peak(gpu, cfg)
    bandwidth = gpu.bandwidth_gbs * 1e9
    ridge = peak / bandwidth
    if ep > 1 and cfg.batch % ep:
        raise ConfigError("--ep", f"decode's {cfg.batch} tokens (one per sequence) do not divide over {ep} ranks; pick a BATCH that --ep divides")
    prefill = _phase("prefill", cfg, gpu, bandwidth, ep)
    decode = _phase("decode", replace(cfg, seq_len=1), gpu, bandwidth, ep)
    if ep > 1:
        plan = expert_parallel(cfg, ep)
        report = plan.shard(analyze(plan.per_rank))
    else:
        report = analyze(cfg)
    return Roofline(report, gpu, peak, bandwidth, ridge, (prefill, decode), ep, cfg.product_dtype)
