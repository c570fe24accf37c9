"""The two ways tests drive the CLI, and the Hypothesis profiles.

`cli(*args, input=None) -> Result`: in-process, through the entry point, with output captured.
`cli_proc(*args, input=None, env=None, cwd=ROOT, timeout=120) -> Result`: `python -m ffn_calc`
in a subprocess, with the shared ENV (plus `env`, which overrides it).

Hypothesis: profile "ci" when CI is set (or Hypothesis itself detected a CI); else "fast" in the
fast loop (`-m "not slow"`), "dev" in a run that takes the slow tests too; HYPOTHESIS_PROFILE (or
pytest's --hypothesis-profile) overrides. All are derandomized: every run tries the same examples,
and a smaller profile's examples are the first ones of a larger one's search.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from helpers import CLI, ENV, ROOT, Result
from hypothesis import HealthCheck, settings

from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model.layer import FFNConfig, make_config

# --- Hypothesis profiles --------------------------------------------------------------------------

# "ci": every example count at least what the tests used to set one by one (the largest was 400);
# properties whose every example runs a NumPy forward pass take a share through helpers.examples.
# Derandomized (the same examples on every run, no example database). No deadline, as every property
# had (example times follow the machine's load); too_slow off, as the CLI fuzz test had.
settings.register_profile(
    "ci",
    max_examples=400,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# "dev", a local run with the slow tests: the same, with a quarter of the examples.
settings.register_profile("dev", settings.get_profile("ci"), max_examples=100)
# "fast", the fast loop (`-m "not slow"`): a quarter of dev's. The full run (dev, and ci in CI) is
# the deeper profile of the same properties.
settings.register_profile("fast", settings.get_profile("ci"), max_examples=25)

_profile = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") or settings.get_current_profile_name() == "ci" else "dev")
settings.load_profile(_profile)


def pytest_configure(config: pytest.Config) -> None:
    """The fast loop takes the "fast" profile, unless a profile was named or CI chose "ci"."""
    named = os.environ.get("HYPOTHESIS_PROFILE") or config.getoption("hypothesis_profile", None)
    if not named and settings.get_current_profile_name() == "dev" and "not slow" in (config.getoption("markexpr", "") or ""):
        settings.load_profile("fast")


def pytest_report_header() -> str:
    return f"hypothesis profile: {settings.get_current_profile_name()} (max_examples={settings().max_examples})"


# --- the CLI --------------------------------------------------------------------------------------


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run the CLI in this process: `code, out, err = cli("shapes", "3", "6", "8")`.

    `input` is what it reads on stdin (empty by default). Output is captured per call, so the
    function may be called many times in one test (a Hypothesis property included)."""
    from ffn_calc.cli.app import main  # here only: the entry point may move

    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")

    def invoke(*args: str, input: str | None = None) -> Result:  # noqa: A002 - as subprocess.run names it
        monkeypatch.setattr(sys, "stdin", io.StringIO(input or ""))
        try:
            code = main(list(args))
        finally:
            out, err = capsys.readouterr()  # drained even when main raises, so the next call starts clean
        return Result(code, out, err)

    return invoke


def _run_proc(*args: str, input: str | None = None, env: Mapping[str, str] | None = None, cwd: str | Path = ROOT, timeout: float = 120) -> Result:
    done = subprocess.run(
        [*CLI, *args], input=input, capture_output=True, text=True, env={**ENV, **(env or {})}, cwd=cwd, timeout=timeout, check=False
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def cli_proc() -> Callable[..., Result]:
    """Run `python -m ffn_calc` in a subprocess: `code, out, err = cli_proc("models", env={"TERM": "xterm"})`.

    The shared ENV (COLUMNS=100, NO_COLOR=1, PYTHONPATH=the repository) with `env` laid over it;
    `input` is written to its stdin; `cwd` defaults to the repository root."""
    return _run_proc


# --- the standard layers --------------------------------------------------------------------------
# Small enough for a NumPy pass in milliseconds; each is the smallest case of its form.


@pytest.fixture
def dense() -> FFNConfig:
    """A plain biased ReLU FFN: batch 2 × 3 tokens, d_model 8, d_ff 32."""
    return make_config(2, 3, 8, 32)


@pytest.fixture
def glu() -> FFNConfig:
    """A LLaMA-style layer: SwiGLU, no biases, pre-RMSNorm; d_model 8, d_ff 16."""
    return make_config(2, 3, 8, 16, activation="swiglu", bias=False, norm="pre", norm_type="rms")


@pytest.fixture
def moe() -> FFNConfig:
    """A mixture of 4 ReLU experts of width 16, top-2, over 2 × 4 tokens of d_model 8."""
    return make_config(2, 4, 8, "16", experts=4, top_k=2)


@pytest.fixture
def mixed_stack() -> FFNConfig:
    """A DeepSeek-style stack: 2 dense SwiGLU layers of width 24, then 5 MoE layers (4 experts, top-2)."""
    return layer_config(2, 3, 8, d_ff="16", activation="swiglu", bias=False, experts=4, top_k=2, layers=5, dense_layers=2, dense_d_ff=24)
