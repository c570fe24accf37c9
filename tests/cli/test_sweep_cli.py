"""sweep on the command line: a table (laid out whole, read by a person) refuses a sweep past
TABLE_ROWS in one line, pointing to the formats that stream; the rows stream otherwise."""

from __future__ import annotations

import json

import pytest
from helpers import Run

from ffn_calc.cli import app


def test_a_million_row_table_is_refused_at_once(cli: Run) -> None:
    code, out, err = cli("sweep", "--batch", "1:1000", "--seq-len", "1:1000", "--d-model", "64")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "1,000,000" in err and "-f csv" in err


def test_json_lines_past_the_table_rows_are_refused_before_any_is_printed(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "TABLE_ROWS", 5)
    lines = "".join(json.dumps({"batch": 1, "seq_len": n, "d_model": 8}) + "\n" for n in range(1, 8))
    code, out, err = cli("sweep", "--stdin", input=lines)
    assert code == 2 and out == "" and "at most 5 rows" in err and err.count("\n") == 1
    code, out, _ = cli("sweep", "--stdin", input=lines[: lines.index("\n") * 5 + 5])  # five lines: a table
    assert code == 0 and "Sweep" in out
    code, out, _ = cli("sweep", "--stdin", "-f", "csv", input=lines)  # a stream has no such limit
    assert code == 0 and len(out.splitlines()) == 8


def test_a_chart_is_laid_out_whole_too(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "TABLE_ROWS", 5)
    code, _, err = cli("sweep", "--seq-len", "1:6", "--d-model", "8", "--chart", "flops", "-f", "markdown")
    assert code == 2 and "at most 5 rows" in err
    assert cli("sweep", "--seq-len", "1:6", "--d-model", "8", "-f", "markdown")[0] == 0  # a pipe table streams
