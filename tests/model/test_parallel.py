"""Tensor parallelism and the roofline, against Megatron, Korthikanti et al. and datasheets."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from helpers import Run

from ffn_calc.catalogue.gpus import GPUS
from ffn_calc.errors import ConfigError
from ffn_calc.inputs.hardware import custom_gpu
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model.layer import make_config
from ffn_calc.model.parallel import tensor_parallel
from ffn_calc.model.roofline import roofline
from ffn_calc.model.training import TrainingOptions, train
from ffn_calc.verifier import parallel as verify_parallel
from ffn_calc.verifier.run import verify


@pytest.mark.parametrize(
    "options",
    [{}, {"activation": "gelu", "norm": "post"}, {"activation": "swiglu", "bias": False}, {"activation": "geglu", "fused": True}],
)
def test_verify_tp_4(options: dict[str, object]) -> None:
    report = verify(make_config(2, 16, 12, "24", **options), tp=4)  # type: ignore[arg-type]
    assert [c.name for c in report.checks if not c.ok] == []
    # per rank: weight shapes, MACs, FLOPs, parameters, bytes sent; the tensor's shape and bytes,
    # the ring's result, and the backward all-reduce reported as modelled
    assert sum(1 for c in report.checks if c.group == "parallel") == 5 * 4 + 4


@pytest.mark.parametrize(
    "options",
    [
        {"activation": "swiglu", "experts": 4, "top_k": 2},
        {"activation": "swiglu", "experts": 4, "top_k": 2, "shared_experts": 1, "norm": "pre"},
        {"experts": 3, "top_k": 1, "capacity_factor": 1.0},
    ],
)
def test_verify_tp_4_mixture_of_experts(options: dict[str, object]) -> None:
    """Every expert (and the shared ones) split like the dense layer; the router replicated."""
    report = verify(make_config(2, 16, 12, "24", **options), tp=4)  # type: ignore[arg-type]
    assert [c.name for c in report.checks if not c.ok] == []
    plan = tensor_parallel(make_config(2, 16, 12, "24", **options), 4)  # type: ignore[arg-type]
    assert plan.per_rank.d_ff == 6 and plan.collectives[0].op == "all-reduce"


def test_a_wrong_shard_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = verify_parallel.shard

    def rows_off_by_one(cfg: Any, p: Any, rank: int, ranks: int) -> Any:
        shard = real(cfg, p, rank, ranks)
        shard["W2"] = np.roll(shard["W2"], 1, axis=0)
        return shard

    monkeypatch.setattr(verify_parallel, "shard", rows_off_by_one)
    report = verify(make_config(2, 16, 12, "24"), tp=4)
    failed = [c.name for c in report.checks if not c.ok]
    assert len(failed) == 1 and failed[0].startswith("ring all-reduce of 4 ranks' partial outputs = the whole layer's output")


def test_per_rank_figures_and_collectives() -> None:
    s, b, h, t = 2048, 4, 1024, 4
    cfg = make_config(b, s, h, activation="gelu", dtype="bfloat16")
    plan = tensor_parallel(cfg, t)
    assert plan.per_rank.d_ff == 4 * h // t
    tensor = s * b * h * 2
    assert [c.op for c in plan.collectives] == ["all-reduce", "all-reduce"]
    assert all(c.bytes_sent_per_rank == 2 * (t - 1) * tensor // t for c in plan.collectives)
    sp = tensor_parallel(cfg, t, sequence_parallel=True)
    assert [c.op for c in sp.collectives] == ["all-gather", "reduce-scatter", "all-gather", "reduce-scatter"]
    assert sp.bytes_sent_per_rank == plan.bytes_sent_per_rank  # the same volume
    whole = train(cfg, TrainingOptions(dropout=True)).totals
    rank = train(cfg, TrainingOptions(dropout=True), tp=t).totals
    assert rank.forward_matmul_flops * t == whole.forward_matmul_flops
    # Korthikanti et al. 2022, §4.2: MLP activations with tensor parallelism 3sbh + 16sbh/t (the input and
    # the dropout mask stay whole on every rank); with sequence parallelism all of it is split, 19sbh/t.
    assert rank.saved_activation_bytes == 3 * s * b * h + 16 * s * b * h // t
    assert train(cfg, TrainingOptions(dropout=True), tp=t, sequence_parallel=True).totals.saved_activation_bytes == 19 * s * b * h // t


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"d_ff": "30"}, "d_ff 30"), ({"d_ff": "30", "experts": 4, "top_k": 1}, "each expert's d_ff 30")],
)
def test_tp_refusals(kwargs: dict[str, object], message: str) -> None:
    cfg = make_config(1, 8, 8, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message) as e:
        tensor_parallel(cfg, 4)
    assert e.value.argument == "--tp"
    with pytest.raises(ConfigError, match="SEQ_LEN"):
        tensor_parallel(make_config(1, 6, 8), 4, sequence_parallel=True)


def test_roofline_places_decode_and_prefill_on_the_right_sides_of_h100() -> None:
    r = roofline(layer_config(1, 8192, model="llama-3-8b", dtype="bfloat16"), GPUS["h100-sxm"])
    assert r.ridge == pytest.approx(989e12 / 3350e9)  # ≈ 295 FLOP/byte
    prefill, decode = r.phases
    gate = next(g for g in prefill.gemms if g.stage == "gate")
    assert gate.mkn == (8192, 4096, 14336) and gate.bound == "compute"
    assert gate.intensity == pytest.approx(2 * 8192 * 4096 * 14336 / (2 * (8192 * 4096 + 4096 * 14336 + 8192 * 14336)))
    one = next(g for g in decode.gemms if g.stage == "gate")
    assert one.mkn == (1, 4096, 14336) and one.bound == "memory" and one.intensity < 1.01
    # The crossing: below ridge_tokens rows the GEMM is memory-bound, from it on compute-bound.
    m = gate.ridge_tokens
    assert m is not None
    k, n = 4096, 14336
    assert 2 * m * k * n / (2 * (m * k + k * n + m * n)) >= r.ridge > 2 * (m - 1) * k * n / (2 * ((m - 1) * k + k * n + (m - 1) * n))


def test_ridge_points_match_the_reference() -> None:
    expected = {"a100-40gb": 201, "a100-80gb": 153, "h100-sxm": 295, "h100-pcie": 378, "h200": 206}
    for name, ridge in expected.items():
        gpu = GPUS[name]
        assert round(gpu.tflops["bfloat16"] * 1e12 / (gpu.bandwidth_gbs * 1e9)) == ridge
        assert gpu.source
    with pytest.raises(ConfigError):
        custom_gpu(-1, 100)


def test_roofline_and_train_json(cli: Run) -> None:
    code, out, _ = cli("roofline", "1", "8192", "--model", "llama-3-8b", "--gpu", "h100-sxm", "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "ffn-calc/roofline/1"
    assert [p["name"] for p in doc["phases"]] == ["prefill", "decode"]
    assert doc["phases"][1]["bound"] == "memory" and doc["phases"][0]["bound"] == "compute"
    code, out, _ = cli("train", "4", "2048", "1024", "--tp", "4", "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["parallel"]["ranks"] == 4 and doc["parallel"]["per_rank_d_ff"] == 1024


@pytest.mark.parametrize(("peak", "bandwidth"), [(1e-320, 1.0), (1.0, 1e-320), (1e-13, 1.0), (1.0, 1e-10), (1e308, 1.0)])
def test_a_custom_gpu_too_slow_or_too_fast_for_finite_times_is_refused(peak: float, bandwidth: float) -> None:
    with pytest.raises(ConfigError):
        custom_gpu(peak, bandwidth)


def test_the_slowest_custom_gpu_gives_finite_json(cli: Run) -> None:
    code, out, err = cli("roofline", "1", "4096", "4096", "--peak-tflops", "1e-12", "--bandwidth-gbs", "1e-9", "-f", "json")
    assert code == 0 and err == ""
    doc = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert all(0 < phase["seconds"] < float("inf") for phase in doc["phases"])
