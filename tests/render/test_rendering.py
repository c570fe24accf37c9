"""Tables at 80, 100 and 120 columns: every number, shape, name and choice appears whole.

The numbers are checked against the JSON of the same command (never parsed back out of a table
for their value): each must appear either exact (`1,409,318,912`) or in the units the table
prints at that width (`1.41 B`, `705 MFLOP`, `5.25 GiB`). Every table is checked in full, with
--detail; test_screens.py holds the screenful each command prints by default."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from helpers import Result

from ffn_calc.render.layout import bytes_text, flops_text, macs_text, n, params_text

WIDTHS = ("80", "100", "120")
Cli = Callable[..., Result]


def run(cli: Cli, monkeypatch: pytest.MonkeyPatch, width: str, *args: str) -> str:
    monkeypatch.setenv("COLUMNS", width)
    code, out, err = cli(*args)
    assert code == 0, err
    for line in out.splitlines():
        assert len(line) <= int(width), f"wider than {width}: {line!r}"
    assert "…" not in out
    return out


def shape_text(s: list[int]) -> str:
    return f"({s[0]},)" if len(s) == 1 else "(" + ", ".join(map(str, s)) + ")"


def shown(text: str, value: int, human: Callable[[int], str]) -> bool:
    """`value` appears whole: exact with separators, or in units, not as a piece of a longer number."""
    return any(re.search(rf"(?<![\d,.]){re.escape(form)}(?!\d|,\d)", text) for form in (n(value), human(value)))


def json_of(cli: Cli, *args: str) -> dict[str, Any]:
    code, out, err = cli(*args, "-f", "json")
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


SHAPES = [
    ("shapes", "3", "6", "8", "--d-ff", "32", "--norm", "post"),
    ("shapes", "1", "2048", "-m", "mixtral-8x7b"),
    ("shapes", "1", "4096", "-m", "deepseek-v3"),
    ("shapes", "1", "512", "-m", "llama-2-7b"),
]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("args", SHAPES, ids=" ".join)
def test_shapes_whole(cli: Cli, monkeypatch: pytest.MonkeyPatch, width: str, args: tuple[str, ...]) -> None:
    doc = json_of(cli, *args)
    text = run(cli, monkeypatch, width, *args, "--detail")
    for stage in doc["stages"]:
        assert re.search(rf"(?<![\w]){re.escape(stage['name'])}(?![\w])", text), stage["name"]
        assert shape_text(stage["output_shape"]) in text
        assert shown(text, stage["params"], params_text)
        assert shown(text, stage["flops"], flops_text)
        assert shown(text, stage["macs"], macs_text)
        assert shown(text, stage["output_bytes"], bytes_text)
    t = doc["totals"]
    for key, human in (("params", params_text), ("active_params", params_text), ("flops", flops_text), ("flops_per_token", flops_text),
                       ("weight_bytes", bytes_text), ("peak_bytes", bytes_text), ("activation_bytes", bytes_text)):  # fmt: skip
        assert shown(text, t[key], human), key
    # The headline comes last, with the exact figures beside their units at these widths.
    head = text.split("Convention: ")[-1]
    assert n(t["params"]) in head and params_text(t["params"]) in head
    assert n(t["peak_bytes"]) in head and bytes_text(t["peak_bytes"]) in head


def test_expert_rows_are_counts(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    text = run(cli, monkeypatch, "80", "shapes", "1", "1", "-m", "mixtral-8x7b", "--detail")
    assert "(0.25" not in text
    assert "(r, 4096)" in text and "r: the rows routed to an expert" in text


@pytest.mark.parametrize("args", SHAPES, ids=" ".join)
def test_summary_is_the_headline(cli: Cli, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    doc = json_of(cli, *args)
    text = run(cli, monkeypatch, "80", *args, "-q")
    lines = text.strip("\n").splitlines()
    assert len(lines) <= 8
    parts = [re.split(r"\s{2,}", line.strip()) for line in lines]  # quantity, in units, exact, note
    exact = {p[0]: int(p[2].replace(",", "")) for p in parts}
    t = doc["totals"]
    assert exact["parameters"] == t["params"]
    assert exact["FLOPs per token"] == t["flops_per_token"]
    assert exact["weight memory"] == t["weight_bytes"]
    assert exact["peak memory"] == t["peak_bytes"]
    if doc["config"].get("experts"):
        assert exact["active parameters"] == t["active_params"]


def test_summary_of_bert_base(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    text = run(cli, monkeypatch, "80", "shapes", "1", "512", "-m", "bert-base", "-q")
    assert "4,722,432" in text and "4.72 M" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_models_whole(cli: Cli, monkeypatch: pytest.MonkeyPatch, width: str) -> None:
    doc = json_of(cli, "models")
    text = run(cli, monkeypatch, width, "models")
    table = text.split("Sources")[0]
    rows = doc if isinstance(doc, list) else doc["models"]
    for row in rows:
        name = row.get("name") or row["preset"]["name"]
        assert re.search(rf"(?m)^\W*{re.escape(name)}\s", table), name
        params = row.get("params_per_layer")
        if params is not None:
            assert shown(table, params, params_text), name
    for choice in ("gelu_tanh", "geglu_tanh", "swiglu", "relu"):
        assert choice in table


@pytest.mark.parametrize("width", WIDTHS)
def test_train_whole(cli: Cli, monkeypatch: pytest.MonkeyPatch, width: str) -> None:
    args = ("train", "1", "4096", "-m", "llama-2-7b", "--tp", "8")
    doc = json_of(cli, *args)
    text = run(cli, monkeypatch, width, *args, "--detail")
    t = doc["totals"]
    for key, human in (("step_flops", flops_text), ("forward_flops", flops_text), ("backward_flops", flops_text),
                       ("peak_bytes", bytes_text), ("weight_bytes", bytes_text), ("saved_activation_bytes", bytes_text)):  # fmt: skip
        assert shown(text, t[key], human), key
    for op in doc["backward"]:
        assert shape_text(op["output_shape"]) in text
        assert shown(text, op["flops"], flops_text)
    assert "8 ranks" in text and "1 ranks" not in text


@pytest.mark.parametrize("width", WIDTHS)
def test_sweep_whole(cli: Cli, monkeypatch: pytest.MonkeyPatch, width: str) -> None:
    args = ("sweep", "--batch", "1,8", "--seq-len", "512,2048", "-m", "llama-3-8b")
    monkeypatch.setenv("COLUMNS", width)
    code, out, _ = cli(*args, "-f", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    text = run(cli, monkeypatch, width, *args)
    assert re.search(r"(?m)^\W*batch\W+seq_len\W", text)  # the swept columns' names, as JSON spells them, at every width
    for row in rows:
        assert shown(text, row["flops"], flops_text)
        assert shown(text, row["peak_bytes"], bytes_text)
        assert shown(text, row["params"], params_text)


@pytest.mark.parametrize("width", WIDTHS)
def test_verify_summary_and_all(cli: Cli, monkeypatch: pytest.MonkeyPatch, width: str) -> None:
    args = ("verify", "3", "6", "8", "--d-ff", "32")
    doc = json_of(cli, *args)
    text = run(cli, monkeypatch, width, *args)
    judged = [c for c in doc["checks"] if c["kind"] != "info"]
    assert f"ok: all {len(judged)} checks match" in text
    assert len(text.splitlines()) <= 8
    every = run(cli, monkeypatch, width, *args, "--all")
    for check in doc["checks"]:
        assert check["name"] in every, check["name"]


@pytest.mark.parametrize("width", WIDTHS)
def test_explain_whole(cli: Cli, monkeypatch: pytest.MonkeyPatch, width: str) -> None:
    args = ("explain", "1", "512", "-m", "llama-2-7b")
    doc = json_of(cli, *args)
    text = run(cli, monkeypatch, width, *args)
    for formula in doc["formulas"]:
        assert n(formula["value"]) in text


def test_units() -> None:
    assert params_text(4_328_521_728) == "4.33 B"
    assert flops_text(704_864_283) == "705 MFLOP"
    assert bytes_text(180_392_820_736) == "168 GiB"
    assert bytes_text(576) == "576 B"


def test_singular(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    text = run(cli, monkeypatch, "100", "shapes", "1", "1", "4", "--dtype", "int8")
    assert "1 tokens" not in text and "over 1 token" in text
    assert "1 byte" in text and "1 bytes" not in text


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    "args",
    [("roofline", "32", "2048", "-m", "mixtral-8x7b", "--gpu", "h100-sxm"), ("roofline", "1", "4096", "4096", "--gpu", "a100-80gb")],
    ids=" ".join,
)
def test_roofline_whole(cli: Cli, monkeypatch: pytest.MonkeyPatch, width: str, args: tuple[str, ...]) -> None:
    doc = json_of(cli, *args)
    text = run(cli, monkeypatch, width, *args, "--detail")
    for phase in doc["phases"]:
        assert shown(text, phase["flops"], flops_text), phase["name"]
        for gemm in phase["gemms"]:
            assert shape_text(gemm["mkn"]) in text, gemm["stage"]  # a (M, K, N) tuple on one line
            assert shown(text, gemm["flops"], flops_text), gemm["stage"]
            if gemm["ridge_tokens"] is not None:
                assert n(gemm["ridge_tokens"]) in text, gemm["stage"]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    ("parallel", "says"), [(("--tp", "8"), "one rank of 8 (tensor parallel)"), (("--ep", "8"), "one rank of 8 (expert parallel)")]
)
def test_train_summary_says_one_rank_at_every_width(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, width: str, parallel: tuple[str, str], says: str
) -> None:
    """`train --tp 8 -q` dropped "per rank" (in the notes column) below 110 columns."""
    model = "mixtral-8x7b" if parallel[0] == "--ep" else "llama-2-7b"
    text = run(cli, monkeypatch, width, "train", "1", "512", "-m", model, *parallel, "-q")
    assert text.splitlines()[0].strip() == says
