"""The accelerators `--gpu` knows: dense datasheet peaks by dtype and memory bandwidth, each with its
source. Catalogue data, as `GPU` records (`model/roofline.py`, whose arithmetic reads them)."""

from __future__ import annotations

from dataclasses import dataclass

from ffn_calc.json_fields import JsonForm
from ffn_calc.model.roofline import GPU
from ffn_calc.schemas import schema


def _peaks(fp64: float | None, fp32: float | None, bf16: float, fp8: float | None, int8: float | None, fp4: float | None = None) -> dict[str, float]:
    """Dense peaks by dtype name: bfloat16 and float16 share the 16-bit tensor-core rate, both
    FP8 formats the FP8 rate; float32 is the FP32 (non-tensor, TF32 off) rate; float4_e2m1fn
    the FP4 tensor-core rate (NVFP4 and MXFP4 on Blackwell; MXFP4 on CDNA 4)."""
    by_dtype = {"float64": fp64, "float32": fp32, "bfloat16": bf16, "float16": bf16, "float8_e4m3fn": fp8, "float8_e5m2": fp8, "int8": int8,
                "float4_e2m1fn": fp4}  # fmt: skip
    return {name: value for name, value in by_dtype.items() if value is not None}


_A100 = _peaks(19.5, 19.5, 312.0, None, 624.0)
_H100_SXM = _peaks(67.0, 67.0, 989.0, 1979.0, 1979.0)
_H100_PCIE = _peaks(51.0, 51.0, 756.0, 1513.0, 1513.0)

GPUS: dict[str, GPU] = {
    g.name: g
    for g in (
        GPU("a100-40gb", _A100, 1555.0, "NVIDIA A100 Tensor Core GPU datasheet (2021), SXM 40 GB: 312 TFLOP/s BF16/FP16 dense, 1,555 GB/s"),
        GPU("a100-80gb", _A100, 2039.0, "NVIDIA A100 datasheet (2021), SXM 80 GB: 312 TFLOP/s BF16/FP16 dense, 2,039 GB/s"),
        GPU("h100-sxm", _H100_SXM, 3350.0, "NVIDIA H100 Tensor Core GPU datasheet, SXM: 989 TFLOP/s BF16/FP16, 1,979 FP8 dense, 3.35 TB/s"),
        GPU("h100-pcie", _H100_PCIE, 2000.0, "NVIDIA H100 datasheet, PCIe: 756 TFLOP/s BF16/FP16, 1,513 FP8 dense, 2 TB/s"),
        GPU("h200", _H100_SXM, 4800.0, "NVIDIA H200 Tensor Core GPU product brief: H100 SXM compute, 4.8 TB/s HBM3e"),
        GPU("h20", _peaks(None, 44.0, 148.0, 296.0, 296.0), 4000.0,
            "NVIDIA H20 product brief: 148 TFLOP/s BF16/FP16, 296 FP8 dense, 44 FP32, 4.0 TB/s HBM3"),
        GPU("b200", _peaks(40.0, 80.0, 2250.0, 4500.0, 4500.0, 9000.0), 8000.0,
            "NVIDIA Blackwell architecture technical brief and HGX B200 datasheet, per GPU (HGX, 1,000 W): 2.25 PFLOP/s BF16/FP16, "
            "4.5 FP8 and INT8, 9 FP4 dense (18 with sparsity), 80 TFLOP/s FP32, 40 FP64, 8 TB/s HBM3e; the later HGX B200 product "
            "page lists 75 FP32, 37 FP64 and 7.7 TB/s"),
        GPU("gb200", _peaks(45.0, 90.0, 2500.0, 5000.0, 5000.0, 10000.0), 8000.0,
            "NVIDIA Blackwell architecture technical brief and GB200 NVL72 datasheet, per Blackwell GPU (1,200 W): 2.5 PFLOP/s BF16/FP16, "
            "5 FP8 and INT8, 10 FP4 dense (20 with sparsity), 90 TFLOP/s FP32, 45 FP64, 8 TB/s HBM3e; the later GB200 NVL72 product "
            "page lists 80 FP32 and 40 FP64"),
        GPU("b300", _peaks(1.25, 75.0, 2250.0, 4500.0, None, 13125.0), 8000.0,
            "NVIDIA HGX B300 datasheet (Blackwell Ultra), 8 GPUs, divided by 8: FP4 105 PFLOP/s dense (144 with sparsity) → 13.125, "
            "FP8 72 with sparsity → 4.5 dense, BF16/FP16 36 with sparsity → 2.25 dense, FP32 600 TFLOP/s → 75, FP64 10 → 1.25; "
            "INT8 cut to 2 POPS with sparsity for 8 GPUs (not listed); 288 GB HBM3e at 8 TB/s per GPU"),
        GPU("l4", _peaks(None, 30.3, 121.0, 242.5, 242.5), 300.0,
            "NVIDIA L4 Tensor Core GPU datasheet: 242 TFLOP/s BF16/FP16 and 485 FP8 with sparsity (121 and 242.5 dense), 30.3 FP32, 300 GB/s"),
        GPU("l40s", _peaks(None, 91.6, 362.05, 733.0, 733.0), 864.0,
            "NVIDIA L40S datasheet: 362 TFLOP/s BF16/FP16, 733 FP8 dense (733 and 1,466 with sparsity), 91.6 FP32, 864 GB/s"),
        GPU("a10", _peaks(None, 31.2, 125.0, None, 250.0), 600.0,
            "NVIDIA A10 Tensor Core GPU datasheet: 125 TFLOP/s BF16/FP16 dense (250 with sparsity), 31.2 FP32, 600 GB/s; "
            "AWS's A10G is a variant whose peaks AWS does not publish"),
        GPU("mi300x", _peaks(163.4, 163.4, 1307.4, 2614.9, 2614.9), 5300.0,
            "AMD Instinct MI300X data sheet: 1,307.4 TFLOP/s BF16/FP16, 2,614.9 FP8 dense, 163.4 FP32 and FP64 matrix, 5.3 TB/s"),
        GPU("mi325x", _peaks(163.4, 163.4, 1307.4, 2614.9, 2614.9), 6000.0,
            "AMD Instinct MI325X data sheet: MI300X compute (1,307.4 TFLOP/s BF16, 2,614.9 FP8 dense), 6 TB/s HBM3E"),
        GPU("mi355x", _peaks(78.6, 157.3, 2516.6, 5033.2, 5033.2, 10066.3), 8000.0,
            "AMD Instinct MI355X data sheet (CDNA 4, 1,400 W): 2,516.6 TFLOP/s BF16/FP16, 5,033.2 FP8, 5,033.2 TOPS INT8, "
            "10,066.3 MXFP4 dense (twice with sparsity), 157.3 FP32, 78.6 FP64 vector, 8 TB/s HBM3E; its FP4 rate is quoted for OCP "
            "MXFP4 (an E8M0 scale per 32)"),
        GPU("tpu-v5e", _peaks(None, None, 197.0, None, 394.0), 819.0,
            "Google Cloud TPU v5e documentation: 197 TFLOP/s BF16, 394 TOPS INT8 per chip, 819 GB/s HBM2"),
        GPU("tpu-v5p", _peaks(None, None, 459.0, None, 918.0), 2765.0,
            "Google Cloud TPU v5p documentation: 459 TFLOP/s BF16, 918 TOPS INT8 per chip, 2,765 GB/s HBM2e"),
        GPU("tpu-v6e", _peaks(None, None, 918.0, None, 1836.0), 1638.0,
            "Google Cloud TPU v6e (Trillium) documentation: 918 TFLOP/s BF16, 1,836 TOPS INT8 per chip, 32 GB HBM at 1,638 GB/s; "
            "no FP8 figure"),
        GPU("gaudi3", _peaks(None, None, 1835.0, 1835.0, None), 3670.0,
            "Intel Gaudi 3 AI accelerator white paper (OAM, 900 W air / 1,200 W liquid): 1,835 TFLOP/s BF16 and FP8 matrix (MME), "
            "28.7 BF16 vector, 128 GB HBM2e at 3.67 TB/s; no FP32, FP64 or INT8 matrix figure"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class GPUList(JsonForm):
    """Every GPU preset, for `ffn-calc gpus`."""

    gpus: tuple[GPU, ...]
    json_schema = schema("gpus")


def gpu_list() -> GPUList:
    return GPUList(tuple(GPUS.values()))
