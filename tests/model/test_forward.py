"""The core's numbers: hand-computed cases, published figures, and closed forms over many shapes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ffn_calc.errors import ConfigError
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import FFNConfig, glu_matched_d_ff, make_config, parse_size, resolve_d_ff


def test_the_3_6_8_example_by_hand() -> None:
    r = analyze(make_config(3, 6, 8, "32"))
    assert [s.name for s in r.stages] == ["input", "linear1", "activation", "linear2"]
    assert [s.output_shape for s in r.stages] == [(3, 6, 8), (3, 6, 32), (3, 6, 32), (3, 6, 8)]
    lin1, act, lin2 = r.stage("linear1"), r.stage("activation"), r.stage("linear2")
    # 18 tokens. linear1: 18·8·32 = 4,608 MACs, 9,216 matmul FLOPs + 18·32 = 576 bias adds.
    assert (lin1.macs, lin1.matmul_flops, lin1.elementwise_flops, lin1.flops) == (4608, 9216, 576, 9792)
    assert (lin1.weight_params, lin1.bias_params) == (256, 32)
    # ReLU: one FLOP per element of (3, 6, 32).
    assert (act.flops, act.macs, act.params) == (576, 0, 0)
    # linear2: 18·32·8 = 4,608 MACs, 9,216 FLOPs + 18·8 = 144 bias adds.
    assert (lin2.macs, lin2.flops, lin2.weight_params, lin2.bias_params) == (4608, 9360, 256, 8)
    t = r.totals
    assert (t.params, t.weight_params, t.bias_params, t.norm_params) == (552, 512, 40, 0)
    assert (t.flops, t.macs, t.matmul_flops, t.elementwise_flops) == (19728, 9216, 18432, 1296)
    assert t.matmul_flops_per_token == 4 * 8 * 32 == 1024
    assert t.flops_per_token == 19728 // 18 == 1096
    # float32: weights 552·4; x 576 B, h and a 2,304 B each, y 576 B.
    assert t.weight_bytes == 2208
    assert [s.output_bytes for s in r.stages] == [576, 2304, 2304, 576]
    assert t.activation_bytes == 5760
    # Busiest moment: the activation, with x, h and a alive.
    assert r.peak.stage == "activation" and r.peak.live == ("input", "linear1", "activation")
    assert t.peak_bytes == 2208 + 576 + 2304 + 2304 == 7392


def test_original_transformer_base() -> None:
    """Vaswani et al. 2017: d_model 512, d_ff 2048, biases: 2·512·2048 + 2048 + 512."""
    t = analyze(make_config(1, 1, 512, "2048")).totals
    assert t.params == 2_099_712
    assert analyze(make_config(1, 1, 512, "2048", bias=False)).totals.params == 2 * 512 * 2048


@pytest.mark.parametrize(
    ("d_model", "d_ff", "published"),
    [
        (1024, 4096, 8_393_728),  # Transformer big, BERT-large
        (768, 3072, 4_722_432),  # BERT-base, GPT-2 small
        (12288, 49152, 1_208_020_992),  # GPT-3 175B
    ],
)
def test_published_per_layer_ffn_params(d_model: int, d_ff: int, published: int) -> None:
    assert analyze(make_config(1, 1, d_model, str(d_ff), activation="gelu")).totals.params == published


def test_default_d_ff_is_four_times_d_model() -> None:
    assert make_config(1, 1, 512).d_ff == 2048
    assert make_config(1, 1, 768, "4x").d_ff == 3072
    assert make_config(1, 1, 8, "2.5x").d_ff == 20
    assert make_config(1, 1, 3, "8/3x").d_ff == 8


@pytest.mark.parametrize("spec", ["2.7x", "1/3x", "0.1x"])
def test_multiplier_that_is_not_whole_is_an_error(spec: str) -> None:
    with pytest.raises(ConfigError) as e:
        resolve_d_ff(8, spec)
    assert e.value.argument == "--d-ff"


@pytest.mark.parametrize("text", ["0", "-3", "1.5", "1e3", "", "four", "0x10", str(2**40 + 1)])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_size("BATCH", text)


def test_parse_size_accepts_underscores() -> None:
    assert parse_size("BATCH", "4_096") == 4096


@pytest.mark.parametrize(("field", "value"), [("activation", "tanh"), ("norm", "both"), ("dtype", "float8"), ("batch", 0), ("d_ff", True)])
def test_config_rejects(field: str, value: object) -> None:
    kwargs: dict[str, object] = {"batch": 1, "seq_len": 1, "d_model": 8, "d_ff": 32}
    kwargs[field] = value
    with pytest.raises(ConfigError):
        FFNConfig(**kwargs)  # type: ignore[arg-type]


def test_pre_and_post_norm_stage_order_and_costs() -> None:
    pre = analyze(make_config(2, 5, 8, "32", norm="pre"))
    post = analyze(make_config(2, 5, 8, "32", norm="post"))
    assert [s.name for s in pre.stages] == ["input", "layernorm", "linear1", "activation", "linear2", "residual"]
    assert [s.name for s in post.stages] == ["input", "linear1", "activation", "linear2", "residual", "layernorm"]
    for r in (pre, post):
        ln, res = r.stage("layernorm"), r.stage("residual")
        assert ln.norm_params == 16 and ln.params == 16  # γ and β of width 8
        assert ln.flops == 10 * (7 * 8 + 2)  # 10 rows of 8
        assert res.flops == 10 * 8 and res.inputs == ("input", "linear2")
        assert r.totals.params == 2 * 8 * 32 + 32 + 8 + 16
    # pre-LN: LN output is freed after linear1, so the peak is still x + h + a.
    assert pre.peak.live == ("input", "linear1", "activation")


def test_activation_costs_follow_the_convention() -> None:
    per_element = {"relu": 1, "gelu": 5, "gelu_tanh": 9, "silu": 4}
    for name, cost in per_element.items():
        assert analyze(make_config(2, 3, 4, "16", activation=name)).stage("activation").flops == cost * 2 * 3 * 16


def test_dtype_scales_every_byte_figure() -> None:
    base = analyze(make_config(2, 3, 8, "32", dtype="float32")).totals
    for dtype, size in {"float64": 8, "bfloat16": 2, "float16": 2, "int8": 1}.items():
        t = analyze(make_config(2, 3, 8, "32", dtype=dtype)).totals
        assert t.weight_bytes * 4 == base.weight_bytes * size
        assert t.peak_bytes * 4 == base.peak_bytes * size
        assert t.flops == base.flops


sizes = st.integers(min_value=1, max_value=4096)


@given(
    b=sizes, s=sizes, d=sizes, f=sizes, bias=st.booleans(),
    act=st.sampled_from(["relu", "gelu", "gelu_tanh", "silu"]), norm=st.sampled_from(["none", "pre", "post"]),
)  # fmt: skip
def test_closed_forms(b: int, s: int, d: int, f: int, bias: bool, act: str, norm: str) -> None:
    """Every total against the formula written out independently of the stage list."""
    r = analyze(FFNConfig(b, s, d, f, activation=act, bias=bias, norm=norm))
    n = b * s
    t = r.totals
    ln = 2 * d if norm != "none" else 0
    assert t.params == 2 * d * f + (f + d if bias else 0) + ln
    assert t.macs == 2 * n * d * f
    assert t.matmul_flops == 4 * n * d * f
    assert t.matmul_flops_per_token == 4 * d * f
    act_cost = {"relu": 1, "gelu": 5, "gelu_tanh": 9, "silu": 4}[act]
    elementwise = act_cost * n * f + (n * (f + d) if bias else 0)
    if norm != "none":
        elementwise += n * d + n * (7 * d + 2)
    assert t.elementwise_flops == elementwise
    assert t.flops == 4 * n * d * f + elementwise
    assert t.weight_bytes == 4 * t.params
    # Out-of-place peak, by hand: the activation step holds x, h and a; linear2 holds x, a, y;
    # with a norm, the residual step holds x, y and x + y, and post-LN's norm holds x, r and LN(r).
    candidates = [n * d + 2 * n * f, 2 * n * d + n * f]
    if norm == "pre":
        candidates += [2 * n * d + n * f, 3 * n * d]  # LN → linear1: x, LN(x), h
    if norm != "none":
        candidates.append(3 * n * d)
    assert t.peak_bytes == t.weight_bytes + 4 * max(candidates)


# Hand-computed cases for bugs the mutation benchmark (benchmarks/mutants.py) once planted unseen.
def test_model_totals_over_layers_by_hand() -> None:
    r = analyze(make_config(2, 3, 8, 32, layers=4, norm="pre"))
    t, m = r.totals, r.model
    assert t.elementwise_flops > 0  # so that FLOPs ≠ matmul FLOPs below
    assert (m.flops, m.matmul_flops, m.params) == (4 * t.flops, 4 * t.matmul_flops, 4 * t.params)
    # Every layer's weights, and one layer's activations (a forward pass frees them as it goes).
    assert m.peak_bytes == 4 * t.weight_bytes + r.peak.activation_bytes


def test_model_active_parameters_over_layers() -> None:
    r = analyze(make_config(1, 4, 8, 16, experts=4, top_k=1, layers=3, activation="swiglu", bias=False))
    one_expert = 3 * 8 * 16
    assert r.totals.active_params == r.totals.params - 3 * one_expert
    assert r.model.active_params == 3 * r.totals.active_params < r.model.params


def test_llama_rounding_leaves_a_multiple_as_it_is() -> None:
    # int(2·4·96/3) = 256 is already a multiple of 32: no rounding up.
    assert glu_matched_d_ff(96, 32).value == 256
    assert glu_matched_d_ff(96, 48).value == 288  # 256 → 48·ceil(256/48) = 288
