"""Quantized weights as checkpoints store them (model/weight_formats.py): every format's tensors
and bytes, hand-computed for LLaMA-2-7B's FFN (d 4096, f 11008: gate and up (K 4096, N 11008),
down (K 11008, N 4096), float16) and Mixtral 8x7B's MoE layer (d 4096, f 14336, 8 experts: gate
and up (K 4096, N 14336), down (K 14336, N 4096) per expert, bfloat16, plus its (4096, 8) router
in bfloat16: 65,536 bytes). K·N = 45,088,768 for each LLaMA matrix, 58,720,256 for each Mixtral
expert matrix."""

from __future__ import annotations

import json

import pytest

import ffn_calc
from ffn_calc.errors import ConfigError
from ffn_calc.model.dtypes import ACTIVATION_DTYPES, COMPUTE_DTYPES, DTYPES, WEIGHTS_ONLY
from ffn_calc.model.weight_formats import BNB_OFFSET_CHARS, WEIGHT_ALIASES, WEIGHT_FORMATS, bnb_quant_state_json

ROUTER = 4096 * 8 * 2  # Mixtral's router, bfloat16: never quantized


def _llama(weight_dtype: str, group_size: int | None = None) -> dict[str, int]:
    r = ffn_calc.analyze(ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype=weight_dtype, group_size=group_size))
    return {w.name: w.bytes for w in r.weights} | {"total": r.totals.weight_bytes}


def _mixtral(weight_dtype: str) -> dict[str, int]:
    r = ffn_calc.analyze(ffn_calc.layer(1, 1, model="mixtral-8x7b", weight_dtype=weight_dtype))
    return {w.name: w.bytes for w in r.weights} | {"total": r.totals.weight_bytes}


# --- GPTQ: qweight int32 (K·b/32, N), qzeros int32 (ceil(K/G), N·b/32), scales float16 (ceil(K/G), N), g_idx int32 (K,) ---

GPTQ_LLAMA = {
    # gate/up, 32 groups: qweight 4096·11008·b/8; qzeros 32·11008·b/8; scales 32·11008·2 = 704,512; g_idx 4·4096 = 16,384
    # down, 86 groups:    qweight 11008·4096·b/8; qzeros 86·4096·b/8;  scales 86·4096·2 = 704,512;  g_idx 4·11008 = 44,032
    2: (11_272_192 + 88_064 + 704_512 + 16_384, 11_272_192 + 88_064 + 704_512 + 44_032),  # 12,081,152 and 12,108,800
    3: (16_908_288 + 132_096 + 704_512 + 16_384, 16_908_288 + 132_096 + 704_512 + 44_032),  # 17,761,280 and 17,788,928
    4: (22_544_384 + 176_128 + 704_512 + 16_384, 22_544_384 + 176_128 + 704_512 + 44_032),  # 23,441,408 and 23,469,056
    8: (45_088_768 + 352_256 + 704_512 + 16_384, 45_088_768 + 352_256 + 704_512 + 44_032),  # 46,161,920 and 46,189,568
}
GPTQ_MIXTRAL = {
    # per expert, gate/up, 32 groups: qweight 4096·14336·b/8; qzeros 32·14336·b/8; scales 32·14336·2 = 917,504; g_idx 16,384
    # per expert, down, 112 groups:   qweight 14336·4096·b/8; qzeros 112·4096·b/8; scales 112·4096·2 = 917,504; g_idx 57,344
    2: (14_680_064 + 114_688 + 917_504 + 16_384, 14_680_064 + 114_688 + 917_504 + 57_344),  # 15,728,640 and 15,769,600
    3: (22_020_096 + 172_032 + 917_504 + 16_384, 22_020_096 + 172_032 + 917_504 + 57_344),  # 23,126,016 and 23,166,976
    4: (29_360_128 + 229_376 + 917_504 + 16_384, 29_360_128 + 229_376 + 917_504 + 57_344),  # 30,523,392 and 30,564,352
    8: (58_720_256 + 458_752 + 917_504 + 16_384, 58_720_256 + 458_752 + 917_504 + 57_344),  # 60,112,896 and 60,153,856
}


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_gptq_llama_2_7b(bits: int) -> None:
    gate, down = GPTQ_LLAMA[bits]
    got = _llama(f"gptq_int{bits}")
    assert got == {"W_gate": gate, "W_up": gate, "W_down": down, "total": 2 * gate + down}


def test_gptq_llama_2_7b_totals() -> None:
    assert {b: 2 * g + d for b, (g, d) in GPTQ_LLAMA.items()} == {2: 36_271_104, 3: 53_311_488, 4: 70_351_872, 8: 138_513_408}


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_gptq_mixtral_layer(bits: int) -> None:
    gate, down = GPTQ_MIXTRAL[bits]
    got = _mixtral(f"gptq_int{bits}")
    assert got == {"W_router": ROUTER, "expert_W_gate": 8 * gate, "expert_W_up": 8 * gate, "expert_W_down": 8 * down,
                   "total": 8 * (2 * gate + down) + ROUTER}  # fmt: skip
    assert 8 * (2 * gate + down) + ROUTER == {2: 377_880_576, 3: 555_417_600, 4: 732_954_624, 8: 1_443_102_720}[bits]


def test_gptq_tensors_as_autogptq_registers_them() -> None:
    cfg = ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="gptq_int4")
    assert cfg.weight_packing is not None
    gate = cfg.weight_packing.tensors(4096, 11008)
    assert [t.describe() for t in gate] == [
        "qweight int32 (512, 11008)", "qzeros int32 (32, 1376)", "scales float16 (32, 11008)", "g_idx int32 (4096,)",
    ]  # fmt: skip
    down = cfg.weight_packing.tensors(11008, 4096)
    assert [t.shape for t in down] == [(1376, 4096), (86, 512), (86, 4096), (11008,)]


def test_gptq_group_size_minus_one_is_one_group() -> None:
    # group 0 (GPTQ's -1): one group over K. gate: 22,544,384 + 1·1376·4 + 1·11008·2 + 16,384; down: 22,544,384 + 512·4 + 4096·2 + 44,032
    got = _llama("gptq_int4", group_size=0)
    assert got["W_gate"] == 22_544_384 + 5_504 + 22_016 + 16_384 == 22_588_288
    assert got["W_down"] == 22_544_384 + 2_048 + 8_192 + 44_032 == 22_598_656
    # G = 64: 64 and 172 groups: gate 22,544,384 + 64·1376·4 + 64·11008·2 + 16,384; down 22,544,384 + 172·512·4 + 172·4096·2 + 44,032
    g64 = _llama("gptq_int4", group_size=64)
    assert g64["W_gate"] == 22_544_384 + 352_256 + 1_409_024 + 16_384 == 24_322_048
    assert g64["W_down"] == 22_544_384 + 352_256 + 1_409_024 + 44_032 == 24_349_696


def test_gptq_refuses_a_packing_that_is_not_clean() -> None:
    with pytest.raises(ConfigError, match=r"gptq_int3 cannot store a \(4096, 11000\) matrix: N = 11000 is not a multiple of 32"):
        ffn_calc.analyze(ffn_calc.layer(1, 1, 4096, d_ff=11000, activation="swiglu", weight_dtype="gptq_int3"))
    with pytest.raises(ConfigError, match="K = 8 is not a multiple of 32"):
        ffn_calc.analyze(ffn_calc.layer(1, 1, 8, weight_dtype="gptq_int4"))


# --- AWQ (GEMM): qweight int32 (K, N/8), qzeros int32 (K/G, N/8), scales float16 (K/G, N); no g_idx ---


def test_awq_llama_2_7b_and_mixtral() -> None:
    # LLaMA gate/up: 4096·11008/2 = 22,544,384 + 32·11008/2 = 176,128 + 32·11008·2 = 704,512 → 23,425,024
    # LLaMA down:    22,544,384 + 86·4096/2 = 176,128 + 86·4096·2 = 704,512 → 23,425,024
    assert _llama("awq_int4") == {"W_gate": 23_425_024, "W_up": 23_425_024, "W_down": 23_425_024, "total": 70_275_072}
    # Mixtral, per expert: 29,360,128 + 32·14336/2 = 229,376 + 32·14336·2 = 917,504 → 30,507,008 (down: 112 groups of 4096, the same)
    assert _mixtral("awq_int4") == {"W_router": ROUTER, "expert_W_gate": 8 * 30_507_008, "expert_W_up": 8 * 30_507_008,
                                    "expert_W_down": 8 * 30_507_008, "total": 24 * 30_507_008 + ROUTER}  # fmt: skip
    assert 24 * 30_507_008 + ROUTER == 732_233_728


def test_awq_refuses_a_group_that_does_not_divide_k() -> None:
    with pytest.raises(ConfigError, match=r"awq_int4 cannot store a \(4096, 11008\) matrix: K = 4096 is not a multiple of 96"):
        ffn_calc.analyze(ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="awq_int4", group_size=96))


# --- bitsandbytes NF4: weight uint8 (K·N/2, 1), absmax per 64, quant_map float32 (16,), the quant state's JSON ---


def test_bnb_quant_state_json_is_what_json_dumps_writes() -> None:
    # QuantState.as_dict(packed=True): the non-tensor items in insertion order, through json.dumps.
    plain = {"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": (11008, 4096)}
    assert bnb_quant_state_json("nf4", 64, "float16", 4096, 11008, False) == json.dumps(plain)
    nested = plain | {"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.023399999365210533}
    assert len(json.dumps(nested)) == len(bnb_quant_state_json("nf4", 64, "float16", 4096, 11008, True)) + 20 - BNB_OFFSET_CHARS


def test_nf4_llama_2_7b_and_mixtral() -> None:
    # LLaMA, per matrix: weight 45,088,768/2 = 22,544,384; absmax 45,088,768/64 = 704,512 blocks × 4 = 2,818,048;
    # quant_map 16 × 4 = 64; JSON {"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [11008, 4096]}: 82 characters
    per = 22_544_384 + 2_818_048 + 64 + 82
    assert per == 25_362_578
    assert _llama("nf4") == {"W_gate": per, "W_up": per, "W_down": per, "total": 76_087_734}
    # Mixtral, per expert matrix: 29,360,128 + 917,504 blocks × 4 = 3,670,016 + 64 + 83 ("bfloat16" is one character longer)
    expert = 29_360_128 + 3_670_016 + 64 + 83
    assert _mixtral("nf4") == {"W_router": ROUTER, "expert_W_gate": 8 * expert, "expert_W_up": 8 * expert, "expert_W_down": 8 * expert,
                               "total": 24 * expert + ROUTER}  # fmt: skip
    assert 24 * expert + ROUTER == 792_792_520


def test_nf4_double_quantization_llama_2_7b_and_mixtral() -> None:
    # LLaMA, per matrix: weight 22,544,384; absmax 704,512 in uint8; quant_map 64; nested_absmax ceil(704,512/256) = 2,752 × 4 = 11,008;
    # nested_quant_map 256 × 4 = 1,024; JSON 81 + ', "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": ' (71)
    # + 19 digits + '}' = 172
    per = 22_544_384 + 704_512 + 64 + 11_008 + 1_024 + 172
    assert per == 23_261_164
    assert _llama("nf4_dq") == {"W_gate": per, "W_up": per, "W_down": per, "total": 69_783_492}
    # Mixtral, per expert matrix: 29,360,128 + 917,504 + 64 + 3,584 × 4 = 14,336 + 1,024 + 173
    expert = 29_360_128 + 917_504 + 64 + 14_336 + 1_024 + 173
    assert _mixtral("nf4_dq")["total"] == 24 * expert + ROUTER == 727_103_032


def test_nf4_tensors_and_refusals() -> None:
    cfg = ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="nf4_dq")
    assert cfg.weight_packing is not None
    assert [t.describe() for t in cfg.weight_packing.tensors(4096, 11008)] == [
        "weight uint8 (22544384, 1)", "weight.absmax uint8 (704512,)", "weight.quant_map float32 (16,)",
        "weight.nested_absmax float32 (2752,)", "weight.nested_quant_map float32 (256,)", "weight.quant_state.bitsandbytes__nf4 uint8 (172,)",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="bitsandbytes quantizes float16, bfloat16, float32 weights, not float8_e4m3fn"):
        ffn_calc.analyze(ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="nf4", dtype="float8_e4m3fn"))
    with pytest.raises(ConfigError, match="nf4 takes 32 or 64 or"):
        ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="nf4", group_size=100)
    # blocks of 128: 352,256 absmax × 4 = 1,409,024; the JSON says "blocksize": 128, one character more
    assert _llama("nf4", group_size=128)["W_gate"] == 22_544_384 + 1_409_024 + 64 + 83


# --- MXFP4: _blocks uint8 (N, K/32, 16), _scales uint8 (N, K/32) ---


def test_mxfp4_llama_2_7b_and_mixtral() -> None:
    # LLaMA, per matrix: 45,088,768/2 = 22,544,384 + 45,088,768/32 = 1,409,024
    assert _llama("mxfp4") == {"W_gate": 23_953_408, "W_up": 23_953_408, "W_down": 23_953_408, "total": 71_860_224}
    # Mixtral, per expert matrix: 29,360,128 + 58,720,256/32 = 1,835,008 → 31,195,136
    assert _mixtral("mxfp4")["total"] == 24 * 31_195_136 + ROUTER == 748_748_800
    cfg = ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="mxfp4")
    assert cfg.weight_packing is not None and cfg.group_size == 32
    assert [t.describe() for t in cfg.weight_packing.tensors(11008, 4096)] == ["_blocks uint8 (4096, 344, 16)", "_scales uint8 (4096, 344)"]
    with pytest.raises(ConfigError, match="mxfp4 takes 32"):
        ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="mxfp4", group_size=16)
    with pytest.raises(ConfigError, match="K = 4100 is not a multiple of 32"):
        ffn_calc.analyze(ffn_calc.layer(1, 1, 4100, activation="swiglu", d_ff="11008", weight_dtype="mxfp4"))


# --- NVFP4 (ModelOpt): weight uint8 (N, K/2), weight_scale float8_e4m3fn (N, K/16), weight_scale_2 and input_scale float32 () ---


def test_nvfp4_llama_2_7b_and_mixtral() -> None:
    # LLaMA, per matrix: 22,544,384 + 45,088,768/16 = 2,818,048 + 4 + 4
    assert _llama("nvfp4") == {"W_gate": 25_362_440, "W_up": 25_362_440, "W_down": 25_362_440, "total": 76_087_320}
    # Mixtral, per expert matrix: 29,360,128 + 3,670,016 + 8 = 33,030,152
    assert _mixtral("nvfp4")["total"] == 24 * 33_030_152 + ROUTER == 792_789_184
    cfg = ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="nvfp4")
    assert cfg.weight_packing is not None
    assert [t.describe() for t in cfg.weight_packing.tensors(4096, 11008)] == [
        "weight uint8 (11008, 2048)", "weight_scale float8_e4m3fn (11008, 256)", "weight_scale_2 float32 ()", "input_scale float32 ()",
    ]  # fmt: skip


# --- FP8 with scales: weight float8_e4m3fn (N, K) + weight_scale_inv float32 (ceil(N/B), ceil(K/B)), or weight_scale float32 (N, 1) ---


def test_fp8_block_llama_2_7b_and_mixtral() -> None:
    # LLaMA gate/up: 45,088,768 + ceil(11008/128) = 86 × 4096/128 = 32 blocks × 4 = 11,008; down: 32 × 86 × 4, the same
    assert _llama("fp8_block") == {"W_gate": 45_099_776, "W_up": 45_099_776, "W_down": 45_099_776, "total": 135_299_328}
    # Mixtral, per expert matrix: 58,720,256 + 112 × 32 × 4 = 14,336
    assert _mixtral("fp8_block")["total"] == 24 * 58_734_592 + ROUTER == 1_409_695_744
    # the edges: a (4100, 11000) matrix with 128 × 128 blocks has ceil(11000/128) = 86 × ceil(4100/128) = 33 scales
    odd = ffn_calc.layer(1, 1, 4100, d_ff="11000", activation="swiglu", weight_dtype="fp8_block")
    assert odd.weight_packing is not None and odd.weight_packing.tensors(4100, 11000)[1].shape == (86, 33)


def test_fp8_row_llama_2_7b_and_mixtral() -> None:
    # LLaMA: gate/up 45,088,768 + 4 × 11008 = 44,032; down 45,088,768 + 4 × 4096 = 16,384
    assert _llama("fp8_row") == {"W_gate": 45_132_800, "W_up": 45_132_800, "W_down": 45_105_152, "total": 135_370_752}
    # Mixtral, per expert: gate/up 58,720,256 + 4 × 14336 = 57,344; down 58,720,256 + 4 × 4096 = 16,384
    assert _mixtral("fp8_row")["total"] == 8 * (2 * 58_777_600 + 58_736_640) + ROUTER == 1_410_400_256
    with pytest.raises(ConfigError, match="--group-size: sets the groups of a weight format"):
        ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="fp8_row", group_size=128)


# --- the registry, the earlier names, and what the products compute in ---


def test_every_format_is_a_weight_only_dtype_and_float4_only_a_compute_type() -> None:
    assert set(WEIGHTS_ONLY) == set(WEIGHT_FORMATS)
    assert set(WEIGHT_ALIASES) <= set(DTYPES) and not set(WEIGHT_ALIASES) & set(WEIGHTS_ONLY)
    assert "float4_e2m1fn" in COMPUTE_DTYPES and "float4_e2m1fn" not in ACTIVATION_DTYPES
    for name, f in WEIGHT_FORMATS.items():
        assert DTYPES[name].bits == f.bits and f.source and f.layout
        assert (f.computes_in is None) == (f.input_row_bytes is None), name
        assert f.computes_in is None or f.computes_in in COMPUTE_DTYPES


def test_int4_and_int4_asym_are_the_formats_they_were_described_as() -> None:
    # A fix: int4 counted a 16-bit scale per group only (69,746,688 bytes for LLaMA-2-7B at G = 128), int4_asym a 16-bit scale
    # and zero (71,860,224); GPTQ and AWQ checkpoints pack their zeros in 4 bits, and GPTQ stores g_idx.
    cfg = ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="int4")
    assert cfg.weight_dtype == "gptq_int4" and cfg.origin[-1].startswith("--weight-dtype int4 is gptq_int4")
    assert _llama("int4")["total"] == 70_351_872
    asym = ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="int4_asym")
    assert asym.weight_dtype == "awq_int4" and "16-bit zero" in asym.origin[-1]
    assert _llama("int4_asym")["total"] == 70_275_072


def test_what_the_products_compute_in() -> None:
    for weight_dtype, product in (("gptq_int4", "float16"), ("nf4", "float16"), ("mxfp4", "float16"), ("float8_e4m3fn", "float16"),
                                  ("fp8_block", "float8_e4m3fn"), ("fp8_row", "float8_e4m3fn"), ("nvfp4", "float4_e2m1fn")):  # fmt: skip
        assert ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype=weight_dtype).product_dtype == product, weight_dtype
    with pytest.raises(ConfigError, match="exists only as a W4A4 product's quantized input"):
        ffn_calc.layer(1, 1, 8, dtype="float4_e2m1fn")
    with pytest.raises(ConfigError, match="need their block scales"):
        ffn_calc.layer(1, 1, 8, weight_dtype="float4_e2m1fn")


def test_biases_norms_and_the_router_stay_in_the_activation_dtype() -> None:
    r = ffn_calc.analyze(ffn_calc.layer(1, 2, 8, d_ff="3", weight_dtype="fp8_row", norm="pre", dtype="float16"))
    # linear1 (K 8, N 3): 24 FP8 + 3 row scales × 4; linear2 (K 3, N 8): 24 + 8 × 4; biases 3 + 8 and LayerNorm 16, in 2 bytes
    assert r.totals.weight_bytes == (24 + 12) + (24 + 32) + 2 * (3 + 8 + 16) == 146
