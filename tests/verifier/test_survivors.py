"""Issue 20's survivor classes: each bug planted, and verify (or these tests) must see it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ffn_calc.errors import ConfigError
from ffn_calc.model import expert_parallel as ep_model
from ffn_calc.model import forward as model_forward
from ffn_calc.model import parallel as tp_model
from ffn_calc.model.forward import FFNReport, Tensor
from ffn_calc.model.layer import FFNConfig
from ffn_calc.verifier import parallel as ep_verifier
from ffn_calc.verifier.report import VerifyReport
from ffn_calc.verifier.run import verify

MIXED = FFNConfig(2, 8, 32, 64, activation="swiglu", bias=False, norm="pre", norm_type="rms", experts=4, top_k=2, layers=3,
                  dense_layers=2, dense_d_ff=96)  # fmt: skip
MOE = FFNConfig(2, 8, 32, 64, activation="swiglu", bias=False, norm="pre", norm_type="rms", experts=4, top_k=2)
MOE_WIDE_K = FFNConfig(2, 8, 32, 64, activation="swiglu", bias=False, experts=8, top_k=3)


def failed(report: VerifyReport) -> list[str]:
    return [c.name for c in report.checks if not c.ok]


def test_correct_predictions_pass() -> None:
    for cfg, tp, ep in ((MIXED, 1, 1), (MIXED, 2, 1), (MOE, 1, 2), (MOE, 1, 4), (MOE_WIDE_K, 1, 4)):
        report = verify(cfg, tp=tp, ep=ep)
        assert report.ok, failed(report)


def test_mixed_stack_model_figures_are_judged() -> None:
    names = [c.name for c in verify(MIXED).checks]
    for figure in ("parameters", "active parameters per token", "weight bytes", "MACs", "FLOPs"):
        assert any(n.startswith(f"model {figure} = 2·") for n in names), figure
    assert any(n.startswith("model peak bytes") for n in names)


def test_a_mixed_peak_summing_the_groups_activations_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = model_forward.stack_totals

    def summed(groups: Any) -> Any:  # the planted bug: Σ of the groups' activations, not the largest
        t = real(groups)
        return replace(t, peak_bytes=t.weight_bytes + sum(g.peak_activation_bytes for g in groups))

    monkeypatch.setattr(model_forward, "stack_totals", summed)
    assert any(n.startswith("model peak bytes") for n in failed(verify(MIXED)))


@pytest.mark.parametrize("figure", ["active_params", "flops", "macs", "weight_bytes"])
def test_a_mixed_total_counting_one_layer_per_group_is_caught(monkeypatch: pytest.MonkeyPatch, figure: str) -> None:
    real = model_forward.stack_totals

    def once(groups: Any) -> Any:  # the planted bug: the group's layers not multiplied in
        return replace(real(groups), **{figure: sum(getattr(g.totals, figure) for g in groups)})

    monkeypatch.setattr(model_forward, "stack_totals", once)
    assert any(n.startswith("model ") for n in failed(verify(MIXED)))


def test_dense_layers_left_whole_under_tp_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = tp_model.tensor_parallel

    def unsplit(cfg: FFNConfig, ranks: int, sequence_parallel: bool = False) -> Any:
        plan = real(cfg, ranks, sequence_parallel)  # the planted bug: dense_d_ff not divided
        return replace(plan, per_rank=replace(plan.per_rank, dense_d_ff=cfg.dense_d_ff))

    monkeypatch.setattr(tp_model, "tensor_parallel", unsplit)
    assert any("dense group's rank parameters" in n for n in failed(verify(MIXED, tp=2)))


def test_a_rank_serving_k_experts_when_it_holds_fewer_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def shard(self: ep_model.ExpertParallel, report: FFNReport) -> FFNReport:
        local, k = self.experts_per_rank, self.per_rank.top_k

        def cut(t: Tensor) -> Tensor:  # the planted bug: active=k, not min(k, E/N)
            return replace(t, shape=(local, *t.shape[1:]), experts=local, active=k) if t.experts else t

        stages = tuple(replace(s, weights=tuple(cut(t) for t in s.weights)) if s.weights else s for s in report.stages)
        return ep_model._reweigh(report, stages)

    monkeypatch.setattr(ep_model.ExpertParallel, "shard", shard)
    bad = failed(verify(MOE, ep=4))  # 1 expert per rank, k = 2
    assert any("active expert parameters" in n for n in bad)


def test_the_all_to_all_of_the_histogram_is_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ep_model.all_to_all_bytes

    def with_home_rows(histogram: list[list[int]], local: int, d: int, size: int) -> Any:
        out = real(histogram, local, d, size)  # the planted bug: the rows staying home counted as sent
        home = [sum(row[r * local : (r + 1) * local]) for r, row in enumerate(histogram)]
        return tuple(replace(x, dispatch_bytes=x.dispatch_bytes + h * d * size) for x, h in zip(out, home, strict=True))

    monkeypatch.setattr(ep_verifier, "all_to_all_bytes", with_home_rows)
    assert any("observed routing histogram" in n for n in failed(verify(MOE, ep=2)))


def test_the_balanced_formula_is_judged_under_forced_balanced_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ep_model.all_to_alls

    def whole(cfg: FFNConfig, ranks: int) -> Any:  # the planted bug: every routed row sent, (N − 1)/N forgotten
        return tuple(replace(c, bytes_sent_per_rank=c.tensor_bytes) for c in real(cfg, ranks))

    monkeypatch.setattr(ep_model, "all_to_alls", whole)
    assert any("forced exactly balanced" in n for n in failed(verify(MOE, ep=2)))


def test_balanced_routing_is_balanced() -> None:
    for tokens, k, ranks, local in ((8, 2, 2, 2), (6, 3, 3, 1), (16, 3, 4, 2)):
        index = ep_verifier.balanced_routing(tokens, k, ranks, local)
        assert all(len(set(row)) == k for row in index.tolist())
        per_rank = [int(((index // local) == q).sum()) for q in range(ranks)]
        assert per_rank == [tokens * k // ranks] * ranks


def test_ep_with_tp_is_refused_pointing_at_the_docs() -> None:
    with pytest.raises(ConfigError, match="docs/verify.md"):
        verify(MOE, ep=2, tp=2)


def test_a_mixed_training_step_counting_one_layer_per_group_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from ffn_calc.model import training as training_model

    real = training_model.stack_training_totals

    def once(groups: Any) -> Any:  # the planted bug: each group's layers not multiplied in
        return real([(1, params, t) for _, params, t in groups])

    assert not [c for c in verify(MIXED, backward=True).checks if not c.ok]
    monkeypatch.setattr(training_model, "stack_training_totals", once)
    bad = failed(verify(MIXED, backward=True))
    assert any(n.startswith("model step_flops") for n in bad)
    assert any(n.startswith("model peak_bytes") for n in bad)
