"""At a glance: help that keeps every name whole at 80 columns, the top-level summaries unclipped,
messages that quote what was typed and point to the right help, and the options every command
is expected to take."""

from __future__ import annotations

import pytest
from helpers import Run

from ffn_calc.api.options import COMMANDS, options_of


def _help(cli: Run, monkeypatch: pytest.MonkeyPatch, args: list[str], width: int | None) -> str:
    from typer._click import formatting

    monkeypatch.setattr(formatting, "FORCED_WIDTH", width)
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli(*args, "--help")
    assert code == 0, err
    return out


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_at_80_columns_keeps_every_word_whole(cli: Run, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    """`bert-` / `base`, `d_m` / `odel`, `ffn-` / `calc verify` were split across lines; the top-level
    help cut each command's summary at 45 characters with '...'."""
    args = [command] if command else []
    narrow = _help(cli, monkeypatch, args, None)
    unwrapped = _help(cli, monkeypatch, args, 4000)  # one line per paragraph: the words as written
    assert max(len(line) for line in narrow.splitlines()) <= 80 or any(len(w) > 40 for w in narrow.split())
    assert narrow.split() == unwrapped.split()  # wrapping moved only the spaces: no word broken, none cut
    commands = narrow.partition("Commands:")[2]
    assert "..." not in commands  # each summary whole


def test_a_negative_size_is_quoted_whole(cli: Run) -> None:
    code, _, err = cli("shapes", "1", "512", "-768")
    assert code == 2 and "got -768" in err and "-7 " not in err


def test_an_option_missing_its_values_points_to_the_commands_help(cli: Run) -> None:
    code, _, err = cli("explain", "1", "2", "8", "--compare", "relu")
    assert code == 2 and "(see 'ffn-calc explain --help')" in err


def test_roofline_takes_no_norm_options(cli: Run) -> None:
    """`roofline --norm-type rms` said 'add --norm pre', which roofline does not take: a norm changes no GEMM."""
    names = {spec.name for spec in options_of("roofline")}
    assert not names & {"norm", "norm_type"}
    code, _, err = cli("roofline", "1", "512", "-m", "gpt2", "--norm-type", "rms")
    assert code == 2 and "No such option: --norm-type" in err
