"""The accelerators of the current generation (catalogue/gpus.py): dense datasheet peaks by dtype,
FP4 where the chip has it, and the roofline picking the peak a product computes at."""

from __future__ import annotations

import json
import math

import pytest
from helpers import Run

import ffn_calc
from ffn_calc.catalogue.gpus import GPUS
from ffn_calc.errors import ConfigError

# TFLOP/s (int8: TOPS), dense: (fp64, fp32, bf16, fp8, int8, fp4) and GB/s, as each entry's source states them.
DATASHEETS = {
    "b200": ((40.0, 80.0, 2250.0, 4500.0, 4500.0, 9000.0), 8000.0),  # HGX B200, 1,000 W
    "gb200": ((45.0, 90.0, 2500.0, 5000.0, 5000.0, 10000.0), 8000.0),  # GB200 NVL72 per GPU, 1,200 W
    "b300": ((1.25, 75.0, 2250.0, 4500.0, None, 105_000 / 8), 8000.0),  # HGX B300: 8 GPUs' totals / 8, dense FP4 105 PFLOP/s
    "mi355x": ((78.6, 157.3, 2516.6, 5033.2, 5033.2, 10066.3), 8000.0),
    "tpu-v6e": ((None, None, 918.0, None, 1836.0, None), 1638.0),
    "gaudi3": ((None, None, 1835.0, 1835.0, None, None), 3670.0),
}
DTYPES = ("float64", "float32", "bfloat16", "float8_e4m3fn", "int8", "float4_e2m1fn")


@pytest.mark.parametrize("name", sorted(DATASHEETS))
def test_peaks_by_dtype(name: str) -> None:
    peaks, bandwidth = DATASHEETS[name]
    gpu = GPUS[name]
    assert {d: gpu.tflops.get(d) for d in DTYPES} == dict(zip(DTYPES, peaks, strict=True))
    assert gpu.tflops["float16"] == gpu.tflops["bfloat16"] and gpu.bandwidth_gbs == bandwidth
    for value in peaks:  # every figure the entry gives is in its source as written there
        if value is not None:
            assert f"{value:,g}" in gpu.source or f"{value / 1000:g}" in gpu.source or name == "b300", (name, value)


def test_only_blackwell_and_cdna4_have_an_fp4_peak() -> None:
    assert {n for n, g in GPUS.items() if "float4_e2m1fn" in g.tflops} == {"b200", "gb200", "b300", "mi355x"}
    # dense FP4 is twice dense FP8 on B200 and GB200, about three times on Blackwell Ultra
    assert GPUS["b200"].tflops["float4_e2m1fn"] == 2 * GPUS["b200"].tflops["float8_e4m3fn"]
    assert GPUS["b300"].tflops["float4_e2m1fn"] == 13_125.0


def test_nvfp4_products_run_at_the_fp4_peak() -> None:
    r = ffn_calc.roofline(ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="nvfp4"), "b200")
    assert r.peak_dtype == "float4_e2m1fn" and r.peak_flops == 9000e12 and r.ridge == 9000e12 / 8000e9 == 1125.0
    gate = r.phases[1].gemms[0]
    # decode, one token: the input as NVFP4, 4096/2 + 4096/16 = 2,304 bytes; out 2·11008 (float16); nvfp4's gate 25,362,440 bytes
    assert gate.peak_dtype == "float4_e2m1fn" and gate.bytes == 2_304 + 22_016 + 25_362_440 == 25_386_760
    assert gate.seconds == pytest.approx(25_386_760 / 8000e9)
    # compute-bound from M = ceil(1125·25,362,440 / (2·4096·11008 − 1125·(2,304 + 22,016)))
    assert gate.ridge_tokens == math.ceil(1125 * 25_362_440 / (90_177_536 - 1125 * 24_320)) == 455
    # the same layer with bf16 activations and weight-only MXFP4 stays at the 16-bit peak
    w4a16 = ffn_calc.roofline(ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="mxfp4"), "b200")
    assert w4a16.peak_dtype == "float16" and w4a16.peak_flops == 2250e12


@pytest.mark.parametrize(("gpu", "peak"), [("gb200", 10000e12), ("b300", 13125e12), ("mi355x", 10066.3e12)])
def test_every_fp4_chip_runs_nvfp4_at_its_fp4_peak(gpu: str, peak: float) -> None:
    assert ffn_calc.roofline(ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="nvfp4"), gpu).peak_flops == peak


def test_no_fp4_peak_no_nvfp4_roofline() -> None:
    for gpu in ("h200", "tpu-v6e", "gaudi3"):
        with pytest.raises(ConfigError, match=f"nvfp4 products compute in float4_e2m1fn .* the {gpu} datasheet gives no dense float4_e2m1fn"):
            ffn_calc.roofline(ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="nvfp4"), gpu)


def test_blackwell_fp32_and_fp64_peaks_reach_the_roofline() -> None:
    r = ffn_calc.roofline(ffn_calc.layer(1, 1, 64, dtype="float64"), "b200")
    assert r.peak_dtype == "float64" and r.peak_flops == 40e12
    assert ffn_calc.roofline(ffn_calc.layer(1, 1, 64, dtype="float32"), "gb200").peak_flops == 90e12


def test_gpus_lists_the_new_accelerators_and_their_fp4_column(cli: Run) -> None:
    code, out, _ = cli("gpus", "-f", "json")
    rows = {g["name"]: g["tflops"] for g in json.loads(out)["gpus"]}
    assert code == 0 and {"b300", "mi355x", "tpu-v6e", "gaudi3"} <= set(rows)
    assert rows["gb200"]["float4_e2m1fn"] == 10000.0 and rows["b200"]["float64"] == 40.0
    _, csv_out, _ = cli("gpus", "-f", "csv")
    header = csv_out.splitlines()[0].split(",")
    assert header[header.index("int8_tflops") + 1] == "float4_e2m1fn_tflops"
