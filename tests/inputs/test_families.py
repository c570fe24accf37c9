"""The family table against the real transformers code, without torch: every entry of
tests/data/families_golden.json (written by scripts/crosscheck_families.py from the modules
themselves) is read back through `--config` and ffn-calc's numbers must equal the code's:
parameters per block and per model exactly, matmul FLOPs forward and backward exactly
(FlopCounterMode counts matmuls only, 2·M·K·N, as ffn-calc's matmul_flops do)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA, ROOT

from ffn_calc.catalogue.families import CODE_DEFAULTS, FAMILIES, TRANSFORMERS
from ffn_calc.catalogue.presets import PRESETS
from ffn_calc.errors import ConfigError
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model.forward import analyze
from ffn_calc.model.training import TrainingOptions, train

GOLDEN: dict[str, Any] = json.loads((DATA / "families_golden.json").read_text())
ENTRIES = {e["model_type"]: e for e in GOLDEN["families"]}
BATCH, SEQ = GOLDEN["input"]


def test_the_table_covers_sixty_families_read_from_one_version() -> None:
    read = [f for f in FAMILIES.values() if not f.refused]
    assert len(read) >= 60 and GOLDEN["transformers"] == TRANSFORMERS
    assert set(ENTRIES) == {f.model_type for f in read}  # every family read is cross-checked
    assert set(CODE_DEFAULTS) == set(ENTRIES)
    for e in GOLDEN["families"]:
        assert e["transformers"] == TRANSFORMERS and e["model_class"] == FAMILIES[e["model_type"]].model


@pytest.mark.parametrize("model_type", sorted(ENTRIES))
def test_ffn_calc_counts_what_the_code_builds(model_type: str) -> None:
    e = ENTRIES[model_type]
    cfg = layer_config(BATCH, SEQ, config=str(ROOT / e["config"]))
    report = analyze(cfg)
    assert report.model.params == e["model_ffn_params"]
    groups = report.groups
    blocks = e["blocks"]
    assert len(groups) == len(blocks)
    # the golden blocks are in layer order: a mixed stack's dense kind first, as ffn-calc's groups
    dense_first = sorted(blocks, key=lambda b: b["class"] != _dense_class(model_type, blocks))
    for group, block in zip(groups, dense_first, strict=True):
        assert (group.config.layers, group.totals.params) == (block["layers"], block["params"]), block["class"]
        assert group.totals.matmul_flops == block["forward_matmul_flops"], block["class"]
        step = train(group.config, TrainingOptions())
        assert step.totals.backward_matmul_flops == block["backward_matmul_flops"], block["class"]


def _dense_class(model_type: str, blocks: list[dict[str, Any]]) -> str:
    """The dense block's class in a mixed stack: the second of the family's alternatives."""
    spec = FAMILIES[model_type].block.split("|")
    return spec[1] if len(spec) > 1 and len(blocks) > 1 else ""


@pytest.mark.parametrize("entry", GOLDEN["presets"], ids=lambda e: e["preset"])
def test_presets_equal_the_published_models_built_on_meta(entry: dict[str, Any]) -> None:
    report = analyze(layer_config(1, 1, model=entry["preset"]))
    assert report.model.params == entry["model_ffn_params"]
    per_layer = sorted(b["params"] for b in entry["blocks"])
    assert sorted(g.totals.params for g in report.groups) == per_layer


def test_gpt_oss_by_hand() -> None:
    # GptOssMLP of gpt-oss-20b: router 2880·32 + 32 (bias) = 92,192; each expert gate_up 2880·5760 + 5760,
    # down 2880·2880 + 2880: 24,891,840; 32 experts 796,538,880; the layer 796,631,072; × 24 layers 19,119,145,728.
    small = analyze(layer_config(1, 1, model="gpt-oss-20b"))
    assert small.totals.params == 796_631_072 and small.model.params == 19_119_145_728
    # gpt-oss-120b: router 2880·128 + 128 = 368,768; 128 experts 3,186,155,520; the layer 3,186,524,288; × 36 = 114,714,874,368
    big = analyze(layer_config(1, 1, model="gpt-oss-120b"))
    assert big.totals.params == 3_186_524_288 and big.model.params == 114_714_874_368
    assert big.stage("router").bias_params == 128 and PRESETS["gpt-oss-120b"].router_bias


def test_olmoe_by_hand() -> None:
    # OlmoeSparseMoeBlock of the small config: router 64·4 = 256; 4 experts of 3·64·32 = 6,144 each: 24,576;
    # the block 24,832; 4 layers 99,328. Forward matmuls on 6 tokens, top-2: 2·6·64·4 (router) + 2·2·6·3·64·32 = 3,072 + 147,456.
    cfg = layer_config(2, 3, config=str(DATA / "families" / "olmoe.json"))
    r = analyze(cfg)
    assert (r.totals.params, r.model.params) == (24_832, 99_328)
    assert r.totals.matmul_flops == 150_528 == ENTRIES["olmoe"]["blocks"][0]["forward_matmul_flops"]


def test_a_missing_field_takes_the_codes_default_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "olmoe", "hidden_size": 64}))
    cfg = layer_config(1, 1, config=str(path))
    # OlmoeConfig: intermediate_size 2048, num_experts 64, num_experts_per_tok 8, num_hidden_layers 16
    assert (cfg.d_ff, cfg.experts, cfg.top_k, cfg.layers, cfg.activation) == (2048, 64, 8, 16, "swiglu")
    assert any("num_experts absent: 64, the default of olmoe's configuration class" in line for line in cfg.origin)


def test_an_unknown_family_is_refused_until_flags_describe_it(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "newmodel", "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2}))
    with pytest.raises(ConfigError, match=r"'newmodel' is not one of the \d+ families.*-a/--activation, --bias/--no-bias") as e:
        layer_config(1, 1, config=str(path))
    assert "\n" not in str(e.value)
    cfg = layer_config(1, 1, config=str(path), activation="swiglu", bias=False)
    assert (cfg.d_model, cfg.d_ff, cfg.layers, cfg.activation) == (64, 256, 2, "swiglu")


@pytest.mark.parametrize("model_type", sorted(t for t, f in FAMILIES.items() if f.refused))
def test_refused_families_say_why_in_one_line(tmp_path: Path, model_type: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": model_type, "hidden_size": 64}))
    with pytest.raises(ConfigError, match="refused") as e:
        layer_config(1, 1, config=str(path))
    assert "\n" not in str(e.value) and FAMILIES[model_type].refused in str(e.value)


@pytest.mark.parametrize(
    ("family", "change"),
    [
        ("deepseek_v3", {"first_k_dense_replace": 100}),  # beyond the layer count
        ("qwen2_moe", {"mlp_only_layers": [0, 1, 2, 3]}),  # every layer listed
        ("qwen2_moe", {"decoder_sparse_step": 9, "mlp_only_layers": []}),  # no (i + 1) % 9 == 0 among 4 layers
    ],
    ids=lambda v: v if isinstance(v, str) else ",".join(v),
)
def test_a_config_whose_every_layer_is_dense_is_a_dense_model(family: str, change: dict[str, Any], tmp_path: Path) -> None:
    """Issue 19: such a config.json got a phantom MoE layer in the model totals while origin said '6 dense + 0 MoE'."""
    raw = json.loads((DATA / "families" / f"{family}.json").read_text(encoding="utf-8")) | change
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    cfg = layer_config(1, 8, config=str(path))
    d, f, layers = raw["hidden_size"], raw["intermediate_size"], raw["num_hidden_layers"]
    assert (cfg.experts, cfg.dense_layers, cfg.layers, cfg.d_ff) == (0, 0, layers, f)
    # each layer a dense SwiGLU without biases: 3·d·f parameters, and nothing more anywhere in the stack
    assert analyze(cfg).model.params == layers * 3 * d * f
    assert any("no MoE layer" in line for line in cfg.origin)
