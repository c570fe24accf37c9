"""Hand-computed cases for the bugs benchmarks/mutants.py planted that no test caught: model totals
over layers, LLaMA's rounding, float8 bytes, a GLU's backward, training rules, and checks in the
verifier that must compare an observation, not the prediction with itself."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

import ffn_calc
from ffn_calc.model import training as training_model
from ffn_calc.model.dtypes import DTYPES
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import glu_matched_d_ff, make_config
from ffn_calc.model.training import TrainingOptions, train
from ffn_calc.verifier import recorder

# --- model totals over layers -----------------------------------------------------------------


def test_model_totals_over_layers_by_hand() -> None:
    r = analyze(make_config(2, 3, 8, 32, layers=4, norm="pre"))
    t, m = r.totals, r.model
    assert t.elementwise_flops > 0  # so that FLOPs ≠ matmul FLOPs below
    assert (m.flops, m.matmul_flops, m.params) == (4 * t.flops, 4 * t.matmul_flops, 4 * t.params)
    # Every layer's weights, and one layer's activations (a forward pass frees them as it goes).
    assert m.peak_bytes == 4 * t.weight_bytes + r.peak.activation_bytes


def test_model_active_parameters_over_layers() -> None:
    r = analyze(make_config(1, 4, 8, 16, experts=4, top_k=1, layers=3, activation="swiglu", bias=False))
    one_expert = 3 * 8 * 16
    assert r.totals.active_params == r.totals.params - 3 * one_expert
    assert r.model.active_params == 3 * r.totals.active_params < r.model.params


# --- config rules -------------------------------------------------------------------------------


def test_llama_rounding_leaves_a_multiple_as_it_is() -> None:
    # int(2·4·96/3) = 256 is already a multiple of 32: no rounding up.
    assert glu_matched_d_ff(96, 32).value == 256
    assert glu_matched_d_ff(96, 48).value == 288  # 256 → 48·ceil(256/48) = 288


def test_float8_is_one_byte_per_element() -> None:
    for name in ("float8_e4m3fn", "float8_e5m2"):
        assert DTYPES[name].bytes == 1
        r = analyze(make_config(1, 1, 8, 16, dtype=name))
        assert r.totals.weight_bytes == r.totals.params


# --- training rules ---------------------------------------------------------------------------


def test_a_glus_backward_per_element() -> None:
    t = train(make_config(2, 3, 8, 32, activation="swiglu", bias=False), TrainingOptions())
    glu = next(op for op in t.backward if op.stage == "glu")
    # SiLU's backward 9 + SiLU again 4 (du = da ⊙ silu(g)) + 2 multiplies, per element of (6, 32).
    assert glu.elementwise_flops == 6 * 32 * (9 + 4 + 2)


def test_selective_recompute_of_relu_and_gelu() -> None:
    relu = train(make_config(2, 3, 8, 32), TrainingOptions(recompute="selective"))
    assert relu.totals.recompute_flops == 0  # ReLU's backward reads its output: nothing to redo
    gelu = train(make_config(2, 3, 8, 32, activation="gelu"), TrainingOptions(recompute="selective"))
    assert gelu.totals.recompute_flops == 6 * 32 * 5  # GELU's 5 FLOPs on every element of h


def test_relu_keeps_its_output_not_its_input() -> None:
    names = [s.name for s in train(make_config(2, 3, 8, 32), TrainingOptions()).saved]
    assert names == ["input", "activation"]  # linear1's output h is not kept for ReLU
    gelu = [s.name for s in train(make_config(2, 3, 8, 32, activation="gelu"), TrainingOptions()).saved]
    assert gelu == ["input", "linear1", "activation"]


def test_dropout_costs_forward_and_backward() -> None:
    t = train(make_config(2, 3, 8, 32), TrainingOptions(dropout=True)).totals
    assert t.dropout_flops == 2 * 6 * 8  # apply the mask forward, and again backward


def test_backward_transient_by_hand() -> None:
    # The most gradients alive at once: a product's pair is dY (6, 32) and dX (6, 8) of linear1
    # (or dY (6, 8) and dA (6, 32) of linear2), 6·40 floats; the activation's is its output
    # gradient dA (6, 32) and input gradient dH (6, 32), 6·64 floats: the larger, in float32.
    t = train(make_config(2, 3, 8, 32), TrainingOptions()).totals
    assert t.backward_transient_bytes == 6 * (32 + 32) * 4
    # A GLU's elementwise step holds da and both dgate and dup: 3 · (6, 32).
    glu = train(make_config(2, 3, 8, 32, activation="swiglu"), TrainingOptions()).totals
    assert glu.backward_transient_bytes == 3 * 6 * 32 * 4
    # d_ff below d_model: the products' pair (6·(8 + 4)) is the larger.
    narrow = train(make_config(2, 3, 8, 4), TrainingOptions()).totals
    assert narrow.backward_transient_bytes == 6 * (8 + 4) * 4


# --- the verifier compares observations -------------------------------------------------------


def test_a_wrong_einsum_count_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder, "_einsum_path_flops", lambda a, b: 0.0)
    report = ffn_calc.verify(make_config(2, 3, 8, 32))
    assert any("einsum_path" in c.name and not c.ok for c in report.checks)


def test_a_wrong_backward_op_is_seen_in_its_own_row(monkeypatch: pytest.MonkeyPatch) -> None:

    real = training_model._backward_ops

    def one_more(report, input_grad=True):  # type: ignore[no-untyped-def]
        return [replace(op, elementwise_flops=op.elementwise_flops + 1) if (op.stage, op.kind) == ("linear2", "bias-grad") else op
                for op in real(report, input_grad)]  # fmt: skip

    monkeypatch.setattr(training_model, "_backward_ops", one_more)
    report = ffn_calc.verify(make_config(2, 3, 8, 32), backward=True)
    failed = [c.name for c in report.checks if not c.ok]
    assert "linear2 bias-grad FLOPs" in failed


@pytest.mark.parametrize("factor", [Fraction(103, 100), Fraction(97, 100)], ids=["3% high", "3% low"])
def test_a_peak_3_percent_off_fails_on_a_bert_size_layer(monkeypatch: pytest.MonkeyPatch, factor: Fraction) -> None:
    """BERT-base's FFN (512 tokens, GELU): a peak prediction 3% off either way fails, and the
    true one passes within 2%."""
    from ffn_calc.verifier import run

    real = run.analyze
    cfg = make_config(1, 512, 768, 3072, activation="gelu")
    honest = ffn_calc.verify(cfg)
    peak = next(c for c in honest.checks if c.name.startswith("peak bytes"))
    assert peak.ok and isinstance(peak.observed, int) and isinstance(peak.predicted, int)
    assert peak.predicted <= peak.observed <= peak.predicted * 1.02

    def planted(cfg):  # type: ignore[no-untyped-def]
        report = real(cfg)
        totals = replace(report.totals, peak_bytes=int(report.totals.peak_bytes * factor))
        return replace(report, totals=totals)

    monkeypatch.setattr(run, "analyze", planted)
    report = ffn_calc.verify(cfg)
    assert [c.name for c in report.checks if not c.ok and c.name.startswith("peak bytes")]


def test_capacity_routing_drops_what_overflows() -> None:
    """Capacity buffers by hand: a token's pair beyond an expert's capacity adds nothing."""
    from ffn_calc.verifier.forward import forward, make_params
    from ffn_calc.verifier.recorder import Recorder

    cfg = make_config(1, 16, 8, 12, experts=2, top_k=1, capacity_factor=0.5, bias=False)
    p = make_params(np.random.default_rng(0), cfg, np.float64)
    x = np.random.default_rng(1).standard_normal((1, 16, 8))
    y = forward(Recorder(), cfg, p, x).reshape(16, 8)
    cap = cfg.expert_capacity
    assert cap == 4
    logits = x.reshape(16, 8) @ p["W_router"]
    chosen = logits.argmax(axis=1)  # top-1, ties to the lower index
    seen = [0, 0]
    for t in range(16):
        e = int(chosen[t])
        h = x[0, t] @ p["expert_W1"][e]
        expected = np.maximum(h, 0) @ p["expert_W2"][e] if seen[e] < cap else np.zeros(8)
        seen[e] += 1
        assert np.allclose(y[t], expected), t
    assert max(seen) > cap  # the case really drops pairs


def test_a_saved_tensor_the_backward_never_reads_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model saving ReLU's input as well as its output (its backward reads only the output):
    the NumPy step keeps what the model lists, so the extra tensor is seen as never read."""
    from ffn_calc.model.training import SavedTensor
    from ffn_calc.verifier import training_step

    real = training_step.train

    def extra(cfg, options):  # type: ignore[no-untyped-def]
        report = real(cfg, options)
        h = next(s for s in report.forward.stages if s.name == "linear1")  # ReLU's input
        return replace(report, saved=(*report.saved, SavedTensor(h.name, h.output_shape, h.output_bytes, "planted")))

    honest = ffn_calc.verify(make_config(2, 8, 16), backward=True)
    assert all(c.ok for c in honest.checks)
    monkeypatch.setattr(training_step, "train", extra)
    report = ffn_calc.verify(make_config(2, 8, 16), backward=True)
    failed = {c.name: c.observed for c in report.checks if not c.ok}
    assert failed["every saved tensor is read by the recompute or the backward"] == "never read: linear1"


def test_sequence_parallel_dropout_acts_on_the_rank_shard() -> None:
    """Under sequence parallelism dropout runs after the reduce-scatter, on the rank's s / N
    of the sequence: 2 × 8 tokens over 2 ranks is 8 tokens × 16 features, forward and backward."""
    t = train(make_config(2, 8, 16), TrainingOptions(dropout=True), tp=2, sequence_parallel=True).totals
    assert t.dropout_flops == 2 * (2 * 8 // 2) * 16
    assert train(make_config(2, 8, 16), TrainingOptions(dropout=True), tp=2).totals.dropout_flops == 2 * 2 * 8 * 16


def test_a_rank_saving_the_whole_input_under_sequence_parallelism_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model keeping the whole layer input on each rank under sequence parallelism (not its
    sequence shard): every rank's training step observes the shard it holds, and fails."""
    real = training_model.train

    def whole_input(cfg, options, tp=1, sequence_parallel=False, ep=1):  # type: ignore[no-untyped-def]
        report = real(cfg, options, tp, sequence_parallel, ep)
        saved = tuple(replace(t, shape=(cfg.batch, cfg.seq_len, cfg.d_model), bytes=t.bytes * tp) if t.name == "input" else t for t in report.saved)
        return replace(report, saved=saved)

    cfg = make_config(2, 8, 16)
    honest = ffn_calc.verify(cfg, tp=2, sequence_parallel=True, backward=True)
    assert all(c.ok for c in honest.checks)
    monkeypatch.setattr(training_model, "train", whole_input)
    report = ffn_calc.verify(cfg, tp=2, sequence_parallel=True, backward=True)
    failed = [c.name for c in report.checks if not c.ok]
    assert "rank 0 step: saved input bytes (float32, .nbytes)" in failed and "rank 1 step: saved input bytes (float32, .nbytes)" in failed


def test_sequence_parallel_backward_gathers_the_input_again_by_hand() -> None:
    """Under sequence parallelism a rank keeps its shard of the layer input and gathers the whole
    input again for linear1's weight gradient (Megatron): 16 tokens, d_model 64, d_ff 32 over 2
    ranks (16 each), float32. Then dY (16, 16), dX (16, 64) and the gathered (16, 64) are alive
    together: 16·(16 + 64 + 64)·4 = 9,216 bytes, more than any product's pair (16·(16 + 64)·4)."""
    cfg = make_config(2, 8, 64, 32)
    assert train(cfg, TrainingOptions(), tp=2, sequence_parallel=True).totals.backward_transient_bytes == 16 * (16 + 64 + 64) * 4
    assert train(cfg, TrainingOptions(), tp=2).totals.backward_transient_bytes == 16 * (16 + 64) * 4
    report = ffn_calc.verify(cfg, tp=2, sequence_parallel=True, backward=True)
    rows = {c.name.split(" (")[0]: c for c in report.checks if c.name.startswith("rank 0 step: backward_transient_bytes")}
    assert report.ok and rows["rank 0 step: backward_transient_bytes"].observed == 9216
