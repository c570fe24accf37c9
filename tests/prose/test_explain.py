"""`explain`: the diagram's branches, `--compare`, and the interview answers' numbers, checked on
the dataclasses and the JSON (numbers, not rendered text), against `analyze`."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from helpers import Run

from ffn_calc import api
from ffn_calc.errors import ConfigError
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model.conventions import activation_flops
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import FFNConfig, glu_matched_d_ff
from ffn_calc.prose.diagram import WIDTH
from ffn_calc.prose.explanation import explain
from ffn_calc.prose.interview import shown

LAYERS = [
    {"model": "llama-2-7b"},
    {"model": "bert-base", "norm": "post"},
    {"model": "mixtral-8x7b"},
    {"model": "deepseek-v3", "norm": "pre"},
    {"model": "qwen1.5-moe-a2.7b"},
    {"model": "llama-3-8b"},
    {"model": "deepseek-v2-lite"},
    {"d_model": 8, "d_ff": "32", "activation": "geglu", "fused": True},
    {"d_model": 768, "activation": "swiglu", "d_ff": "glu", "multiple_of": 256, "norm": "pre", "norm_type": "rms"},
    {"d_model": 64, "experts": 8, "top_k": 2},  # experts of a plain activation: their output stage is linear2
    {"d_model": 64, "experts": 8, "top_k": 2, "activation": "gelu", "shared_experts": 1, "shared_expert_gate": True},
]


def layer(options: dict[str, object], batch: int = 1, seq_len: int = 512) -> FFNConfig:
    opts = dict(options)
    d_model = opts.pop("d_model", None)
    return layer_config(batch, seq_len, d_model, **opts)  # type: ignore[arg-type]


# --- the diagram ----------------------------------------------------------------------------------


def branch_row(lines: tuple[str, ...], left: str, right: str) -> bool:
    """Some line of the diagram has the output `left` and, further right on the same line, `right`."""
    return any(re.search(rf"^{re.escape(left)} .*\s{re.escape(right)} ", line) for line in lines)


@pytest.mark.parametrize("options", LAYERS, ids=str)
def test_diagram_fits_80_columns_and_names_every_stage(options: dict[str, object]) -> None:
    ex = explain(analyze(layer(options)))
    assert max(len(line) for line in ex.diagram) <= WIDTH
    for stage in ex.report.stages:
        assert any(line.startswith(f"{stage.name} {stage.output_shape}") or f" {stage.name} {stage.output_shape}" in line for line in ex.diagram)


def test_glu_gate_and_up_are_two_branches_meeting_at_the_product() -> None:
    ex = explain(analyze(layer({"model": "llama-2-7b"})))
    d = ex.diagram
    assert branch_row(d, "gate", "up")  # side by side on one line, not a chain gate → up
    fork = next(i for i, line in enumerate(d) if "┐" in line)
    join = next(i for i, line in enumerate(d) if "┘" in line)
    assert d[fork - 1].startswith("input ") and fork < join
    assert "⊙" in d[join + 1] and d[join + 3].startswith("glu ")


def test_plain_ffn_is_a_chain() -> None:
    d = explain(analyze(layer({"model": "bert-base"}))).diagram
    assert not any("┐" in line for line in d)
    assert [line.split()[0] for line in d if not line.startswith(" ")] == ["input", "linear1", "activation", "linear2"]


@pytest.mark.parametrize("model", ["deepseek-v3", "qwen1.5-moe-a2.7b", "mixtral-8x7b"])
def test_moe_router_beside_experts_and_shared_beside_routed(model: str) -> None:
    r = analyze(layer({"model": model}))
    d = explain(r).diagram
    top = d[: d.index("")]  # the layer; each kind of expert is drawn after it
    fork = next(line for line in top if "┐" in line)
    columns = [i for i, ch in enumerate(fork) if ch in "├┬┐"]
    assert len(columns) == (3 if model == "deepseek-v3" else 2)  # deepseek: router | routed experts | shared

    def column(name: str) -> int:
        return next(line.index(name + " (") for line in top if re.search(rf"(^|\s){name} \(", line))

    assert column("router") == 0
    assert column("expert_down") > 0 if model != "qwen1.5-moe-a2.7b" else column("expert_down") == 0
    if r.config.shared_experts:
        assert column("shared_down") > column("router")  # beside the routed path
    # inside an expert: gate and up side by side
    assert branch_row(d, "expert_gate", "expert_up")
    if r.config.shared_experts:
        assert branch_row(d, "shared_gate", "shared_up")


# --- compare --------------------------------------------------------------------------------------


def check_differences(cmp: api.Comparison, a: api.FFNReport, b: api.FFNReport) -> None:
    assert cmp.a.report == a and cmp.b.report == b
    got = {d.quantity: d for d in cmp.differences}
    for name, x, y in [
        ("params", a.totals.params, b.totals.params),
        ("active_params", a.totals.active_params, b.totals.active_params),
        ("model_params", a.model.params, b.model.params),
        ("matmul_flops_per_token", a.totals.matmul_flops_per_token, b.totals.matmul_flops_per_token),
        ("flops_per_token", a.totals.flops_per_token, b.totals.flops_per_token),
        ("weight_bytes", a.totals.weight_bytes, b.totals.weight_bytes),
        ("peak_bytes", a.totals.peak_bytes, b.totals.peak_bytes),
    ]:
        assert (got[name].a, got[name].b) == (x, y)
        assert x is not None and y is not None
        assert got[name].difference == y - x
        assert got[name].percent == pytest.approx(100 * (y - x) / x)


def test_compare_two_presets() -> None:
    cmp = api.compare(1, 512, "llama-2-7b", "mistral-7b")
    check_differences(cmp, analyze(layer_config(1, 512, model="llama-2-7b")), analyze(layer_config(1, 512, model="mistral-7b")))
    assert "presets" in cmp.rule


def test_compare_two_presets_takes_shared_flags() -> None:
    cmp = api.compare(2, 64, "gpt2", "mixtral-8x7b", dtype="bfloat16", norm="pre")
    a = analyze(layer_config(2, 64, model="gpt2", dtype="bfloat16", norm="pre"))
    b = analyze(layer_config(2, 64, model="mixtral-8x7b", dtype="bfloat16", norm="pre"))
    check_differences(cmp, a, b)


@pytest.mark.parametrize("d_model", [512, 768, 4096])
def test_compare_activations_at_equal_parameters(d_model: int) -> None:
    cmp = api.compare(1, 512, "relu", "swiglu", d_model, bias=False)
    plain = layer_config(1, 512, d_model, activation="relu", bias=False, d_ff="4x")
    gated = layer_config(1, 512, d_model, activation="swiglu", bias=False, d_ff="glu")
    assert plain.d_ff == 4 * d_model and gated.d_ff == glu_matched_d_ff(d_model).value
    check_differences(cmp, analyze(plain), analyze(gated))
    params = {d.quantity: d for d in cmp.differences}["params"]
    assert abs(params.percent or 0) < 0.1  # equal parameters, up to int() rounding
    assert "LLaMA" in cmp.rule and "4 × d_model" in cmp.rule


def test_compare_activations_with_multiple_of() -> None:
    cmp = api.compare(1, 8, "gelu", "swiglu", 4096, multiple_of=256, bias=False)
    assert cmp.b.report.config.d_ff == 11008 and cmp.a.report.config.d_ff == 16384


@pytest.mark.parametrize(
    ("names", "argument"),
    [(("relu", "llama-2-7b"), "--compare"), (("relu", "swigl"), "--compare"), (("llama-2-7b", "mistral-7b"), "D_MODEL")],
)
def test_compare_refuses(names: tuple[str, str], argument: str) -> None:
    with pytest.raises(api.ConfigError) as e:
        api.compare(1, 8, *names, 512)
    assert e.value.argument == argument


def test_compare_json(cli: Run) -> None:
    code, out, err = cli("explain", "1", "512", "768", "--compare", "relu", "swiglu", "-f", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "ffn-calc/compare/1"
    rows = {r["quantity"]: r for r in doc["differences"]}
    assert rows["params"]["difference"] == doc["b"]["totals"]["params"] - doc["a"]["totals"]["params"]
    assert doc["a"]["config"]["d_ff"] == 3072 and doc["b"]["config"]["d_ff"] == 2048


# --- the interview answers ------------------------------------------------------------------------


def evaluate(expression: str) -> float:
    text = expression.replace("·", "*").replace("−", "-")
    assert re.fullmatch(r"[0-9+*/()\- .]+", text), expression
    return eval(text)  # type: ignore[no-any-return]  # noqa: S307 - digits and operators only, checked above


@pytest.mark.parametrize("options", LAYERS, ids=str)
def test_every_interview_number_evaluates_and_is_printed(options: dict[str, object]) -> None:
    ex = explain(analyze(layer(options)))
    answered = [f for f in ex.facts if f.values]
    assert len(answered) >= 6
    for fact in answered:
        rest = fact.answer
        for v in fact.values:
            assert evaluate(v.expression) == pytest.approx(v.value, rel=1e-12), (fact.topic, v.name)
            assert shown(v) in fact.answer, (fact.topic, v.name)
        pairs = [f"{v.expression} = {shown(v)}" for v in fact.values]
        for text in sorted(pairs, key=len, reverse=True) + sorted((shown(v) for v in fact.values), key=len, reverse=True):
            rest = rest.replace(text, "")  # longest first: "1 = 1" must not eat into "11008·1 = 11,008"
        rest = re.sub(r"\b(b?float|int)\d+\b", "", rest)  # a dtype's name (float32) is no number
        # Every number left is a constant of a formula (8·d², 2/3) or a year: multi-digit numbers come from values.
        leftover = [x for x in re.findall(r"\d[\d,.]*", rest) if len(x.rstrip(".,")) > 1 and not re.fullmatch(r"(19|20)\d\d", x.rstrip(".,"))]
        assert not leftover, (fact.topic, leftover)


@pytest.mark.parametrize("options", LAYERS, ids=str)
def test_interview_numbers_are_the_cores(options: dict[str, object]) -> None:
    cfg = layer(options)
    ex = explain(analyze(cfg))
    v = {(f.topic.split()[0] + " " + f.topic.split()[-1], x.name): x.value for f in ex.facts for x in f.values}
    d, f = cfg.d_model, cfg.d_ff
    bare = {"batch": 1, "seq_len": 1, "bias": False, "norm": "none", "experts": 0, "top_k": 0, "shared_experts": 0}
    bare.update(shared_expert_gate=False, capacity_factor=None, layers=1, fused=False)

    def weights(act: str, width: int) -> int:
        return analyze(replace(cfg, activation=act, d_ff=width, **bare)).totals.weight_params  # type: ignore[arg-type]

    four = weights("relu", 4 * d)
    assert four == 8 * d * d
    assert v[("Why d_model", "4x FFN weights")] == four
    assert v[("Why d_model", "attention weights")] == 4 * d * d
    llama = glu_matched_d_ff(d, 256).value
    assert v[("Why GLU", "LLaMA d_ff")] == llama
    assert v[("Why GLU", "LLaMA GLU weights")] == weights("swiglu", llama)
    assert v[("Why GLU", "rounding over 8d2")] == pytest.approx(100 * (weights("swiglu", llama) - four) / four)
    assert v[("Why parameters", "this FFN params")] == analyze(cfg).totals.params
    assert v[("Why parameters", "4x FFN share")] == pytest.approx(200 / 3)
    assert v[("ReLU SwiGLU", "plain weights")] == weights("gelu", f) == 2 * d * f
    assert v[("ReLU SwiGLU", "GLU weights")] == weights("swiglu", f) == 3 * d * f
    for act in ("relu", "gelu", "swiglu"):
        assert v[
            ("ReLU SwiGLU", f"{act.replace('relu', 'ReLU').replace('gelu', 'GELU').replace('swiglu', 'SwiGLU')} FLOPs per token")
        ] == f * activation_flops(act)
    kind = cfg.norm_type
    normed = analyze(replace(cfg, batch=1, seq_len=1, norm="pre", layers=1))
    assert v[("Pre-LN post-LN", "norm params")] == normed.totals.norm_params
    assert v[("Pre-LN post-LN", "norm FLOPs per token")] == normed.stage("layernorm" if kind == "layer" else "rmsnorm").elementwise_flops
    assert v[("LayerNorm BatchNorm", "LayerNorm params")] == 2 * d
    assert v[("LayerNorm BatchNorm", "tokens")] == cfg.tokens


def test_compare_two_norm_placements_and_two_kinds_of_norm() -> None:
    d = 64
    # none against post: a LayerNorm's γ and β, 2·d parameters; and its FLOPs per token, 7·d + 2, plus the residual add, d
    placed = api.compare(1, 16, "none", "post", d)
    params = next(x for x in placed.differences if x.quantity == "params")
    assert params.difference == 2 * d
    per_token = next(x for x in placed.differences if x.quantity == "flops_per_token")
    assert per_token.difference == 7 * d + 2 + d
    assert (placed.a.label, placed.b.label) == ("norm none", "norm post")
    # LayerNorm against RMSNorm, both before the FFN: RMSNorm has no β (d fewer) and costs 4·d + 2 per row, not 7·d + 2
    kinds = api.compare(1, 16, "layer", "rms", d)
    assert next(x for x in kinds.differences if x.quantity == "params").difference == -d
    assert next(x for x in kinds.differences if x.quantity == "flops_per_token").difference == (4 * d + 2) - (7 * d + 2)
    assert kinds.a.report.config.norm == kinds.b.report.config.norm == "pre"
    with pytest.raises(ConfigError, match="two of one kind"):
        api.compare(1, 16, "pre", "rms", d)


# --- the layer around the FFN (issue 18, part 5) --------------------------------------------------


def _values(model: str) -> dict[tuple[str, str], int | float]:
    ex = explain(analyze(api.layer(1, 1, model=model)))
    return {(f.topic, v.name): v.value for f in ex.facts for v in f.values}


SHARE = "Why the FFN holds about two thirds of a layer's parameters"


def test_llama_3_8b_ffn_share_with_grouped_query_attention() -> None:
    v = _values("llama-3-8b")
    # REFERENCE.md: 2·d·n_h·h + 2·d·n_kv·h = 2·4096·32·128 + 2·4096·8·128 = 33,554,432 + 8,388,608
    assert (v[SHARE, "Q and O"], v[SHARE, "K and V"]) == (33_554_432, 8_388_608)
    assert v[SHARE, "attention params"] == 41_943_040
    # FFN 3·4096·14336 = 176,160,768; 176,160,768 / (176,160,768 + 41,943,040) = 0.80769…
    assert v[SHARE, "this FFN share"] == pytest.approx(100 * 176_160_768 / 218_103_808) == pytest.approx(80.769, abs=1e-3)


def test_llama_2_70b_ffn_share_with_grouped_query_attention() -> None:
    v = _values("llama-2-70b")
    # 2·8192·64·128 = 134,217,728; 2·8192·8·128 = 16,777,216; FFN 3·8192·28672 = 704,643,072
    assert v[SHARE, "attention params"] == 134_217_728 + 16_777_216 == 150_994_944
    assert v[SHARE, "this FFN share"] == pytest.approx(100 * 704_643_072 / 855_638_016) == pytest.approx(82.353, abs=1e-3)


def test_deepseek_v3_mla_attention_params_by_hand() -> None:
    v = _values("deepseek-v3")
    # q_a 7168·1536 + q_a_norm 1536 + q_b 1536·128·192 + kv_a 7168·576 + kv_a_norm 512 + kv_b 512·128·256 + o 128·128·7168
    hand = 11_010_048 + 1_536 + 37_748_736 + 4_128_768 + 512 + 16_777_216 + 117_440_512
    assert v[SHARE, "attention params"] == hand == 187_107_328


def test_a_layer_without_an_attention_shape_assumes_four_d_squared() -> None:
    ex = explain(analyze(api.layer(1, 1, 512)))
    fact = next(f for f in ex.facts if f.topic == SHARE)
    assert "no attention shape known" in fact.answer


def test_training_memory_answer_16_bytes_per_parameter() -> None:
    v = _values("llama-2-7b")
    topic = "How much memory training this layer takes, and why 16 bytes per parameter"
    p = 3 * 4096 * 11008
    assert v[topic, "bytes per param"] == 16
    assert v[topic, "state total"] == 16 * p == 2_164_260_864


def test_config_json_carries_the_attention_shape() -> None:
    from ffn_calc.model.attention import Attention

    llama = api.layer(1, 1, config="tests/data/llama-3-8b.config.json")
    assert llama.attention == Attention(32, 8, 128)  # num_attention_heads, num_key_value_heads, head_dim = 4096 / 32
    falcon = api.layer(1, 1, config="tests/data/falcon-7b.config.json")
    assert falcon.attention == Attention(71, 1, 64)  # multi_query: one key/value head
    ds = api.layer(1, 1, config="tests/data/deepseek-v3.config.json")
    assert ds.attention is not None and ds.attention.params(7168) == 187_107_328  # MLA, as the preset
