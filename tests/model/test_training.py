"""Training: backward FLOPs, saved activations and optimizer memory against published figures."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from helpers import Run
from hypothesis import given
from hypothesis import strategies as st

import ffn_calc
from ffn_calc.errors import ConfigError
from ffn_calc.model.layer import FFNConfig, make_config
from ffn_calc.model.training import TrainingOptions, train

ACTS = ["relu", "gelu", "gelu_tanh", "silu", "swiglu", "geglu", "reglu"]


@given(s=st.integers(1, 64), d=st.integers(1, 64), f=st.integers(1, 128), data=st.data(),
       act=st.sampled_from(ACTS), shared=st.integers(0, 2), norm=st.sampled_from(["none", "pre", "post"]))  # fmt: skip
def test_moe_backward_matmuls_are_twice_the_forward(s: int, d: int, f: int, data: st.DataObject, act: str, shared: int, norm: str) -> None:
    e = data.draw(st.integers(1, 16))
    k = data.draw(st.integers(1, e))
    cfg = FFNConfig(2, s, d, f, activation=act, norm=norm, experts=e, top_k=k, shared_experts=shared)
    t = train(cfg, TrainingOptions()).totals
    assert t.backward_matmul_flops == 2 * t.forward_matmul_flops
    assert t.step_matmul_flops == 3 * t.forward_matmul_flops
    # The active matrices: top-k experts, the shared ones, the router: 6·N_active per token.
    m = 3 if cfg.is_glu else 2
    assert t.step_matmul_flops == 6 * (k * m * d * f + shared * m * d * f + d * e) * 2 * s


def test_mixtral_saved_tensors() -> None:
    cfg = make_config(1, 8, 16, "32", activation="swiglu", bias=False, experts=4, top_k=2, dtype="bfloat16")
    saved = {t.name: t.bytes for t in train(cfg, TrainingOptions()).saved}
    n, rows = 8, 8 * 2
    assert saved == {
        "input": n * 16 * 2,  # the router's and the dispatch's input
        "router": n * 4 * 2,  # logits, for the softmax backward
        "routing": n * 2 * 2,  # the top-k weights, for combine's backward
        "dispatch": rows * 16 * 2,  # the experts' input rows
        "expert_gate": rows * 32 * 2,
        "expert_up": rows * 32 * 2,
        "expert_glu": rows * 32 * 2,
        "expert_down": rows * 16 * 2,  # the experts' outputs, for the routing weights' gradient
        "routing_indices": rows * 8,
    }


@given(b=st.integers(1, 8), s=st.integers(1, 512), d=st.integers(1, 512), f=st.integers(1, 1024),
       act=st.sampled_from(ACTS), bias=st.booleans(), norm=st.sampled_from(["none", "pre", "post"]))  # fmt: skip
def test_backward_matmuls_are_twice_the_forward(b: int, s: int, d: int, f: int, act: str, bias: bool, norm: str) -> None:
    cfg = FFNConfig(b, s, d, f, activation=act, bias=bias, norm=norm)
    t = train(cfg, TrainingOptions()).totals
    assert t.backward_matmul_flops == 2 * t.forward_matmul_flops
    assert t.step_matmul_flops == 3 * t.forward_matmul_flops
    full = train(cfg, TrainingOptions(recompute="full")).totals
    assert full.step_matmul_flops == 4 * t.forward_matmul_flops
    assert full.recompute_flops == t.forward_flops
    # 6·N per token for the matmuls: N = the matrices' parameters.
    matrices = (3 if cfg.is_glu else 2) * d * f
    assert t.step_matmul_flops == 6 * matrices * b * s


@given(s=st.integers(1, 4096), b=st.integers(1, 16), h=st.integers(1, 2048))
def test_korthikanti_mlp_activation_memory(s: int, b: int, h: int) -> None:
    """16-bit activations, 1-byte dropout masks, GELU, d_ff = 4h: 19·s·b·h bytes (Korthikanti et
    al. 2022, §4.1); in general 3·s·b·h + 4·s·b·f; selective recompute drops the GELU output."""
    cfg = make_config(b, s, h, activation="gelu", dtype="bfloat16")
    assert train(cfg, TrainingOptions(dropout=True)).totals.saved_activation_bytes == 19 * s * b * h
    f = 3 * h
    general = make_config(b, s, h, str(f), activation="gelu", dtype="float16")
    assert train(general, TrainingOptions(dropout=True)).totals.saved_activation_bytes == 3 * s * b * h + 4 * s * b * f
    assert train(cfg, TrainingOptions(dropout=True, recompute="selective")).totals.saved_activation_bytes == 11 * s * b * h
    assert train(cfg, TrainingOptions(dropout=True, recompute="full")).totals.saved_activation_bytes == 2 * s * b * h


def test_glu_keeps_gate_and_up() -> None:
    cfg = make_config(2, 8, 16, "32", activation="swiglu", bias=False)
    saved = {t.name: t.bytes for t in train(cfg, TrainingOptions()).saved}
    n = 2 * 8
    assert saved == {"input": n * 16 * 4, "gate": n * 32 * 4, "up": n * 32 * 4, "glu": n * 32 * 4}


@pytest.mark.parametrize(
    ("optimizer", "mixed", "dtype", "per_param"),
    [
        ("adam", True, "bfloat16", 16),  # 2 weights + 2 gradients + 4 master + 4 + 4 (ZeRO §3.1)
        ("adam", True, "float16", 16),
        ("adam", False, "float32", 16),  # 4 + 4 + 8
        ("momentum", False, "float32", 12),
        ("sgd", False, "float32", 8),
        ("sgd", True, "bfloat16", 8),  # 2 + 2 + 4 master
    ],
)
def test_bytes_per_parameter(optimizer: str, mixed: bool, dtype: str, per_param: int) -> None:
    cfg = make_config(1, 16, 64, dtype=dtype)
    t = train(cfg, TrainingOptions(optimizer=optimizer, mixed_precision=mixed)).totals
    params = 2 * 64 * 256 + 256 + 64
    assert t.bytes_per_param == per_param
    assert t.weight_bytes + t.gradient_bytes + t.optimizer_state_bytes + t.master_weight_bytes == per_param * params


def test_backward_ops_by_hand() -> None:
    t = train(make_config(3, 6, 8, "32"), TrainingOptions())
    kinds = [(op.stage, op.kind, op.matmul) for op in t.backward]
    assert kinds == [
        ("linear2", "input-grad", (18, 8, 32)),
        ("linear2", "weight-grad", (32, 18, 8)),
        ("linear2", "bias-grad", None),
        ("activation", "elementwise", None),
        ("linear1", "input-grad", (18, 32, 8)),
        ("linear1", "weight-grad", (8, 18, 32)),
        ("linear1", "bias-grad", None),
    ]
    by = {(op.stage, op.kind): op.flops for op in t.backward}
    assert by[("linear2", "bias-grad")] == 18 * 8 and by[("linear1", "bias-grad")] == 18 * 32
    assert by[("activation", "elementwise")] == 18 * 32  # ReLU: 1 per element


@pytest.mark.parametrize(
    ("options", "argument"),
    [({"experts": 4, "top_k": 2, "capacity_factor": 1.25}, "--capacity-factor"), ({"dtype": "float32"}, "--mixed-precision")],
)
def test_train_refuses_what_it_does_not_model(options: dict[str, object], argument: str) -> None:
    cfg = make_config(1, 4, 8, **options)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as e:
        train(cfg, TrainingOptions(mixed_precision=True))
    assert e.value.argument == argument


def test_train_json(cli: Run) -> None:
    code, out, _ = cli("train", "4", "2048", "1024", "-a", "gelu", "--dtype", "bfloat16", "--mixed-precision", "--dropout", "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == "ffn-calc/train/1"
    assert doc["totals"]["saved_activation_bytes"] == 19 * 2048 * 4 * 1024
    assert doc["totals"]["bytes_per_param"] == 16
    assert doc["totals"]["step_matmul_flops"] == 3 * doc["totals"]["forward_matmul_flops"]
    assert [op["kind"] for op in doc["backward"]][:2] == ["input-grad", "weight-grad"]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"activation": "gelu", "norm": "post"},
        {"activation": "gelu_tanh", "norm": "pre", "bias": False},
        {"activation": "swiglu", "norm": "pre"},
        {"activation": "geglu_tanh", "fused": True, "norm": "post"},
        {"activation": "silu", "bias": False},
    ],
)
def test_verify_backward(options: dict[str, object]) -> None:
    from ffn_calc.verifier.run import verify

    report = verify(make_config(2, 16, 12, "24", **options), backward=True)  # type: ignore[arg-type]
    assert [c.name for c in report.checks if not c.ok] == []
    names = {c.name for c in report.checks if c.group in ("backward", "training")}
    assert {"backward_matmul_flops (2·M·K·N of every backward product that ran)", "backward_flops (all backward work that ran)"} <= names
    assert any(name.startswith("gradients = finite differences") for name in names)


@pytest.mark.parametrize(
    "options",
    [
        {"experts": 4, "top_k": 2},
        {"activation": "swiglu", "experts": 4, "top_k": 2, "shared_experts": 1, "norm": "pre", "bias": False},
        {"activation": "geglu", "experts": 4, "top_k": 3, "fused": True, "shared_experts": 2, "norm": "post"},
    ],
)
def test_verify_backward_mixture_of_experts(options: dict[str, object]) -> None:
    from ffn_calc.verifier.run import verify

    report = verify(make_config(2, 16, 12, "24", **options), backward=True)  # type: ignore[arg-type]
    assert [c.name for c in report.checks if not c.ok] == []
    names = {c.name for c in report.checks if c.group == "backward"}
    assert {"router weight-grad (M, K, N)", "combine elementwise FLOPs", "routing elementwise FLOPs"} <= names


def test_a_wrong_backward_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A derivative off by a little fails the finite-difference check."""
    from ffn_calc.verifier import kernels
    from ffn_calc.verifier.run import verify

    real = kernels.KERNELS["gelu"]
    monkeypatch.setitem(kernels.KERNELS, "gelu", replace(real, derivative=lambda h: real.derivative(h) * 1.001))
    report = verify(make_config(2, 8, 8, "16", activation="gelu"), backward=True)
    assert [c.name for c in report.checks if not c.ok] == ["gradients = finite differences (float64, the layer itself, 16 tokens)"]


# Hand-computed cases for bugs the mutation benchmark (benchmarks/mutants.py) once planted unseen.
def test_a_glus_backward_per_element() -> None:
    t = train(make_config(2, 3, 8, 32, activation="swiglu", bias=False), TrainingOptions())
    glu = next(op for op in t.backward if op.stage == "glu")
    # SiLU's backward 9 + SiLU again 4 (du = da ⊙ silu(g)) + 2 multiplies, per element of (6, 32).
    assert glu.elementwise_flops == 6 * 32 * (9 + 4 + 2)


def test_selective_recompute_of_relu_and_gelu(dense: FFNConfig) -> None:
    relu = train(dense, TrainingOptions(recompute="selective"))
    assert relu.totals.recompute_flops == 0  # ReLU's backward reads its output: nothing to redo
    gelu = train(make_config(2, 3, 8, 32, activation="gelu"), TrainingOptions(recompute="selective"))
    assert gelu.totals.recompute_flops == 6 * 32 * 5  # GELU's 5 FLOPs on every element of h


def test_relu_keeps_its_output_not_its_input(dense: FFNConfig) -> None:
    names = [s.name for s in train(dense, TrainingOptions()).saved]
    assert names == ["input", "activation"]  # linear1's output h is not kept for ReLU
    gelu = [s.name for s in train(make_config(2, 3, 8, 32, activation="gelu"), TrainingOptions()).saved]
    assert gelu == ["input", "linear1", "activation"]


def test_dropout_costs_forward_and_backward(dense: FFNConfig) -> None:
    t = train(dense, TrainingOptions(dropout=True)).totals
    assert t.dropout_flops == 2 * 6 * 8  # apply the mask forward, and again backward


def test_backward_transient_by_hand(dense: FFNConfig) -> None:
    # The most gradients alive at once: a product's pair is dY (6, 32) and dX (6, 8) of linear1
    # (or dY (6, 8) and dA (6, 32) of linear2), 6·40 floats; the activation's is its output
    # gradient dA (6, 32) and input gradient dH (6, 32), 6·64 floats: the larger, in float32.
    t = train(dense, TrainingOptions()).totals
    assert t.backward_transient_bytes == 6 * (32 + 32) * 4
    # A GLU's elementwise step holds da and both dgate and dup: 3 · (6, 32).
    glu = train(make_config(2, 3, 8, 32, activation="swiglu"), TrainingOptions()).totals
    assert glu.backward_transient_bytes == 3 * 6 * 32 * 4
    # d_ff below d_model: the products' pair (6·(8 + 4)) is the larger.
    narrow = train(make_config(2, 3, 8, 4), TrainingOptions()).totals
    assert narrow.backward_transient_bytes == 6 * (8 + 4) * 4


def test_sequence_parallel_dropout_acts_on_the_rank_shard() -> None:
    """Under sequence parallelism dropout runs after the reduce-scatter, on the rank's s / N
    of the sequence: 2 × 8 tokens over 2 ranks is 8 tokens × 16 features, forward and backward."""
    t = train(make_config(2, 8, 16), TrainingOptions(dropout=True), tp=2, sequence_parallel=True).totals
    assert t.dropout_flops == 2 * (2 * 8 // 2) * 16
    assert train(make_config(2, 8, 16), TrainingOptions(dropout=True), tp=2).totals.dropout_flops == 2 * 2 * 8 * 16


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


# --- precision as practised (issue 18, part 1) ---------------------------------------------------
LLAMA2_7B_FFN = 3 * 4096 * 11008  # gate, up, down: 135,266,304 parameters


def _llama2_7b() -> FFNConfig:
    from ffn_calc.api import layer

    return layer(1, 512, model="llama-2-7b")


def test_llama_2_7b_trains_in_mixed_precision_by_default_at_16_bytes_per_parameter() -> None:
    report = train(_llama2_7b(), TrainingOptions())
    t = report.totals
    assert report.options.mixed_precision is True  # float16 preset: mixed precision, as practised
    # ZeRO §3.1: 2 (fp16 weights) + 2 (fp16 gradients) + 4 (fp32 master) + 4 + 4 (Adam's momentum, variance)
    assert (t.weight_bytes, t.gradient_bytes, t.master_weight_bytes) == (2 * LLAMA2_7B_FFN, 2 * LLAMA2_7B_FFN, 4 * LLAMA2_7B_FFN)
    assert t.optimizer_state_bytes == 8 * LLAMA2_7B_FFN == 1_082_130_432
    assert t.bytes_per_param == 16


def test_pure_16_bit_is_one_flag_away_and_adamw_keeps_adams_states() -> None:
    t = train(_llama2_7b(), TrainingOptions(optimizer="adamw", mixed_precision=False)).totals
    assert t.master_weight_bytes == 0
    assert t.optimizer_state_bytes == 2 * 2 * LLAMA2_7B_FFN  # two float16 states
    assert t.bytes_per_param == 2 + 2 + 4
    adam = train(_llama2_7b(), TrainingOptions(optimizer="adam")).totals
    assert train(_llama2_7b(), TrainingOptions(optimizer="adamw")).totals == adam


def test_float32_layers_stay_plain_by_default() -> None:
    report = train(make_config(1, 16, 64), TrainingOptions())
    assert report.options.mixed_precision is False and report.totals.bytes_per_param == 16  # 4 + 4 + 8


def test_adam8bit_states_by_hand() -> None:
    # bitsandbytes' Optimizer2State: per tensor, state1 and state2 uint8 (1 byte per element) and
    # absmax1, absmax2 float32 of ceil(n / 256) blocks. W_gate, W_up, W_down: n = 4096·11008 =
    # 45,088,768 elements, 176,128 blocks: 2·(45,088,768 + 4·176,128) = 91,586,560 bytes each.
    t = train(_llama2_7b(), TrainingOptions(optimizer="adam8bit")).totals
    assert t.optimizer_state_bytes == 3 * 91_586_560 == 274_759_680
    assert t.master_weight_bytes == 4 * LLAMA2_7B_FFN  # mixed precision: the float32 master stays


def test_adam8bit_keeps_float32_states_for_small_tensors() -> None:
    # min_8bit_size 4096: a (64, 256) weight (16,384 elements) goes 8-bit; the biases (256, 64) stay float32.
    cfg = make_config(1, 16, 64)
    t = train(cfg, TrainingOptions(optimizer="adam8bit")).totals
    eight = 2 * (64 * 256 + 4 * (64 * 256 // 256))  # each of W1, W2
    assert t.optimizer_state_bytes == 2 * eight + 2 * 4 * (256 + 64)
