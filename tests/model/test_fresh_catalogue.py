"""Hand-computed cases for bugs the fresh mutant catalogue (benchmarks/mutants_fresh.py) planted
without the suite noticing: each test names the figure a planted bug moved and works it out by hand
(or from a published figure, or as a property of independent calls)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import ffn_calc
from ffn_calc.errors import ConfigError, VerifyRefused
from ffn_calc.inputs import limits, values
from ffn_calc.inputs.config_json import read_config
from ffn_calc.model.layer import make_config
from ffn_calc.model.training import TrainingOptions, train
from ffn_calc.model.training_options import state_bytes


def test_zero3_shards_are_padded_to_a_multiple_of_n() -> None:
    # d = 8, d_ff = 24, relu, biases: 8·24 + 24 + 24·8 + 8 = 416 parameters, float32, Adam.
    # Over N = 3 a shard is ceil(416 / 3) = 139 elements (DeepSpeed and FSDP pad the flat buffer to 417).
    dp = train(make_config(2, 4, 8, "24"), TrainingOptions(), dp=3, zero="3").data_parallel
    assert dp is not None
    assert (dp.weight_bytes, dp.gradient_bytes) == (139 * 4, 139 * 4)
    assert dp.optimizer_state_bytes == 139 * 2 * 4  # Adam's 2 states of the padded shard's 139 elements: 1,112
    assert dp.gradient_sent_bytes == 2 * 139 * 4  # reduce-scatter: (N − 1) chunks of 139 elements
    assert dp.weight_gather_sent_bytes == 2 * 2 * 139 * 4  # all-gather in forward and in backward
    assert dp.sent_bytes == 3336  # 8 bytes past 3·(N − 1)/N·Ψ·b = 3,328: the padding's


def test_a_mixed_stack_under_zero3_gathers_one_layer_at_a_time() -> None:
    # 1 dense layer (d_ff 16) + 2 MoE layers (4 experts of 24, top-2), ZeRO-3 over 4 ranks: the stack's
    # peak is its sharded state + every layer's saved activations + the busier group's one layer
    # (gathered weights and whole gradient + recomputed + backward transient), never both groups'.
    cfg = make_config(2, 4, 8, "24", experts=4, top_k=2, dense_layers=1, dense_d_ff=16, layers=2)
    whole = train(cfg, TrainingOptions(), dp=4, zero="3")
    dense = train(cfg.groups[0], TrainingOptions(), dp=4, zero="3")
    moe = train(cfg.groups[1], TrainingOptions(), dp=4, zero="3")
    assert whole.data_parallel is not None and dense.data_parallel is not None and moe.data_parallel is not None
    one = [r.data_parallel.gathered_bytes + r.totals.recomputed_bytes + r.totals.backward_transient_bytes  # type: ignore[union-attr]
           for r in (dense, moe)]  # fmt: skip
    state = sum(n * (d.weight_bytes + d.gradient_bytes + d.master_weight_bytes + d.optimizer_state_bytes)
                for n, d in ((1, dense.data_parallel), (2, moe.data_parallel)))  # fmt: skip
    saved = dense.totals.saved_activation_bytes + 2 * moe.totals.saved_activation_bytes
    assert whole.data_parallel.model_state_bytes == state
    assert whole.data_parallel.model_peak_bytes == state + saved + max(one)
    assert max(one) < sum(one)  # the case tells one layer's from every group's


def _config(tmp_path: Path, fields: dict[str, Any]) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(fields))
    return str(path)


def test_deepseek_v3_without_first_k_dense_replace_takes_the_codes_3(tmp_path: Path) -> None:
    # DeepseekV3Config(first_k_dense_replace=3): of 5 layers, 0-2 dense and 3-4 MoE.
    fields = {"model_type": "deepseek_v3", "hidden_size": 64, "intermediate_size": 96, "moe_intermediate_size": 16, "n_routed_experts": 4,
              "num_experts_per_tok": 2, "n_shared_experts": 1, "num_hidden_layers": 5}  # fmt: skip
    values = read_config(_config(tmp_path, fields)).values
    assert (values["dense_layers"], values["layers"], values["dense_d_ff"]) == (3, 2, 96)


def test_the_dtype_key_of_newer_files_sets_the_dtype(tmp_path: Path) -> None:
    # transformers ≥ 4.56 writes `dtype` where older files wrote `torch_dtype`
    fields = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "dtype": "bfloat16"}
    assert read_config(_config(tmp_path, fields)).values["dtype"] == "bfloat16"


def test_bitsandbytes_llm_int8_skip_modules_keeps_the_ffn_in_its_dtype(tmp_path: Path) -> None:
    q = {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "llm_int8_skip_modules": ["mlp"]}
    fields = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "quantization_config": q}
    assert "weight_dtype" not in read_config(_config(tmp_path, fields)).values
    del q["llm_int8_skip_modules"]
    assert read_config(_config(tmp_path, fields)).values["weight_dtype"] == "nf4"


def test_gptq_without_group_size_takes_gptqconfigs_128(tmp_path: Path) -> None:
    fields = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
              "quantization_config": {"quant_method": "gptq", "bits": 4}}  # fmt: skip
    cfg = ffn_calc.layer(1, 1, config=_config(tmp_path, fields))
    assert (cfg.weight_dtype, cfg.group_size) == ("gptq_int4", 128)


def test_llama_4_maverick_interleave_step_2_puts_moe_on_odd_layers(tmp_path: Path) -> None:
    # Llama-4-Maverick: 48 layers, interleave_moe_layer_step 2 → moe_layers = range(1, 48, 2): 24 MoE, 24 dense
    fields = {"model_type": "llama4_text", "hidden_size": 64, "intermediate_size": 32, "intermediate_size_mlp": 128, "num_hidden_layers": 48,
              "num_local_experts": 4, "num_experts_per_tok": 1, "interleave_moe_layer_step": 2}  # fmt: skip
    values = read_config(_config(tmp_path, fields)).values
    assert (values["layers"], values["dense_layers"], values["dense_d_ff"]) == (24, 24, 128)


def test_config_head_dim_wins_over_d_model_over_heads(tmp_path: Path) -> None:
    # gemma-7b: hidden_size 3072, 16 heads of head_dim 256 (not 3072 / 16 = 192), 16 key/value heads:
    # q, k, v (3072, 4096) and o (4096, 3072): 4 · 3072 · 4096 = 50,331,648 attention parameters.
    fields = {"model_type": "gemma", "hidden_size": 3072, "intermediate_size": 24576, "num_hidden_layers": 28, "num_attention_heads": 16,
              "num_key_value_heads": 16, "head_dim": 256}  # fmt: skip
    attention = read_config(_config(tmp_path, fields)).values["attention"]
    assert attention.head_dim == 256 and attention.params(3072) == 50_331_648


def test_sweeps_tokens_column_is_batch_times_seq_len() -> None:
    assert [list(r) for r in ffn_calc.sweep([2, 3], [5], d_model=8, columns="batch,seq_len,tokens").rows] == [[2, 5, 10], [3, 5, 15]]


def test_an_api_memory_refusal_names_max_memory_bytes() -> None:
    with pytest.raises(VerifyRefused) as e:
        ffn_calc.verify(ffn_calc.layer(100_000, 100_000, 100_000), max_memory_bytes=1000)
    assert "(max_memory_bytes)" in str(e.value) and "--max-memory" not in str(e.value)


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-1", "0", "1e6"])
def test_a_number_option_refuses_nan_infinities_and_the_bounds(text: str) -> None:
    with pytest.raises(ConfigError):
        values.number("--capacity-factor", text)
    assert values.number("--capacity-factor", "999999.5") == 999999.5


@pytest.mark.parametrize(("text", "bytes_"), [("512MiB", 512 * 2**20), ("1.5GB", 1_500_000_000), ("2KiB", 2048), ("3KB", 3000),
                                              ("1TiB", 2**40), ("7", 7)])  # fmt: skip
def test_memory_sizes_binary_and_decimal(text: str, bytes_: int) -> None:
    assert values.memory("--max-memory", text) == bytes_


def test_a_file_one_byte_past_the_bound_is_refused_as_too_large(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b" " * limits.MAX_FILE_BYTES)
    assert len(limits.read_file(str(path), "--config")) == limits.MAX_FILE_BYTES
    path.write_bytes(b" " * (limits.MAX_FILE_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than 4 MiB"):
        limits.read_file(str(path), "--config")


def test_adam8bit_block_statistics_by_hand() -> None:
    # bitsandbytes Optimizer2State: 8-bit states from min_8bit_size = 4,096 elements on, each state a
    # byte per element and a float32 absmax per block of 256 (the last block short); below, float32.
    assert state_bytes("adam8bit", 4096, 4) == 2 * (4096 + 16 * 4)  # 8,320
    assert state_bytes("adam8bit", 4095, 4) == 2 * 4095 * 4  # 32,760
    assert state_bytes("adam8bit", 4550, 4) == 2 * (4550 + 18 * 4)  # ceil(4550 / 256) = 18 blocks: 9,244
    # d = 64, d_ff = 64, no biases: two 4,096-element matrices, each 8-bit
    report = train(make_config(2, 4, 64, "64", bias=False), TrainingOptions(optimizer="adam8bit"))
    assert report.totals.optimizer_state_bytes == 2 * 8320
