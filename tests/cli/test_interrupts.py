"""Ctrl-C, as a terminal sends it: SIGINT to the whole process group. Whatever the command is doing
(starting, reading stdin, streaming a sweep with worker processes), it ends with one line on
stderr and exit status 130, within a second, and leaves no process behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import CLI, ENV

MILLION = ["sweep", "--batch", "1:1000", "--seq-len", "1:1000", "--d-model", "64", "-j", "2", "-f", "csv"]


def interrupt(args: list[str], after: float, stdin: int | None = None) -> tuple[int, str, float, bool]:
    """Start the CLI in a process group of its own, send the group SIGINT after `after` seconds:
    (exit status, stderr, seconds from the signal to the exit, whether any process of the group is left)."""
    proc = subprocess.Popen([*CLI, *args], stdin=stdin if stdin is not None else subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=ENV, start_new_session=True)  # fmt: skip
    time.sleep(after)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"{args} hung after Ctrl-C") from None
    seconds = time.monotonic() - sent
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    time.sleep(0.05)
    try:
        os.killpg(proc.pid, 0)
        left = True
    except ProcessLookupError:
        left = False
    return code, err, seconds, left


def test_ctrl_c_while_reading_stdin_is_one_line_and_130() -> None:
    read, write = os.pipe()  # stdin stays open and empty: the sweep waits on it
    try:
        code, err, seconds, left = interrupt(["sweep", "--stdin", "-f", "csv"], 0.5, stdin=read)
    finally:
        os.close(read)
        os.close(write)
    assert (code, err, left) == (130, "ffn-calc: interrupted\n", False)
    assert seconds < 1


def test_the_second_ctrl_c_ends_at_once_with_the_same_one_line() -> None:
    from ffn_calc import cli

    # What run() installs: the first SIGINT unwinds, a later one ends the process. In a child, so
    # that the test's own process keeps its handlers.
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        r, w = os.pipe()
        os.dup2(w, 2)
        signal.signal(signal.SIGINT, cli._unwind)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGINT)  # while unwinding
            time.sleep(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 130


@pytest.mark.slow
def test_interrupting_a_million_row_sweep_with_workers_twenty_times() -> None:
    """The issue's done-when: 20 interrupts of a 10^6-row sweep with two workers, at random moments
    after start-up (a Ctrl-C within the interpreter's own start, before any of ffn-calc's code
    runs, is Python's), each one line and exit 130 within a second, no worker left."""
    rng = random.Random(19)
    for _ in range(20):
        code, err, seconds, left = interrupt(MILLION, rng.uniform(0.25, 1.5))
        assert (code, err, left) == (130, "ffn-calc: interrupted\n", False), (code, err, left)
        assert seconds < 1, seconds


@pytest.mark.slow
def test_interrupting_a_million_json_lines_with_workers(tmp_path: Path) -> None:
    lines = tmp_path / "million.jsonl"
    lines.write_text("".join(f'{{"batch": {1 + i % 64}, "seq_len": {1 + i % 4096}, "d_model": 64}}\n' for i in range(1_000_000)))
    rng = random.Random(20)
    for _ in range(5):
        with open(lines, "rb") as f:
            code, err, seconds, left = interrupt(["sweep", "--stdin", "-j", "2", "-f", "csv"], rng.uniform(0.3, 1.5), stdin=f.fileno())
        assert (code, err, left) == (130, "ffn-calc: interrupted\n", False), (code, err, left)
        assert seconds < 1, seconds


@pytest.mark.slow
def test_ctrl_c_without_workers_too() -> None:
    code, err, seconds, left = interrupt(["sweep", "--batch", "1:1000", "--seq-len", "1:1000", "--d-model", "64", "-j", "1", "-f", "csv"], 0.8)
    assert (code, err, left) == (130, "ffn-calc: interrupted\n", False)
    assert seconds < 1
    # verify: a NumPy product already running finishes first (BLAS does not look at signals)
    code, err, seconds, left = interrupt(["verify", "1", "1024", "2048"], 0.8)
    assert (code, err, left) == (130, "ffn-calc: interrupted\n", False)
    assert seconds < 5
