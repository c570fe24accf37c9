"""Bad config.json fields and an absurd --dp, each tried by hand in the installed CLI and found to
crash (exit 70) or to be read silently: each is now one line on stderr, exit 2, nothing on stdout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import Run

from ffn_calc.errors import ConfigError
from ffn_calc.inputs.config_json import read_config
from ffn_calc.model.data_parallel import data_parallel
from ffn_calc.model.layer import make_config
from ffn_calc.model.training import TrainingOptions, train

_MOE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "hidden_act": "silu", "num_experts_per_tok": 1}
BAD_CONFIGS: list[tuple[dict[str, Any], str]] = [
    # moe_layers not a list: `i in "all"` raised TypeError (exit 70)
    ({"model_type": "llama4_text", **_MOE, "intermediate_size_mlp": 128, "num_local_experts": 4, "moe_layers": "all"}, "'moe_layers'"),
    ({"model_type": "llama4_text", **_MOE, "intermediate_size_mlp": 128, "num_local_experts": 4, "moe_layers": [1, True]}, "'moe_layers'"),
    # no attention heads: d_model // 0 (exit 70)
    ({"model_type": "llama", "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 4, "hidden_act": "silu",
      "num_attention_heads": 0}, "'num_attention_heads'"),
    # no key-value heads (or a head of width 0) read as the code's default (an `or`), exit 0
    ({"model_type": "llama", "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 4, "hidden_act": "silu",
      "num_attention_heads": 8, "num_key_value_heads": 0}, "'num_key_value_heads'"),
    ({"model_type": "mistral", "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 4, "hidden_act": "silu",
      "num_attention_heads": 8, "head_dim": 0}, "'head_dim'"),
    # a negative expert_layer_period made every layer MoE (i % -1 == 0), exit 0
    ({"model_type": "jamba", **_MOE, "num_experts": 4, "expert_layer_period": -1, "expert_layer_offset": 0}, "expert_layer_period"),
    ({"model_type": "jamba", **_MOE, "num_experts": 4, "expert_layer_period": 2, "expert_layer_offset": -1}, "expert_layer_offset"),
]  # fmt: skip


def _write(tmp_path: Path, fields: dict[str, Any]) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(fields))
    return str(path)


@pytest.mark.parametrize(("fields", "named"), BAD_CONFIGS)
def test_a_bad_field_is_refused_naming_it(tmp_path: Path, fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as e:
        read_config(_write(tmp_path, fields))
    assert e.value.argument == "--config" and named in e.value.message


@pytest.mark.parametrize(("fields", "named"), BAD_CONFIGS[:3])
def test_the_cli_refuses_it_in_one_line(cli: Run, tmp_path: Path, fields: dict[str, Any], named: str) -> None:
    code, out, err = cli("shapes", "--config", _write(tmp_path, fields))
    assert (code, out, err.count("\n")) == (2, "", 1) and named in err and "internal error" not in err


def test_jamba_period_and_offset_still_place_the_moe_layers(tmp_path: Path) -> None:
    # i % 2 == 1 for i in 0..3: layers 1 and 3 MoE, 0 and 2 dense
    fields = {"model_type": "jamba", **_MOE, "num_experts": 4, "expert_layer_period": 2, "expert_layer_offset": 1}
    values = read_config(_write(tmp_path, fields)).values
    assert (values["layers"], values["dense_layers"], values["dense_d_ff"]) == (2, 2, 128)


def test_more_data_parallel_ranks_than_parameters_is_refused() -> None:
    # d = 8, d_ff = 32, relu with biases: 8·32 + 32 + 32·8 + 8 = 552 parameters
    report = train(make_config(2, 4, 8), TrainingOptions())
    assert report.forward.totals.params == 552
    assert data_parallel(report, 552, "3").weight_bytes == 4  # one element of 4 bytes on each of 552 ranks
    for zero in ("0", "3"):
        with pytest.raises(ConfigError) as e:
            data_parallel(report, 553, zero)
        assert e.value.argument == "--dp"
    with pytest.raises(ConfigError) as e:  # 70 nodes of 8: a shard of 69 split over 70 nodes
        data_parallel(report, 560, "hybrid_shard")
    assert e.value.argument == "--dp"
    assert data_parallel(report, 552, "hybrid_shard", node_size=8).shard_ranks == 8  # 69 nodes, one shard element each


def test_the_cli_refuses_an_absurd_dp(cli: Run) -> None:
    code, out, err = cli("train", "2", "4", "8", "--dp", "99999999999", "--zero", "3")
    assert (code, out, err.count("\n")) == (2, "", 1) and "--dp" in err
