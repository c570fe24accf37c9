"""Observed collectives, active parameters and model totals: verify runs the ring and reads
the arrays, so a bug planted in the model's formula makes it fail."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from helpers import Run, diagonal

from ffn_calc.errors import ConfigError
from ffn_calc.model import forward as model_forward
from ffn_calc.model import parallel as model_parallel
from ffn_calc.model import structure as names
from ffn_calc.model.layer import FFNConfig, make_config
from ffn_calc.verifier import run as verify_run
from ffn_calc.verifier.recorder import expert_params_read
from ffn_calc.verifier.rings import all_gather, reduce_scatter
from ffn_calc.verifier.run import verify

MOE = {"activation": "swiglu", "experts": 4, "top_k": 2}


def _failed(report: object) -> list[str]:
    return [c.name for c in report.checks if not c.ok]  # type: ignore[attr-defined]


def _layer(**options: object) -> FFNConfig:
    return make_config(2, 16, 12, "24", **options)  # type: ignore[arg-type]


# --- the ring itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("ranks", [2, 3, 4])
def test_the_ring_sums_and_gathers_with_real_buffers(ranks: int) -> None:
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal(10).astype(np.float32) for _ in range(ranks)]
    bufs = [np.array_split(p.copy(), ranks) for p in parts]
    sent = [0] * ranks
    reduce_scatter(bufs, sent)
    whole = np.array_split(np.sum(parts, axis=0), ranks)
    for r in range(ranks):
        np.testing.assert_allclose(bufs[r][r], whole[r], rtol=1e-6)
    assert sum(sent) == (ranks - 1) * 10 * 4  # every chunk but one per rank, N − 1 steps
    all_gather(bufs, sent)
    for r in range(ranks):
        np.testing.assert_allclose(np.concatenate(bufs[r]), np.sum(parts, axis=0), rtol=1e-6)
    assert sum(sent) == 2 * (ranks - 1) * 10 * 4


# The fast loop: each layer, with and without sequence parallelism in turn (helpers.diagonal).
@pytest.mark.parametrize(
    ("sequence_parallel", "options"), diagonal([False, True], [{}, {"activation": "gelu", "norm": "pre"}, MOE, {**MOE, "shared_experts": 1}])
)
def test_verify_tp_observes_every_collective(options: dict[str, object], sequence_parallel: bool) -> None:
    report = verify(_layer(**options), tp=4, sequence_parallel=sequence_parallel, backward=True)
    assert _failed(report) == []
    sent = [c for c in report.checks if c.group == "parallel" and "bytes sent (ring" in c.name]
    ops = {c.name.split(" ", 2)[2].rsplit(" bytes", 1)[0] for c in sent}
    want = (
        {"forward all-gather", "forward reduce-scatter", "backward all-gather", "backward reduce-scatter"}
        if sequence_parallel
        else {"forward all-reduce", "backward all-reduce"}
    )
    assert ops == want and all(c.kind == "exact" for c in sent)


def test_uneven_chunks_are_reported_against_the_rounded_up_prediction() -> None:
    report = verify(make_config(1, 1, 6, "8"), tp=4)  # 6 elements in 4 chunks
    assert report.ok
    row = next(c for c in report.checks if "mean of 4" in c.name)
    assert row.kind == "tolerance" and "32, 36, 40, 36" in row.detail


def test_sequence_parallel_needs_tp() -> None:
    with pytest.raises(ConfigError) as e:
        verify(_layer(), sequence_parallel=True)
    assert e.value.argument == "--sequence-parallel"


def test_cli_verify_takes_sequence_parallel(cli: Run) -> None:
    code, out, _ = cli("verify", "2", "16", "12", "--d-ff", "24", "--tp", "4", "--sequence-parallel", "--all")
    assert code == 0 and "forward all-gather" in out


# --- planted bugs in the model -------------------------------------------------------------------


def test_an_all_reduce_at_n_minus_1_over_n_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = model_parallel.tensor_parallel

    def half_all_reduce(cfg: Any, ranks: int, sequence_parallel: bool = False) -> Any:
        plan = real(cfg, ranks, sequence_parallel)
        wrong = tuple(
            replace(c, bytes_sent_per_rank=-(-(ranks - 1) * c.tensor_bytes // ranks)) if c.op == "all-reduce" else c for c in plan.collectives
        )
        return replace(plan, collectives=wrong)

    monkeypatch.setattr(model_parallel, "tensor_parallel", half_all_reduce)
    failed = _failed(verify(_layer(), tp=4))
    assert len(failed) == 4 and all("forward all-reduce bytes sent" in name for name in failed)


def test_sequence_parallelism_not_sharding_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = model_parallel.tensor_parallel

    def no_shards(cfg: Any, ranks: int, sequence_parallel: bool = False) -> Any:
        return replace(real(cfg, ranks, False), sequence_parallel=sequence_parallel)  # an all-reduce, no all-gather

    monkeypatch.setattr(model_parallel, "tensor_parallel", no_shards)
    failed = _failed(verify(_layer(), tp=4, sequence_parallel=True))
    assert any("all-gather" in name for name in failed) and any("all-reduce" in name for name in failed)


def _patch_totals(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    real = model_forward.analyze

    def analyze(cfg: Any) -> Any:
        report = real(cfg)
        return replace(report, totals=replace(report.totals, **change(report)))

    monkeypatch.setattr(verify_run, "analyze", analyze)


def test_all_experts_counted_as_active_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_totals(monkeypatch, lambda r: {"active_params": r.totals.params, "active_expert_params": r.totals.expert_params})
    failed = _failed(verify(_layer(**MOE)))
    assert "active parameters per token (+ router, shared, norm)" in failed
    assert "active expert parameters per token (its experts)" in failed


def test_the_shared_expert_left_out_of_active_params_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def leave_out(r: Any) -> Any:
        shared = sum(t.elements for t in r.weights if t.name.startswith(names.SHARED))
        return {"active_params": r.totals.active_params - shared}

    _patch_totals(monkeypatch, leave_out)
    assert _failed(verify(_layer(**MOE, shared_experts=1))) == ["active parameters per token (+ router, shared, norm)"]


def _model_off_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    real = model_forward.stack_totals

    def one_layer_short(groups: Any) -> Any:
        short = tuple(replace(g, config=replace(g.config, layers=g.config.layers - 1)) if g.config.layers > 1 else g for g in groups)
        return replace(real(short), layers=real(groups).layers)

    monkeypatch.setattr(model_forward, "stack_totals", one_layer_short)


@pytest.mark.parametrize("layers", [3, 12])
def test_a_model_total_off_by_one_layer_is_caught(monkeypatch: pytest.MonkeyPatch, layers: int) -> None:
    """Run when the layers fit (3), else checked as layers × the observed layer (12)."""
    assert verify(_layer(**MOE, layers=layers)).ok
    _model_off_by_one(monkeypatch)
    failed = _failed(verify(_layer(**MOE, layers=layers)))
    assert {"model parameters", "model FLOPs"} <= {n.split(" =")[0] for n in failed}


# --- what is observed ----------------------------------------------------------------------------


def test_the_parameters_a_token_reads_count_each_expert_once() -> None:
    sizes = np.array([10, 20, 30, 40])
    index = np.array([[0, 1], [3, 3], [2, 1]])
    kept = np.array([[True, True], [True, True], [False, True]])
    assert expert_params_read(index, None, sizes).tolist() == [30, 40, 50]
    assert expert_params_read(index, kept, sizes).tolist() == [30, 40, 20]


def test_layers_run_and_refused() -> None:
    run = verify(_layer(**MOE, layers=2))
    rows = {c.name: c for c in run.checks if c.name.startswith("model")}
    assert rows["model parameters"].observed == run.prediction.model.params and "run one after the other" in rows["model parameters"].detail
    refused = verify(_layer(layers=8))
    info = next(c for c in refused.checks if c.name.startswith("model totals"))
    assert info.kind == "info" and "at most 4" in info.detail
