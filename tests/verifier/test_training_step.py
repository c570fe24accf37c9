"""`verify --backward` runs a real training step: every recompute mode, dropout, each optimizer
and mixed precision on dense, GLU and MoE layers pass, every figure of `train`'s totals is
observed by some check, and planted model bugs are caught."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest
from helpers import diagonal

import ffn_calc
from ffn_calc import api
from ffn_calc.model import conventions, training
from ffn_calc.model import training as training_model
from ffn_calc.model import training_options as topts
from ffn_calc.model.layer import FFNConfig, make_config
from ffn_calc.model.step_totals import TrainingTotals
from ffn_calc.verifier.training_step import TOTALS_CHECKS

DENSE = make_config(2, 4, 8, 16, activation="gelu", norm="pre")
RELU = make_config(2, 4, 8, 16, activation="relu")
GLU = make_config(2, 4, 8, 16, activation="swiglu", norm="pre", norm_type="rms")
MOE = make_config(2, 8, 16, 24, activation="swiglu", experts=4, top_k=2, norm="pre")
LAYERS = {"dense": DENSE, "glu": GLU, "moe": MOE}


# The sweeps below (recompute modes, optimizers × layers) run every value of each axis in the fast
# loop and every pairing in the full run (helpers.diagonal).


def _failed(report: api.VerifyReport) -> list[str]:
    return [c.name for c in report.checks if not c.ok]


@pytest.mark.parametrize(("recompute", "kind"), diagonal(list(topts.RECOMPUTE), list(LAYERS)))
def test_every_recompute_mode_with_dropout(kind: str, recompute: str) -> None:
    report = api.verify(LAYERS[kind], backward=True, recompute=recompute, dropout=True)
    assert report.ok, _failed(report)


@pytest.mark.parametrize(("optimizer", "kind"), diagonal(list(topts.OPTIMIZERS), list(LAYERS)))
def test_each_optimizer(kind: str, optimizer: str) -> None:
    report = api.verify(LAYERS[kind], backward=True, optimizer=optimizer)
    assert report.ok, _failed(report)


@pytest.mark.parametrize("kind", LAYERS)
def test_mixed_precision_bfloat16(kind: str) -> None:
    report = api.verify(replace(LAYERS[kind], dtype="bfloat16"), backward=True, mixed_precision=True, recompute="selective", dropout=True)
    assert report.ok, _failed(report)
    rows = {c.name.split(" (")[0]: c for c in report.checks}
    assert rows["master_weight_bytes"].observed == rows["weight_bytes"].observed * 2 > 0  # type: ignore[operator]


@pytest.mark.parametrize(("recompute", "kind"), diagonal(list(topts.RECOMPUTE), list(LAYERS)))
def test_tp_4_with_sequence_parallelism_runs_every_rank_step(kind: str, recompute: str) -> None:
    """`--tp 4 --sequence-parallel --backward`: every rank's step passes, and its rows cover
    every figure of `train --tp 4`'s totals."""
    report = api.verify(LAYERS[kind], backward=True, tp=4, sequence_parallel=True, recompute=recompute, dropout=True)
    assert report.ok, _failed(report)
    names = [c.name for c in report.checks]
    for rank in range(4):
        for figure in TOTALS_CHECKS.values():
            assert any(name.startswith(f"rank {rank} step: {figure} (") for name in names), (rank, figure)
        assert f"rank {rank} dropout FLOPs (convention × elements written, forward and backward)" in names


def test_every_totals_figure_is_observed() -> None:
    assert set(TOTALS_CHECKS) == {f.name for f in fields(TrainingTotals)}
    report = api.verify(DENSE, backward=True, dropout=True, recompute="full")
    names = [c.name for c in report.checks]
    for figure in api.train(DENSE).to_dict()["totals"]:
        assert any(name.startswith(TOTALS_CHECKS[figure] + " (") for name in names), figure


def test_finite_differences_on_the_layer_or_a_slice() -> None:
    small = api.verify(DENSE, backward=True)
    assert any("the layer itself, 8 tokens" in c.name for c in small.checks)
    big = api.verify(make_config(1, 80, 16, 32, activation="gelu"), backward=True)
    assert any("a slice: 4 of 80 tokens" in c.name and c.ok for c in big.checks)


def test_training_options_need_backward() -> None:
    with pytest.raises(api.ConfigError):
        api.verify(DENSE, dropout=True)


# --- planted model bugs -------------------------------------------------------------------------


def test_catches_dropout_mask_in_the_activation_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conventions, "DROPOUT_MASK_BYTES_PER_ELEMENT", 4)
    report = api.verify(DENSE, backward=True, dropout=True)
    assert "saved_activation_bytes" in " ".join(_failed(report))


def test_catches_selective_recompute_charging_relu(monkeypatch: pytest.MonkeyPatch) -> None:
    real = training.train

    def charged(cfg: Any, options: Any, *a: Any, **k: Any) -> Any:
        r = real(cfg, options, *a, **k)
        if options.recompute != "selective":
            return r
        act = sum(s.flops for s in r.forward.stages if s.op == "activation")
        return replace(r, totals=replace(r.totals, recompute_flops=r.totals.recompute_flops + act))

    monkeypatch.setattr("ffn_calc.verifier.training_step.train", charged)
    report = api.verify(RELU, backward=True, recompute="selective")
    assert any(n.startswith("recompute_flops") for n in _failed(report))


def test_the_verifiers_optimizers_are_the_models() -> None:
    from ffn_calc.verifier import optimizer

    assert {k: len(v) for k, v in optimizer.STATES.items()} == {k: o.states for k, o in topts.OPTIMIZERS.items()}
    assert set(optimizer.EIGHT_BIT) == {k for k, o in topts.OPTIMIZERS.items() if o.blockwise_8bit}


def test_catches_adam_with_one_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(topts.OPTIMIZERS, "adam", topts.Optimizer("one state", 1))
    report = api.verify(DENSE, backward=True, optimizer="adam")
    assert any(n.startswith("optimizer_state_bytes") for n in _failed(report))


def test_catches_master_weights_in_the_16_bit_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "MASTER_BYTES", 2)
    report = api.verify(replace(DENSE, dtype="bfloat16"), backward=True, mixed_precision=True)
    assert any(n.startswith("master_weight_bytes") for n in _failed(report))


def test_catches_a_transient_without_the_output_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    real = training.train

    def short(cfg: Any, options: Any, *a: Any, **k: Any) -> Any:
        r = real(cfg, options, *a, **k)
        by_name = {s.name: s for s in r.forward.stages}
        out_grad = max(by_name[op.stage].output.bytes for op in r.backward if op.kind == "input-grad")
        t = r.totals
        return replace(r, totals=replace(t, backward_transient_bytes=t.backward_transient_bytes - out_grad, peak_bytes=t.peak_bytes - out_grad))

    monkeypatch.setattr("ffn_calc.verifier.training_step.train", short)
    report = api.verify(GLU, backward=True)
    assert any(n.startswith("backward_transient_bytes") for n in _failed(report))


@pytest.mark.parametrize("recompute", ["selective", "full"])
def test_catches_recomputed_tensors_counted_as_nothing(monkeypatch: pytest.MonkeyPatch, recompute: str) -> None:
    """What the recompute regenerates is observed from the arrays the backward read, so a model
    that counts it as nothing (or leaves it out of the peak) fails."""
    real = training.train

    def nothing(cfg: Any, options: Any, *a: Any, **k: Any) -> Any:
        r = real(cfg, options, *a, **k)
        t = r.totals
        return replace(r, totals=replace(t, recomputed_bytes=0, peak_bytes=t.peak_bytes - t.recomputed_bytes))

    honest = api.verify(DENSE, backward=True, recompute=recompute)
    assert honest.ok and next(c for c in honest.checks if c.name.startswith("recomputed_bytes (")).observed > 0  # type: ignore[operator]
    monkeypatch.setattr("ffn_calc.verifier.training_step.train", nothing)
    report = api.verify(DENSE, backward=True, recompute=recompute)
    assert any(n.startswith("recomputed_bytes (") for n in _failed(report))


def test_catches_a_peak_that_leaves_out_the_recomputed_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recomputed bytes right but left out of the peak: the peak is checked as the sum of
    its observed parts, exactly (the tracemalloc row alone has room for a missing part)."""
    real = training.train

    def short(cfg: Any, options: Any, *a: Any, **k: Any) -> Any:
        r = real(cfg, options, *a, **k)
        return replace(r, totals=replace(r.totals, peak_bytes=r.totals.peak_bytes - r.totals.recomputed_bytes))

    monkeypatch.setattr("ffn_calc.verifier.training_step.train", short)
    report = api.verify(DENSE, backward=True, recompute="full")
    assert any(n.startswith("peak_bytes as defined:") for n in _failed(report))


def test_catches_a_mask_saved_although_full_recompute_regenerates_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under full recompute the dropout mask is regenerated from its seed, so a model that also
    saves it keeps a tensor the backward never reads (the backward applies the regenerated one)."""
    real = training.train

    def also_mask(cfg: Any, options: Any, *a: Any, **k: Any) -> Any:
        r = real(cfg, options, *a, **k)
        mask = next(t for t in real(cfg, replace(options, recompute="none"), *a, **k).saved if t.name == "dropout_mask")
        return replace(r, saved=(*r.saved, mask))

    monkeypatch.setattr("ffn_calc.verifier.training_step.train", also_mask)
    report = api.verify(DENSE, backward=True, recompute="full", dropout=True)
    failed = {c.name: c.observed for c in report.checks if not c.ok}
    assert failed["every saved tensor is read by the recompute or the backward"] == "never read: dropout_mask"


# Hand-computed cases for bugs the mutation benchmark (benchmarks/mutants.py) once planted unseen.
def test_a_wrong_backward_op_is_seen_in_its_own_row(monkeypatch: pytest.MonkeyPatch, dense: FFNConfig) -> None:

    real = training_model._backward_ops

    def one_more(report: Any, input_grad: bool = True) -> Any:
        return [replace(op, elementwise_flops=op.elementwise_flops + 1) if (op.stage, op.kind) == ("linear2", "bias-grad") else op
                for op in real(report, input_grad)]  # fmt: skip

    monkeypatch.setattr(training_model, "_backward_ops", one_more)
    report = ffn_calc.verify(dense, backward=True)
    failed = [c.name for c in report.checks if not c.ok]
    assert "linear2 bias-grad FLOPs" in failed


def test_a_saved_tensor_the_backward_never_reads_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model saving ReLU's input as well as its output (its backward reads only the output):
    the NumPy step keeps what the model lists, so the extra tensor is seen as never read."""
    from ffn_calc.model.training import SavedTensor
    from ffn_calc.verifier import training_step

    real = training.train

    def extra(cfg: Any, options: Any) -> Any:
        report = real(cfg, options)
        h = next(s for s in report.forward.stages if s.name == "linear1")  # ReLU's input
        return replace(report, saved=(*report.saved, SavedTensor(h.name, h.output_shape, h.output_bytes, "planted")))

    honest = ffn_calc.verify(make_config(2, 8, 16), backward=True)
    assert all(c.ok for c in honest.checks)
    monkeypatch.setattr(training_step, "train", extra)
    report = ffn_calc.verify(make_config(2, 8, 16), backward=True)
    failed = {c.name: c.observed for c in report.checks if not c.ok}
    assert failed["every saved tensor is read by the recompute or the backward"] == "never read: linear1"


def test_a_rank_saving_the_whole_input_under_sequence_parallelism_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model keeping the whole layer input on each rank under sequence parallelism (not its
    sequence shard): every rank's training step observes the shard it holds, and fails."""
    real = training_model.train

    def whole_input(cfg: Any, options: Any, tp: int = 1, sequence_parallel: bool = False, ep: int = 1) -> Any:
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
