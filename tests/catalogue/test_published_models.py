"""Real models: gated FFNs, mixtures of experts, presets, config.json files and `explain`,
checked against published figures (shared/REFERENCE.md) and closed forms."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import DATA, Run, diagonal, examples
from hypothesis import given, settings
from hypothesis import strategies as st

from ffn_calc import api
from ffn_calc.api.model_list import model_catalogue
from ffn_calc.catalogue.presets import PRESETS
from ffn_calc.errors import ConfigError
from ffn_calc.inputs.config_json import read_config
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model import structure as names
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import FFNConfig, glu_matched_d_ff, make_config
from ffn_calc.model.training import TrainingOptions, train
from ffn_calc.prose.explanation import explain
from ffn_calc.verifier.run import verify


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
    assert any("family llama: LlamaMLP" in note for note in file.notes)


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
        ('{"hidden_size": 4096}', "is not one of the .* families.*-a/--activation, --bias/--no-bias"),
        ('{"hidden_size": 4096, "intermediate_size": 11008, "num_local_experts": 8}', "--experts, --top-k, --d-ff"),
        ('{"model_type": "llama", "hidden_size": "big", "intermediate_size": 11008}', "hidden_size"),
        ('{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "hidden_act": "mish"}', "mish"),
        ('{"model_type": "jetmoe", "hidden_size": 64}', "refused: JetMoeMoE adds one bias"),
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
    {"model": "deepseek-v3", "dense_layers": 0},
    {"model": "deepseek-v3"},  # a mixed stack: Σ layers·parameters of each group
    {"model": "gpt-oss-20b"},  # a router with a bias
    {"model": "qwen1.5-moe-a2.7b"},  # a shared-expert gate
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


# The shared-expert gate (Qwen1.5/Qwen2-MoE), the newer presets, the default dtype from torch_dtype,
# and config.json files completed by flags; every figure computed by hand in the comments.
# Qwen/Qwen1.5-MoE-A2.7B config.json, the fields ffn-calc reads.
QWEN15_MOE = {
    "architectures": ["Qwen2MoeForCausalLM"],
    "hidden_act": "silu",
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "model_type": "qwen2_moe",
    "moe_intermediate_size": 1408,
    "norm_topk_prob": False,
    "num_experts": 60,
    "num_experts_per_tok": 4,
    "num_hidden_layers": 24,
    "rms_norm_eps": 1e-06,
    "shared_expert_intermediate_size": 5632,
    "torch_dtype": "bfloat16",
}


def _write(tmp_path: Path, fields: dict[str, object]) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(fields))
    return str(path)


def _small(gate: bool = True, **kw: object) -> FFNConfig:
    """2 × 3 tokens, d_model 8, 4 SwiGLU experts of width 4, top-2, one shared expert."""
    options: dict[str, object] = {"d_ff": "4", "activation": "swiglu", "bias": False, "experts": 4, "top_k": 2, "shared_experts": 1, **kw}
    return replace(layer_config(2, 3, 8, **options), shared_expert_gate=gate)  # type: ignore[arg-type]


def test_qwen15_moe_config_by_hand(tmp_path: Path) -> None:
    r = analyze(layer_config(2, 16, config=_write(tmp_path, QWEN15_MOE)))
    cfg = r.config
    assert (cfg.d_ff, cfg.experts, cfg.top_k, cfg.shared_experts, cfg.shared_expert_gate) == (1408, 60, 4, 4, True)
    # routed 60·3·2048·1408 = 519,045,120; shared 3·2048·5632 = 34,603,008; router 2048·60 = 122,880;
    # gate 2048: 553,773,056.
    assert r.totals.params == 60 * 3 * 2048 * 1408 + 3 * 2048 * 5632 + 2048 * 60 + 2048 == 553_773_056
    # per token: routed 4·6·2048·1408 = 69,206,016; shared 6·2048·5632 = 69,206,016; router
    # 2·2048·60 = 245,760; gate 2·2048 = 4,096: 138,661,888; × 32 tokens = 4,437,180,416.
    assert r.totals.matmul_flops == 32 * (4 * 6 * 2048 * 1408 + 6 * 2048 * 5632 + 2 * 2048 * 60 + 2 * 2048) == 4_437_180_416
    gate = r.stage(names.SHARED_EXPERT_GATE)
    assert gate.matmul == (32, 2048, 1) and gate.matmul_flops == 2 * 32 * 2048 and gate.elementwise_flops == 0
    assert [(t.name, t.shape, t.role) for t in gate.weights] == [(names.W_SHARED_EXPERT_GATE, (2048, 1), "weight")]
    scale = r.stage(names.SHARED_EXPERT_SCALE)
    assert scale.elementwise_flops == 4 * 32 + 32 * 2048  # sigmoid 4 per token, the multiply 1 per element
    assert scale.inputs == (names.SHARED_EXPERT_GATE, "shared_down")
    assert r.stage("combine").inputs[-1] == names.SHARED_EXPERT_SCALE
    assert cfg.dtype == "bfloat16" and any("torch_dtype" in line for line in cfg.origin)
    assert any("shared_expert_gate" in line for line in cfg.origin)


def test_the_gate_adds_d_params_and_its_flops_by_hand() -> None:
    on, off = analyze(_small(True)), analyze(_small(False))
    n, d = 6, 8
    assert on.totals.params - off.totals.params == d
    assert on.totals.active_params - off.totals.active_params == d
    assert on.totals.matmul_flops - off.totals.matmul_flops == 2 * n * d  # (6, 8)·(8, 1)
    assert on.totals.elementwise_flops - off.totals.elementwise_flops == 4 * n + n * d  # 24 + 48
    assert on.totals.weight_bytes - off.totals.weight_bytes == 4 * d  # float32


def test_the_gates_backward_and_saved_tensors_by_hand() -> None:
    t = train(_small(), TrainingOptions())
    ops = {(op.stage, op.kind): op for op in t.backward}
    n, d = 6, 8
    # dys = σ·dy (1 per element), dσ = Σ dy·ys (2 per element), dg = dσ·σ·(1 − σ) (3 per token)
    assert ops[(names.SHARED_EXPERT_SCALE, "elementwise")].elementwise_flops == 3 * n * d + 3 * n == 162
    assert ops[(names.SHARED_EXPERT_GATE, "input-grad")].matmul == (n, 1, d)
    assert ops[(names.SHARED_EXPERT_GATE, "weight-grad")].matmul == (d, n, 1)
    # the input is read by shared_gate, shared_up, shared_expert_gate, router and dispatch: 4 adds
    assert ops[("input", "grad-sum")].elementwise_flops == 4 * n * d
    off = train(_small(False), TrainingOptions())
    assert t.totals.backward_matmul_flops - off.totals.backward_matmul_flops == 2 * (2 * n * d)
    saved = {s.name: s for s in t.saved}
    assert saved[names.SHARED_EXPERT_GATE].shape == (2, 3, 1) and saved[names.SHARED_EXPERT_GATE].bytes == 4 * n
    assert "gate's gradient" in saved["shared_down"].reason
    assert t.totals.saved_activation_bytes - off.totals.saved_activation_bytes == 4 * n + 4 * n * d


# The fast loop: without a norm with the input's gradient, with pre-RMSNorm without (helpers.diagonal).
@pytest.mark.parametrize(("norm", "input_grad"), diagonal(["none", "pre"], [True, False]))
def test_verify_observes_the_gate_forward_and_backward(norm: str, input_grad: bool) -> None:
    cfg = _small(norm=norm, norm_type="rms" if norm == "pre" else None)
    report = api.verify(cfg, backward=True, input_grad=input_grad)
    assert report.ok, [c for c in report.checks if not c.ok]
    names_checked = " ".join(c.name for c in report.checks)
    assert names.SHARED_EXPERT_SCALE in names_checked and "W_shared_expert_gate" in names_checked


def test_verify_tp_with_the_gate_replicated() -> None:
    report = api.verify(_small(activation="gelu", bias=True), tp=2)
    assert report.ok


def test_the_gate_needs_shared_experts_and_has_a_flag(cli: Run) -> None:
    with pytest.raises(ConfigError) as e:
        layer_config(1, 4, 8, experts=4, top_k=2, shared_expert_gate=True)
    assert e.value.argument == "--shared-expert-gate"
    code, out, _ = cli("shapes", "1", "4", "8", "--experts", "4", "--top-k", "2", "--shared-experts", "1", "--shared-expert-gate", "-f", "json")
    doc = json.loads(out)
    assert code == 0 and doc["config"]["shared_expert_gate"] is True
    assert doc["conventions"]["shared_expert_gate_sigmoid_flops_per_token"] == 4
    assert any(s["name"] == names.SHARED_EXPERT_GATE and s["params"] == 8 for s in doc["stages"])
    # a preset's gate goes with its shared experts; --no-shared-expert-gate turns it off
    assert not layer_config(1, 1, model="qwen1.5-moe-a2.7b", shared_experts=0).shared_expert_gate
    assert not layer_config(1, 1, model="qwen1.5-moe-a2.7b", shared_expert_gate=False).shared_expert_gate


def test_qwen3_moe_and_deepseek_have_no_gate(tmp_path: Path) -> None:
    qwen3 = {**QWEN15_MOE, "model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"]}
    assert not layer_config(1, 1, config=_write(tmp_path, qwen3)).shared_expert_gate
    assert not layer_config(1, 1, model="deepseek-v3").shared_expert_gate


@pytest.mark.parametrize(
    ("name", "params", "dtype"),
    [
        ("qwen1.5-moe-a2.7b", 553_773_056, "bfloat16"),  # above
        # 64·3·3584·2560 = 1,761,607,680 + shared 3·3584·20480 = 220,200,960 + router 3584·64 = 229,376 + gate 3,584
        ("qwen2-57b-a14b", 1_982_041_600, "bfloat16"),
        ("qwen3-30b-a3b", 604_241_920, "bfloat16"),  # 128·3·2048·768 = 603,979,776 + router 2048·128 = 262,144
        ("deepseek-v2-lite", 571_080_704, "bfloat16"),  # 64·3·2048·1408 = 553,648,128 + 2·8,650,752 + 2048·64
        ("olmoe-1b-7b", 402_784_256, "float32"),  # 64·3·2048·1024 = 402,653,184 + router 2048·64 = 131,072
        ("llama-3.2-1b", 50_331_648, "bfloat16"),  # 3·2048·8192
        ("gemma-2-9b", 154_140_672, "float32"),  # 3·3584·14336
    ],
)
def test_new_presets_per_layer_by_hand(name: str, params: int, dtype: str) -> None:
    cfg = layer_config(1, 1, model=name)
    r = analyze(cfg)
    assert r.totals.params == params
    assert cfg.dtype == dtype and cfg.norm_type == "rms"
    assert r.totals.weight_bytes == params * {"bfloat16": 2, "float32": 4}[dtype]


def test_qwen_presets_gate_and_active_params() -> None:
    r = analyze(layer_config(1, 1, model="qwen2-57b-a14b"))
    assert r.config.shared_expert_gate and r.config.shared_experts == 8  # 20480 = 8 × 2560
    # active: 8 routed of 3·3584·2560 = 27,525,120, + shared 220,200,960 + router 229,376 + gate 3,584
    assert r.totals.active_params == 8 * 27_525_120 + 220_200_960 + 229_376 + 3_584


def test_preset_dtype_is_the_default_and_a_flag_overrides_it() -> None:
    mixtral = layer_config(1, 1, model="mixtral-8x7b")
    assert mixtral.dtype == "bfloat16"
    assert any(line.startswith("dtype bfloat16 from preset mixtral-8x7b") for line in mixtral.origin)
    # 1,409,318,912 parameters per layer × 2 bytes × 32 layers
    assert analyze(mixtral).model.weight_bytes == 1_409_318_912 * 2 * 32
    forced = layer_config(1, 1, model="mixtral-8x7b", dtype="float32")
    assert forced.dtype == "float32" and any("flags override: dtype" in line for line in forced.origin)
    assert layer_config(1, 1, model="llama-2-7b").dtype == "float16"
    assert layer_config(1, 1, model="bert-base").dtype == "float32"  # no torch_dtype published
    assert layer_config(1, 1, 8).dtype == "float32"


def test_config_torch_dtype_and_one_rule_in_every_command(cli: Run) -> None:
    path = str(DATA / "llama-3-8b.config.json")
    assert layer_config(1, 1, config=path).dtype == "bfloat16"
    for command in ("shapes", "train", "roofline"):
        extra = ["--gpu", "a100-80gb"] if command == "roofline" else []
        code, out, _ = cli(command, "1", "8", "--config", path, *extra, "-f", "json")
        doc = json.loads(out)
        config = doc["config"] if "config" in doc else doc["report"]["config"]
        assert code == 0 and config["dtype"] == "bfloat16", command
        code, out, _ = cli(command, "1", "8", "16", *extra, "-f", "json")
        doc = json.loads(out)
        config = doc["config"] if "config" in doc else doc["report"]["config"]
        assert code == 0 and config["dtype"] == "float32", command


def test_newer_dtype_key_and_unknown_dtype(tmp_path: Path) -> None:
    base = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128}
    assert layer_config(1, 1, config=_write(tmp_path, {**base, "dtype": "float16"})).dtype == "float16"
    cfg = layer_config(1, 1, config=_write(tmp_path, {**base, "torch_dtype": "float4"}))
    assert cfg.dtype == "float32" and any("float4" in line for line in cfg.origin)


def test_bloom_and_falcon_get_their_codes_width() -> None:
    bloom = layer_config(1, 1, config=str(DATA / "bloom-560m.config.json"))
    # BloomMLP: 4 × 1024, gelu (tanh), biases: 2·1024·4096 + 4096 + 1024 = 8,393,728
    assert (bloom.d_ff, bloom.activation, bloom.bias, bloom.layers, bloom.norm_type) == (4096, "gelu_tanh", True, 24, "layer")
    assert analyze(bloom).totals.params == 8_393_728
    assert any("4 × hidden_size" in line for line in bloom.origin)
    falcon = layer_config(1, 1, config=str(DATA / "falcon-7b.config.json"))
    # 4 × 4544 = 18176, GELU, no biases: 2·4544·18176 = 165,183,488
    assert (falcon.d_ff, falcon.activation, falcon.bias, falcon.dtype) == (18176, "gelu", False, "bfloat16")
    assert analyze(falcon).totals.params == 165_183_488


def test_a_flag_completes_or_overrides_a_config(cli: Run, tmp_path: Path) -> None:
    code, out, err = cli("shapes", "1", "1", "--config", str(DATA / "bloom-560m.config.json"), "--d-ff", "2048", "-f", "json")
    doc = json.loads(out)
    assert code == 0, err
    assert doc["config"]["d_ff"] == 2048 and doc["totals"]["params"] == 2 * 1024 * 2048 + 2048 + 1024  # 4,197,376
    bare = _write(tmp_path, {"hidden_size": 64, "model_type": "somefamily"})
    described = {"activation": "relu", "bias": True}
    assert layer_config(1, 1, config=bare, d_ff="256", **described).d_ff == 256  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no FFN width.*--d-ff"):
        layer_config(1, 1, config=bare, **described)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'somefamily' is not one of"):
        layer_config(1, 1, config=bare, d_ff="256")
