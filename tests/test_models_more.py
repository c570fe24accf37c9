"""Issue 11, part: the shared-expert gate (Qwen1.5/Qwen2-MoE), the new presets, the default
dtype from torch_dtype, and config.json files completed by flags. Every figure is computed by
hand in the comments and compared with the dataclasses or the parsed JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ffn_calc import api
from ffn_calc.errors import ConfigError
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model import structure as names
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.training import TrainingOptions, train

DATA = Path(__file__).parent / "data"

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


# --- the shared-expert gate ------------------------------------------------------------------------


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


def _small(gate: bool = True, **kw: object) -> FFNConfig:
    """2 × 3 tokens, d_model 8, 4 SwiGLU experts of width 4, top-2, one shared expert."""
    options: dict[str, object] = {"d_ff": "4", "activation": "swiglu", "bias": False, "experts": 4, "top_k": 2, "shared_experts": 1, **kw}
    return replace(layer_config(2, 3, 8, **options), shared_expert_gate=gate)  # type: ignore[arg-type]


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


@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("norm", ["none", "pre"])
def test_verify_observes_the_gate_forward_and_backward(norm: str, input_grad: bool) -> None:
    cfg = _small(norm=norm, norm_type="rms" if norm == "pre" else None)
    report = api.verify(cfg, backward=True, input_grad=input_grad)
    assert report.ok, [c for c in report.checks if not c.ok]
    names_checked = " ".join(c.name for c in report.checks)
    assert names.SHARED_EXPERT_SCALE in names_checked and "W_shared_expert_gate" in names_checked


def test_verify_tp_with_the_gate_replicated() -> None:
    report = api.verify(_small(activation="gelu", bias=True), tp=2)
    assert report.ok


def test_the_gate_needs_shared_experts_and_has_a_flag(cli) -> None:  # type: ignore[no-untyped-def]
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


# --- presets ---------------------------------------------------------------------------------------


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


# --- the default dtype -----------------------------------------------------------------------------


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


def test_config_torch_dtype_and_one_rule_in_every_command(cli) -> None:  # type: ignore[no-untyped-def]
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
    base = {"hidden_size": 64, "intermediate_size": 128}
    assert layer_config(1, 1, config=_write(tmp_path, {**base, "dtype": "float16"})).dtype == "float16"
    cfg = layer_config(1, 1, config=_write(tmp_path, {**base, "torch_dtype": "float4"}))
    assert cfg.dtype == "float32" and any("float4" in line for line in cfg.origin)


# --- config completion -----------------------------------------------------------------------------


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


def test_a_flag_completes_or_overrides_a_config(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("shapes", "1", "1", "--config", str(DATA / "bloom-560m.config.json"), "--d-ff", "2048", "-f", "json")
    doc = json.loads(out)
    assert code == 0, err
    assert doc["config"]["d_ff"] == 2048 and doc["totals"]["params"] == 2 * 1024 * 2048 + 2048 + 1024  # 4,197,376
    bare = _write(tmp_path, {"hidden_size": 64, "model_type": "somefamily"})
    assert layer_config(1, 1, config=bare, d_ff="256").d_ff == 256
    with pytest.raises(ConfigError, match="no FFN width.*--d-ff"):
        layer_config(1, 1, config=bare)
