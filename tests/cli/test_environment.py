"""Faults of the environment, not of the input or the code: a full disk, a closed stdout, a reader
that leaves while `--help` is printed. One line on stderr and exit 1 (0 when the reader of a pipe
simply stopped reading), never "internal error"."""

from __future__ import annotations

import os
import subprocess

import pytest
from helpers import CLI, ENV

import ffn_calc

SHELL_CLI = " ".join(CLI)


def shell(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=ENV, check=False, timeout=120)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_a_full_disk_is_one_line_and_exit_1(fmt: str) -> None:
    done = shell(f"{SHELL_CLI} shapes 3 6 8 -f {fmt} > /dev/full")
    assert done.returncode == 1
    assert done.stderr == "ffn-calc: error: cannot write the output: No space left on device\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_during_a_streamed_sweep() -> None:
    done = shell(f"{SHELL_CLI} sweep --batch 1:50000 --seq-len 8 --d-model 8 -f csv > /dev/full")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "cannot write the output" in done.stderr


def test_a_closed_stdout_is_one_line_and_exit_1() -> None:
    done = shell(f"{SHELL_CLI} shapes 3 6 8 >&-")
    assert done.returncode == 1
    assert done.stderr == "ffn-calc: error: standard output is closed; nothing to write the answer to\n"


@pytest.mark.parametrize("args", ["shapes --help", "--help", "models", "shapes 1 1 8 -f csv"])
def test_a_reader_that_leaves_early_is_not_an_error(args: str) -> None:
    done = shell(f"{SHELL_CLI} {args} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}")
    assert done.stdout.strip() == "0" and done.stderr == ""


def test_version() -> None:
    done = shell(f"{SHELL_CLI} --version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"ffn-calc {ffn_calc.__version__}\n", "")
