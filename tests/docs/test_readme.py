"""The README is the front door: its commands run, their pasted output is the tool's real output,
its test command is what CI runs, and every JSON key the tool prints is documented."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest
from helpers import CLI, ENV, ROOT, Run

from ffn_calc.model.activations import NONLINEARITIES
from ffn_calc.model.dtypes import DTYPES

README = (ROOT / "README.md").read_text()
# Lines that differ between runs or machines: measured time and memory, free memory.
VOLATILE = re.compile(r"peak bytes|MiB scratch|forward pass \d|^\│\s+│ MiB|verify cannot run|max \|Δ\| \d")


def console_examples() -> list[tuple[str, str]]:
    """(command, expected output) for every `$ ffn-calc …` line in a console block."""
    examples = []
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        current: list[str] | None = None
        for line in block.splitlines():
            if line.startswith("$ "):
                current = []
                examples.append((line[2:], current))
            elif current is not None:
                current.append(line)
    return [(cmd, "\n".join(out)) for cmd, out in examples if cmd.startswith(("ffn-calc ", "printf "))]


def run_shell(command: str) -> str:
    """A README line through the shell (pipes and printf included), with the CLI as `python -m ffn_calc`."""
    shell = command.replace("ffn-calc", shlex.join(CLI), 1)
    done = subprocess.run(shell, shell=True, capture_output=True, text=True, env=ENV, cwd=ROOT, check=False)
    return (done.stdout + done.stderr).rstrip("\n")


def stable(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if not VOLATILE.search(line)]


EXAMPLES = console_examples()


def test_readme_has_examples() -> None:
    commands = [cmd for cmd, _ in EXAMPLES]
    assert "ffn-calc shapes 3 6 8 --d-ff 32" in commands
    assert any(cmd.startswith("ffn-calc verify") for cmd in commands)


@pytest.mark.parametrize(("command", "expected"), EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_readme_output_is_real(command: str, expected: str) -> None:
    assert stable(run_shell(command)) == stable(expected)


def install_commands() -> list[str]:
    return [line[2:] for line in re.findall(r"^\$ python3 -m venv .*$", README, re.M)]


def test_ci_runs_the_readme_test_command() -> None:
    commands = install_commands()
    assert len(commands) == 2
    install, tests = commands
    assert install.endswith("ffn-calc shapes 3 6 8 --d-ff 32") and "pip install ." in install
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines()


def keys(value: object, prefix: str = "") -> set[str]:
    """Every dictionary key in a JSON document (list items share their keys)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            found.add(k)
            found |= keys(v)
    elif isinstance(value, list):
        for item in value:
            found |= keys(item)
    return found


@pytest.mark.parametrize(
    "args",
    [
        ["shapes", "2", "3", "8", "--norm", "pre"],
        ["verify", "2", "3", "8", "--norm", "post", "--backward", "--tp", "2"],
        ["verify", "2", "3", "8", "--experts", "2", "--top-k", "1"],
        ["shapes", "2", "3", "--model", "mixtral-8x7b", "--layers", "2"],
        ["train", "2", "4", "8", "--tp", "2", "--dropout", "--norm", "pre"],
        ["roofline", "1", "16", "8", "--gpu", "a100-80gb"],
        ["explain", "1", "8", "--model", "deepseek-v3"],
        ["explain", "1", "8", "--compare", "llama-2-7b", "mixtral-8x7b"],
        ["models"],
        ["gpus"],
    ],
)
def test_every_json_key_is_documented(cli: Run, args: list[str]) -> None:
    _, out, err = cli(*args, "-f", "json")
    assert err == ""  # as before, when stdout and stderr were parsed together as one JSON document
    doc = json.loads(out)
    documented = set(re.findall(r"`([a-z_]+)(?:\[\])?`", README))
    missing = keys(doc) - documented - set(NONLINEARITIES) - set(DTYPES)  # names that key activation_flops_per_element, gpus[].tflops
    assert not missing, f"JSON keys missing from the README: {sorted(missing)}"
