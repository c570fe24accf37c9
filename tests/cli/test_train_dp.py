"""`train --dp N --zero S` through the command line's JSON: per-rank memory against hand sums (issue 18, part 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

Run = Callable[..., tuple[int, str, str]]

PSI = 3 * 4096 * 11008  # Llama-2-7B's FFN, 135,266,304 parameters (/64 = 2,113,536 exactly)
MIXTRAL_EP8 = 3 * 4096 * 14336 + 4096 * 8  # one expert + the router per EP rank of 8: 176,193,536


@pytest.fixture
def dp_of(cli: Run) -> Callable[..., dict[str, Any]]:
    def run(*args: str) -> dict[str, Any]:
        code, out, err = cli("train", *args, "-f", "json")
        assert code == 0, err
        return json.loads(out)["data_parallel"]  # type: ignore[no-any-return]

    return run


def _states(dp: dict[str, Any]) -> tuple[int, int, int, int]:
    return dp["weight_bytes"], dp["gradient_bytes"], dp["master_weight_bytes"], dp["optimizer_state_bytes"]


@pytest.mark.parametrize(
    ("zero", "expected"),
    [
        ("0", (2 * PSI, 2 * PSI, 4 * PSI, 8 * PSI)),
        ("no_shard", (2 * PSI, 2 * PSI, 4 * PSI, 8 * PSI)),
        ("1", (2 * PSI, 2 * PSI, 4 * PSI // 64, 8 * PSI // 64)),  # 4Ψ + 12Ψ/N
        ("2", (2 * PSI, 2 * PSI // 64, 4 * PSI // 64, 8 * PSI // 64)),  # 2Ψ + 14Ψ/N
        ("shard_grad_op", (2 * PSI, 2 * PSI // 64, 4 * PSI // 64, 8 * PSI // 64)),
        ("3", (2 * PSI // 64, 2 * PSI // 64, 4 * PSI // 64, 8 * PSI // 64)),  # 16Ψ/N
        ("full_shard", (2 * PSI // 64, 2 * PSI // 64, 4 * PSI // 64, 8 * PSI // 64)),
    ],
)
def test_llama_2_7b_ffn_over_64_ranks(dp_of: Callable[..., dict[str, Any]], zero: str, expected: tuple[int, int, int, int]) -> None:
    dp = dp_of("1", "512", "-m", "llama-2-7b", "--dp", "64", "--zero", zero)
    assert _states(dp) == expected
    saved = 38_010_880  # the layer's saved activations (train 1 512 -m llama-2-7b), whole on every rank
    transient = 33_816_576  # its backward transient
    gathered = (2 * PSI if zero in ("3", "full_shard") else 0) + (2 * PSI if zero in ("2", "shard_grad_op", "3", "full_shard") else 0)
    assert dp["saved_activation_bytes"] == saved
    assert dp["peak_bytes"] == sum(expected) + saved + transient + gathered


def test_llama_2_7b_zero3_sum_and_bytes_sent(dp_of: Callable[..., dict[str, Any]]) -> None:
    dp = dp_of("1", "512", "-m", "llama-2-7b", "--dp", "64", "--zero", "3")
    assert sum(_states(dp)) == 16 * PSI // 64 == 33_816_576
    assert dp["sent_bytes"] == 3 * 63 * (PSI // 64) * 2 == 798_916_608  # 1.5× plain DP's 2·(N − 1)/N·Ψ·2
    assert dp_of("1", "512", "-m", "llama-2-7b", "--dp", "64")["sent_bytes"] == 2 * 63 * (PSI // 64) * 2 == 532_611_072


@pytest.mark.parametrize("zero", ["1", "2", "3"])
def test_llama_2_7b_with_tp(dp_of: Callable[..., dict[str, Any]], zero: str) -> None:
    psi = PSI // 8  # per TP rank: d_ff 1376
    dp = dp_of("1", "512", "-m", "llama-2-7b", "--tp", "8", "--sequence-parallel", "--dp", "8", "--zero", zero)
    stage = int(zero)
    assert _states(dp) == (
        2 * psi // 8 if stage >= 3 else 2 * psi,
        2 * psi // 8 if stage >= 2 else 2 * psi,
        4 * psi // 8,
        8 * psi // 8,
    )


@pytest.mark.parametrize(("zero", "ranks"), [("1", 64), ("2", 64), ("3", 64), ("full_shard", 8)])
def test_mixtral_moe_layer(dp_of: Callable[..., dict[str, Any]], zero: str, ranks: int) -> None:
    psi = 8 * 3 * 4096 * 14336 + 4096 * 8  # every expert + the router: 1,409,318,912
    dp = dp_of("1", "4096", "-m", "mixtral-8x7b", "--dp", str(ranks), "--zero", zero)
    n, stage = ranks, int(zero) if zero.isdigit() else 3
    assert _states(dp) == (2 * psi // n if stage >= 3 else 2 * psi, 2 * psi // n if stage >= 2 else 2 * psi, 4 * psi // n, 8 * psi // n)


@pytest.mark.parametrize("zero", ["1", "2", "3"])
def test_mixtral_with_ep(dp_of: Callable[..., dict[str, Any]], zero: str) -> None:
    # 64 data-parallel ranks, 8 of them expert-parallel: a rank's expert over its 64/8 = 8 replicas, its router over 64
    expert, router, stage = 3 * 4096 * 14336, 4096 * 8, int(zero)
    assert expert + router == MIXTRAL_EP8
    dp = dp_of("1", "4096", "-m", "mixtral-8x7b", "--ep", "8", "--dp", "64", "--zero", zero)
    sharded = expert // 8 + router // 64
    assert dp["expert_shard_ranks"] == 8
    assert _states(dp) == (
        2 * sharded if stage >= 3 else 2 * MIXTRAL_EP8,
        2 * sharded if stage >= 2 else 2 * MIXTRAL_EP8,
        4 * expert // 8 + 4 * router // 64,
        8 * expert // 8 + 8 * router // 64,
    )


def test_hybrid_shard(dp_of: Callable[..., dict[str, Any]]) -> None:
    dp = dp_of("1", "512", "-m", "llama-2-7b", "--dp", "64", "--zero", "hybrid_shard", "--node-size", "8")
    assert dp["shard_ranks"] == 8 and _states(dp) == (2 * PSI // 8, 2 * PSI // 8, 4 * PSI // 8, 8 * PSI // 8)
    # within the node: 3·7·⌈Ψ/8⌉·2; across the 8 nodes: the shard all-reduced, 2·7·⌈⌈Ψ/8⌉/8⌉·2
    assert dp["sent_bytes"] == 3 * 7 * (PSI // 8) * 2 + 2 * 7 * (PSI // 64) * 2


def test_without_dp_the_field_is_null(cli: Run) -> None:
    code, out, _ = cli("train", "1", "8", "-m", "llama-2-7b", "-f", "json")
    assert json.loads(out)["data_parallel"] is None


@pytest.mark.parametrize(
    ("args", "flag", "words"),
    [
        (["train", "1", "8", "-m", "llama-2-7b", "--zero", "3"], "--zero", "add --dp N"),
        (["train", "1", "8", "-m", "llama-2-7b", "--dp", "4", "--node-size", "4"], "--node-size", "hybrid_shard"),
        (["train", "1", "8", "-m", "llama-2-7b", "--dp", "12", "--zero", "hybrid_shard"], "--zero", "multiple"),
        (["verify", "1", "8", "16", "--dp", "4", "--zero", "3"], "--dp", "add --backward"),
        (["verify", "1", "8", "16", "--backward", "--dp", "4", "--tp", "2"], "--tp", "drop --tp"),
    ],
)
def test_refused_in_one_line(cli: Run, args: list[str], flag: str, words: str) -> None:
    code, out, err = cli(*args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and flag in err and words in err


def test_the_whole_stack_on_one_rank(dp_of: Callable[..., dict[str, Any]]) -> None:
    dp = dp_of("1", "512", "-m", "llama-2-7b", "--dp", "64", "--zero", "3")
    assert dp["model_state_bytes"] == 32 * 16 * PSI // 64 == 1_082_130_432
    # + 32 layers' saved activations + one layer's gathered weights and unsharded gradient (4Ψ) and backward transient
    assert dp["model_peak_bytes"] == 1_082_130_432 + 32 * 38_010_880 + 4 * PSI + 33_816_576 == 2_873_360_384


def test_a_mixed_stack_on_one_rank(dp_of: Callable[..., dict[str, Any]]) -> None:
    dp = dp_of("1", "16", "-m", "deepseek-v3", "--dp", "64", "--zero", "1")
    dense, moe = 3 * 7168 * 18432, 3 * 7168 * 2048 * 257 + 7168 * 256
    # ZeRO-1: 2 + 2 bytes per parameter whole, 12 sharded over 64 (each layer's buffer on its own, exact here)
    assert dp["model_state_bytes"] == 3 * (4 * dense + 12 * dense // 64) + 58 * (4 * moe + 12 * moe // 64)


def test_the_api_takes_the_same() -> None:
    import ffn_calc

    cfg = ffn_calc.layer(1, 512, model="llama-2-7b")
    report = ffn_calc.train(cfg, dp=64, zero="FULL_SHARD")
    assert report.data_parallel is not None and report.data_parallel.zero == 3
    assert report.data_parallel.weight_bytes == 2 * PSI // 64
    piped = ffn_calc.train(ffn_calc.layer(8, 512, model="llama-2-7b"), pp=4, microbatches=8, schedule="gpipe")
    assert piped.pipeline is not None and (piped.pipeline.bubble_numerator, piped.pipeline.bubble_denominator) == (3, 11)
