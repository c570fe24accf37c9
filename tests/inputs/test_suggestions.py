"""Closest-name suggestions for every name a user types, and the GPU presets."""

from __future__ import annotations

import pytest
from helpers import Run

import ffn_calc
from ffn_calc.catalogue.gpus import GPUS
from ffn_calc.errors import closest
from ffn_calc.model.dtypes import DTYPES


def test_closest_prefers_a_name_cut_short_then_similar_ones() -> None:
    assert closest("h100", GPUS) == "did you mean h100-sxm, h100-pcie or h200?"
    assert closest("mi300", GPUS) == "did you mean mi300x or b300?"
    assert closest("zzzz", ["a", "b"]) == "choose one of a, b"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["shapes", "1", "1", "-m", "llama2-7b"], "--model: unknown model 'llama2-7b'; did you mean llama-2-7b,"),
        (["shapes", "1", "1", "-m", "mixtral"], "--model: unknown model 'mixtral'; did you mean mixtral-8x7b"),
        (["roofline", "1", "8", "8", "--gpu", "h100"], "--gpu: unknown GPU 'h100'; did you mean h100-sxm, h100-pcie or h200?"),
        (["shapes", "1", "1", "8", "-a", "swigl"], "--activation: unknown value 'swigl'; did you mean swiglu"),
        (["shapes", "1", "1", "8", "--dtype", "bfloat"], "--dtype: unknown value 'bfloat'; did you mean bfloat16"),
        (["train", "1", "1", "8", "--recompute", "ful"], "--recompute: unknown value 'ful'; did you mean full?"),
        (["sweep", "--batch", "1", "--seq-len", "1", "--d-model", "8", "-c", "parms"], "--columns: unknown column 'parms'; did you mean params"),
    ],
)
def test_unknown_names_get_the_closest_known_ones(cli: Run, args: list[str], message: str) -> None:
    code, out, err = cli(*args)
    assert code == 2 and out == ""
    assert err.startswith("ffn-calc: error: " + message) and err.count("\n") == 1


def test_an_unknown_json_line_key_gets_the_closest(cli: Run) -> None:
    code, _, err = cli("sweep", "--stdin", "-f", "csv", input='{"batch": 1, "seq_len": 1, "dmodel": 8}\n')
    assert code == 1 and err == "ffn-calc: error: line 1: dmodel: is not an option; did you mean d_model or model?\n"


def test_every_gpu_cites_its_datasheet_and_has_a_16_bit_peak() -> None:
    for gpu in GPUS.values():
        assert "bfloat16" in gpu.tflops and gpu.tflops["bfloat16"] == gpu.tflops["float16"]
        assert set(gpu.tflops) <= set(DTYPES)
        assert gpu.tflops.get("float8_e4m3fn") == gpu.tflops.get("float8_e5m2")
        assert any(word in gpu.source for word in ("datasheet", "data sheet", "product brief", "documentation", "white paper"))
        assert f"{gpu.bandwidth_gbs / 1000:g}" in gpu.source.replace(",", "") or f"{gpu.bandwidth_gbs:,g}" in gpu.source


def test_published_ridge_points() -> None:
    # peak / bandwidth in FLOP per byte, by hand from the datasheet figures.
    assert round(GPUS["h20"].tflops["bfloat16"] * 1e12 / (GPUS["h20"].bandwidth_gbs * 1e9), 1) == 37.0
    assert round(GPUS["mi300x"].tflops["float8_e4m3fn"] * 1e3 / GPUS["mi300x"].bandwidth_gbs, 1) == 493.4
    assert round(GPUS["l4"].tflops["bfloat16"] * 1e3 / GPUS["l4"].bandwidth_gbs, 1) == 403.3


def test_fp8_on_a_gpu_without_fp8_is_refused(cli: Run) -> None:
    code, _, err = cli("roofline", "1", "8", "8", "--gpu", "a100-80gb", "--dtype", "float8_e4m3fn")
    assert code == 2 and err.startswith("ffn-calc: error: --dtype: the a100-80gb datasheet gives no dense float8_e4m3fn peak")


def test_gpus_lists_every_preset(cli: Run) -> None:
    doc = ffn_calc.gpus().to_dict()
    assert [g["name"] for g in doc["gpus"]] == list(GPUS)
    code, out, _ = cli("gpus", "-f", "csv")
    assert code == 0 and len(out.splitlines()) == len(GPUS) + 1
    code, out, _ = cli("gpus")
    assert code == 0 and all(name in out for name in GPUS)


def test_the_short_spellings_of_float_types_get_the_long_ones() -> None:
    dtypes = ["float64", "float32", "bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "int8"]
    assert closest("fp16", dtypes) == "did you mean float16?"  # was: the whole list
    assert closest("bf16", dtypes) == "did you mean bfloat16?"
    assert closest("fp8", dtypes).startswith("did you mean float8_e4m3fn, float8_e5m2")
