"""Plain values the test modules import at module level (conftest.py holds the fixtures built
on them): the repository root, the one environment every CLI subprocess gets, the command that
starts the CLI in a process, the result shape of both CLI fixtures, `examples`, and `diagonal`
(which part of a sweep of combinations the fast loop runs)."""

from __future__ import annotations

import atexit
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
# The config.json files and recorded outputs the tests read.
DATA = ROOT / "tests" / "data"
# Where the CLI subprocesses of one test run keep their bytecode: a directory of this run's own,
# removed when it ends, so that the first subprocess compiles the package and the others read it
# (under PYTHONDONTWRITEBYTECODE=1 each compiled it again); nothing is written into the tree.
PYCACHE = tempfile.mkdtemp(prefix="ffn-calc-tests-pycache-")
atexit.register(shutil.rmtree, PYCACHE, ignore_errors=True)
# Every CLI subprocess: a fixed width, no colour, the source tree (not an installed copy)
# importable, and its bytecode in PYCACHE.
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    **{"COLUMNS": "100", "NO_COLOR": "1", "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": PYCACHE},
}
# The CLI as a process; the only place `-m ffn_calc` is spelled (Popen, pty and shell users build on it).
CLI = (sys.executable, "-m", "ffn_calc")


class Result(NamedTuple):
    """What one CLI call gave: exit code, standard output, standard error."""

    code: int
    out: str
    err: str


# The type of both CLI fixtures (conftest.py): `code, out, err = cli("shapes", "3", "6", "8")`.
Run = Callable[..., Result]


def examples(fraction: float) -> int:
    """A share of the loaded Hypothesis profile's max_examples, for a property whose every example
    is costlier than the others' (a NumPy forward pass): `@settings(max_examples=examples(0.1))`.
    Read when the decorator runs, i.e. after conftest.py loaded the profile."""
    return max(1, math.ceil(settings().max_examples * fraction))


def diagonal(*axes: Sequence[Any]) -> list[Any]:
    """Every combination of the axes' values, as pytest.params in the order of the axes
    (`@pytest.mark.parametrize(("a", "b"), diagonal(A, B))` for what stacked decorators of b
    over a gave, with the same ids); the fast loop runs the diagonal, combination k taking value
    k mod len of each axis, so every value of every axis runs there at least once, and the rest
    is marked slow. For a sweep whose every value matters but whose every pairing is the full run's."""
    longest = max(len(axis) for axis in axes)
    fast = {tuple(k % len(axis) for axis in axes) for k in range(longest)}
    combos: list[tuple[int, ...]] = [()]
    for axis in axes:
        combos = [(*c, i) for c in combos for i in range(len(axis))]
    return [pytest.param(*(axis[i] for axis, i in zip(axes, c, strict=True)), marks=() if c in fast else pytest.mark.slow) for c in combos]
