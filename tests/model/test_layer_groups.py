"""Mixed dense/MoE stacks (layer groups) and weight-only storage (int4 with group scales, FP8),
each figure against a hand-computed case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import ROOT, Run

import ffn_calc
from ffn_calc.errors import ConfigError, VerifyRefused
from ffn_calc.model.layer import FFNConfig

DATA = ROOT / "tests" / "data"


def test_deepseek_v3_whole_model_counts_3_dense_and_58_moe_layers() -> None:
    report = ffn_calc.analyze(ffn_calc.layer(1, 1, model="deepseek-v3"))
    dense = 3 * 7168 * 18432  # gate, up, down of width 18432, no biases
    assert dense == 396_361_728
    expert = 3 * 7168 * 2048
    moe = 256 * expert + 1 * expert + 7168 * 256  # routed experts, the shared one, the router
    assert moe == 11_320_164_352
    assert [(g.name, g.config.layers, g.totals.params) for g in report.groups] == [("dense", 3, dense), ("moe", 58, moe)]
    assert report.model.layers == 61
    assert report.model.params == 3 * 396_361_728 + 58 * 11_320_164_352 == 657_758_617_600
    active_moe = 8 * expert + expert + 7168 * 256
    assert report.model.active_params == 3 * dense + 58 * active_moe
    g_dense, g_moe = report.groups
    assert report.model.matmul_flops == 3 * g_dense.totals.matmul_flops + 58 * g_moe.totals.matmul_flops
    assert report.model.weight_bytes == 2 * report.model.params  # bfloat16, no packing
    assert report.model.peak_bytes == report.model.weight_bytes + max(g.peak_activation_bytes for g in report.groups)


def test_deepseek_v2_lite_is_1_dense_and_26_moe() -> None:
    model = ffn_calc.analyze(ffn_calc.layer(1, 1, model="deepseek-v2-lite")).model
    expert = 3 * 2048 * 1408
    assert model.params == 3 * 2048 * 10944 + 26 * (64 * expert + 2 * expert + 2048 * 64) == 14_915_338_240


def test_config_json_first_k_dense_replace() -> None:
    cfg = ffn_calc.layer(1, 1, config=str(DATA / "deepseek-v3.config.json"))
    assert (cfg.layers, cfg.dense_layers, cfg.dense_d_ff) == (58, 3, 18432)
    assert any("3 dense layers (intermediate_size 18432) + 58 MoE layers" in line for line in cfg.origin)


def _qwen(tmp_path: Path, **extra: object) -> str:
    path = tmp_path / "config.json"
    fields = {
        "model_type": "qwen2_moe", "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 16,
        "num_experts": 4, "num_experts_per_tok": 2, "num_hidden_layers": 24, "rms_norm_eps": 1e-6, **extra,
    }  # fmt: skip
    path.write_text(json.dumps(fields))
    return str(path)


def test_config_json_qwen_sparse_step_and_mlp_only_layers(tmp_path: Path) -> None:
    # MoE when (i + 1) % 2 == 0 and i not in [1]: i = 3, 5, …, 23 → 11 MoE, 13 dense
    cfg = ffn_calc.layer(1, 1, config=_qwen(tmp_path, decoder_sparse_step=2, mlp_only_layers=[1, 2]))
    assert (cfg.layers, cfg.dense_layers, cfg.dense_d_ff) == (11, 13, 96)
    every = ffn_calc.layer(1, 1, config=_qwen(tmp_path, decoder_sparse_step=1, mlp_only_layers=[]))
    assert (every.layers, every.dense_layers) == (24, 0)


def test_config_json_moe_layer_freq(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    fields = {"model_type": "deepseek_v2", "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 16,
              "n_routed_experts": 4, "num_experts_per_tok": 2, "num_hidden_layers": 10, "first_k_dense_replace": 3, "moe_layer_freq": 2}  # fmt: skip
    path.write_text(json.dumps(fields))
    cfg = ffn_calc.layer(1, 1, config=str(path))
    # DeepseekV2DecoderLayer reads first_k_dense_replace only (transformers 5.24): moe_layer_freq is
    # not read, so i = 3 … 9 are MoE
    assert (cfg.layers, cfg.dense_layers) == (7, 3)


def test_dense_layer_flags(cli: Run) -> None:
    code, out, _ = cli("shapes", "2", "3", "8", "--d-ff", "16", "--experts", "4", "--top-k", "2", "-L", "5",
                       "--dense-layers", "2", "--dense-d-ff", "24", "-f", "json")  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    dense = 2 * 8 * 24 + 24 + 8  # linear1, linear2 and their biases
    moe = 4 * (2 * 8 * 16 + 16 + 8) + 8 * 4
    assert [(g["name"], g["layers"], g["totals"]["params"]) for g in doc["groups"]] == [("dense", 2, dense), ("moe", 5, moe)]
    assert doc["model"]["params"] == 2 * dense + 5 * moe
    assert doc["groups"][0]["sum"]["params"] == 2 * dense
    code, _, err = cli("shapes", "2", "3", "8", "--dense-d-ff", "24")
    assert code == 2 and "--dense-d-ff" in err and "--dense-layers" in err
    code, _, err = cli("shapes", "2", "3", "8", "--dense-layers", "1")
    assert code == 2 and "--dense-d-ff" in err
    assert ffn_calc.layer(1, 1, model="deepseek-v3", dense_layers=0).dense_d_ff == 0


def test_verify_runs_one_layer_of_each_group(mixed_stack: FFNConfig) -> None:
    report = ffn_calc.verify(mixed_stack)
    assert report.ok
    names = [c.name for c in report.checks]
    assert "dense layer: parameters" in names and "moe layer: parameters" in names
    total = next(c for c in report.checks if c.name.startswith("model parameters = "))
    assert total.observed == ffn_calc.analyze(mixed_stack).model.params


def test_verify_refuses_a_group_too_large() -> None:
    with pytest.raises(VerifyRefused, match="dense group's layer"):
        ffn_calc.verify(ffn_calc.layer(1, 1, model="deepseek-v3"), max_memory_bytes=2**20)


LLAMA_PARAMS = 3 * 4096 * 11008


def test_llama_2_7b_quantized_weights_per_layer() -> None:
    # gptq_int4 (the earlier int4), G = 128; each format's tensors are tests/model/test_weight_formats.py's
    t = ffn_calc.analyze(ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="int4")).totals
    packed = LLAMA_PARAMS // 2  # qweight: eight 4-bit weights per int32
    scales = 2 * (2 * (4096 // 128) * 11008) + 2 * (11008 // 128) * 4096  # a float16 per 128 along K, per column
    zeros = scales // 4  # 4-bit zeros, eight per int32: a quarter of the float16 scales' bytes
    g_idx = 4 * (4096 + 4096 + 11008)
    assert scales == 2 * LLAMA_PARAMS // 128 == 2_113_536
    assert t.weight_bytes == packed + scales + zeros + g_idx == 70_351_872
    fp8 = ffn_calc.analyze(ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="float8_e4m3fn")).totals
    assert fp8.weight_bytes == LLAMA_PARAMS


def test_mixtral_decode_roofline_reads_gptq_experts() -> None:
    roof = ffn_calc.roofline(ffn_calc.layer(64, 2048, model="mixtral-8x7b", weight_dtype="int4"), "a100-80gb")
    decode = {g.stage: g for g in roof.phases[1].gemms}
    # one expert's gate: qweight 4096·14336/2 + qzeros 32·1792·4 + scales 32·14336·2 + g_idx 4·4096
    expert = 4096 * 14336 // 2 + 32 * 1792 * 4 + 32 * 14336 * 2 + 4 * 4096
    assert expert == 30_523_392
    gate = decode["expert_gate"]
    assert gate.routing is not None and gate.routing.expert_weight_bytes == expert
    rows = 64 * 2  # 64 tokens, top-2: all 8 experts reached in the worst case
    assert gate.bytes == 2 * (rows * 4096 + rows * 14336) + 8 * expert == 248_905_728
    down = decode["expert_down"]
    assert down.routing is not None and down.routing.expert_weight_bytes == 14336 * 4096 // 2 + 112 * 512 * 4 + 112 * 4096 * 2 + 4 * 14336
    assert roof.peak_flops == ffn_calc.roofline(ffn_calc.layer(64, 2048, model="mixtral-8x7b"), "a100-80gb").peak_flops  # bfloat16 compute
    assert roof.peak_dtype == "bfloat16"


def test_int4_refusals() -> None:
    with pytest.raises(ConfigError, match="weights only"):
        ffn_calc.layer(1, 1, 8, dtype="int4")
    with pytest.raises(ConfigError, match="not modelled"):
        ffn_calc.train(ffn_calc.layer(1, 1, 8, weight_dtype="int4"))
    with pytest.raises(VerifyRefused, match="weight_dtype"):  # the API's keywords, in every error
        ffn_calc.verify(ffn_calc.layer(1, 1, 8, weight_dtype="float8_e4m3fn", dtype="bfloat16"))  # a plain dtype apart from dtype: not built apart
    with pytest.raises(ConfigError, match="group_size"):
        ffn_calc.layer(1, 1, 8, group_size=64)
