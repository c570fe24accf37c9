"""The API as a notebook uses it: results read twice, short reprs, tables for display, errors in
the API's own words, `help()` naming the functions as the API does, and `to_pandas()` when pandas
is installed (it is not a dependency: the test is skipped without it)."""

from __future__ import annotations

import json
import pydoc
import subprocess
import sys
from typing import Any

import pytest
from helpers import ENV

import ffn_calc
from ffn_calc.api.sweep_executor import NOTEBOOK_ROWS


def test_a_sweep_reads_twice() -> None:
    """`SweepResult.rows` was a generator: a second to_dict() had no rows."""
    grid = ffn_calc.sweep("1,8", "128:512:x2", d_model=64)
    first, second = grid.to_dict(), grid.to_dict()
    assert first == second and len(first["rows"]) == 6 and grid.rows.total == 6
    assert list(grid.rows) == list(grid.rows)
    lines = ['{"batch": 1, "seq_len": 4, "d_model": 8}', '{"batch": 2, "seq_len": 4, "d_model": 8}']
    from_list = ffn_calc.sweep(lines=lines)
    assert from_list.to_dict() == from_list.to_dict() and len(from_list.to_dict()["rows"]) == 2
    once_only = (line for line in lines)  # a one-pass source: its rows are kept on the first read
    kept = ffn_calc.sweep(lines=once_only)
    assert list(kept.rows) == list(kept.rows) and len(list(kept.rows)) == 2
    streamed = ffn_calc.sweep(lines=iter(lines), stream=True)  # the command line's way: nothing kept
    assert len(list(streamed.rows)) == 2
    with pytest.raises(RuntimeError, match="streamed once"):
        list(streamed.rows)


def test_a_big_grid_is_not_kept_when_read() -> None:
    grid = ffn_calc.sweep("1:73", "1:137", d_model=8, columns="params")  # 10,001 rows: more than a notebook shows
    assert grid.rows.total == 10_001 > NOTEBOOK_ROWS
    assert sum(1 for _ in grid.rows) == 10_001
    assert grid.rows._kept is None  # streamed again on each read, never held


def _results() -> dict[str, Any]:
    cfg = ffn_calc.layer(1, 512, model="bert-base")
    return {
        "layer": cfg, "analyze": ffn_calc.analyze(cfg), "train": ffn_calc.train(cfg), "roofline": ffn_calc.roofline(cfg, "h100-sxm"),
        "explain": ffn_calc.explain(cfg), "compare": ffn_calc.compare(1, 512, "llama-2-7b", "mistral-7b"), "models": ffn_calc.models(),
        "gpus": ffn_calc.gpus(), "sweep": ffn_calc.sweep(1, "1,2", d_model=8), "verify": ffn_calc.verify(ffn_calc.layer(1, 4, 8)),
    }  # fmt: skip


def test_reprs_are_short_and_name_the_result() -> None:
    """repr of a report was 3,950 characters."""
    for name, result in _results().items():
        text = repr(result)
        assert len(text) <= 300 and "\n" not in text, (name, len(text))
        assert text.startswith(type(result).__name__ + "("), name
    assert "d_model=768" in repr(ffn_calc.layer(1, 512, model="bert-base"))


def test_a_notebook_shows_the_tables_as_markdown() -> None:
    results = _results()
    for name, result in results.items():
        if name == "layer":
            continue
        markdown = result._repr_markdown_()
        assert markdown and ("|---" in markdown or name in ("explain", "verify")), name  # (explain: prose; verify: its verdict)
    assert "4,722,432" in results["analyze"]._repr_markdown_()  # the exact integers, as -f markdown prints them
    assert ffn_calc.sweep("1:200", "1:200", d_model=8)._repr_markdown_() is None  # 40,000 rows: the repr, not a table


def test_the_core_never_loads_rich_for_a_repr() -> None:
    code = "import ffn_calc, sys; r = ffn_calc.analyze(ffn_calc.layer(3, 6, 8)); repr(r); r.to_dict(); print('rich' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    assert done.stdout.strip() == "False"


def test_help_names_the_functions_as_the_api_does() -> None:
    """help(ffn_calc.layer) showed `layer_config`."""
    text = pydoc.render_doc(ffn_calc.layer, renderer=pydoc.plaintext)  # type: ignore[attr-defined]
    assert "layer(batch" in text and "layer_config" not in text
    assert "d_ff" in text and "model" in text  # the signature, keyword by keyword


@pytest.mark.parametrize(
    ("function", "args", "keywords", "named"),
    [  # the keywords as a dict: mypy refuses a misspelled keyword, as it should
        ("layer", (1, 2, 8), {"activaton": "relu"}, "layer() got an unexpected keyword argument 'activaton'; did you mean activation?"),
        ("sweep", (1, "2"), {"d_model": 8, "top_kk": 2}, "sweep() got an unexpected keyword argument 'top_kk'; did you mean top_k?"),
        ("verify", (ffn_calc.layer(1, 2, 8),), {"no_input_grad": True}, "did you mean input_grad?"),
        ("compare", (1, 2, "relu", "gelu", 8), {"bais": False}, "compare() got an unexpected keyword argument 'bais'"),
    ],
)
def test_a_misspelled_keyword_is_named_with_the_closest(function: str, args: tuple[Any, ...], keywords: dict[str, Any], named: str) -> None:
    with pytest.raises(TypeError) as caught:
        getattr(ffn_calc, function)(*args, **keywords)
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("call", "argument", "words"),
    [
        (lambda: ffn_calc.layer(1, 1, 8, d_ff="2.7x"), "d_ff", "give d_ff directly"),
        (lambda: ffn_calc.layer(1, 2), "d_model", "give it after batch and seq_len, or use model or config"),
        (lambda: ffn_calc.layer(1, 2, 8, norm_type="rms"), "norm_type", "add norm='pre'"),
        (lambda: ffn_calc.layer(1, 2, 8, dtype="int4"), "dtype", "give weight_dtype='int4'"),
        (lambda: ffn_calc.verify(ffn_calc.layer(1, 2, 8), recompute="full"), "backward", "add backward=True"),
        (lambda: ffn_calc.train(ffn_calc.layer(1, 2, 8, d_ff=30), tp=4), "tp", "pick a d_ff or tp that divides it"),
        (lambda: ffn_calc.roofline(ffn_calc.layer(1, 2, 8), "h100"), "gpu", "did you mean h100-sxm"),
    ],
)
def test_api_errors_name_the_api_keywords(call: Any, argument: str, words: str) -> None:
    """API errors named the command line's flags (--d-ff, D_MODEL, add --norm pre)."""
    with pytest.raises(ffn_calc.ConfigError) as caught:
        call()
    assert caught.value.argument == argument and words in caught.value.message
    assert "--" not in str(caught.value) and "D_MODEL" not in str(caught.value)


def test_the_command_line_keeps_its_flags(cli: Any) -> None:
    code, _, err = cli("shapes", "1", "2", "8", "--norm-type", "rms")
    assert code == 2 and err.startswith("ffn-calc: error: --norm-type:") and "add --norm pre" in err


def test_to_pandas_when_pandas_is_installed() -> None:
    pytest.importorskip("pandas")
    sweep = ffn_calc.sweep("1,8", "128,512", d_model=64, columns="batch,seq_len,flops")
    frame = sweep.to_pandas()
    assert list(frame.columns) == ["batch", "seq_len", "flops"] and len(frame) == 4
    assert frame["flops"].tolist() == [row["flops"] for row in sweep.to_dict()["rows"]]
    stages = ffn_calc.analyze(ffn_calc.layer(3, 6, 8)).to_pandas()
    assert len(stages) > 1  # the rows -f csv prints
    assert json.loads(frame.to_json(orient="records"))[0]["batch"] == 1


def test_to_pandas_without_pandas_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def no_pandas(name: str, *args: Any) -> Any:
        if name == "pandas":
            raise ImportError("No module named 'pandas'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_pandas)
    with pytest.raises(ImportError, match="pip install pandas"):
        ffn_calc.sweep(1, 2, d_model=8).to_pandas()
