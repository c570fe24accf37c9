"""Every way input arrives is bounded (ffn_calc/inputs/limits.py; arguments and the environment in cli/app.py): huge numbers and deeply nested
JSON on the command line, in config.json, in a sweep's JSON lines and in the environment are
refused in one short line (exit 2), never an internal error; one bad JSON line of that kind is
one bad line, and the sweep goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DATA, Run

from ffn_calc.inputs import limits

DIGITS_400 = "9" * 400
DIGITS_5000 = "9" * 5000


def one_short_line(code: int, out: str, err: str) -> None:
    assert code == 2, err
    assert out == "" and err.count("\n") == 1 and err.startswith("ffn-calc: error: ")
    assert "internal error" not in err and len(err) < 1200, err  # (an unknown name may list the known ones)


@pytest.mark.parametrize(
    "args",
    [
        ["shapes", "1", DIGITS_400, "8"],
        ["shapes", "1", DIGITS_5000, "8"],
        ["shapes", "1", "2", "8", "--d-ff", DIGITS_400],
        ["shapes", "1", "2", "8", "--d-ff", DIGITS_5000 + "x"],
        ["shapes", "1", "2", "8", "--d-ff", "1." + DIGITS_5000 + "x"],
        ["verify", "1", "2", "8", "--max-memory", DIGITS_400],
        ["verify", "1", "2", "8", "--max-memory", DIGITS_5000[:4000] + "GiB"],
        ["shapes", "1", "2", "8", "--capacity-factor", DIGITS_400],
        ["shapes", "1", "2", "8", "--ffn-dim-multiplier", DIGITS_400, "--d-ff", "glu"],
        ["shapes", "1", "2", "8", "--layers", DIGITS_400],
        ["shapes", "1", "2", "8", "--experts", DIGITS_5000, "--top-k", "1"],
        ["train", "1", "2", "8", "--tp", DIGITS_400],
        ["roofline", "1", "2", "8", "--peak-tflops", DIGITS_400, "--bandwidth-gbs", "1"],
        ["sweep", "--seq-len", "1:" + DIGITS_400, "--d-model", "8", "-f", "csv"],
        ["sweep", "--seq-len", "1," + DIGITS_5000, "--d-model", "8", "-f", "csv"],
        ["shapes", "1", "2", "8", "--model", DIGITS_5000],
        ["shapes", "1", "2", "8", "--get", "x" * 5000],
        ["explain", "1", "2", "8", "--compare", DIGITS_400, "relu"],
        ["shapes", "1", "2", "8", "--d-ff", "x" * 10_001],  # past cli/app.py's MAX_ARGUMENT_CHARS
    ],
    ids=lambda args: " ".join(a if len(a) < 12 else f"<{len(a)} chars>" for a in args),
)
def test_a_huge_argument_is_one_short_line(cli: Run, args: list[str]) -> None:
    one_short_line(*cli(*args))


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.json"
    path.write_text(text)
    return str(path)


def test_a_5000_digit_integer_in_config_json(cli: Run, tmp_path: Path) -> None:
    llama = (DATA / "llama-3-8b.config.json").read_text().rstrip().rstrip("}")
    code, out, err = cli("shapes", "1", "2", "--config", _config(tmp_path, llama + f', "vocab_size": {DIGITS_5000}}}'))
    one_short_line(code, out, err)
    assert "5,000 digits" in err


@pytest.mark.parametrize("depth", [100_000, 1_000, limits.MAX_DEPTH + 1])
def test_json_nested_deep_in_config_json(cli: Run, tmp_path: Path, depth: int) -> None:
    code, out, err = cli("shapes", "1", "2", "--config", _config(tmp_path, '{"a": ' + "[" * depth + "]" * depth + "}"))
    one_short_line(code, out, err)
    assert "nested" in err


def test_a_config_that_never_ends_is_read_no_further_than_the_bound(cli: Run, tmp_path: Path) -> None:
    one_short_line(*cli("shapes", "1", "2", "--config", "/dev/zero"))  # endless: refused after MAX_FILE_BYTES
    one_short_line(*cli("shapes", "1", "2", "--config", _config(tmp_path, '{"a": "' + "x" * limits.MAX_FILE_BYTES + '"}')))


def test_a_saved_measurement_is_bounded_too(cli: Run, tmp_path: Path) -> None:
    one_short_line(*cli("roofline", "1", "2", "8", "--gpu-file", _config(tmp_path, "[" * 100_000 + "]" * 100_000)))


def test_bad_json_lines_of_every_kind_are_bad_lines_and_the_sweep_goes_on(cli: Run) -> None:
    good = json.dumps({"batch": 1, "seq_len": 2, "d_model": 8})
    lines = [
        '{"batch": ' + DIGITS_5000 + ', "seq_len": 2, "d_model": 8}',
        '{"batch": ' + DIGITS_400 + ', "seq_len": 2, "d_model": 8}',
        "[" * 100_000 + "]" * 100_000,
        "[" * 30_000 + "]" * 30_000,
        '{"batch": 1, "seq_len": 2, "d_model": 8, "model": "' + "x" * 70_000 + '"}',
        '{"' + "k" * 5000 + '": 1}',
        good,
    ]
    code, out, err = cli("sweep", "--stdin", "-f", "jsonl", "-c", "params", input="\n".join(lines) + "\n")
    assert code == 1 and [json.loads(line) for line in out.splitlines()] == [{"line": 7, "params": 552}]
    messages = err.splitlines()
    assert [m.split(":")[2].strip() for m in messages] == [f"line {n}" for n in range(1, 7)]
    assert "internal error" not in err and max(len(m) for m in messages) < 1200


def test_a_line_with_no_end_is_read_in_pieces() -> None:
    import io

    stream = io.BytesIO(b"x" * (3 * limits.MAX_LINE_CHARS) + b"\nnext\n\xff\n")
    lines = list(limits.bounded_lines(stream))
    assert [len(line) for line in lines] == [limits.MAX_LINE_CHARS + 1, 5, 2] and lines[1] == "next\n"
    assert lines[2] == "\ufffd\n"  # a byte that is not UTF-8: the line is refused as such, not the stream


@pytest.mark.parametrize("name", ["COLUMNS", "LINES"])
def test_a_huge_number_in_the_environment_is_read_as_unset(cli: Run, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, DIGITS_5000)  # read at each call, as at a process's start
    code, out, err = cli("shapes", "3", "6", "8", "-q")
    assert code == 0 and err == "" and "552" in out


def test_shell_completion_with_a_huge_word_number_answers_nothing(cli_proc: Run) -> None:
    done = cli_proc(env={"_FFN_CALC_COMPLETE": "complete_bash", "COMP_WORDS": "ffn-calc sh", "COMP_CWORD": DIGITS_5000})
    assert (done.out, done.err) == ("", "")
