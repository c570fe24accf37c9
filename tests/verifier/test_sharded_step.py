"""`verify --backward --dp N --zero S` runs the sharded step rank by rank (issue 18, part 4): the
per-rank bytes and bytes sent it observes equal hand sums, a planted error in a shard, a ring chunk
or the 1/N scaling makes a check fail, and the gathered weights equal one step on the whole batch."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from helpers import Run

from ffn_calc import api
from ffn_calc.model.layer import FFNConfig, make_config
from ffn_calc.model.training import TrainingOptions
from ffn_calc.verifier import data_parallel as dpv
from ffn_calc.verifier import rings
from ffn_calc.verifier.forward import make_params
from ffn_calc.verifier.properties import RTOL
from ffn_calc.verifier.report import Check

# Ψ = 16·24 + 24 + 24·16 + 16 = 808 parameters: not a multiple of 3 (uneven shards, padded to 810).
SMALL = make_config(2, 8, 16, 24)
PSI = 808


def _rows(report: api.VerifyReport) -> list[Check]:
    return [c for c in report.checks if c.group == "data parallel"]


def _observed(report: api.VerifyReport, figure: str) -> list[object]:
    return [c.observed for c in _rows(report) if c.name.startswith("rank ") and c.name.split()[2] == figure]


def test_zero3_over_3_ranks_by_hand() -> None:
    report = api.verify(SMALL, backward=True, dp=3, zero="3")
    assert report.ok, [c.name for c in report.checks if not c.ok]
    shard = 270  # ⌈808 / 3⌉ elements: the flat buffer padded to 810
    assert _observed(report, "weight_bytes") == [shard * 4] * 3  # float32
    assert _observed(report, "gradient_bytes") == [shard * 4] * 3
    assert _observed(report, "master_weight_bytes") == [0] * 3  # float32 trains without masters
    assert _observed(report, "optimizer_state_bytes") == [2 * shard * 4] * 3  # Adam: 2 states (not ⌈2·4·808/3⌉ = 2,155)
    assert _observed(report, "gathered_bytes") == [PSI * 4 + PSI * 4] * 3  # weights gathered + the whole gradient
    assert _observed(report, "gradient_sent_bytes") == [2 * shard * 4] * 3  # reduce-scatter: (N − 1) chunks
    assert _observed(report, "weight_gather_sent_bytes") == [2 * 2 * shard * 4] * 3  # forward and backward all-gathers
    assert _observed(report, "sent_bytes") == [3 * 2 * shard * 4] * 3


def test_zero1_mixed_precision_over_4_ranks_by_hand() -> None:
    cfg = make_config(2, 8, 16, 24, dtype="bfloat16")
    report = api.verify(cfg, backward=True, dp=4, zero="1")
    assert report.ok, [c.name for c in report.checks if not c.ok]
    shard = PSI // 4  # 202
    assert _observed(report, "weight_bytes") == [2 * PSI] * 4  # 16-bit weights, whole
    assert _observed(report, "gradient_bytes") == [2 * PSI] * 4  # 16-bit gradients, whole at ZeRO-1
    assert _observed(report, "master_weight_bytes") == [4 * shard] * 4  # float32 masters of the shard
    assert _observed(report, "optimizer_state_bytes") == [8 * shard] * 4  # two float32 states of the shard
    assert _observed(report, "gradient_sent_bytes") == [3 * shard * 2] * 4
    assert _observed(report, "weight_gather_sent_bytes") == [3 * shard * 2] * 4  # the updated shards all-gathered


def test_zero0_uneven_all_reduce_is_judged_by_its_mean() -> None:
    report = api.verify(SMALL, backward=True, dp=3, zero="0")
    assert report.ok
    mean = next(c for c in _rows(report) if c.name.startswith("gradient_sent_bytes per rank, mean"))
    # np.array_split cuts 808 into 270, 269, 269: each rank sends the two chunks not its own
    assert mean.detail.startswith("each rank: 2,152, 2,156, 2,156") and float(str(mean.observed)) == pytest.approx(2 * PSI * 4 / 3, rel=1e-5)


def _run(cfg: FFNConfig, ranks: int, zero: str, plant: Any = None, options: TrainingOptions | None = None, seed: int = 0) -> list[Check]:
    rng = np.random.default_rng(seed)
    dtype = np.float32 if cfg.dtype == "float32" else np.float64
    p = make_params(rng, cfg, dtype)
    x = rng.standard_normal((cfg.batch, cfg.seq_len, cfg.d_model)).astype(dtype)
    return dpv.data_parallel_checks(cfg, p, x, ranks, zero, None, options or TrainingOptions(), RTOL[cfg.dtype], rng, plant)


def _failing(checks: list[Check]) -> list[str]:
    return [c.name for c in checks if not c.ok]


def test_unplanted_run_passes() -> None:
    assert not _failing(_run(SMALL, 3, "3"))


@pytest.mark.parametrize("zero", ["1", "3"])
def test_one_element_error_in_a_shard_fails(zero: str) -> None:
    def plant(where: str, value: Any) -> None:
        if where == "weight shards":
            value[1][5] += 0.5  # rank 1's shard, after its update

    failed = _failing(_run(SMALL, 3, zero, plant))
    assert any(name.startswith("weights after the step") for name in failed), failed


def test_missing_one_over_n_scaling_fails() -> None:
    def plant(where: str, value: Any) -> None:
        if where == "local gradients":
            for g in value:
                g *= 3  # each rank's gradient left unscaled

    failed = _failing(_run(SMALL, 3, "2", plant))
    assert any("reduced gradient shard" in name for name in failed), failed


def test_missing_scaling_fails_under_sgd_in_the_weights_too() -> None:
    def plant(where: str, value: Any) -> None:
        if where == "local gradients":
            for g in value:
                g *= 3

    failed = _failing(_run(SMALL, 3, "3", plant, TrainingOptions(optimizer="sgd")))
    assert any(name.startswith("weights after the step") for name in failed), failed


def test_a_ring_chunk_of_the_wrong_size_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def one_element_more(bufs: list[list[np.ndarray]], sent: list[int]) -> None:
        bufs[0][0] = np.concatenate([bufs[0][0], bufs[0][0][:1]])  # rank 0's chunk one element long
        rings.all_gather(bufs, sent)

    monkeypatch.setattr(dpv, "all_gather", one_element_more)
    failed = _failing(_run(SMALL, 3, "3"))
    assert "rank 0 weight_gather_sent_bytes (ring: .nbytes of the chunks it sent in all-gathers)" in failed, failed
    assert any(name.startswith("forward all-gather") for name in failed), failed


def test_a_gradient_chunk_of_the_wrong_size_fails() -> None:
    def plant(where: str, value: Any) -> None:
        if where == "gradient chunks":
            for chunks in value:  # every rank cuts its first chunk one element short and the next one long
                chunks[1] = np.concatenate([chunks[0][-1:], chunks[1]])
                chunks[0] = chunks[0][:-1]

    failed = _failing(_run(SMALL, 3, "3", plant))
    assert any("gradient_sent_bytes" in name for name in failed), failed


@pytest.mark.parametrize(
    ("seed", "sizes", "ranks", "zero", "options"),
    [
        (0, (2, 8, 16, 24, "relu"), 3, "3", {}),
        (1, (1, 4, 8, 20, "gelu"), 2, "1", {"optimizer": "momentum"}),
        (2, (2, 4, 12, 18, "swiglu"), 4, "2", {"optimizer": "sgd"}),
        (3, (3, 2, 8, 10, "relu"), 5, "full_shard", {"recompute": "full"}),
        (4, (1, 8, 8, 16, "gelu"), 3, "0", {"dropout": True}),
    ],
)
def test_gathered_weights_equal_one_step_on_the_whole_batch(
    seed: int, sizes: tuple[int, int, int, int, str], ranks: int, zero: str, options: dict[str, Any]
) -> None:
    b, s, d, f, act = sizes
    cfg = make_config(b, s, d, f, activation=act)
    checks = _run(cfg, ranks, zero, options=TrainingOptions(**options), seed=seed)
    assert not _failing(checks)
    names = [c.name for c in checks]
    assert any(n.startswith("weights after the step") for n in names) and any("= the whole batch's gradient" in n for n in names)


def test_refusals_are_one_line(cli: Run) -> None:
    for args, flag in (
        (("--dp", "2"), "--backward"),
        (("--dp", "2", "--backward", "--tp", "2"), "drop --tp"),
        (("--dp", "2", "--backward", "--zero", "hybrid_shard"), "node of 8 ranks"),
        (("--dp", "400", "--backward", "--zero", "3", "--max-memory", "20MiB"), "too big here"),
    ):
        code, out, err = cli("verify", "2", "8", "16", *args)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and flag in err, err


def test_cli_json_has_the_rows(cli: Run) -> None:
    code, out, _ = cli("verify", "2", "8", "16", "--d-ff", "24", "--backward", "--dp", "2", "--zero", "shard_grad_op", "-f", "json")
    d = json.loads(out)
    rows = [c for c in d["checks"] if c["group"] == "data parallel"]
    assert code == 0 and d["ok"] and len(rows) == 2 + 1 + 8 * 2 + 2 + 2


@pytest.mark.parametrize(
    ("layer", "run"),
    [
        # hybrid_shard, Ψ = 841: shards of 281 within nodes of 3, each all-reduced unevenly across 2 nodes
        ({"d_ff": 25}, {"dp": 6, "zero": "hybrid_shard", "node_size": 3}),
        # 8-bit Adam on a shard of ⌈25,864/3⌉ = 8,622 elements: one tensor to bitsandbytes, with its absmax blocks
        ({"seq_len": 64, "d_model": 64, "d_ff": 200, "dtype": "bfloat16"}, {"dp": 3, "zero": "3", "optimizer": "adam8bit"}),
        ({"experts": 4, "top_k": 2, "shared_experts": 1, "norm": "pre", "activation": "swiglu"}, {"dp": 3, "zero": "3"}),
        ({"layers": 3, "d_ff": 24}, {"dp": 3, "zero": "2", "recompute": "selective"}),
        ({"experts": 4, "top_k": 2, "dense_layers": 1, "dense_d_ff": 40, "layers": 3}, {"dp": 2, "zero": "full_shard"}),
    ],
)
def test_every_form_passes(layer: dict[str, Any], run: dict[str, Any]) -> None:
    sizes = {"batch": 2, "seq_len": 8, "d_model": 16} | layer
    report = api.verify(api.layer(sizes.pop("batch"), sizes.pop("seq_len"), sizes.pop("d_model"), **sizes), backward=True, **run)
    assert report.ok, [c.name for c in report.checks if not c.ok]
    assert sum(c.group == "data parallel" for c in report.checks) >= 2 * 8 + 2  # every figure of every rank, and the two results
    if layer.get("layers") == 3 and not layer.get("dense_layers"):
        assert any(c.name.startswith("model_state_bytes = 3 layers") and c.ok for c in report.checks)


def test_a_mixed_stacks_rank_totals_are_observed_from_its_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1 dense layer (d_ff 16) + 1 MoE layer (4 experts of 24, top-2), ZeRO-3 over 4 ranks: the stack on a
    # rank holds both layers' shards and saved activations, but one layer's gathered weights and
    # transient at a time. A peak that adds every group's gathered weights must fail its row.
    from ffn_calc.model import data_parallel as model_dp
    from ffn_calc.model import training

    cfg = make_config(2, 4, 8, "24", experts=4, top_k=2, dense_layers=1, dense_d_ff=16)
    rows = ("model_state_bytes = Σ layers", "model_peak_bytes = state + Σ layers")
    report = api.verify(cfg, backward=True, dp=4, zero="3")
    assert all(_row(report, r).ok for r in rows)

    def every_group(groups: Any) -> tuple[int, int]:
        state, peak = model_dp.stack(groups)
        return state, peak + sum(d.gathered_bytes for _, d, _ in groups) - max(d.gathered_bytes for _, d, _ in groups)

    monkeypatch.setattr(training, "dp_stack", every_group)
    report = api.verify(cfg, backward=True, dp=4, zero="3")
    assert _row(report, rows[0]).ok and not _row(report, rows[1]).ok


def _row(report: api.VerifyReport, start: str) -> Check:
    (row,) = [c for c in _rows(report) if c.name.startswith(start)]
    return row
