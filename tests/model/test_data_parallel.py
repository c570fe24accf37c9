"""ZeRO / FSDP per-rank memory and bytes sent, against hand sums (issue 18, part 2)."""

from __future__ import annotations

import pytest

from ffn_calc.api import layer
from ffn_calc.errors import ConfigError
from ffn_calc.model.data_parallel import data_parallel
from ffn_calc.model.training import TrainingOptions, train

PSI = 3 * 4096 * 11008  # Llama-2-7B's FFN: 135,266,304 parameters; /64 = 2,113,536 exactly


def _llama(tp: int = 1) -> object:
    return train(layer(1, 512, model="llama-2-7b"), TrainingOptions(), tp=tp)


@pytest.mark.parametrize(
    ("zero", "weights", "grads", "rest"),
    [
        ("0", 2 * PSI, 2 * PSI, 12 * PSI),  # 2 + 2 + 12 on every rank
        ("1", 2 * PSI, 2 * PSI, 12 * PSI // 64),  # ZeRO-1: 4Ψ + 12Ψ/N
        ("2", 2 * PSI, 2 * PSI // 64, 12 * PSI // 64),  # ZeRO-2: 2Ψ + 14Ψ/N
        ("shard_grad_op", 2 * PSI, 2 * PSI // 64, 12 * PSI // 64),
        ("3", 2 * PSI // 64, 2 * PSI // 64, 12 * PSI // 64),  # ZeRO-3: 16Ψ/N
        ("full_shard", 2 * PSI // 64, 2 * PSI // 64, 12 * PSI // 64),
    ],
)
def test_llama_2_7b_ffn_per_rank_over_64(zero: str, weights: int, grads: int, rest: int) -> None:
    dp = data_parallel(_llama(), 64, zero)  # type: ignore[arg-type]
    assert (dp.weight_bytes, dp.gradient_bytes, dp.master_weight_bytes + dp.optimizer_state_bytes) == (weights, grads, rest)


def test_zero3_model_states_match_the_papers_16_psi_over_n() -> None:
    dp = data_parallel(_llama(), 64, "3")  # type: ignore[arg-type]
    # 16·135,266,304 / 64 = 33,816,576 bytes of model states per rank
    assert dp.weight_bytes + dp.gradient_bytes + dp.master_weight_bytes + dp.optimizer_state_bytes == 16 * PSI // 64 == 33_816_576


def test_bytes_sent_per_rank() -> None:
    plain = data_parallel(_llama(), 64, "0")  # type: ignore[arg-type]
    z3 = data_parallel(_llama(), 64, "3")  # type: ignore[arg-type]
    chunk = PSI // 64  # 2,113,536 elements
    assert plain.sent_bytes == 2 * 63 * chunk * 2 == 532_611_072  # 2·(N − 1)/N·Ψ elements of 2 bytes
    assert z3.sent_bytes == 3 * 63 * chunk * 2 == 798_916_608  # 1.5× (forward and backward all-gathers + reduce-scatter)


def test_with_tensor_parallelism_psi_is_the_tp_ranks() -> None:
    dp = data_parallel(_llama(tp=8), 8, "3")  # type: ignore[arg-type]
    assert dp.weight_bytes == 2 * (PSI // 8) // 8  # 135,266,304 / 64 elements of 2 bytes


def test_mixtral_moe_layer_with_ep() -> None:
    report = train(layer(1, 4096, model="mixtral-8x7b"), TrainingOptions(), ep=8)
    psi = 3 * 4096 * 14336 + 4096 * 8  # one expert + the router: 176,193,536 per EP rank
    dp = data_parallel(report, 8, "3")
    assert dp.weight_bytes == 2 * psi // 8 and dp.optimizer_state_bytes == 8 * psi // 8


def test_hybrid_shard_within_a_node() -> None:
    dp = data_parallel(_llama(), 64, "hybrid_shard", node_size=8)  # type: ignore[arg-type]
    assert dp.shard_ranks == 8 and dp.weight_bytes == 2 * PSI // 8
    with pytest.raises(ConfigError):
        data_parallel(_llama(), 12, "hybrid_shard", node_size=8)  # type: ignore[arg-type]


def test_zero_without_dp_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        data_parallel(_llama(), 1, "3")  # type: ignore[arg-type]
    assert e.value.argument == "--zero"


def test_uneven_shards_pad_the_masters_and_states_by_elements() -> None:
    # Ψ = 808 over 3 ranks: ⌈808/3⌉ = 270 elements a shard (the flat buffer padded to 810); the
    # optimizer steps those 270 elements, so its states are 2·4·270 = 2,160 bytes, not ⌈6,464/3⌉ = 2,155.
    dp = data_parallel(train(layer(2, 8, 16, d_ff=24), TrainingOptions()), 3, "1")
    assert (dp.master_weight_bytes, dp.optimizer_state_bytes) == (0, 2160)
    mixed = data_parallel(train(layer(2, 8, 16, d_ff=24, dtype="bfloat16"), TrainingOptions()), 3, "1")
    assert (mixed.master_weight_bytes, mixed.optimizer_state_bytes) == (4 * 270, 8 * 270)
