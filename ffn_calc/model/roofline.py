"""Hardware and the roofline: per-GEMM arithmetic intensity, compute- or memory-bound, and a
lower-bound time, for prefill (every token of the input) and decode (one token per sequence).

Standard library only. Peak rates are the vendors' dense (no sparsity) datasheet figures.
A GEMM (M, K)·(K, N) moves at least its operands and its result once: b·(M·K + K·N + M·N)
bytes for b bytes per element, does 2·M·K·N FLOPs, and takes at least
max(FLOPs / peak, bytes / bandwidth). The ridge point is peak / bandwidth (FLOP per byte).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from ffn_calc.model.dtypes import DTYPES
from ffn_calc.model.errors import ConfigError
from ffn_calc.model.forward import FFNReport, analyze
from ffn_calc.model.layer import FFNConfig

ROOFLINE_SCHEMA = "ffn-calc/roofline/1"


@dataclass(frozen=True)
class GPU:
    """Dense peak FLOP/s per dtype (TFLOP/s, or TOPS for int8) and memory bandwidth (GB/s)."""

    name: str
    tflops: dict[str, float]
    bandwidth_gbs: float
    source: str


_A100 = {"float64": 19.5, "float32": 19.5, "bfloat16": 312.0, "float16": 312.0, "int8": 624.0}
_H100_SXM = {"float64": 67.0, "float32": 67.0, "bfloat16": 989.0, "float16": 989.0, "int8": 1979.0}
_H100_PCIE = {"float64": 51.0, "float32": 51.0, "bfloat16": 756.0, "float16": 756.0, "int8": 1513.0}

GPUS: dict[str, GPU] = {
    g.name: g
    for g in (
        GPU("a100-40gb", _A100, 1555.0, "NVIDIA A100 Tensor Core GPU datasheet (2021), SXM 40 GB: 312 TFLOP/s BF16/FP16 dense, 1,555 GB/s"),
        GPU("a100-80gb", _A100, 2039.0, "NVIDIA A100 datasheet (2021), SXM 80 GB: 312 TFLOP/s BF16/FP16 dense, 2,039 GB/s"),
        GPU("h100-sxm", _H100_SXM, 3350.0, "NVIDIA H100 Tensor Core GPU datasheet, SXM: 989 TFLOP/s BF16/FP16 dense, 3.35 TB/s"),
        GPU("h100-pcie", _H100_PCIE, 2000.0, "NVIDIA H100 datasheet, PCIe: 756 TFLOP/s BF16/FP16 dense, 2 TB/s"),
        GPU("h200", _H100_SXM, 4800.0, "NVIDIA H200 Tensor Core GPU product brief: H100 SXM compute, 4.8 TB/s HBM3e"),
    )
}  # fmt: skip
# float32 is the FP32 rate (PyTorch leaves TF32 off for matmuls by default); float64 the FP64 tensor-core rate.


def pick_gpu(name: str | None = None, peak_tflops: float | None = None, bandwidth_gbs: float | None = None) -> GPU:
    """A GPU preset by name (case-insensitive), or a custom one from both of its figures."""
    if (peak_tflops is None) != (bandwidth_gbs is None) or (name is None and peak_tflops is None):
        raise ConfigError("--gpu", f"name a GPU ({', '.join(GPUS)}) or give both --peak-tflops and --bandwidth-gbs")
    if name is not None and peak_tflops is not None:
        raise ConfigError("--gpu", "give a GPU name or a custom --peak-tflops/--bandwidth-gbs, not both")
    if name is None:
        return custom_gpu(peak_tflops, bandwidth_gbs)  # type: ignore[arg-type]
    if name.lower() not in GPUS:
        raise ConfigError("--gpu", f"unknown GPU {name!r}; choose one of {', '.join(GPUS)}")
    return GPUS[name.lower()]


def custom_gpu(peak_tflops: float, bandwidth_gbs: float) -> GPU:
    for name, value in (("--peak-tflops", peak_tflops), ("--bandwidth-gbs", bandwidth_gbs)):
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(name, f"must be a positive number, got {value}")
    return GPU("custom", dict.fromkeys(DTYPES, peak_tflops), bandwidth_gbs, "given on the command line")


@dataclass(frozen=True)
class GemmRoof:
    """One GEMM on the roofline. Times in seconds (lower bounds); intensity in FLOP/byte."""

    stage: str
    mkn: tuple[int, int, int]
    flops: int
    bytes: int
    intensity: float
    bound: str  # compute | memory
    seconds: float
    ridge_tokens: int | None  # M from which this GEMM is compute-bound (None: never)


@dataclass(frozen=True)
class Phase:
    name: str  # prefill | decode
    tokens: int
    gemms: tuple[GemmRoof, ...]
    flops: int
    bytes: int
    intensity: float
    seconds: float
    bound: str


@dataclass(frozen=True)
class Roofline:
    """Prefill and decode of `report`'s layer (its prefill shapes) on `gpu`."""

    report: FFNReport
    gpu: GPU
    peak_flops: float  # FLOP/s for the config's dtype
    bandwidth: float  # bytes/s
    ridge: float  # FLOP per byte
    phases: tuple[Phase, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as `roofline -f json` prints it (schema ffn-calc/roofline/1)."""
        g = self.gpu
        return {
            "schema": ROOFLINE_SCHEMA,
            "config": self.report.config.to_dict(),
            "gpu": {"name": g.name, "source": g.source, "peak_flops_per_s": self.peak_flops, "bandwidth_bytes_per_s": self.bandwidth},
            "ridge_flops_per_byte": self.ridge,
            "phases": [
                {**{k: v for k, v in asdict(p).items() if k != "gemms"}, "gemms": [{**asdict(gemm), "mkn": list(gemm.mkn)} for gemm in p.gemms]}
                for p in self.phases
            ],
        }


def _ridge_tokens(k: int, n: int, nb: int, ridge: float) -> int | None:
    """The least M with 2·M·K·N / (nb·(M·K + K·N + M·N)) ≥ ridge, or None if no M reaches it."""
    denominator = 2 * k * n - ridge * nb * (k + n)
    if denominator <= 0:
        return None
    return math.ceil(ridge * nb * k * n / denominator)


def _phase(name: str, cfg: FFNConfig, peak: float, bandwidth: float, ridge: float) -> Phase:
    report = analyze(cfg)
    nb = cfg.dtype_bytes
    gemms = []
    for s in report.stages:
        if not s.matmul:
            continue
        m, k, n = s.matmul
        moved = nb * (m * k + k * n + m * n)
        intensity = s.matmul_flops / moved
        seconds = max(s.matmul_flops / peak, moved / bandwidth)
        bound = "compute" if intensity >= ridge else "memory"
        gemms.append(GemmRoof(s.name, s.matmul, s.matmul_flops, moved, intensity, bound, seconds, _ridge_tokens(k, n, nb, ridge)))
    flops = sum(g.flops for g in gemms)
    moved = sum(g.bytes for g in gemms)
    intensity = flops / moved if moved else 0.0
    return Phase(name, cfg.tokens, tuple(gemms), flops, moved, intensity, sum(g.seconds for g in gemms),
                 "compute" if intensity >= ridge else "memory")  # fmt: skip


def roofline(cfg: FFNConfig, gpu: GPU) -> Roofline:
    """Prefill (batch × seq_len tokens) and decode (one new token per sequence) on `gpu`."""
    peak = gpu.tflops[cfg.dtype] * 1e12
    bandwidth = gpu.bandwidth_gbs * 1e9
    ridge = peak / bandwidth
    prefill = _phase("prefill", cfg, peak, bandwidth, ridge)
    decode = _phase("decode", replace(cfg, seq_len=1), peak, bandwidth, ridge)
    return Roofline(analyze(cfg), gpu, peak, bandwidth, ridge, (prefill, decode))
