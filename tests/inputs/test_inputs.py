"""What users and scripts pass in: the API's names, wrong JSON types, sweeps of every kind."""

from __future__ import annotations

import json

import pytest
from helpers import Run

import ffn_calc
from ffn_calc import api


def test_the_package_offers_exactly_the_api() -> None:
    assert ffn_calc.__all__ == api.__all__
    for name in api.__all__:
        assert getattr(ffn_calc, name) is getattr(api, name), name  # nothing shadows an API name
    assert set(api.__all__) <= set(dir(ffn_calc))
    with pytest.raises(AttributeError, match="module 'ffn_calc' has no attribute 'nope'"):
        ffn_calc.nope  # noqa: B018


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"d_ff": 32.5}, "--d-ff: must be text or a whole number, got 32.5"),
        ({"d_ff": [1]}, "--d-ff: must be text or a whole number, got [1]"),
        ({"model": 5}, "--model: must be text, got 5"),
        ({"bias": 1}, "--bias: must be true or false, got 1"),
        ({"experts": True}, "--experts: must be a whole number, got True"),
        ({"activation": 3}, "--activation: must be text, got 3"),
    ],
)
def test_a_wrong_type_is_a_config_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(ffn_calc.ConfigError) as caught:
        ffn_calc.layer(1, 2, 8, **options)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_a_whole_number_is_a_float_option() -> None:
    assert ffn_calc.layer(1, 2, 8, experts=4, top_k=1, capacity_factor=2).capacity_factor == 2


def test_wrong_types_on_json_lines_are_per_line_errors(cli: Run) -> None:
    lines = (
        '{"batch": 1, "seq_len": 2, "d_model": 8, "d_ff": 32.5}\n{"batch": 1, "seq_len": 2, "model": 5}\n{"batch": 1, "seq_len": 2, "d_model": 8}\n'
    )
    code, out, err = cli("sweep", "--stdin", "-f", "jsonl", "-c", "params", input=lines)
    assert code == 1
    assert [json.loads(line) for line in out.splitlines()] == [{"line": 3, "params": 2 * 8 * 32 + 32 + 8}]
    assert err.splitlines() == [
        "ffn-calc: error: line 1: --d-ff: must be text or a whole number, got 32.5",
        "ffn-calc: error: line 2: --model: must be text, got 5",
    ]


def test_flags_hold_for_every_json_line(cli: Run) -> None:
    lines = '{"batch": 1, "seq_len": 2}\n{"batch": 1, "seq_len": 2, "activation": "relu", "d_model": 8}\n'
    code, out, _ = cli("sweep", "--stdin", "-m", "bert-base", "--dtype", "float16", "-f", "jsonl", "-c", "d_model,activation,dtype", input=lines)
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"line": 1, "d_model": 768, "activation": "gelu", "dtype": "float16"},
        {"line": 2, "d_model": 8, "activation": "relu", "dtype": "float16"},
    ]


def test_a_chart_of_a_column_that_is_not_a_number_is_refused(cli: Run) -> None:
    code, out, err = cli("sweep", "--batch", "1,2", "--seq-len", "8", "--d-model", "8", "--chart", "peak_stage")
    assert code == 2 and out == "" and err.startswith("ffn-calc: error: --chart: draws a column of numbers, not 'peak_stage'")


def test_the_api_sweep_takes_numbers_lists_and_text() -> None:
    rows = ffn_calc.sweep(1, [8, 16], sizes={"d_model": "8:16:x2"}, activation="swiglu").to_dict()["rows"]
    assert [(r["seq_len"], r["d_model"]) for r in rows] == [(8, 8), (8, 16), (16, 8), (16, 16)]
    with pytest.raises(ffn_calc.ConfigError, match="d_modl: is not a size a sweep varies"):
        ffn_calc.sweep(1, 2, sizes={"d_modl": 8})
