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


@pytest.mark.parametrize("command", ["shapes", "train", "roofline", "explain"])
def test_every_command_with_a_headline_takes_q(cli: Run, command: str) -> None:
    """-q was missing on roofline and explain."""
    args = [command, "1", "2048", "-m", "llama-3-8b"] + (["--gpu", "h100-sxm"] if command == "roofline" else [])
    code, short, _ = cli(*args, "-q")
    code_full, full, _ = cli(*args)
    assert code == code_full == 0 and 0 < len(short.splitlines()) < min(12, len(full.splitlines()))


@pytest.mark.parametrize("command", ["shapes", "verify", "explain", "train"])
def test_batch_and_seq_len_default_to_one_token(cli: Run, command: str) -> None:
    """`explain -m bert-base` needed BATCH and SEQ_LEN; a command that answers without them takes one token."""
    import json

    code, out, err = cli(command, "-m", "bert-base", "-f", "json")
    assert code == 0, err
    config = json.loads(out)["config"]
    assert (config["batch"], config["seq_len"]) == (1, 1)


def test_roofline_needs_the_token_counts_and_says_why(cli: Run) -> None:
    code, _, err = cli("roofline", "-m", "gpt2")
    assert code == 2 and "Missing argument 'BATCH'" in err
    (batch,) = [spec for spec in options_of("roofline") if spec.name == "batch"]
    assert "prefill is BATCH × SEQ_LEN tokens" in batch.help


def test_the_api_takes_one_token_by_default() -> None:
    import ffn_calc

    assert ffn_calc.layer(model="bert-base").tokens == 1


def test_sweep_takes_positional_sizes_like_every_command(cli: Run) -> None:
    """`sweep 1,8 512,2048 -m llama-3-8b`: BATCH SEQ_LEN [D_MODEL] in their places, lists and ranges."""
    import csv
    import io

    code, out, _ = cli("sweep", "1,8", "512,2048", "-m", "llama-3-8b", "-f", "csv", "-c", "batch,seq_len,params")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(int(r["batch"]), int(r["seq_len"])) for r in rows] == [(1, 512), (1, 2048), (8, 512), (8, 2048)]
    assert {int(r["params"]) for r in rows} == {176_160_768}
    same = cli("sweep", "--batch", "1,8", "--seq-len", "512,2048", "-m", "llama-3-8b", "-f", "csv", "-c", "batch,seq_len,params")
    assert same.out == out
    assert cli("sweep", "1", "2:4", "8", "-f", "csv").out.count("\n") == 4  # D_MODEL too, a range in SEQ_LEN's place
    code, _, err = cli("sweep", "1", "8", "--batch", "2", "--d-model", "8")
    assert code == 2 and "given twice" in err
    assert cli("sweep", "1", "2", "3", "4")[0] == 2


def test_dtype_offers_only_what_it_takes(cli: Run) -> None:
    """--dtype's choice list showed int4, which it refuses."""
    from ffn_calc.api.options import options_reference
    from ffn_calc.model.dtypes import ACTIVATION_DTYPES

    (dtype,) = [o for o in options_reference()["shapes"] if o["name"] == "dtype"]
    assert dtype["choices"] == list(ACTIVATION_DTYPES) and "int4" not in dtype["choices"]
    code, _, err = cli("shapes", "1", "2", "8", "--dtype", "nope")
    assert code == 2 and "int4" not in err and "nf4" not in err
    code, _, err = cli("shapes", "1", "2", "8", "--dtype", "int4")  # a weight format: said what to give instead
    assert code == 2 and "--weight-dtype int4" in err
    assert cli("shapes", "1", "2", "8", "--dtype", "BFloat16", "-q")[0] == 0  # any case, as before
    from ffn_calc.cli.options import complete_dtype

    assert "int4" not in complete_dtype("") and "float32" in complete_dtype("")
