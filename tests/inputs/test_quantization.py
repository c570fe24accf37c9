"""A quantized checkpoint's config.json through --config (inputs/quantization.py): the
quantization_config of each format gives the bytes its checkpoint stores. The files under
tests/data/quant are LLaMA-2-7B's and Mixtral 8x7B's config.json with the quantization_config of
a published checkpoint of each format; their bytes are hand-computed in
tests/model/test_weight_formats.py (and here for the group sizes only these files use)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DATA, Run

import ffn_calc
from ffn_calc.errors import ConfigError

QUANT = DATA / "quant"
ROUTER = 65_536  # Mixtral's (4096, 8) router in bfloat16

# file → (weight_dtype, group_size, one layer's weight bytes)
LLAMA = {
    "gptq": ("gptq_int4", 128, 70_351_872),
    # 8-bit, G = 32: gate/up 45,088,768 + qzeros 128·2752·4 = 1,409,024 + scales 128·11008·2 = 2,818,048 + g_idx 16,384 = 49,332,224;
    # down 45,088,768 + 344·1024·4 = 1,409,024 + 344·4096·2 = 2,818,048 + 44,032 = 49,359,872
    "gptq-8bit-32g-actorder": ("gptq_int8", 32, 2 * 49_332_224 + 49_359_872),
    "gptq-3bit-128g": ("gptq_int3", 128, 53_311_488),
    # 2-bit, group_size -1 (one group): gate/up 11,272,192 + 1·688·4 + 1·11008·2 + 16,384 = 11,313,344;
    # down 11,272,192 + 1·256·4 + 1·4096·2 + 44,032 = 11,325,440
    "gptq-2bit-channel": ("gptq_int2", 0, 2 * 11_313_344 + 11_325_440),
    "awq": ("awq_int4", 128, 70_275_072),
    "bnb-nf4": ("nf4", 64, 76_087_734),
    "bnb-nf4-dq": ("nf4_dq", 64, 69_783_492),
    "mxfp4": ("mxfp4", 32, 71_860_224),
    "nvfp4": ("nvfp4", 16, 76_087_320),
    "fp8-block": ("fp8_block", 128, 135_299_328),
    "fbgemm-fp8": ("fp8_row", None, 135_370_752),
}
MIXTRAL = {
    "gptq": ("gptq_int4", 128, 732_954_624),
    # 8-bit, G = 32, per expert: gate/up 58,720,256 + 128·14336 + 128·14336·2 + 16,384 = 64,241,664;
    # down 58,720,256 + 448·4096 + 448·4096·2 + 57,344 = 64,282,624
    "gptq-8bit-32g-actorder": ("gptq_int8", 32, 8 * (2 * 64_241_664 + 64_282_624) + ROUTER),
    "gptq-3bit-128g": ("gptq_int3", 128, 555_417_600),
    # 2-bit, one group, per expert: gate/up 14,680,064 + 896·4 + 14336·2 + 16,384 = 14,728,704; down 14,680,064 + 256·4 + 4096·2 + 57,344
    "gptq-2bit-channel": ("gptq_int2", 0, 8 * (2 * 14_728_704 + 14_746_624) + ROUTER),
    "awq": ("awq_int4", 128, 732_233_728),
    "bnb-nf4": ("nf4", 64, 792_792_520),
    "bnb-nf4-dq": ("nf4_dq", 64, 727_103_032),
    "mxfp4": ("mxfp4", 32, 748_748_800),
    "nvfp4": ("nvfp4", 16, 792_789_184),
    "fp8-block": ("fp8_block", 128, 1_409_695_744),
    "fbgemm-fp8": ("fp8_row", None, 1_410_400_256),
}


@pytest.mark.parametrize(("model", "table"), [("llama-2-7b", LLAMA), ("mixtral-8x7b", MIXTRAL)])
@pytest.mark.parametrize("name", sorted(LLAMA))
def test_each_quantization_config_gives_its_checkpoint_bytes(model: str, table: dict[str, tuple[str, int | None, int]], name: str) -> None:
    weight_dtype, group, expected = table[name]
    cfg = ffn_calc.layer(1, 1, config=str(QUANT / f"{model}-{name}.config.json"))
    assert (cfg.weight_dtype, cfg.group_size) == (weight_dtype, group)
    assert ffn_calc.analyze(cfg).totals.weight_bytes == expected
    assert any(line.startswith(f"config: weights {weight_dtype}") for line in cfg.origin)


def test_the_flags_give_the_same_bytes_as_the_file() -> None:
    # the 2-bit file's group_size -1 is --group-size 0
    from_file = ffn_calc.layer(1, 1, config=str(QUANT / "llama-2-7b-gptq-2bit-channel.config.json"))
    from_flags = ffn_calc.layer(1, 1, model="llama-2-7b", weight_dtype="gptq_int2", group_size=0)
    assert ffn_calc.analyze(from_file).totals.weight_bytes == ffn_calc.analyze(from_flags).totals.weight_bytes == 33_952_128


def test_through_the_command_line(cli: Run) -> None:
    code, out, err = cli("shapes", "1", "1", "--config", str(QUANT / "mixtral-8x7b-awq.config.json"), "-f", "json")
    doc = json.loads(out)
    assert code == 0 and err == ""
    assert doc["config"]["weight_dtype"] == "awq_int4" and doc["totals"]["weight_bytes"] == 732_233_728
    assert doc["model"]["weight_bytes"] == 32 * 732_233_728
    origin = doc["config"]["origin"]
    assert any("quantization_config=quant_method=awq, bits=4, version=gemm, group_size=128" in line for line in origin)
    assert "config: modules_to_not_convert 'gate': the router, which ffn-calc keeps in --dtype anyway" in origin
    router = next(w for s in doc["stages"] for w in s["weights"] if w["name"] == "W_router")
    assert router["storage"] is None and router["bytes"] == ROUTER
    # a flag overrides the file's format, and the new format's group goes with it
    code, out, _ = cli("shapes", "1", "1", "--config", str(QUANT / "mixtral-8x7b-awq.config.json"), "--weight-dtype", "mxfp4", "-f", "json")
    assert code == 0 and json.loads(out)["totals"]["weight_bytes"] == 748_748_800


def test_what_the_files_say_is_in_origin() -> None:
    cfg = ffn_calc.layer(1, 1, config=str(QUANT / "llama-2-7b-mxfp4.config.json"))
    notes = "\n".join(cfg.origin)
    assert "'model.layers.*.mlp.router': the router" in notes and "'model.layers.*.self_attn': outside the FFN" in notes
    gptq = "\n".join(ffn_calc.layer(1, 1, config=str(QUANT / "llama-2-7b-gptq-8bit-32g-actorder.config.json")).origin)
    assert "desc_act (act-order): g_idx" in gptq and "qzeros are stored all the same" in gptq
    fp8 = ffn_calc.layer(1, 1, config=str(QUANT / "mixtral-8x7b-fp8-block.config.json"))
    assert fp8.product_dtype == "float8_e4m3fn"


def _with(tmp_path: Path, quantization: object, base: str = "llama-2-7b-gptq") -> str:
    cfg = json.loads((QUANT / f"{base}.config.json").read_text())
    cfg["quantization_config"] = quantization
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_modules_left_unconverted(tmp_path: Path) -> None:
    gptq = {"quant_method": "gptq", "bits": 4, "group_size": 128}
    # the whole FFN module listed: its weights stay in float16, 3·45,088,768·2 bytes
    whole = ffn_calc.layer(1, 1, config=_with(tmp_path, gptq | {"modules_to_not_convert": ["mlp"]}))
    assert whole.weight_dtype is None and ffn_calc.analyze(whole).totals.weight_bytes == 270_532_608
    assert any("every layer's FFN (mlp) stays in --dtype" in line for line in whole.origin)
    with pytest.raises(ConfigError, match=r"'down_proj' keeps part of the FFN \(model.layers.0.mlp.down_proj\) unconverted"):
        ffn_calc.layer(1, 1, config=_with(tmp_path, gptq | {"modules_to_not_convert": ["down_proj"]}))
    with pytest.raises(ConfigError, match="leaves 1 of 32 layers' FFN unconverted"):
        ffn_calc.layer(1, 1, config=_with(tmp_path, gptq | {"modules_to_not_convert": ["model.layers.0.mlp"]}))
    with pytest.raises(ConfigError, match=r"'w2' keeps part of the FFN \(model.layers.0.block_sparse_moe.experts.0.w2\)"):
        ffn_calc.layer(1, 1, config=_with(tmp_path, gptq | {"modules_to_not_convert": ["w2"]}, "mixtral-8x7b-gptq"))


@pytest.mark.parametrize(
    ("quantization", "message"),
    [
        ({"quant_method": "hqq"}, "quant_method 'hqq' is not a format ffn-calc stores"),
        ({"quant_method": "gptq", "bits": 5}, "GPTQ with bits 5"),
        ({"quant_method": "gptq", "bits": 4, "checkpoint_format": "marlin"}, "checkpoint_format 'marlin'"),
        ({"quant_method": "awq", "bits": 4, "version": "gemv"}, "AWQ version 'gemv'"),
        ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "load_in_8bit"),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "bnb_4bit_quant_type 'fp4'"),  # BitsAndBytesConfig's default
        ({"quant_method": "modelopt", "quant_algo": "FP8"}, "ModelOpt quant_algo 'FP8'"),
        ({"quant_method": "fp8", "weight_block_size": [128, 64]}, r"weight_block_size \[128, 64\]"),
        ({"quant_method": "fp8", "weight_block_size": None}, "without weight_block_size"),
        ({"quant_method": "fp8", "weight_block_size": [128, 128], "scale_fmt": "ue8m0"}, "scale_fmt 'ue8m0'"),
        ({"quant_method": "fp8", "activation_scheme": "static"}, "activation_scheme static"),
        ("gptq", "must be an object"),
    ],
)
def test_a_setting_whose_bytes_would_be_a_guess_is_refused(tmp_path: Path, quantization: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        ffn_calc.layer(1, 1, config=_with(tmp_path, quantization))
    assert caught.value.argument == "config" and "\n" not in caught.value.message  # the API's keyword (the CLI: --config)


def test_fp8_without_a_block_size_takes_the_loader_default(tmp_path: Path) -> None:
    cfg = ffn_calc.layer(1, 1, config=_with(tmp_path, {"quant_method": "fp8", "activation_scheme": "dynamic"}))
    assert (cfg.weight_dtype, cfg.group_size) == ("fp8_block", 128)
    assert any("no weight_block_size: [128, 128], the default of FineGrainedFP8Config" in line for line in cfg.origin)


def test_gpt_oss_20b_as_its_checkpoint_stores_it() -> None:
    # openai/gpt-oss-20b's config.json and its quantization_config (mxfp4; attention, router, embeddings and lm_head not converted).
    cfg = ffn_calc.layer(1, 1, config=str(QUANT / "gpt-oss-20b.config.json"))
    assert (cfg.weight_dtype, cfg.group_size, cfg.experts, cfg.dtype) == ("mxfp4", 32, 32, "bfloat16")
    r = ffn_calc.analyze(cfg)
    # per expert matrix (K 2880, N 2880): _blocks (2880, 90, 16) = 4,147,200 + _scales (2880, 90) = 259,200 → 4,406,400;
    # the checkpoint's gate_up_proj_blocks (32, 5760, 90, 16) and scales (32, 5760, 90), down_proj's (32, 2880, 90, …): the same bytes
    experts = 32 * 3 * 4_406_400
    assert experts == 265_420_800 + 16_588_800 + 132_710_400 + 8_294_400 == 423_014_400
    # in bfloat16: the experts' biases (2·2880 + 2880 per expert), the router (2880, 32) and its bias (32)
    assert r.totals.weight_bytes == experts + 32 * 8_640 * 2 + 2880 * 32 * 2 + 32 * 2 == 423_751_744
    assert r.model.weight_bytes == 24 * 423_751_744


def test_the_ffn_container_comes_from_the_family_table(tmp_path: Path) -> None:
    """The FFN module's name, which quantization_config's module lists match, is the family's
    `container` (mixtral's block_sparse_moe, jamba's and llama4_text's feed_forward), else mlp."""
    from ffn_calc.catalogue.families import FAMILIES

    assert FAMILIES["mixtral"].container == "block_sparse_moe" and FAMILIES["llama"].container == "mlp"
    gptq = {"quant_method": "gptq", "bits": 4, "group_size": 128, "modules_to_not_convert": ["block_sparse_moe"]}
    whole = ffn_calc.layer(1, 1, config=_with(tmp_path, gptq, "mixtral-8x7b-gptq"))
    assert whole.weight_dtype is None
    assert any("every layer's FFN (block_sparse_moe) stays in --dtype" in line for line in whole.origin)


@pytest.mark.parametrize(
    ("model_type", "layers", "pattern", "whole"),
    [
        # MiniMax's decoder layer keeps Mixtral's attribute (MiniMaxDecoderLayer.block_sparse_moe)
        ("minimax", 2, "block_sparse_moe", True),
        # DBRX's layers are transformer.blocks.{i}, its FFN .ffn: a full path matches layer by layer
        ("dbrx", 1, "transformer.blocks.0.ffn", True),
        ("dbrx", 1, "model.layers.0.mlp", False),
    ],
)
def test_a_family_whose_ffn_has_another_path_is_matched_on_it(model_type: str, layers: int, pattern: str, whole: bool) -> None:
    from ffn_calc.inputs.quantization import _unconverted

    notes: list[str] = []
    assert _unconverted([pattern], {"layers": layers, "experts": 8}, model_type, notes) is whole
    assert len(notes) == 1 and ("every layer's FFN" in notes[0]) is whole
