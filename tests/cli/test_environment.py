"""Faults of the environment, not of the input or the code: a full disk, a closed stdout, a reader
that leaves while `--help` is printed. One line on stderr and exit 74 (EX_IOERR: never 1, which
verify's mismatch means; 0 when the reader of a pipe simply stopped reading), never "internal error"."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from helpers import CLI, ENV, Run

import ffn_calc

SHELL_CLI = " ".join(CLI)


def shell(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=ENV, check=False, timeout=120)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_a_full_disk_is_one_line_and_exit_74(fmt: str) -> None:
    done = shell(f"{SHELL_CLI} shapes 3 6 8 -f {fmt} > /dev/full")
    assert done.returncode == 74
    assert done.stderr == "ffn-calc: error: cannot write the output: No space left on device\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_during_a_streamed_sweep() -> None:
    done = shell(f"{SHELL_CLI} sweep --batch 1:50000 --seq-len 8 --d-model 8 -f csv > /dev/full")
    assert done.returncode == 74 and done.stderr.count("\n") == 1 and "cannot write the output" in done.stderr


def test_a_closed_stdout_is_one_line_and_exit_74() -> None:
    done = shell(f"{SHELL_CLI} shapes 3 6 8 >&-")
    assert done.returncode == 74
    assert done.stderr == "ffn-calc: error: standard output is closed; nothing to write the answer to\n"


@pytest.mark.parametrize("args", ["shapes --help", "--help", "models", "shapes 1 1 8 -f csv"])
def test_a_reader_that_leaves_early_is_not_an_error(args: str) -> None:
    done = shell(f"{SHELL_CLI} {args} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}")
    assert done.stdout.strip() == "0" and done.stderr == ""


def test_version() -> None:
    done = shell(f"{SHELL_CLI} --version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"ffn-calc {ffn_calc.__version__}\n", "")


def test_a_closed_stdin_is_one_line_and_exit_74() -> None:
    """`sweep --stdin <&-` exited 70."""
    done = shell(f"{SHELL_CLI} sweep --stdin -f csv <&-")
    assert (done.returncode, done.stdout) == (74, "")
    assert done.stderr.startswith("ffn-calc: error: standard input is closed") and done.stderr.count("\n") == 1


def test_a_closed_stderr_keeps_the_answer_and_the_status() -> None:
    """`verify 1 2 8 2>&-` exited 1 with nothing, which a script reads as a mismatch."""
    done = shell(f"{SHELL_CLI} verify 1 2 8 -f json 2>&-")
    assert done.returncode == 0 and '"ok": true' in done.stdout
    assert shell(f"{SHELL_CLI} verify 1 2 -8 2>&-").returncode == 2  # the error is lost, its status is not


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_stderr_keeps_the_status() -> None:
    assert shell(f"{SHELL_CLI} shapes 1 2 -8 2>/dev/full").returncode == 2
    done = shell(f"{SHELL_CLI} shapes 3 6 8 -f json 2>/dev/full")
    assert done.returncode == 0 and '"params": 552' in done.stdout


@pytest.mark.parametrize("home", ["/proc/self", "/etc/hostname"])
def test_install_completion_into_a_home_that_cannot_be_written(home: str) -> None:
    """With a read-only HOME it exited 70. (Tests run as root, whom permissions do not stop: a home
    under /proc, or a file as home, cannot be written by anyone.) The shell is named, not detected:
    detection walks the process tree, which under pytest-xdist or a detached run holds no shell."""
    env = {**ENV, "HOME": home, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    done = subprocess.run([*CLI, "--install-completion", "bash"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 74 and done.stdout == ""
    assert done.stderr.startswith("ffn-calc: error: cannot install the shell completion") and done.stderr.count("\n") == 1


def test_install_completion_rewrites_the_rc_file_whole_keeping_its_mode(tmp_path: Path) -> None:
    bashrc = tmp_path / ".bashrc"
    bashrc.write_text("# mine\n")
    bashrc.chmod(0o640)
    env = {**ENV, "HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    done = subprocess.run([*CLI, "--install-completion", "bash"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert bashrc.read_text().startswith("# mine\n") and "ffn-calc.sh" in bashrc.read_text()
    assert stat.S_IMODE(bashrc.stat().st_mode) == 0o640
    assert not list(tmp_path.glob(".ffn-calc-*"))  # no temporary file left


def test_svg_follows_a_link_and_gets_the_umask_mode(tmp_path: Path) -> None:
    target = tmp_path / "real.svg"
    link = tmp_path / "link.svg"
    link.symlink_to(target)
    assert shell(f"cd {tmp_path} && umask 022 && {SHELL_CLI} shapes 3 6 8 -q --svg link.svg >/dev/null").returncode == 0
    assert link.is_symlink() and target.read_text().startswith("<svg")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # as `>` makes a file, not a temporary file's 0600


def test_a_table_that_fails_half_way_prints_nothing(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Output is written whole or not at all: the tables are laid out first, then written at once."""
    from rich.text import Text

    from ffn_calc import render

    class Broken:
        def __rich_console__(self, console: object, options: object) -> object:
            raise RuntimeError("a renderer's bug")

    monkeypatch.setattr(render, "tables", lambda result, view=None: [Text("the first table"), Broken()])
    code, out, err = cli("shapes", "3", "6", "8")
    assert (code, out) == (70, "") and "internal error" in err and err.count("\n") == 1


def test_an_error_line_on_an_ascii_stderr_uses_lookalikes() -> None:
    done = subprocess.run(
        [*CLI, "shapes", "3", "6", "8", "--d-ff", "2.7x"], capture_output=True, env={**ENV, "PYTHONIOENCODING": "ascii"}, timeout=60, check=False
    )
    assert done.returncode == 2
    assert (
        done.stderr.decode("ascii")
        == "ffn-calc: error: --d-ff: 2.7x x d_model 8 = 21.6 is not a whole number; pick a multiplier that gives one or give d_ff directly\n"
    )
