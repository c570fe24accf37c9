"""`train --pp N --microbatches M --schedule S` through the command line's JSON, against hand counts (issue 18, part 3)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

Run = Callable[..., tuple[int, str, str]]
LLAMA_LAYER = 3 * 4096 * 11008  # Llama-2-7B's FFN parameters per layer
LLAMA_SAVED_512 = 38_010_880  # one layer's saved activations for 1 × 512 tokens (train 1 512 -m llama-2-7b)


@pytest.fixture
def pipe(cli: Run) -> Callable[..., dict[str, Any]]:
    def run(*args: str) -> dict[str, Any]:
        code, out, err = cli("train", *args, "-f", "json")
        assert code == 0, err
        return json.loads(out)["pipeline"]  # type: ignore[no-any-return]

    return run


def test_llama_2_7b_pp4_m8_1f1b(pipe: Callable[..., dict[str, Any]]) -> None:
    p = pipe("8", "512", "-m", "llama-2-7b", "--pp", "4", "--microbatches", "8")
    assert (p["layers"], p["schedule"], p["microbatch_sequences"]) == (32, "1f1b", 1)
    assert (p["bubble_numerator"], p["bubble_denominator"]) == (3, 11)  # (p − 1)/(m + p − 1) = 3/11
    stages = p["per_stage"]
    assert [s["layers"] for s in stages] == [[[0, 7]], [[8, 15]], [[16, 23]], [[24, 31]]]  # 8 layers per stage
    assert all(s["params"] == 8 * LLAMA_LAYER for s in stages)
    assert all(s["state_bytes"] == 16 * 8 * LLAMA_LAYER for s in stages)  # mixed-precision Adam, 16 B/param
    assert [s["held_microbatches"] for s in stages] == [4, 3, 2, 1]  # min(p − s, m)
    assert [s["saved_activation_bytes"] for s in stages] == [h * 8 * LLAMA_SAVED_512 for h in (4, 3, 2, 1)]
    boundary = 1 * 512 * 4096 * 2  # (b/m, s, d) in float16
    assert (p["boundary_shape"], p["boundary_bytes"], p["p2p_bytes_per_microbatch"]) == ([1, 512, 4096], boundary, 2 * boundary)
    # the first stage sends only forward, the last only backward, the others both; m microbatches each
    assert [s["sent_bytes"] for s in stages] == [8 * boundary, 16 * boundary, 16 * boundary, 8 * boundary]


def test_gpipe_holds_every_microbatch(pipe: Callable[..., dict[str, Any]]) -> None:
    p = pipe("8", "512", "-m", "llama-2-7b", "--pp", "4", "--microbatches", "8", "--schedule", "gpipe")
    assert [s["held_microbatches"] for s in p["per_stage"]] == [8, 8, 8, 8]
    assert p["per_stage"][0]["saved_activation_bytes"] == 8 * 8 * LLAMA_SAVED_512
    assert (p["bubble_numerator"], p["bubble_denominator"]) == (3, 11)


def test_interleaved(pipe: Callable[..., dict[str, Any]]) -> None:
    p = pipe("8", "512", "-m", "llama-2-7b", "--pp", "4", "--microbatches", "8", "--schedule", "interleaved", "--chunks", "2")
    assert (p["bubble_numerator"], p["bubble_denominator"]) == (3, 19)  # (p − 1)/(v·m + p − 1)
    stages = p["per_stage"]
    assert stages[0]["layers"] == [[0, 3], [16, 19]]  # chunk c on stage c mod p, 4 layers each
    # 2·(p − s − 1) + (v − 1)·p + 1 chunk-microbatches: 11 on the first stage = p·(1 + (p − 1)/(p·v)) = 5.5 microbatches × 2 chunks
    assert [s["held_microbatches"] for s in stages] == [11, 9, 7, 5]
    assert stages[0]["saved_activation_bytes"] == 11 * 4 * LLAMA_SAVED_512
    boundary = 512 * 4096 * 2
    assert [s["sent_bytes"] for s in stages] == [8 * 3 * boundary, 8 * 4 * boundary, 8 * 4 * boundary, 8 * 3 * boundary]


def test_deepseek_v3_mixed_stack(pipe: Callable[..., dict[str, Any]]) -> None:
    p = pipe("4", "256", "-m", "deepseek-v3", "--pp", "4", "--microbatches", "4")
    stages = p["per_stage"]
    # 61 layers: 16 on the first stage (61 mod 4 = 1), 15 on the others; the 3 dense layers first
    assert [(s["layer_count"], s["dense_layers"], s["moe_layers"]) for s in stages] == [(16, 3, 13), (15, 0, 15), (15, 0, 15), (15, 0, 15)]
    dense = 3 * 7168 * 18432  # 396,361,728
    moe = 3 * 7168 * 2048 * 257 + 7168 * 256  # 256 routed + 1 shared expert, and the router: 11,320,164,352
    assert stages[0]["params"] == 3 * dense + 13 * moe and stages[1]["params"] == 15 * moe


def test_mixtral_with_ep_and_tp(pipe: Callable[..., dict[str, Any]]) -> None:
    p = pipe("8", "512", "-m", "mixtral-8x7b", "--pp", "4", "--microbatches", "4", "--ep", "8")
    per_rank = 3 * 4096 * 14336 + 4096 * 8  # one expert + the router per EP rank
    assert all(s["params"] == 8 * per_rank for s in p["per_stage"])


@pytest.mark.parametrize(
    ("args", "flag", "words"),
    [
        (["--microbatches", "8"], "--pp", "add --pp N"),
        (["--pp", "4", "--microbatches", "3"], "--microbatches", "does not divide"),
        (["--pp", "4", "--microbatches", "6", "--schedule", "interleaved"], "--microbatches", "does not divide"),
        (["--pp", "4", "--microbatches", "2", "--schedule", "interleaved"], "--microbatches", "multiple of p"),
        (["--pp", "4", "--microbatches", "4", "--chunks", "2"], "--chunks", "interleaved"),
        (["--pp", "4", "--microbatches", "4", "--schedule", "interleaved", "--chunks", "3"], "--chunks", "equal chunks"),
        (["--pp", "64"], "--pp", "at least 64 layers"),
    ],
)
def test_refused_in_one_line(cli: Run, args: list[str], flag: str, words: str) -> None:
    code, out, err = cli("train", "8", "512", "-m", "llama-2-7b", *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and flag in err and words in err


def test_with_data_parallelism_each_stage_holds_one_ranks_shards(pipe: Callable[..., dict[str, Any]]) -> None:
    p = pipe("8", "512", "-m", "llama-2-7b", "--pp", "4", "--microbatches", "8", "--dp", "8", "--zero", "3")
    first = p["per_stage"][0]
    assert first["state_bytes"] == 8 * 16 * LLAMA_LAYER // 8  # 8 layers, 16 B/param over 8 ranks
    transient = 33_816_576  # one layer's backward transient (1 × 512 tokens)
    gathered = 2 * 2 * LLAMA_LAYER  # ZeRO-3: one layer's gathered weights and its unsharded gradient, one layer at a time
    assert first["peak_bytes"] == first["state_bytes"] + 4 * 8 * LLAMA_SAVED_512 + transient + gathered
