"""`verify --pp`: the schedules' op orders run in unit slots, and the stack run as a pipeline
against `train --pp`. Hand-computed cases; a model formula planted wrong makes a row fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from fractions import Fraction

import pytest
from helpers import Result

from ffn_calc import layer
from ffn_calc.model import pipeline as model_pipeline
from ffn_calc.model.training import TrainingOptions
from ffn_calc.verifier.pipeline import BACKWARD, FORWARD, op_order, run_schedule
from ffn_calc.verifier.report import VerifyReport
from ffn_calc.verifier.run import verify


def _held(ops: list[tuple[str, int, int]]) -> int:
    live = most = 0
    for kind, _, _ in ops:
        live += 1 if kind == FORWARD else -1
        most = max(most, live)
    return most


def test_1f1b_order_by_hand() -> None:
    # p = 2, m = 3: stage 0 warms up with one forward, stage 1 with none
    order = op_order("1f1b", 2, 3, 1)
    f, b = FORWARD, BACKWARD
    assert order[0] == [(f, 0, 0), (f, 1, 0), (b, 0, 0), (f, 2, 0), (b, 1, 0), (b, 2, 0)]
    assert order[1] == [(f, 0, 1), (b, 0, 1), (f, 1, 1), (b, 1, 1), (f, 2, 1), (b, 2, 1)]
    line = run_schedule(order, 2, lambda s, op: None)
    # 12 ops on 2 stages in 2·(m + p − 1) = 8 slots: 4 idle, 1/4 = (p − 1)/(m + p − 1)
    assert (line.length, line.idle) == (8, 4)
    assert [_held(ops) for ops in order] == [2, 1]


def test_gpipe_and_interleaved_by_hand() -> None:
    gpipe = op_order("gpipe", 3, 2, 1)
    line = run_schedule(gpipe, 3, lambda s, op: None)
    assert (line.length, line.idle) == (8, 12)  # 2·(2 + 3 − 1) slots, 24 − 12 busy: 1/2 = 2/4
    assert [_held(ops) for ops in gpipe] == [2, 2, 2]
    inter = op_order("interleaved", 2, 2, 2)  # 4 chunks: 0 and 2 on stage 0, 1 and 3 on stage 1
    assert {c for _, _, c in inter[0]} == {0, 2} and {c for _, _, c in inter[1]} == {1, 3}
    line = run_schedule(inter, 4, lambda s, op: None)
    # stage 0 warms up min(2·1 + 1·2, 4) = 4: all its forwards first; stage 1 min(0 + 2, 4) = 2, then one more
    assert [_held(ops) for ops in inter] == [4, 3]
    assert Fraction(line.idle, 2 * line.length) == Fraction(1, 5)  # (p − 1)/(v·m + p − 1)


def test_an_order_that_waits_forever_is_an_error() -> None:
    order = [[(BACKWARD, 0, 0), (FORWARD, 0, 0)], [(FORWARD, 0, 1), (BACKWARD, 0, 1)]]
    with pytest.raises(RuntimeError, match="stalls"):
        run_schedule(order, 2, lambda s, op: None)


def _rows(report: VerifyReport) -> dict[str, object]:
    return {c.name: c.observed for c in report.checks if c.group == "pipeline"}


@pytest.mark.parametrize("backward", [False, True])
def test_1f1b_stack_observed(backward: bool) -> None:
    # 8 layers over 4 stages, 8 sequences in 4 microbatches of 2: (2, 4, 16) float32 = 512 bytes a boundary
    report = verify(layer(batch=8, seq_len=4, d_model=16, d_ff=32, layers=8), backward=backward, training=TrainingOptions(), pp=4,
                    microbatches=4)  # fmt: skip
    assert report.ok, [c for c in report.checks if not c.ok]
    rows = _rows(report)
    assert rows["activation crossing a stage boundary: shape"] == (2, 4, 16)
    assert rows["activation crossing a stage boundary: bytes (each array handed on)"] == 2 * 4 * 16 * 4
    assert [rows[f"stage {s} held microbatches (most kept at once)"] for s in range(4)] == [4, 3, 2, 1]
    assert [rows[f"stage {s} layers (the layers its ops multiplied)"] for s in range(4)] == [((0, 1),), ((2, 3),), ((4, 5),), ((6, 7),)]
    # one layer, no norm, relu with bias: saved x (2·4·16·4 = 512 B) and h (2·4·32·4 = 1,024 B, relu's output doubles as
    # linear2's input); 2 layers a stage: 3,072 bytes a microbatch, × held
    saved = rows["stage 0 held activation bytes (their .nbytes at the most)"]
    assert saved == 4 * 2 * (512 + 1024)
    assert rows["bubble fraction (idle slots of the schedule's ops run in unit slots)"] == "3/7"
    if backward:
        # stage 0 and 3 send 4 microbatches one way, stages 1 and 2 both ways: 512 bytes each
        assert [rows[f"stage {s} bytes sent per step (activations and gradients handed on)"] for s in range(4)] == [2048, 4096, 4096, 2048]


def test_mixed_stack_interleaved_observed() -> None:
    cfg = layer(batch=4, seq_len=4, d_model=16, d_ff=8, layers=6, experts=4, top_k=2, dense_layers=2, dense_d_ff=32)
    report = verify(cfg, backward=True, training=TrainingOptions(), pp=2, microbatches=4, schedule="interleaved")
    assert report.ok, [c for c in report.checks if not c.ok]
    rows = _rows(report)
    # 8 layers in 4 chunks of 2: stage 0 has layers 0-1 (dense) and 4-5 (MoE), stage 1 layers 2-3 and 6-7
    assert rows["stage 0 layers (the layers its ops multiplied)"] == ((0, 1), (4, 5))
    assert (rows["stage 0 dense layers"], rows["stage 0 mixture-of-experts layers (with expert weights)"]) == (2, 2)
    assert rows["stage 1 mixture-of-experts layers (with expert weights)"] == 4
    assert rows["bubble fraction (idle slots of the schedule's ops run in unit slots)"] == "1/9"  # (2 − 1)/(2·4 + 2 − 1)


def test_a_wrong_held_formula_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # the observation does not come from the model: plant GPipe's count in 1F1B and the row fails
    monkeypatch.setattr(model_pipeline, "held", lambda schedule, p, m, v, s: m)
    report = verify(layer(batch=8, seq_len=4, d_model=16, d_ff=32, layers=4), training=TrainingOptions(), pp=2, microbatches=4)
    bad = {c.name for c in report.checks if not c.ok}
    assert "stage 1 held microbatches (most kept at once)" in bad


def test_a_wrong_order_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # run GPipe's order while the model plans 1F1B: every stage holds every microbatch (the bubble is the same)
    import ffn_calc.verifier.pipeline as vp

    real = vp.op_order
    monkeypatch.setattr(vp, "op_order", lambda schedule, p, m, v: real("gpipe", p, m, v))
    report = verify(layer(batch=8, seq_len=4, d_model=16, d_ff=32, layers=4), training=TrainingOptions(), pp=2, microbatches=4)
    bad = {c.name for c in report.checks if not c.ok}
    rows = ("microbatches (most kept at once)", "activation bytes (their .nbytes at the most)")
    assert bad == {f"stage {s} held {what}" for s in (0, 1) for what in rows}


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--tp", "2"], "drop --tp"),
        (["--ep", "2", "--experts", "4", "--top-k", "1"], "drop --ep"),
        (["--backward", "--recompute", "full"], "drop --recompute"),
        (["--backward", "--dropout"], "drop --dropout"),
    ],
)
def test_refused_in_one_line(cli: Callable[..., Result], extra: list[str], says: str) -> None:
    code, out, err = cli("verify", "8", "4", "16", "--d-ff", "32", "--layers", "4", "--pp", "2", *extra)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and says in err


def test_cli_json(cli: Callable[..., Result]) -> None:
    code, out, _ = cli("verify", "4", "2", "8", "--d-ff", "16", "--layers", "4", "--pp", "2", "--microbatches", "2", "--schedule",
                       "gpipe", "-f", "json")  # fmt: skip
    d = json.loads(out)
    assert code == 0 and d["ok"]
    held = [c["observed"] for c in d["checks"] if c["group"] == "pipeline" and "held microbatches" in c["name"]]
    assert held == [2, 2]
    assert any(x["name"] == "pipeline op cost" for x in d["definitions"])


def test_each_row_judges_the_prediction() -> None:
    # a plan with a wrong bubble, boundary and held count: exactly those rows fail
    import dataclasses

    import numpy as np

    from ffn_calc.verifier.pipeline import pipeline_checks, plan

    cfg = layer(batch=4, seq_len=2, d_model=8, d_ff=16, layers=4)
    options = TrainingOptions()
    good = plan(cfg, options, 2, 2, "1f1b", None, False, 1 << 30, {})
    stage0 = dataclasses.replace(good.per_stage[0], held_microbatches=1)
    bad = dataclasses.replace(good, bubble_numerator=2, boundary_bytes=good.boundary_bytes + 1, per_stage=(stage0, good.per_stage[1]))
    checks, _ = pipeline_checks(cfg, bad, options, np.float32, 1e-4, np.random.default_rng(0), False)
    failed = {c.name for c in checks if not c.ok}
    assert failed == {
        "bubble fraction (idle slots of the schedule's ops run in unit slots)",
        "activation crossing a stage boundary: bytes (each array handed on)",
        "stage 0 held microbatches (most kept at once)",
    }
    checks, _ = pipeline_checks(cfg, good, options, np.float32, 1e-4, np.random.default_rng(0), False)
    assert all(c.ok for c in checks)
