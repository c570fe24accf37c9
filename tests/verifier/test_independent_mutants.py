"""Planted bugs that the independent mutant catalogue (benchmarks/mutants_independent.py) showed
the suite did not test: each test plants a wrong prediction (or a wrong fast path) and asserts
that the one check meant to see it fails; the expected figures are worked out by hand. One file
for every room (the tests directories share one module namespace under mypy)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from ffn_calc.model import expert_parallel as model_ep
from ffn_calc.model import parallel as model_parallel
from ffn_calc.model import structure as names
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import FFNConfig, make_config
from ffn_calc.model.parallel import tensor_parallel
from ffn_calc.verifier import backward as verifier_backward
from ffn_calc.verifier import parallel as verifier_parallel
from ffn_calc.verifier import properties, routing, training_step
from ffn_calc.verifier import reference as verifier_reference
from ffn_calc.verifier.forward import make_params
from ffn_calc.verifier.report import Check
from ffn_calc.verifier.run import verify


def _checks(report: Any) -> list[Check]:
    return list(report.checks)


def _failed(checks: list[Check]) -> list[str]:
    return [c.name for c in checks if not c.ok]


def _one(checks: list[Check], start: str) -> Check:
    found = [c for c in checks if c.name.startswith(start)]
    assert len(found) == 1, [c.name for c in checks]
    return found[0]


def _moe(**options: object) -> FFNConfig:
    # relu, biases on, d_model 8, d_ff 16, 4 experts, top-2: hand-sized
    return make_config(2, 4, 8, "16", experts=4, top_k=2, **options)  # type: ignore[arg-type]


def _bump_shard(monkeypatch: pytest.MonkeyPatch, **more: int) -> None:
    """The EP rank's prediction, each named total `more` higher."""
    real = model_ep.ExpertParallel.shard

    def shard(self: Any, report: Any) -> Any:
        out = real(self, report)
        return replace(out, totals=replace(out.totals, **{k: getattr(out.totals, k) + v for k, v in more.items()}))

    monkeypatch.setattr(model_ep.ExpertParallel, "shard", shard)


# --- verify --ep -------------------------------------------------------------------------------


def test_ep_rank_parameters_one_too_many_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    _bump_shard(monkeypatch, params=1)
    checks = _checks(verify(_moe(), ep=2))
    for r in (0, 1):
        row = _one(checks, f"rank {r} parameters")
        # 2 of 4 experts: (8·16 + 16 + 16·8 + 8) = 280 each, and the replicated router 8·4
        assert row.observed == 2 * 280 + 32 and row.predicted == 593 and not row.ok


def test_ep_ranks_macs_sum_is_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    _bump_shard(monkeypatch, macs=1)
    row = _one(_checks(verify(_moe(), ep=2)), "Σ of 2 ranks' MACs")
    # a rank: 4 tokens; router 4·8·4 = 128, experts 4·2 rows × (8·16 + 16·8) = 2048
    assert row.observed == 2 * (128 + 2048) and row.predicted == 2 * (128 + 2048 + 1) and not row.ok


# --- verify --tp -------------------------------------------------------------------------------


def test_tp_rank_flops_are_observed_not_taken_from_the_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    real = verifier_parallel.analyze  # type: ignore[attr-defined]

    def analyze(cfg: Any) -> Any:
        out = real(cfg)
        return replace(out, totals=replace(out.totals, elementwise_flops=out.totals.elementwise_flops + 1, flops=out.totals.flops + 1))

    monkeypatch.setattr(verifier_parallel, "analyze", analyze)
    checks = _checks(verify(make_config(2, 4, 8, "16"), tp=2))
    # a rank (d_ff 8): 8 tokens; 2·8·(8·8 + 8·8) matmul + 8·8 bias1 + 8·8 relu + 8·8 bias2 (rank 0's held by every rank)
    for r in (0, 1):
        row = _one(checks, f"rank {r} FLOPs")
        assert row.observed == 2 * 8 * 128 + 3 * 64 and not row.ok


def _plant_collectives(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    real = model_parallel.tensor_parallel

    def planted(cfg: Any, ranks: int, sequence_parallel: bool = False) -> Any:
        plan = real(cfg, ranks, sequence_parallel)
        return replace(plan, collectives=tuple(replace(c, bytes_sent_per_rank=change(c)) for c in plan.collectives))

    monkeypatch.setattr(model_parallel, "tensor_parallel", planted)


def test_an_over_counted_all_reduce_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    _plant_collectives(monkeypatch, lambda c: 2 * c.bytes_sent_per_rank)
    checks = _checks(verify(make_config(2, 4, 8, "16"), tp=2))
    for r in (0, 1):
        row = _one(checks, f"rank {r} forward all-reduce bytes sent")
        # 8 tokens × 8 × 4 bytes = 256; a ring all-reduce sends 2·(N − 1)/N of it = 256
        assert row.observed == 256 and row.predicted == 512 and not row.ok


def test_uneven_chunks_one_byte_over_the_rounded_up_mean_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    _plant_collectives(monkeypatch, lambda c: c.bytes_sent_per_rank + 1)
    row = _one(_checks(verify(make_config(1, 1, 6, "8"), tp=4)), "forward all-reduce bytes sent per rank, mean of 4")
    # 6 float32 = 24 bytes in 4 ring chunks of 2, 2, 1, 1 elements: 32, 36, 40, 36 bytes sent, mean 36
    assert row.observed == "36" and row.predicted == 37 and not row.ok


# --- a model figure verify --tp does not observe (a mixed stack's dense layers per rank) -------------


def test_tp_splits_a_mixed_stacks_dense_layers_too() -> None:
    # 2 MoE layers of 4 experts (d_ff 16) and 1 dense layer of d_ff 32, relu with biases, d_model 8, over 2 ranks
    cfg = make_config(2, 4, 8, "16", experts=4, top_k=2, layers=2, dense_layers=1, dense_d_ff=32)
    rank = tensor_parallel(cfg, 2).per_rank
    assert (rank.d_ff, rank.dense_d_ff) == (8, 16)
    dense, moe = analyze(rank).groups
    # a rank's dense layer: W1 8·16 + b1 16 + W2 16·8 + b2 8 (replicated) = 280
    assert dense.name == "dense" and dense.totals.params == 280
    # a rank's MoE layer: router 8·4 + 4 experts × (8·8 + 8 + 8·8 + 8) = 32 + 576 = 608
    assert moe.totals.params == 608
    assert analyze(rank).model.params == 280 + 2 * 608


# --- finite differences ------------------------------------------------------------------------


def _fd_check(checks: list[Check]) -> Check:
    return _one(checks, "gradients = finite differences")


def test_a_gradient_ten_times_the_tolerance_off_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training_step, "gradient_check", lambda *a, **k: 1e-4)  # relu's tolerance is 1e-5
    row = _fd_check(_checks(verify(make_config(2, 4, 8, "16"), backward=True)))
    assert row.observed == "1.0e-04" and not row.ok


def _small() -> tuple[FFNConfig, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    cfg = make_config(1, 3, 4, "16", dtype="float64")
    p = make_params(np.random.default_rng(0), cfg, np.float64)
    rng = np.random.default_rng(1)
    return cfg, p, rng.standard_normal((1, 3, 4)), rng.standard_normal((1, 3, 4))


def _corrupt(monkeypatch: pytest.MonkeyPatch, name: str, where: Any) -> None:
    real = verifier_backward.forward_backward

    def planted(*args: Any, **kwargs: Any) -> Any:
        out, grads = real(*args, **kwargs)
        if name in grads:  # dx only with input_grad
            grads[name].reshape(-1)[where] += 1.0
        return out, grads

    monkeypatch.setattr(verifier_backward, "forward_backward", planted)


def test_finite_differences_probe_every_entry_of_a_small_bias(monkeypatch: pytest.MonkeyPatch) -> None:
    _corrupt(monkeypatch, names.PLAIN_LINEARS[0].bias, [5, 11])  # 2 of b1's 16 entries wrong by 1
    cfg, p, x, dout = _small()
    # 40 samples cover all 16 entries of b1: the error of 1 is seen (relative to max(1, |g|) ≥ 0.3)
    assert verifier_backward.gradient_check(cfg, p, x, dout) > 0.3


def test_finite_differences_check_the_input_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    _corrupt(monkeypatch, "x", slice(None))  # every entry of dx off by 1
    cfg, p, x, dout = _small()
    assert verifier_backward.gradient_check(cfg, p, x, dout) > 0.3
    assert verifier_backward.gradient_check(cfg, p, x, dout, input_grad=False) < 1e-6  # without dx, nothing is wrong


# --- the training step's figures ---------------------------------------------------------------


def _plant_train(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    real = training_step.train  # type: ignore[attr-defined]

    def planted(*args: Any, **kwargs: Any) -> Any:
        return change(real(*args, **kwargs))

    monkeypatch.setattr(training_step, "train", planted)


def test_a_saved_tensor_over_counted_by_one_byte_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def one_more(report: Any) -> Any:
        first, *rest = report.saved
        return replace(report, saved=(replace(first, bytes=first.bytes + 1), *rest))

    _plant_train(monkeypatch, one_more)
    checks = _checks(verify(make_config(2, 4, 8, "16"), backward=True))
    # relu: the first saved tensor is the input x, 8 tokens × 8 float32 = 256 bytes
    row = next(c for c in checks if c.name.startswith("saved ") and " bytes (" in c.name)
    assert row.observed == 256 and row.predicted == 257 and not row.ok


def test_bytes_per_param_is_observed(monkeypatch: pytest.MonkeyPatch) -> None:
    _plant_train(monkeypatch, lambda r: replace(r, totals=replace(r.totals, bytes_per_param=r.totals.bytes_per_param + 1)))
    row = _one(_checks(verify(make_config(2, 4, 8, "16"), backward=True)), "bytes_per_param")
    # float32 weights 4 + gradients 4 + Adam's two states 8 = 16 bytes per parameter
    assert row.observed == 16 and row.predicted == 17 and not row.ok


# --- the float64 reference ---------------------------------------------------------------------


def test_the_reference_tolerance_grows_with_the_square_root_of_k() -> None:
    u = 2.0**-24  # float32's unit roundoff, the storage and the accumulation type
    cfg = make_config(2, 4, 64, "1024")
    assert properties.reference_tolerance(cfg) == pytest.approx(16 * u + 8 * 32 * u)  # √1024 = 32; relu is exact


def test_an_output_one_off_the_reference_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    real = verifier_reference.reference
    monkeypatch.setattr(verifier_reference, "reference", lambda *a, **k: real(*a, **k) + 1.0)
    row = _one(_checks(verify(make_config(2, 4, 8, "16"))), "output = float64 reference")
    assert not row.ok


def test_a_fast_path_routing_to_the_least_likely_experts_fails_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    real = routing.top_k

    def bottom_k(probs: np.ndarray, k: int) -> Any:
        index = np.argsort(probs, axis=1, kind="stable")[:, :k]  # the sign slipped: the least likely
        chosen = np.take_along_axis(probs, index, axis=1)
        return index, chosen, chosen.sum(axis=1, keepdims=True)

    monkeypatch.setattr(routing, "top_k", bottom_k)
    assert real is not routing.top_k
    row = _one(_checks(verify(make_config(2, 4, 8, "16", experts=8, top_k=2))), "output = float64 reference")
    assert not row.ok


# --- config.json: the dtype a multimodal file publishes -------------------------------------------


def test_the_top_levels_torch_dtype_wins_over_text_configs(tmp_path: Any) -> None:
    from ffn_calc.inputs.config_json import read_config

    text = {"model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2, "hidden_act": "silu"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"torch_dtype": "torch.bfloat16", "text_config": {**text, "torch_dtype": "float32"}}), encoding="utf-8")
    assert read_config(str(path)).values["dtype"] == "bfloat16"  # the checkpoint's storage type, "torch." dropped


# --- weight formats: bytes verify cannot observe (it refuses --weight-dtype) ----------------------


def test_awq_group_size_minus_one_is_one_group_over_k() -> None:
    from ffn_calc.model.dtypes import packing

    tensors = {t.name: (t.dtype, t.shape) for t in packing("awq_int4", 0, "float16").tensors(128, 64)}
    # K 128, N 64: 8 int4 per int32 along N; one group: one row of zeros and of float16 scales
    assert tensors == {"qweight": ("int32", (128, 8)), "qzeros": ("int32", (1, 8)), "scales": ("float16", (1, 64))}
    assert packing("awq_int4", 0, "float16").bytes((128, 64)) == 128 * 8 * 4 + 8 * 4 + 64 * 2


def test_nf4_counts_the_last_partial_block() -> None:
    from ffn_calc.model.dtypes import packing

    shapes = {t.name: t.shape for t in packing("nf4", 64, "bfloat16").tensors(10, 10)}
    # 100 values in blocks of 64: 2 blocks (the second of 36), two codes per byte
    assert shapes["weight.absmax"] == (2,) and shapes["weight"] == (50, 1)


# --- verify runs what it observes, never the prediction's shapes (independent catalogue, rerun) ----


@pytest.mark.parametrize(("size", "how"), [((2, 4), "batch"), ((1, 4), "sequence")])
def test_an_ep_rank_predicted_with_too_many_tokens_fails_and_does_not_crash(monkeypatch: pytest.MonkeyPatch, size: tuple[int, int], how: str) -> None:
    # 2 ranks: (2, 4) splits the batch into 1 sequence each, (1, 4) the sequence into 2 tokens each.
    # The plan planted keeps one token too many per rank; the ranks still run the shards cut from x.
    real = model_ep.expert_parallel  # what verifier.parallel imported

    def wrong(cfg: FFNConfig, ranks: int) -> Any:
        plan = real(cfg, ranks)
        assert plan.token_split == how
        return replace(plan, per_rank=replace(plan.per_rank, seq_len=plan.per_rank.seq_len + 1))

    monkeypatch.setattr(verifier_parallel, "expert_parallel", wrong)
    cfg = make_config(size[0], size[1], 8, "16", experts=4, top_k=2)
    checks = _checks(verify(cfg, ep=2))
    tokens = [c for c in checks if c.name.endswith("tokens (the shape of its input shard)")]
    want = (1, 4, 8) if how == "batch" else (1, 2, 8)
    assert [c.observed for c in tokens] == [want, want]
    assert not any(c.ok for c in tokens)


def test_a_weight_no_kernel_reads_fails_the_read_check_and_the_step_does_not_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    # Cohere's LayerNorm declared with a β: d_model = 8 parameters the kernel never reads.
    from ffn_calc.model import norms

    monkeypatch.setitem(norms.NORM_TYPES, "layer_nobias", norms.NORM_TYPES["layer_nobias"]._replace(weights=(names.LN_GAMMA, names.LN_BETA)))
    cfg = make_config(2, 4, 8, "16", norm="pre", norm_type="layer_nobias")
    forward_only = _one(_checks(verify(cfg)), "weight tensors read by the pass's kernels")
    assert isinstance(forward_only.observed, tuple)
    assert not forward_only.ok and names.LN_BETA not in forward_only.observed
    step = _checks(verify(cfg, backward=True))
    assert {"weight tensors read by the pass's kernels", f"d{names.LN_BETA} shape"} <= set(_failed(step))
    assert _one(step, "adam update").ok is False  # ln_beta had no gradient, so it was not stepped
