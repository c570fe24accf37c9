"""Unbreakable from a shell script: bad input, closed pipes, no terminal, Ctrl-C, and random
argument lists thrown at the CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest
from helpers import CLI, ENV, ROOT, Run, diagonal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SWEEP_BAD = [
    (["sweep", "--batch", "0", "--seq-len", "8", "--d-model", "8"], "--batch"),
    (["sweep", "--batch", "8:1", "--seq-len", "8", "--d-model", "8"], "--batch"),
    (["sweep", "--batch", "1:8:x1", "--seq-len", "8", "--d-model", "8"], "--batch"),
    (["sweep", "--batch", "1,,2", "--seq-len", "8", "--d-model", "8"], "--batch"),
    (["sweep", "--batch", "1", "--seq-len", "eight", "--d-model", "8"], "--seq-len"),
    (["sweep", "--batch", "1", "--seq-len", "1e3", "--d-model", "8"], "--seq-len"),
    (["sweep", "--batch", "1", "--d-model", "8"], "--seq-len"),
    (["sweep", "--batch", "1", "--seq-len", "8", "--d-model", "8", "--columns", "speed"], "--columns"),
    (["sweep", "--batch", "1", "--seq-len", "8", "--d-model", "8", "--chart", "speed"], "--chart"),
    (["sweep", "--batch", "1", "--seq-len", "8", "--d-model", "8", "--chart", "flops", "-f", "csv"], "--chart"),
    (["sweep", "--stdin", "--batch", "1"], "--stdin"),
    (["sweep", "--batch", "1:100000", "--seq-len", "1:100000", "--d-model", "8"], "combinations"),
    (["sweep", "--batch", "1", "--seq-len", "8", "--d-model", "8", "--experts", "2", "--top-k", "3"], "--top-k"),
    (["sweep", "--batch", "1", "--seq-len", "8", "--d-model", "8", "--jobs", "0"], "--jobs"),
    (["shapes", "1", "1", "8", "--d-ff", ""], "--d-ff"),
    (["shapes", "1", "1", "8", "--activation", ""], "--activation"),
    (["shapes", "1", "1", "8", "--chart", "--format", "xml"], "--format"),
    (["verify", "1", "1", "8", "--seed", "x"], "--seed"),
]


@pytest.mark.parametrize(("args", "names"), SWEEP_BAD)
def test_bad_input_table(cli: Run, args: list[str], names: str) -> None:
    code, out, err = cli(*args)
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("ffn-calc: error: ") and names in err
    assert "Traceback" not in err


def test_json_lines_name_the_bad_line_and_carry_on(cli: Run) -> None:
    lines = "\n".join(
        [
            '{"batch": 1, "seq_len": 128, "model": "bert-base"}',
            '{"batch": 1, "seq_len": 128}',  # no d_model
            '{"batch": 1, "seq_len": 128, "d_model": 8',  # truncated
            '{"batch": 2, "seq_len": 4, "d_model": 8, "d_ff": "2.7x"}',
            '["batch", 1]',
            '{"batch": 1, "seq_len": 2, "d_model": 8, "speed": 9}',
            '{"batch": true, "seq_len": 2, "d_model": 8}',
            '{"batch": 2, "seq_len": 4, "d_model": 8, "activation": "swiglu", "bias": "yes"}',
            '{"batch": 2, "seq_len": 4, "d_model": 8, "activation": "swiglu"}',
        ]
    )
    code, out, err = cli("sweep", "--stdin", "-f", "jsonl", "-c", "params", input=lines)
    assert code == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [{"line": 1, "params": 4_722_432}, {"line": 9, "params": 3 * 8 * 32 + 2 * 32 + 8}]
    messages = err.splitlines()
    assert [m.split(":")[2].strip() for m in messages] == ["line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "line 8"]
    assert "D_MODEL" in messages[0] and "not JSON" in messages[1] and "--d-ff" in messages[2]
    assert "speed" in messages[4] and "batch" in messages[5] and "--bias" in messages[6]


def test_sweep_grid_is_the_product_in_order(cli: Run) -> None:
    code, out, _ = cli("sweep", "--batch", "1,8", "--seq-len", "128:512:x2", "--d-model", "64", "-f", "csv", "-c", "batch,seq_len,flops")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "batch,seq_len,flops"
    got = [tuple(int(v) for v in line.split(",")) for line in lines[1:]]
    assert [(b, s) for b, s, _ in got] == [(1, 128), (1, 256), (1, 512), (8, 128), (8, 256), (8, 512)]
    n = 1 * 128
    assert got[0][2] == 4 * n * 64 * 256 + n * 256 + n * 256 + n * 64  # matmuls + bias (f, d) + ReLU


@pytest.mark.slow
def test_parallel_sweep_matches_one_process(cli: Run) -> None:
    args = ["sweep", "--batch", "1:25", "--seq-len", "1:1000", "--d-model", "64", "-a", "swiglu", "-f", "csv", "-c", "batch,seq_len,flops,peak_bytes"]
    code1, one, _ = cli(*args, "-j", "1")
    code2, two, _ = cli(*args, "-j", "2")
    assert code1 == code2 == 0
    assert one == two and one.count("\n") == 25_001


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    for args in (["sweep", "--batch", "1:2000", "--seq-len", "1:100", "--d-model", "8", "-f", "csv"], ["models"], ["shapes", "3", "6", "8"]):
        with subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.readline()
            proc.stdout.close()
            err = proc.stderr.read().decode()
            assert proc.wait(timeout=60) == 0, err
        assert err == ""


@pytest.mark.parametrize(
    "args",
    [
        ["shapes", "3", "6", "8", "--chart"],
        ["models"],
        ["explain", "1", "8", "--model", "gpt2"],
        pytest.param(["verify", "2", "4", "8"], marks=pytest.mark.slow),
    ],
)
def test_plain_text_off_a_terminal_and_with_no_color(cli: Run, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    """In this process, whose captured stdout is no terminal: with NO_COLOR, and with an empty
    NO_COLOR and a colour TERM (a terminal of its own: test_no_color_on_a_terminal)."""
    for env in ({}, {"NO_COLOR": "", "TERM": "xterm-256color"}):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        done = cli(*args)
        assert done.code == 0
        assert "\x1b[" not in done.out


def test_no_color_on_a_terminal() -> None:
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on a terminal, with NO_COLOR (in ENV)
        os.execve(CLI[0], [*CLI, "verify", "3", "6", "8", "--all"], {**ENV, "TERM": "xterm-256color"})  # green verdict
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)
    text = b"".join(chunks).decode()
    assert "(3, 6, 32)" in text
    # Bold, dim and italic may stay; colours (SGR 30-38, 40-48, 90-107) may not.
    params = [int(p) for seq in re.findall(r"\x1b\[([0-9;]*)m", text) for p in seq.split(";") if p]
    assert not [p for p in params if 30 <= p <= 48 or 90 <= p <= 107]


@pytest.mark.slow
def test_ctrl_c_ends_with_130_and_one_line() -> None:
    proc = subprocess.Popen(
        [*CLI, "verify", "1", "4096", "4096"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True,
    )  # fmt: skip
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err == "ffn-calc: interrupted\n"
    assert out == ""


TOKENS = st.sampled_from(
    [
        "shapes", "verify", "explain", "models", "sweep", "frob", "--help", "-h",
        "0", "1", "2", "3", "8", "-1", "1e3", "2.5", "", " ", "x", "4x", "2.7x", "1/0x", "glu", str(2**41), "9" * 40,
        "--d-ff", "--activation", "-a", "relu", "gelu", "swiglu", "tanh", "--bias", "--no-bias", "--fused",
        "--norm", "pre", "post", "--dtype", "float16", "bfloat16", "fp7", "--format", "-f", "json", "csv", "jsonl", "xml",
        "--experts", "--top-k", "--shared-experts", "--capacity-factor", "nan", "inf", "1.25", "--layers", "-L",
        "--model", "bert-base", "mixtral-8x7b", "nope", "--config", "/nonexistent.json", "--multiple-of",
        "--ffn-dim-multiplier", "--batch", "--seq-len", "--d-model", "1:4", "1:8:x2", "8:1", "--stdin",
        "--columns", "params,flops", "--chart", "flops", "--seed", "--jobs", "-j", "--", "-",
    ]
)  # fmt: skip


# The profile's count (all of it: each example is one cheap in-process call). The `cli` fixture is
# function-scoped but keeps no state between calls (each call replaces stdin and drains the
# captured output), so sharing it across examples is what is wanted.
@settings(suppress_health_check=[*settings().suppress_health_check, HealthCheck.function_scoped_fixture])
@given(argv=st.lists(TOKENS, min_size=0, max_size=9))
def test_random_arguments_never_crash(cli: Run, argv: list[str]) -> None:
    code, out, err = cli(*argv, input='{"batch": 1, "seq_len": 2, "d_model": 8}\nnot json\n')
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "Traceback" not in out
    if code == 2:
        assert out == "" and err.count("\n") == 1


PAGES = [
    ["shapes", "3", "6", "8", "--d-ff", "32"],
    ["models"],
    ["gpus"],
    ["roofline", "32", "2048", "-m", "mixtral-8x7b", "--gpu", "h100-sxm"],
    ["sweep", "--seq-len", "512", "--model", "bert-base,gpt2-xl,llama-3-8b,mixtral-8x7b"],
    ["verify", "1", "2", "8", "--all"],
]


# The fast loop: each page at one of the widths in turn (helpers.diagonal); the full run every pairing.
@pytest.mark.parametrize(("args", "columns"), diagonal(PAGES, ["0", "1", "5", "39"]), ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_a_page_narrower_than_the_floor_is_read_as_the_floor(cli: Run, monkeypatch: pytest.MonkeyPatch, args: list[str], columns: str) -> None:
    """COLUMNS=0 (some CI and container shells export it) printed nothing; 1 and 5 exited 70 half-way."""
    from ffn_calc.cli.output import MIN_WIDTH

    monkeypatch.setenv("COLUMNS", columns)
    code, out, err = cli(*args)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) > 2 and max(len(line.rstrip()) for line in lines) <= MIN_WIDTH


def test_the_page_width_comes_from_columns_else_a_terminal_else_a_wide_page(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from ffn_calc.cli import output

    monkeypatch.setenv("COLUMNS", "97")
    assert output.page_width() == 97
    monkeypatch.setenv("COLUMNS", "not a number")
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: os.terminal_size((83, 24)) if fd == 2 else (_ for _ in ()).throw(OSError()))
    assert output.page_width() == 83  # stdout piped to `less`, stderr still the terminal
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: (_ for _ in ()).throw(OSError()))
    assert output.page_width() == output.OFF_TERMINAL_WIDTH


ENCODINGS = {"ascii": {"PYTHONIOENCODING": "ascii"}, "latin-1": {"PYTHONIOENCODING": "latin-1"},
             "LC_ALL=C": {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}}  # fmt: skip


def _run_bytes(args: list[str], env: dict[str, str]) -> tuple[int, bytes, str]:
    done = subprocess.run([*CLI, *args], capture_output=True, env={**ENV, **env}, cwd=ROOT, timeout=120, check=False)
    return done.returncode, done.stdout, done.stderr.decode("utf-8", "replace")


# ascii in the fast loop; latin-1 and LC_ALL=C (the same path, other encodings) with the slow tests.
SLOW_ENCODINGS = [pytest.param(name, marks=() if name == "ascii" else pytest.mark.slow) for name in ENCODINGS]


@pytest.mark.parametrize("name", SLOW_ENCODINGS)
def test_a_stream_that_cannot_hold_unicode_gets_ascii_lookalikes(name: str) -> None:
    """`×`, `·`, `⊙` and the box characters were a UnicodeEncodeError half-way through (exit 70)."""
    encoding = "latin-1" if name == "latin-1" else "ascii"
    for args in (["explain", "1", "16", "-m", "mixtral-8x7b"], ["verify", "1", "2", "8", "--all"], ["shapes", "3", "6", "8", "--d-ff", "32"]):
        code, out, err = _run_bytes(args, ENCODINGS[name])
        assert code == 0 and "Traceback" not in err and "internal error" not in err, (args, err)
        text = out.decode(encoding)  # strict: every byte is the stream's own encoding
        assert "552" in text or "1,409,318,912" in text or "ok: all" in text


@pytest.mark.parametrize("name", SLOW_ENCODINGS)
def test_json_on_such_a_stream_is_the_same_document(name: str) -> None:
    args = ["explain", "1", "16", "-m", "mixtral-8x7b", "-f", "json"]
    _, utf8, _ = _run_bytes(args, {})
    code, narrow, _ = _run_bytes(args, ENCODINGS[name])
    assert code == 0 and json.loads(narrow.decode("latin-1" if name == "latin-1" else "ascii")) == json.loads(utf8.decode("utf-8"))
    assert "×" in utf8.decode("utf-8")  # the document really holds characters the narrow stream cannot
