"""sweep over the training step: --dp, --zero, --pp, --microbatches and --schedule as axes, and
train's per-rank columns (train_…, dp_…, pp_…), against hand sums."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction

from helpers import ENV, Result

from ffn_calc import api

Cli = Callable[..., Result]
PSI = 3 * 4096 * 11008  # Llama-2-7B's FFN: 135,266,304 parameters, bfloat16, mixed Adam


def _jsonl(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_dp_and_zero_as_axes(cli: Cli) -> None:
    code, out, err = cli("sweep", "8", "512", "-m", "llama-2-7b", "--dp", "8,64", "--zero", "1,3", "-c",
                         "dp_weight_bytes,dp_optimizer_state_bytes,dp_sent_bytes,train_bytes_per_param", "-f", "jsonl")  # fmt: skip
    assert code == 0, err
    got = _jsonl(out)
    assert [(r["dp"], r["zero"]) for r in got] == [(8, "1"), (8, "3"), (64, "1"), (64, "3")]  # the swept axes are columns
    for r in got:
        n, stage = r["dp"], int(str(r["zero"]))
        assert isinstance(n, int)
        assert r["dp_weight_bytes"] == (2 * PSI // n if stage == 3 else 2 * PSI)
        assert r["dp_optimizer_state_bytes"] == 8 * PSI // n  # Adam's two float32 states, sharded from stage 1
        rings = 3 if stage == 3 else 2  # ZeRO-3: two all-gathers and a reduce-scatter; else an all-reduce
        assert r["dp_sent_bytes"] == rings * (n - 1) * (PSI // n) * 2
        assert r["train_bytes_per_param"] == 16


def test_pipeline_axes(cli: Cli) -> None:
    code, out, err = cli("sweep", "8", "512", "-m", "llama-2-7b", "--pp", "2,4", "--microbatches", "1,8", "--schedule", "gpipe,1f1b",
                         "-c", "pp_bubble_numerator,pp_bubble_denominator,pp_boundary_bytes", "-f", "jsonl")  # fmt: skip
    assert code == 0, err
    got = _jsonl(out)
    assert len(got) == 8
    for r in got:
        p, m = r["pp"], r["microbatches"]
        assert isinstance(p, int) and isinstance(m, int)
        assert Fraction(int(str(r["pp_bubble_numerator"])), int(str(r["pp_bubble_denominator"]))) == Fraction(p - 1, m + p - 1)
        assert r["pp_boundary_bytes"] == (8 // m) * 512 * 4096 * 2  # a microbatch's (8/m, 512, 4096) bfloat16 activation


def test_without_dp_the_dp_columns_are_empty_and_train_is_the_layers() -> None:
    result = api.sweep(1, 512, model="llama-2-7b", columns="train_peak_bytes,dp_sent_bytes,pp_bubble_fraction")
    (row,) = list(result.rows)
    assert row[0] == api.train(api.layer(1, 512, model="llama-2-7b")).totals.peak_bytes
    assert row[1] is None and row[2] is None


def test_bad_training_combination_refused_before_any_row(cli: Cli) -> None:
    code, out, err = cli("sweep", "4,8", "512", "-m", "llama-2-7b", "--pp", "4", "--microbatches", "3,4", "-f", "csv")
    assert code == 2 and out == "" and "--microbatches" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("sweep", "--stdin", "-c", "dp_sent_bytes", input='{"batch": 1, "seq_len": 8, "model": "bert-base"}\n')
    assert code == 2 and "drop --stdin or the column dp_sent_bytes" in err


def test_a_sweep_without_training_does_not_load_the_training_model() -> None:
    code = (
        "import sys; from ffn_calc import api; list(api.sweep(1, '8,16', model='bert-base').rows); "
        "print('ffn_calc.model.training' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True).stdout
    assert out.split() == ["False", "False"]


def test_a_training_axis_shows_its_per_rank_figures_without_columns(cli: Cli) -> None:
    # --dp alone: the rank's peak and bytes sent join the default columns; --pp: the bubble and
    # the busiest stage's peak; neither without a training axis.
    code, out, err = cli("sweep", "8", "512", "-m", "llama-2-7b", "--dp", "64", "--zero", "3", "-f", "jsonl")
    assert code == 0, err
    (row,) = _jsonl(out)
    assert row["dp_sent_bytes"] == 3 * 63 * (PSI // 64) * 2 and "dp_peak_bytes" in row and "pp_bubble_fraction" not in row
    code, out, err = cli("sweep", "8", "512", "-m", "llama-2-7b", "--pp", "4", "--microbatches", "8", "-f", "jsonl")
    assert code == 0, err
    (row,) = _jsonl(out)
    assert Fraction(str(row["pp_bubble_fraction"])).limit_denominator(100) == Fraction(3, 11)  # (p − 1)/(m + p − 1), 1F1B
    assert "pp_busiest_stage_peak_bytes" in row and "dp_peak_bytes" not in row
    code, out, err = cli("sweep", "8", "512", "-m", "llama-2-7b", "-f", "jsonl")
    assert code == 0 and not any(k.startswith(("dp_", "pp_")) for k in _jsonl(out)[0])
