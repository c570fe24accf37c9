"""`--get PATH`: one field of the JSON output, bare, for shell scripts; a bad path is one line."""

from __future__ import annotations

import json

import pytest
from helpers import Run


def test_get_prints_the_published_bert_base_count(cli: Run) -> None:
    assert cli("shapes", "1", "512", "-m", "bert-base", "--get", "totals.params") == (0, "4722432\n", "")


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (["shapes", "3", "6", "8", "--d-ff", "32"], "totals.flops"),
        (["shapes", "2", "4", "--model", "mixtral-8x7b", "--layers", "2"], "model.active_params"),
        (["shapes", "3", "6", "8"], "stages.1.output_shape"),
        (["train", "2", "4", "8", "--tp", "2"], "parallel.collectives.0.bytes_sent_per_rank"),
        (["roofline", "1", "16", "8", "--gpu", "h100-sxm"], "phases.1.bound"),
        (["models"], "models.3.source"),
        (["explain", "1", "8", "--model", "gpt2"], "formulas.0.value"),
        (["verify", "2", "3", "8"], "ok"),
    ],
)
def test_get_is_the_field_of_the_json(cli: Run, args: list[str], path: str) -> None:
    code, out, err = cli(*args, "-f", "json")
    value = json.loads(out)
    for step in path.split("."):
        value = value[int(step)] if isinstance(value, list) else value[step]
    got = cli(*args, "--get", path)
    assert got.code == 0 and got.err == ""
    assert got.out == (value + "\n" if isinstance(value, str) else json.dumps(value) + "\n")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("totals.nope", "totals has no field 'nope'; choose one of weight_params,"),
        ("stages.99", "stages is a list of 4; give an index from 0 to 3, got '99'"),
        ("totals.params.x", "totals.params is a single value (552); it has no field 'x'"),
        ("nope", "the JSON document has no field 'nope'; choose one of schema, config,"),
    ],
)
def test_a_bad_path_is_one_line_and_exit_2(cli: Run, path: str, message: str) -> None:
    code, out, err = cli("shapes", "3", "6", "8", "--d-ff", "32", "--get", path)
    assert code == 2 and out == ""
    assert err.startswith("ffn-calc: error: --get: " + message) and err.count("\n") == 1


def test_an_index_into_an_empty_list_says_it_is_empty(cli: Run) -> None:
    code, out, err = cli("shapes", "1", "512", "768", "--get", "config.origin.0")
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert "config.origin is an empty list" in err and "-1" not in err
