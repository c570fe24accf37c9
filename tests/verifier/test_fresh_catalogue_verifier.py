"""Verifier bugs the fresh mutant catalogue (benchmarks/mutants_fresh.py) planted without the suite
noticing: each test plants a wrong figure (a prediction one off, an update that skips an element, a
packed tensor of the right bytes but the wrong dtype) and asserts that the one check meant to see
it fails; or runs the boundary case the check must get right."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

import ffn_calc
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import make_config
from ffn_calc.model.training import train
from ffn_calc.verifier import forward, optimizer, packed, training_step


def _one(report: Any, start: str) -> Any:
    found = [c for c in report.checks if c.name.startswith(start)]
    assert len(found) == 1, [c.name for c in report.checks]
    return found[0]


def test_adam8bit_on_a_tensor_of_exactly_4096_elements_is_8_bit() -> None:
    # d = 64, d_ff = 64, no biases: W1 and W2 of 4,096 elements each, at bitsandbytes' min_8bit_size:
    # 2 states × (4,096 bytes + 16 float32 absmax) each = 8,320 per matrix
    report = ffn_calc.verify(make_config(2, 4, 64, "64", bias=False), backward=True, optimizer="adam8bit")
    assert report.ok
    row = _one(report, "optimizer_state_bytes (")
    assert (row.predicted, row.observed) == (2 * 8320, 2 * 8320)


def test_a_training_total_one_byte_off_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def one_more(*args: Any, **kwargs: Any) -> Any:
        out = train(*args, **kwargs)
        return replace(out, totals=replace(out.totals, saved_activation_bytes=out.totals.saved_activation_bytes + 1))

    monkeypatch.setattr(training_step, "train", one_more)
    # d = 8, d_ff = 24, relu, biases: x (2·4, 8) and h (8, 24) saved in float32 = 256 + 768 = 1,024 bytes
    report = ffn_calc.verify(make_config(2, 4, 8, "24"), backward=True)
    row = _one(report, "saved_activation_bytes (")
    assert (row.predicted, row.observed, row.ok) == (1025, 1024, False)


def test_an_update_that_skips_an_element_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = optimizer.Optimizer.step

    def skip_one(self: Any, grads: Any) -> None:
        real(self, grads)
        first = next(iter(self.stepped))
        self.stepped[first] -= 1  # as if one element with a gradient had not moved

    monkeypatch.setattr(optimizer.Optimizer, "step", skip_one)
    report = ffn_calc.verify(make_config(2, 4, 8, "24"), backward=True, optimizer="adam")
    assert not _one(report, "adam update: elements stepped").ok


@pytest.mark.parametrize("change", ["dtype", "shape"])
def test_a_packed_tensor_of_the_right_bytes_but_wrong_dtype_or_shape_fails(change: str) -> None:
    # GPTQ scales are float16 (G, N) = (2, 64): as int16, or as (64, 2), they keep their 256 bytes
    cfg = make_config(2, 4, 64, "64", weight_dtype="gptq_int4", group_size=32, bias=False)
    params = forward.make_params(np.random.default_rng(0), cfg, np.float32)
    w1 = params["W1"]
    assert isinstance(w1, packed.PackedWeight)
    scales = w1.arrays["scales"]
    w1.arrays["scales"] = scales.view(np.int16) if change == "dtype" else scales.reshape(64, 2)
    failed = [c for c in packed.stored_checks(analyze(cfg), params) if not c.ok]
    assert [c.name for c in failed] == ["W1 scales (dtype, shape, .nbytes of the packed array)"]


def test_a_stack_of_like_layers_has_its_training_peak_observed(monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 GELU layers, d = 8, d_ff = 32, selective recompute: the stack's training peak is 3 × the
    # persistent and saved bytes + one layer's recomputed and transient bytes, each read off the
    # observed step. A model peak that forgets the recomputed bytes must fail that row.
    from ffn_calc.model import training

    cfg = make_config(2, 4, 8, "32", activation="gelu", layers=3)
    row = "model peak_bytes = Σ persistent + saved + the largest one-layer recomputed + transient"
    assert _one(ffn_calc.verify(cfg, backward=True, recompute="selective"), row).ok
    real = training.stack_training_totals

    def forgets(groups: Any) -> Any:
        out = real(groups)
        busiest = max(t.recomputed_bytes for _, _, t in groups)
        return replace(out, peak_bytes=out.peak_bytes - busiest)

    monkeypatch.setattr(training, "stack_training_totals", forgets)
    assert not _one(ffn_calc.verify(cfg, backward=True, recompute="selective"), row).ok
