"""The roofline of a mixture of experts: each routed GEMM reads the weights of every expert its
rows reach, per-expert rows and crossover, under uniform routing and in the worst case.
Numbers, hand-computed; not rendered text."""

from __future__ import annotations

import json
import math
import re

import pytest
from helpers import ROOT, Run

from ffn_calc.catalogue.gpus import GPUS
from ffn_calc.errors import ConfigError
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model.roofline import (
    Roofline,
    expected_experts_touched,
    roofline,
    uniform_rows_per_expert,
    worst_case_experts_touched,
)

K, N, E, TOP_K, B = 4096, 14336, 8, 2, 2  # Mixtral 8x7B's experts, bfloat16
ONE_EXPERT = K * N * B  # 117,440,512 bytes: one expert's gate (or up, or down) matrix
A100_RIDGE = 312e12 / 2039e9  # ≈ 153.0 FLOP/byte


def _mixtral(batch: int, seq_len: int = 1) -> Roofline:
    return roofline(layer_config(batch, seq_len, model="mixtral-8x7b", dtype="bfloat16"), GPUS["a100-80gb"])


# --- the formulas at hand-checkable sizes -----------------------------------------------------------


def test_uniform_expected_experts_at_small_cases() -> None:
    assert expected_experts_touched(1, 8, 2) == 2.0  # one token reaches exactly its k experts
    assert expected_experts_touched(2, 8, 2) == pytest.approx(8 * (1 - 0.75**2))  # 3.5
    assert expected_experts_touched(2, 8, 2) == 3.5
    assert expected_experts_touched(10_000, 8, 2) == 8.0  # many tokens: every expert
    assert expected_experts_touched(1, 256, 8) == 8.0  # DeepSeek-V3, one token
    assert expected_experts_touched(4, 8, 8) == 8.0  # k = E: every expert, always
    assert isinstance(expected_experts_touched(3, 8, 2), float)
    assert uniform_rows_per_expert(1, 8, 2) == 1.0
    assert uniform_rows_per_expert(2, 8, 2) == pytest.approx(4 / 3.5)


def test_worst_case_is_min_of_experts_and_routed_rows() -> None:
    assert worst_case_experts_touched(1, 8, 2) == 2
    assert worst_case_experts_touched(3, 8, 2) == 6
    assert worst_case_experts_touched(4, 8, 2) == 8
    assert worst_case_experts_touched(100, 8, 2) == 8
    assert worst_case_experts_touched(4, 256, 8) == 32
    for t in range(1, 50):
        assert expected_experts_touched(t, 8, 2) <= worst_case_experts_touched(t, 8, 2)


# --- Mixtral on an A100 80 GB, by hand ---------------------------------------------------------------


@pytest.mark.parametrize("batch", [32, 64])
def test_mixtral_decode_reads_every_expert_reached(batch: int) -> None:
    r = _mixtral(batch)
    decode = r.phases[1]
    assert decode.tokens == batch
    rows = batch * TOP_K  # 64 or 128 routed rows
    for g in (g for g in decode.gemms if g.stage.startswith("expert_")):
        assert g.mkn in ((rows, K, N), (rows, N, K))
        assert g.flops == 2 * rows * K * N  # FLOPs unchanged
        rt = g.routing
        assert rt is not None
        assert (rt.experts, rt.top_k, rt.routed_tokens, rt.routed_rows, rt.expert_weight_bytes) == (E, TOP_K, batch, rows, ONE_EXPERT)
        worst = rt.worst_case
        assert worst.experts_touched == 8 and isinstance(worst.experts_touched, int)
        assert worst.rows_per_expert == rows / 8  # 8 or 16 rows per expert, not 64 or 128
        assert worst.weight_bytes == 8 * ONE_EXPERT == 939_524_096
        expected_bytes = B * (rows * K + 8 * K * N + rows * N)
        assert worst.bytes == expected_bytes and isinstance(worst.bytes, int)
        assert expected_bytes == {32: 941_883_392, 64: 944_242_688}[batch]
        assert worst.intensity == pytest.approx(2 * rows * K * N / expected_bytes)
        assert worst.bound == "memory"
        assert worst.seconds == pytest.approx(expected_bytes / 2039e9)
        # Top-level figures are the worst case's.
        assert (g.bytes, g.intensity, g.bound, g.seconds) == (worst.bytes, worst.intensity, worst.bound, worst.seconds)
        uniform = rt.uniform
        touched = 8 * (1 - 0.75**batch)
        assert uniform.experts_touched == pytest.approx(touched, rel=1e-15)
        assert uniform.rows_per_expert == pytest.approx(rows / touched)
        assert uniform.bytes == pytest.approx(B * (rows * K + touched * K * N + rows * N))
        assert uniform.bound == "memory"
        # The crossover is per expert: 161 rows of one expert (m·K·N / (m·(K + N) + K·N) ≥ ridge),
        # which uniform routing gives from 644 tokens on (≈ all 8 experts, 2·T/8 rows each).
        assert rt.ridge_rows_per_expert == g.ridge_tokens == 161
        assert 161 * K * N / (161 * (K + N) + K * N) >= A100_RIDGE > 160 * K * N / (160 * (K + N) + K * N)
        assert rt.ridge_tokens_uniform == 644
        assert uniform_rows_per_expert(644, E, TOP_K) >= 161 > uniform_rows_per_expert(643, E, TOP_K)
    assert decode.bound == "memory"
    assert decode.uniform is not None and decode.worst_case is not None
    assert decode.worst_case.bytes == decode.bytes
    assert decode.uniform.bytes < decode.bytes


def test_mixtral_prefill_touches_every_expert() -> None:
    prefill = _mixtral(32, 2048).phases[0]
    assert prefill.tokens == 65_536
    gate = next(g for g in prefill.gemms if g.stage == "expert_gate")
    assert gate.routing is not None
    assert gate.routing.uniform.experts_touched == 8.0
    assert gate.routing.worst_case.experts_touched == 8
    assert gate.routing.worst_case.rows_per_expert == 65_536 * 2 / 8 == 16_384
    assert gate.bytes == B * (131_072 * K + 8 * K * N + 131_072 * N)
    assert gate.bound == "compute"


def test_mixtral_decode_at_batch_64_through_the_cli(cli: Run) -> None:
    code, out, err = cli("roofline", "64", "2048", "-m", "mixtral-8x7b", "--gpu", "a100-80gb", "--dtype", "bfloat16", "-f", "json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    decode = doc["phases"][1]
    assert decode["bound"] == "memory"
    router = next(g for g in decode["gemms"] if g["stage"] == "router")
    assert router["routing"] is None
    gate = next(g for g in decode["gemms"] if g["stage"] == "expert_gate")
    assert gate["mkn"] == [128, K, N]
    assert gate["bytes"] == 944_242_688 == gate["routing"]["worst_case"]["bytes"]
    assert gate["routing"]["worst_case"]["experts_touched"] == 8
    assert gate["routing"]["worst_case"]["rows_per_expert"] == 16
    assert gate["routing"]["uniform"]["rows_per_expert"] == pytest.approx(16, rel=1e-7)
    assert gate["ridge_tokens"] == 161 and gate["routing"]["ridge_tokens_uniform"] == 644


def test_small_decode_reaches_few_experts() -> None:
    # One sequence, top-2 of 8: two experts read, one row each; uniform and worst case agree.
    r = roofline(layer_config(1, 16, 8, experts=8, top_k=2, dtype="bfloat16"), GPUS["a100-80gb"])
    gate = next(g for g in r.phases[1].gemms if g.stage.startswith("expert_"))
    assert gate.routing is not None
    k, n = gate.mkn[1:]
    assert gate.routing.worst_case.experts_touched == 2 and gate.routing.uniform.experts_touched == 2.0
    assert gate.routing.worst_case.rows_per_expert == 1.0
    assert gate.bytes == 2 * (2 * k + 2 * k * n + 2 * n)


def test_capacity_factor_reads_every_expert_buffer() -> None:
    cfg = layer_config(4, 1, 16, experts=8, top_k=2, capacity_factor=1.0, dtype="bfloat16")
    gate = next(g for g in roofline(cfg, GPUS["a100-80gb"]).phases[0].gemms if g.stage.startswith("expert_"))
    assert gate.routing is not None
    assert gate.mkn[0] == 8 * 1  # ceil(1.0·4·2/8) = 1 row per buffer
    for spread in (gate.routing.uniform, gate.routing.worst_case):
        assert spread.experts_touched == 8 and spread.rows_per_expert == 1.0


# --- dense layers are unchanged --------------------------------------------------------------------


def test_dense_roofline_unchanged() -> None:
    r = roofline(layer_config(1, 8192, model="llama-3-8b", dtype="bfloat16"), GPUS["h100-sxm"])
    ridge = 989e12 / 3350e9
    k, n = 4096, 14336
    for phase, m in zip(r.phases, (8192, 1), strict=True):
        assert phase.uniform is None and phase.worst_case is None
        for g in phase.gemms:
            assert g.routing is None
            gk, gn = g.mkn[1:]
            assert g.mkn[0] == m and {gk, gn} == {k, n}
            moved = 2 * (m * k + k * n + m * n)
            assert g.bytes == moved and g.flops == 2 * m * k * n
            assert g.seconds == max(g.flops / 989e12, moved / 3350e9)
            assert g.ridge_tokens == math.ceil(ridge * 2 * k * n / (2 * k * n - ridge * 2 * (k + n)))
    assert r.phases[1].gemms[0].bytes == 117_477_376
    assert r.phases[0].gemms[0].bytes == 419_430_400


def test_moe_roofline_json_keys_are_documented(cli: Run) -> None:
    code, out, _ = cli("roofline", "2", "4", "8", "--experts", "4", "--top-k", "2", "--gpu", "a100-80gb", "-f", "json")
    assert code == 0
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            found.update(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(json.loads(out)["phases"])
    documented = set(re.findall(r"`([a-z_]+)(?:\[\])?`", (ROOT / "docs" / "json.md").read_text(encoding="utf-8")))
    assert {"routing", "uniform", "worst_case", "experts_touched", "rows_per_expert", "ridge_tokens_uniform"} <= found
    assert not found - documented


# --- the peak a product computes at: --dtype's, or a format's that quantizes the product's input ---


def test_weight_only_formats_keep_the_dtype_peak() -> None:
    r = roofline(layer_config(1, 1, model="llama-2-7b", weight_dtype="gptq_int4"), GPUS["h100-sxm"])
    assert r.peak_dtype == "float16" and r.peak_flops == 989e12
    gate = r.phases[1].gemms[0]
    # decode: one float16 row in (2·4096), one out (2·11008), gptq_int4's gate tensors 23,441,408 bytes
    assert gate.peak_dtype == "float16" and gate.bytes == 2 * 4096 + 2 * 11008 + 23_441_408


def test_fp8_block_products_run_at_the_fp8_peak_and_read_fp8_inputs() -> None:
    r = roofline(layer_config(1, 1, model="llama-2-7b", weight_dtype="fp8_block"), GPUS["h100-sxm"])
    assert r.peak_dtype == "float8_e4m3fn" and r.peak_flops == 1979e12
    assert r.ridge == pytest.approx(1979e12 / 3350e9)
    gate, _, down = r.phases[1].gemms
    # gate's input row: 4096 FP8 values + ceil(4096/128) = 32 float32 scales = 4,224 bytes; output 2·11008 (float16);
    # weights 45,088,768 + 86·32·4 = 45,099,776
    assert gate.bytes == 4_224 + 22_016 + 45_099_776 == 45_126_016
    # down's input row: 11008 + 4·86 = 11,352 bytes; output 2·4096
    assert down.bytes == 11_352 + 8_192 + 45_099_776
    assert gate.seconds == pytest.approx(45_126_016 / 3350e9)  # memory-bound at one token
    # compute-bound from M = ceil(ridge·W / (2·K·N − ridge·(4224 + 22016)))
    ridge = 1979e12 / 3350e9
    assert gate.ridge_tokens == math.ceil(ridge * 45_099_776 / (2 * 4096 * 11008 - ridge * (4_224 + 22_016))) == 357


def test_the_router_computes_in_the_dtype_beside_fp8_experts() -> None:
    r = roofline(layer_config(64, 1, model="mixtral-8x7b", weight_dtype="fp8_row"), GPUS["h100-sxm"])
    decode = {g.stage: g for g in r.phases[1].gemms}
    assert decode["router"].peak_dtype == "bfloat16" and decode["expert_gate"].peak_dtype == "float8_e4m3fn"
    # the router: (64, 4096, 8) in bfloat16 at 989 TFLOP/s; its bytes 64·4096·2 + 65,536 + 64·8·2
    assert decode["router"].bytes == 524_288 + 65_536 + 1_024
    assert decode["router"].seconds == pytest.approx(max(2 * 64 * 4096 * 8 / 989e12, 590_848 / 3350e9))
    expert = decode["expert_gate"]
    assert expert.routing is not None and expert.routing.expert_weight_bytes == 58_720_256 + 4 * 14336
    # 128 routed rows, each 4096 FP8 values + one float32 scale in, 14336 bfloat16 out; all 8 experts read (worst case)
    assert expert.bytes == 128 * (4_100 + 2 * 14336) + 8 * 58_777_600


def test_a_gpu_without_the_format_s_peak_is_refused() -> None:
    with pytest.raises(ConfigError, match="fp8_block products compute in float8_e4m3fn .* the a100-80gb datasheet gives no dense float8_e4m3fn"):
        roofline(layer_config(1, 1, model="llama-2-7b", weight_dtype="fp8_block"), GPUS["a100-80gb"])
    # weight-only formats are dequantized: the A100 runs them at its 16-bit peak
    assert roofline(layer_config(1, 1, model="llama-2-7b", weight_dtype="float8_e4m3fn"), GPUS["a100-80gb"]).peak_dtype == "float16"


def test_roofline_json_names_the_peak_used(cli: Run) -> None:
    code, out, _ = cli("roofline", "1", "1", "-m", "llama-2-7b", "--gpu", "h100-sxm", "--weight-dtype", "fp8_block", "-f", "json")
    doc = json.loads(out)
    assert code == 0 and doc["gpu"]["peak_dtype"] == "float8_e4m3fn" and doc["gpu"]["peak_flops_per_s"] == 1979e12
    assert {g["peak_dtype"] for p in doc["phases"] for g in p["gemms"]} == {"float8_e4m3fn"}
