"""Real models: gated FFNs, mixtures of experts, presets, config.json files and `explain`,
checked against published figures (shared/REFERENCE.md) and closed forms."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from ffn_calc.api.model_list import model_catalogue
from ffn_calc.catalogue.presets import PRESETS
from ffn_calc.inputs.config_json import read_config
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import ConfigError, FFNConfig, glu_matched_d_ff, make_config
from ffn_calc.prose.explanation import explain
from ffn_calc.verifier.run import verify

DATA = Path(__file__).parent / "data"


def params(model: str) -> int:
    return analyze(layer_config(1, 1, model=model)).totals.params


@pytest.mark.parametrize(
    ("model", "published"),
    [
        ("transformer-base", 2_099_712),
        ("transformer-big", 8_393_728),
        ("bert-base", 4_722_432),
        ("bert-large", 8_393_728),
        ("gpt2", 4_722_432),
        ("gpt3-175b", 1_208_020_992),
        ("t5-v1_1-base", 4_718_592),
        ("llama-2-7b", 135_266_304),
        ("llama-3-8b", 176_160_768),
        ("mixtral-8x7b", 1_409_318_912),
    ],
)
def test_published_per_layer_ffn_parameters(model: str, published: int) -> None:
    assert params(model) == published


def test_mixtral_total_active_and_router() -> None:
    r = analyze(layer_config(1, 1, model="mixtral-8x7b"))
    t = r.totals
    assert t.params == 1_409_318_912
    assert r.stage("router").params == 32_768 == 4096 * 8
    assert t.active_expert_params == 352_321_536 == 2 * 3 * 4096 * 14336
    assert t.expert_params == 8 * 3 * 4096 * 14336
    assert t.active_params == 352_321_536 + 32_768
    # FLOPs come from the two active experts only (the MaxText over-count used all eight).
    assert t.matmul_flops_per_token == 2 * 6 * 4096 * 14336 + 2 * 4096 * 8
    assert r.model.params == 32 * 1_409_318_912


def test_every_preset_names_its_source() -> None:
    for preset in PRESETS.values():
        assert preset.source and preset.layers >= 1
    rows = model_catalogue().rows
    assert len(rows) == len(PRESETS) >= 23
    by_name = {r.preset.name: r for r in rows}
    assert by_name["llama-2-7b"].params_per_layer == 135_266_304
    assert by_name["llama-2-7b"].model_params == 32 * 135_266_304


@pytest.mark.parametrize(
    ("d_model", "multiple_of", "multiplier", "expected"),
    [
        (4096, 256, None, 11008),  # LLaMA-2 7B: 4096 → 10922 → 11008
        (4096, 1024, 1.3, 14336),  # LLaMA-3 8B: 10922 → 14198 → 14336
        (8192, 4096, 1.3, 28672),  # LLaMA-2/3 70B
        (16384, 4096, 1.2, 53248),  # LLaMA-3.1 405B
        (768, None, None, 2048),  # T5 v1.1 base: 2/3 of 3072
    ],
)
def test_llama_rule(d_model: int, multiple_of: int | None, multiplier: float | None, expected: int) -> None:
    resolved = glu_matched_d_ff(d_model, multiple_of, multiplier)
    assert resolved.value == expected
    assert str(expected) in resolved.rule and "int(2 × 4 ×" in resolved.rule


def test_glu_rule_options_need_glu() -> None:
    with pytest.raises(ConfigError, match="--d-ff glu"):
        make_config(1, 1, 4096, "4x", multiple_of=256)


@pytest.mark.parametrize(
    ("config", "model"),
    [
        ("llama-3-8b", "llama-3-8b"),
        ("mixtral-8x7b", "mixtral-8x7b"),
        ("gpt2", "gpt2"),
        ("t5-v1_1-base", "t5-v1_1-base"),
        ("deepseek-v3", "deepseek-v3"),
    ],
)
def test_config_json_matches_the_preset(config: str, model: str) -> None:
    from_file = analyze(layer_config(2, 16, config=str(DATA / f"{config}.config.json")))
    from_preset = analyze(layer_config(2, 16, model=model))
    keys = ("d_model", "d_ff", "activation", "bias", "experts", "top_k", "shared_experts", "layers")
    assert {k: getattr(from_file.config, k) for k in keys} == {k: getattr(from_preset.config, k) for k in keys}
    assert from_file.totals == from_preset.totals
    assert from_file.model == from_preset.model


def test_config_json_says_what_it_used_and_ignored() -> None:
    file = read_config(str(DATA / "llama-3-8b.config.json"))
    assert file.used["hidden_size"] == 4096 and file.used["intermediate_size"] == 14336
    assert "vocab_size" in file.ignored and "rope_theta" in file.ignored
    assert any("model_type 'llama'" in note for note in file.notes)


def test_glu_is_never_guessed_from_the_ratio(tmp_path: Path) -> None:
    """A BERT-like config whose d_ff / d_model is LLaMA's 2.6875 stays a plain FFN."""
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "bert", "hidden_size": 4096, "intermediate_size": 11008, "hidden_act": "gelu"}')
    cfg = layer_config(1, 1, config=str(path))
    assert cfg.activation == "gelu" and not cfg.is_glu and cfg.bias


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"hidden_size": 4096, "intermediate_size": ', "not JSON"),
        ("[1, 2]", "not an object"),
        ('{"intermediate_size": 11008}', "no hidden size"),
        ('{"hidden_size": 4096}', "no FFN width"),
        ('{"hidden_size": 4096, "intermediate_size": 11008, "num_local_experts": 8}', "num_experts_per_tok"),
        ('{"hidden_size": "big", "intermediate_size": 11008}', "hidden_size"),
        ('{"hidden_size": 64, "intermediate_size": 128, "hidden_act": "mish"}', "mish"),
    ],
)
def test_bad_config_json(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        layer_config(1, 1, config=str(path))
    assert e.value.argument == "--config"


def test_flags_override_the_preset() -> None:
    cfg = layer_config(1, 1, model="llama-2-7b", d_ff="4x", bias=True, layers=2)
    assert (cfg.d_ff, cfg.bias, cfg.layers, cfg.activation) == (16384, True, 2, "swiglu")
    assert any("override" in line for line in cfg.origin)


sizes = st.integers(1, 2048)


@given(d=sizes, f=sizes, n=st.integers(1, 512), bias=st.booleans(), fused=st.booleans(),
       act=st.sampled_from(["swiglu", "geglu", "geglu_tanh", "reglu"]))  # fmt: skip
def test_glu_closed_forms(d: int, f: int, n: int, bias: bool, fused: bool, act: str) -> None:
    r = analyze(FFNConfig(1, n, d, f, activation=act, bias=bias, fused=fused))
    t = r.totals
    assert t.params == 3 * d * f + ((2 * f + d) if bias else 0)
    assert t.matmul_flops_per_token == 6 * d * f
    base = {"swiglu": 4, "geglu": 5, "geglu_tanh": 9, "reglu": 1}[act]
    assert r.stage("glu").flops == (base + 1) * n * f
    unfused = analyze(FFNConfig(1, n, d, f, activation=act, bias=bias))
    assert (t.params, t.flops) == (unfused.totals.params, unfused.totals.flops)


@given(d=st.integers(1, 512), f=st.integers(1, 512), n=st.integers(1, 256), data=st.data(),
       glu=st.booleans(), shared=st.integers(0, 2))  # fmt: skip
def test_moe_closed_forms(d: int, f: int, n: int, data: st.DataObject, glu: bool, shared: int) -> None:
    e = data.draw(st.integers(1, 64))
    k = data.draw(st.integers(1, e))
    r = analyze(FFNConfig(1, n, d, f, activation="swiglu" if glu else "relu", bias=False, experts=e, top_k=k, shared_experts=shared))
    m = 3 if glu else 2
    t = r.totals
    assert t.params == e * m * d * f + d * e + shared * m * d * f
    assert t.expert_params == e * m * d * f and t.active_expert_params == k * m * d * f
    assert t.active_params == k * m * d * f + d * e + shared * m * d * f
    assert t.matmul_flops_per_token == k * 2 * m * d * f + 2 * d * e + shared * 2 * m * d * f


def test_capacity_factor_pads_each_expert() -> None:
    cfg = make_config(2, 10, 8, "16", experts=4, top_k=2, capacity_factor=1.25)
    assert cfg.expert_capacity == 13  # ceil(1.25 × 20 × 2 / 4) = ceil(12.5)
    r = analyze(cfg)
    assert r.stage("dispatch").output_shape == (4, 13, 8)
    assert r.stage("expert_linear1").matmul == (52, 8, 16)


@pytest.mark.parametrize(
    "options",
    [
        {"activation": "swiglu", "bias": False},
        {"activation": "geglu", "fused": True, "norm": "post"},
        {"activation": "swiglu", "bias": False, "experts": 8, "top_k": 2},
        {"activation": "swiglu", "experts": 16, "top_k": 4, "shared_experts": 2, "norm": "pre"},
        {"experts": 4, "top_k": 2, "capacity_factor": 0.75},
    ],
)
def test_verify_glu_and_moe(options: dict[str, object]) -> None:
    report = verify(make_config(2, 64, 48, "96", **options))  # type: ignore[arg-type]
    assert [c.name for c in report.checks if not c.ok] == []
    # The routed experts' FLOPs were observed from per-expert products whose rows add up.
    if options.get("experts"):
        cfg = report.config
        stage = "expert_down" if cfg.is_glu else "expert_linear2"
        macs = next(c for c in report.checks if c.name == f"{stage} MACs")
        rows = cfg.tokens * cfg.top_k if cfg.expert_capacity is None else cfg.experts * cfg.expert_capacity
        assert macs.observed == macs.predicted == rows * 96 * 48


@pytest.mark.slow
def test_verify_a_preset_at_full_width() -> None:
    report = verify(layer_config(1, 32, model="llama-2-7b"))
    assert report.ok
    assert report.prediction.totals.params == 135_266_304


# A tenth of the profile: every example runs the NumPy forward pass.
@settings(max_examples=examples(0.1))
@given(d=st.integers(1, 16), f=st.integers(1, 32), s=st.integers(1, 8), data=st.data(),
       act=st.sampled_from(["relu", "swiglu", "geglu_tanh"]), bias=st.booleans(), norm=st.sampled_from(["none", "pre"]))  # fmt: skip
def test_verify_observes_moe_predictions(d: int, f: int, s: int, data: st.DataObject, act: str, bias: bool, norm: str) -> None:
    e = data.draw(st.integers(1, 6))
    k = data.draw(st.integers(1, e))
    cap = data.draw(st.sampled_from([None, 0.5, 1.0, 2.0]))
    cfg = FFNConfig(2, s, d, f, activation=act, bias=bias, norm=norm, experts=e, top_k=k,
                    shared_experts=data.draw(st.integers(0, 1)), capacity_factor=cap)  # fmt: skip
    report = verify(cfg, seed=data.draw(st.integers(0, 1000)))
    assert [c.name for c in report.checks if not c.ok] == []


EXPLAINED = [
    {"model": "bert-base"},
    {"model": "llama-3-8b"},
    {"model": "mixtral-8x7b"},
    {"model": "deepseek-v3", "dense_layers": 0},  # explain.py states layers·parameters: one group (mixed stacks: to do there)
    {"model": "t5-base", "norm": "post"},
    {"d_model": 8, "d_ff": "32"},
]


@pytest.mark.parametrize("options", EXPLAINED)
def test_explain_formulas_evaluate_to_the_core_values(options: dict[str, object]) -> None:
    ex = explain(analyze(layer_config(3, 6, **options)))  # type: ignore[arg-type]
    assert ex.formulas[0].name == "parameters"
    for f in ex.formulas:
        expression = f.substituted.replace("·", "*").replace("−", "-")
        assert re.fullmatch(r"[0-9+*()\- ]+", expression), expression
        assert eval(expression) == f.value, f.name  # noqa: S307 - digits and operators only, checked above
    drawn = "\n".join(ex.diagram)
    for stage in ex.report.stages:
        assert f"{stage.name} {stage.output_shape}" in drawn
    topics = " ".join(f.topic for f in ex.facts)
    for must in ("4 × d_model", "nonlinearity", "position-wise", "Conv1d", "LayerNorm", "Pre-LN", "ReLU", "GELU"):
        assert must in topics
