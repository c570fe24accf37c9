"""Counted, not logged: the forward pass's elementwise work is counted from the arrays it wrote.

Bugs planted in the verifier's forward pass (a skipped bias add, an activation that writes
nothing, a residual computed but not counted, an expert skipping its bias add) must make the
FLOP rows fail; a changed counting convention (GELU at 6 FLOPs) is a definition, not an
observation, so it must pass and be listed under `definitions`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ffn_calc.model.activations import NONLINEARITIES
from ffn_calc.model.layer import make_config
from ffn_calc.verifier import forward as fwd
from ffn_calc.verifier.recorder import Recorder, Tally
from ffn_calc.verifier.report import CONVENTION_X_OBSERVED, DEFINITION, OBSERVED
from ffn_calc.verifier.run import verify


def failed(report: Any) -> set[str]:
    return {c.name for c in report.checks if not c.ok}


def row(report: Any, name: str) -> Any:
    return next(c for c in report.checks if c.name == name)


def test_counts_are_the_elements_written() -> None:
    cfg = make_config(2, 3, 8, 16, activation="gelu", norm="pre")
    report = verify(cfg)
    assert report.ok, failed(report)
    bias = row(report, "linear1 elementwise FLOPs (counted)")
    assert bias.observed == 2 * 3 * 16 and bias.how == CONVENTION_X_OBSERVED
    assert bias.detail == "bias add 1 FLOPs/element (convention) × 96 elements written (observed)"
    act = row(report, "activation elementwise FLOPs (counted)")
    assert act.detail == "GELU 5 FLOPs/element (convention) × 96 elements written (observed)"
    norm = row(report, "layernorm elementwise FLOPs (counted)")
    assert "× 48 elements written" in norm.detail and "× 6 rows written" in norm.detail  # per-row cost × rows
    mm = row(report, "linear1 matmul FLOPs (2 × MACs)")
    assert mm.observed == 2 * 6 * 8 * 16 and "2 FLOPs per multiply-add (convention)" in mm.detail


def test_skipped_bias_add_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path skipping the bias add writes nothing: its elements are not counted."""
    monkeypatch.setattr(fwd, "add_bias", lambda y, b, tally: None)
    report = verify(make_config(2, 3, 8, 16))
    assert {"linear1 elementwise FLOPs (counted)", "linear1 FLOPs", "linear2 FLOPs", "FLOPs"} <= failed(report)
    assert row(report, "linear1 elementwise FLOPs (counted)").observed == 0


def test_expert_skipping_its_bias_add_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = fwd.add_bias, []

    def skip_one(y: np.ndarray, b: np.ndarray, tally: Tally) -> None:
        calls.append(y.shape)
        if b.shape[0] == 16 and len(calls) == 2:  # one expert's first linear: no bias, nothing counted
            return
        real(y, b, tally)

    monkeypatch.setattr(fwd, "add_bias", skip_one)
    report = verify(make_config(2, 8, 8, 16, experts=4, top_k=2))
    assert "expert_linear1 elementwise FLOPs (counted)" in failed(report)


def test_activation_that_writes_nothing_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The activation logged but not computed: the block that would write it computes and counts
    nothing (it zeroes its output: left as np.empty made it, the values were whatever memory held,
    NaN included, and the test failed now and then in a long run)."""
    monkeypatch.setattr(fwd, "_activation_block", lambda kind, src, dst, tally: dst.fill(0.0))
    report = verify(make_config(2, 3, 8, 16, activation="gelu"))
    assert {"activation elementwise FLOPs (counted)", "activation FLOPs"} <= failed(report)
    assert row(report, "activation elementwise FLOPs (counted)").observed == 0


def test_activation_counted_but_not_computed_is_caught_by_the_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """A block that counts what it should have written but writes nothing passes the count (the
    element count is honest about the size) and fails on the values: the reference check."""
    monkeypatch.setattr(fwd, "_activation_block", lambda kind, src, dst, tally: (dst.fill(0.0), tally.elements(dst)))
    report = verify(make_config(2, 3, 8, 16, activation="gelu"))
    bad = failed(report)
    assert "activation elementwise FLOPs (counted)" not in bad
    assert any("reference" in name for name in bad), bad


def test_residual_computed_but_not_counted_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fwd, "add", lambda x, y, tally: x + y)
    report = verify(make_config(2, 3, 8, 16, norm="pre"))
    bad = failed(report)
    assert {"residual elementwise FLOPs (counted)", "residual FLOPs", "FLOPs"} <= bad
    assert all("FLOPs" in name for name in bad), bad  # the values are right: only the count fails


def test_gelu_at_six_flops_is_a_definition_not_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model mutant in the convention itself: the prediction and the count's cost both read
    the registry, so counting cannot catch it; verify lists it under definitions instead."""
    monkeypatch.setitem(NONLINEARITIES, "gelu", NONLINEARITIES["gelu"]._replace(flops=6))
    report = verify(make_config(2, 3, 8, 16, activation="gelu"))
    assert report.ok, failed(report)
    assert "GELU 6 FLOPs/element (convention)" in row(report, "activation elementwise FLOPs (counted)").detail
    defs = {d["name"]: d for d in report.to_dict()["definitions"]}
    assert defs["GELU FLOPs per element"]["value"] == 6
    assert "counting convention" in defs["GELU FLOPs per element"]["reason"]


def test_json_says_how_each_check_was_observed() -> None:
    doc = verify(make_config(2, 4, 8, 16, activation="swiglu", norm="post", norm_type="rms")).to_dict()
    hows = {c["name"]: c["how"] for c in doc["checks"]}
    assert set(hows.values()) <= {OBSERVED, CONVENTION_X_OBSERVED, DEFINITION}
    assert hows["layer output shape"] == OBSERVED and hows["gate MACs"] == OBSERVED
    assert hows["gate matmul FLOPs (einsum_path, 4 s.f.)"] == OBSERVED  # the independent count
    assert hows["gate matmul FLOPs (2 × MACs)"] == CONVENTION_X_OBSERVED
    assert hows["glu elementwise FLOPs (counted)"] == CONVENTION_X_OBSERVED
    assert hows["FLOPs"] == CONVENTION_X_OBSERVED
    names = {d["name"] for d in doc["definitions"]}
    assert {"FLOPs per multiply-add", "SiLU FLOPs per element", "GLU multiply FLOPs per element", "RMSNorm FLOPs per element"} <= names
    assert any("datasheet" in d["reason"] for d in doc["definitions"])


def test_llama_d_ff_rule_is_a_definition() -> None:
    from ffn_calc.api import layer

    cfg = layer(1, 4, model="llama-2-7b")
    from ffn_calc.model.forward import analyze
    from ffn_calc.verifier.compare import ForwardSeen, definitions

    defs = {d.name: d for d in definitions(analyze(cfg), ForwardSeen((), {}, {}, 0, 0.0))}
    assert defs["d_ff rule"].value == 11008 and "llama-2-7b" in defs["d_ff rule"].reason


def test_silent_recorder_counts_nothing_and_the_recorder_sums_tallies() -> None:
    cfg = make_config(1, 4, 8, 16)
    p = fwd.make_params(np.random.default_rng(0), cfg, np.float32)
    rec = Recorder()
    fwd.forward(rec, cfg, p, np.ones((1, 4, 8), np.float32))
    stages = rec.phase()  # the forward pass's, by stage name
    assert stages["activation"].elementwise_flops == 4 * 16  # ReLU 1 FLOP × 64 elements written
    assert [c.count for c in stages["linear2"].counted()] == [4 * 8]
    assert {phase for _, phase in rec.stages} == {"forward"}
