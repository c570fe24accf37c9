"""RMSNorm beside LayerNorm: the norm registry, parameters against published counts, FLOPs
against hand-computed cases, training, config.json detection, and `verify` catching a wrong one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import DATA, Run, diagonal, examples
from hypothesis import given, settings
from hypothesis import strategies as st

from ffn_calc.api.sweep_executor import LineError, line_rows
from ffn_calc.catalogue.presets import PRESETS
from ffn_calc.errors import ConfigError
from ffn_calc.inputs.config_json import read_config
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model import structure as names
from ffn_calc.model.conventions import CONVENTION_SUMMARY, conventions_dict
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import FFNConfig, make_config
from ffn_calc.model.norms import NORM_TYPES
from ffn_calc.model.training import TrainingOptions, train
from ffn_calc.verifier import forward as vforward
from ffn_calc.verifier import kernels
from ffn_calc.verifier.run import verify


def _params(**kw: object) -> int:
    return analyze(layer_config(1, 1, **kw)).totals.params  # type: ignore[arg-type]


# --- published parameter counts -------------------------------------------------------------------


def test_t5_v1_1_layer_ff_is_rmsnorm_plus_gated_dense() -> None:
    """Hugging Face T5LayerFF = T5LayerNorm (RMS, 768) + T5DenseGatedActDense: 4,719,360."""
    cfg = layer_config(1, 1, model="t5-v1_1-base", norm="pre")
    r = analyze(cfg)
    assert cfg.norm_type == "rms"
    assert r.totals.params == 4_719_360 == 3 * 768 * 2048 + 768
    assert r.stage("rmsnorm").norm_params == 768 and [w.name for w in r.stage("rmsnorm").weights] == [names.RMS_GAMMA]
    assert _params(model="t5-v1_1-base", norm="pre", norm_type="layer") == 4_720_128  # LayerNorm's γ and β


@pytest.mark.parametrize("name", [n for n in PRESETS if n.startswith("llama")])
def test_llama_presets_with_pre_norm_add_exactly_d(name: str) -> None:
    d = PRESETS[name].d_model
    bare, pre = analyze(layer_config(1, 1, model=name)), analyze(layer_config(1, 1, model=name, norm="pre"))
    assert pre.totals.params - bare.totals.params == d == pre.totals.norm_params
    assert pre.model.params - bare.model.params == d * (PRESETS[name].layers + PRESETS[name].dense_layers)


def test_llama_2_7b_pre_rmsnorm() -> None:
    assert _params(model="llama-2-7b") == 135_266_304
    assert _params(model="llama-2-7b", norm="pre") == 135_266_304 + 4096


def test_presets_say_their_norm_and_keep_the_bare_ffn() -> None:
    rms = {"t5-base", "t5-v1_1-base", "mistral-7b", "mixtral-8x7b", "qwen2-7b", "gemma-7b", "deepseek-v3"}
    rms |= {"qwen1.5-moe-a2.7b", "qwen2-57b-a14b", "qwen3-30b-a3b", "deepseek-v2-lite", "olmoe-1b-7b", "gemma-2-9b"}
    rms |= {"gpt-oss-20b", "gpt-oss-120b", "qwen3-8b", "qwen3-32b", "qwen3-235b-a22b", "gemma-3-27b", "phi-4", "deepseek-r1", "kimi-k2"}
    for p in PRESETS.values():
        expected = "rms" if p.name in rms or p.name.startswith("llama") else "layer"
        assert p.norm_type == expected, p.name
        assert NORM_TYPES[p.norm_type].label in p.source, p.name  # the source says it
        assert layer_config(1, 1, model=p.name).norm == "none"  # a preset alone: the bare FFN, as before


# --- FLOPs, by hand --------------------------------------------------------------------------------


def test_rmsnorm_small_case_by_hand() -> None:
    """2 × 3 tokens, d 8, d_ff 32, ReLU with biases, pre-RMSNorm."""
    r = analyze(make_config(2, 3, 8, 32, norm="pre", norm_type="rms"))
    assert [s.name for s in r.stages] == ["input", "rmsnorm", "linear1", "activation", "linear2", "residual"]
    rms = r.stage("rmsnorm")
    assert (rms.op, rms.params, rms.macs) == ("rmsnorm", 8, 0)
    # 6 rows × (4 per element × 8: square, sum, normalise, scale; + 2 per row: eps add, rsqrt)
    assert rms.elementwise_flops == 6 * (4 * 8 + 2) == 204
    # linear1 2·6·8·32 + 6·32 bias, ReLU 6·32, linear2 2·6·32·8 + 6·8 bias, residual 6·8
    assert r.totals.flops == (3072 + 192) + 192 + (3072 + 48) + 48 + 204 == 6828
    assert r.totals.params == 2 * 8 * 32 + 32 + 8 + 8 == 560
    assert rms.formula == "n = RMSNorm(x)"
    post = analyze(make_config(2, 3, 8, 32, norm="post", norm_type="rms"))
    assert [s.name for s in post.stages][-1] == "rmsnorm" and post.totals.flops == 6828


def test_rmsnorm_training_by_hand() -> None:
    t = train(make_config(2, 3, 8, 32, norm="pre", norm_type="rms"), TrainingOptions())
    (op,) = [op for op in t.backward if op.stage == "rmsnorm"]
    assert op.elementwise_flops == 6 * (8 * 8 + 1) == 390  # dγ 2, γ·dy 1, ·x̂ 1, sum 1, x̂·mean 1, subtract 1, ÷rms 1; ÷d per row
    saved = {s.name: s for s in t.saved}
    assert saved[names.RMSNORM_STATS].shape == (6, 1) and saved[names.RMSNORM_STATS].bytes == 6 * 4
    assert names.LAYERNORM_STATS not in saved
    assert "RMSNorm's input" in saved[names.INPUT].reason
    layer = train(make_config(2, 3, 8, 32, norm="pre"), TrainingOptions())
    assert {s.name: s.bytes for s in layer.saved}[names.LAYERNORM_STATS] == 6 * 8
    assert t.totals.saved_activation_bytes == layer.totals.saved_activation_bytes - 6 * 4


def test_the_registry_is_the_convention() -> None:
    c = conventions_dict()
    assert (c["rmsnorm_flops_per_element"], c["rmsnorm_flops_per_row"]) == (4, 2)
    assert (c["layernorm_flops_per_element"], c["layernorm_flops_per_row"]) == (7, 2)
    assert "LayerNorm 7 FLOPs/element + 2/row, RMSNorm 4 FLOPs/element + 2/row" in CONVENTION_SUMMARY
    for n in NORM_TYPES.values():
        assert n.saved_bytes_per_row == 4 * len(n.stats)


def test_the_verifiers_table_covers_the_registry() -> None:
    """One kernel record per registered norm (forward, backward and reference in one place), its
    statistics the registry's, and the weights the verifier makes the registry's."""
    assert set(kernels.NORM_KERNELS) == set(NORM_TYPES)
    with pytest.raises(KeyError, match="no NumPy kernel for the norm 'batch'"):
        kernels.norm_kernel("batch")
    for name, kind in NORM_TYPES.items():
        assert kernels.NORM_KERNELS[name].centred == (kind.stats == ("mean", "1/σ")), name
        cfg = make_config(1, 2, 8, 12, activation="swiglu", norm="post", norm_type=name)
        assert sorted(vforward.make_params(np.random.default_rng(0), cfg, np.float32)) == sorted(t.name for t in analyze(cfg).weights)


@pytest.mark.parametrize("name", list(NORM_TYPES))
def test_each_norm_kernel_agrees_with_its_reference_and_its_statistics(name: str) -> None:
    """The in-place kernel (float64) against the record's own math-module form, row by row, with
    random γ and β; the statistics it writes give x̂ back, as the backward reads them."""
    kind, record = NORM_TYPES[name], kernels.NORM_KERNELS[name]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 12)) + 0.7
    p = {w: rng.standard_normal(12) for w in kind.weights}
    blk, stats = x.copy(), np.empty((5, len(kind.stats)), np.float32)
    record.rows(blk, p, stats)
    expected = np.array([record.reference(row, p) for row in x])
    assert np.max(np.abs(blk - expected)) < 1e-12
    xhat, inv = record.xhat(x, stats)
    assert np.max(np.abs(record.undo(blk, p) - xhat)) < 1e-6  # float32 statistics
    assert inv.shape == (5, 1) and stats.dtype == np.float32


# --- options and config.json -----------------------------------------------------------------------


def test_norm_type_needs_a_norm() -> None:
    with pytest.raises(ConfigError) as e:
        layer_config(1, 1, 8, norm_type="rms")
    assert e.value.argument == "--norm-type" and "--norm pre" in e.value.message
    with pytest.raises(ConfigError):
        make_config(1, 1, 8, norm="pre", norm_type="batch")


def test_cli_norm_type(cli: Run) -> None:
    code, out, _ = cli("shapes", "2", "3", "8", "--d-ff", "32", "--norm", "post", "--norm-type", "rms", "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["config"]["norm_type"] == "rms" and doc["stages"][-1]["op"] == "rmsnorm" and doc["totals"]["norm_params"] == 8
    code, out, err = cli("shapes", "2", "3", "8", "--norm-type", "rms")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--norm-type" in err
    code, out, _ = cli("shapes", "1", "1", "-m", "llama-2-7b", "--norm", "pre", "--norm-type", "layer", "-f", "json")
    assert json.loads(out)["totals"]["params"] == 135_266_304 + 2 * 4096
    assert any("flags override: norm_type" in line for line in json.loads(out)["config"]["origin"])


def test_sweep_lines_take_norm_type() -> None:
    lines = ['{"batch": 1, "seq_len": 1, "model": "t5-v1_1-base", "norm": "pre"}', '{"batch": 1, "seq_len": 1, "d_model": 8, "norm_type": "rms"}']
    results = list(line_rows(lines, ("params", "norm_type"), jobs=1))
    assert results[0] == (1, [4_719_360, "rms"])
    assert isinstance(results[1][1], LineError) and results[1][1].message.startswith("--norm-type:")


@pytest.mark.parametrize(
    ("file", "kind", "why"),
    [
        ("t5-v1_1-base", "rms", "placed pre"),
        ("llama-3-8b", "rms", "placed pre"),
        ("mixtral-8x7b", "rms", "placed pre"),
        ("gpt2", "layer", "placed pre"),
        ("deepseek-v3", "rms", "placed pre"),
    ],
)
def test_config_json_says_its_norm(file: str, kind: str, why: str) -> None:
    f = read_config(str(DATA / f"{file}.config.json"))
    assert f.values["norm_type"] == kind
    assert any(note.startswith(f"norm_type {kind} ") and why in note for note in f.notes)
    assert any(note.startswith(f"family {f.used['model_type']}: ") for note in f.notes)  # the kind is the family table's


def test_config_json_unknown_family_assumes_no_norm(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model_type": "mystery", "hidden_size": 8, "intermediate_size": 16}))
    f = read_config(str(path))
    assert "norm_type" not in f.values and f.requires == ("activation", "bias") and "--norm-type" in f.refusal
    cfg = layer_config(1, 1, config=str(DATA / "t5-v1_1-base.config.json"), norm="pre")
    assert analyze(cfg).totals.params == 4_719_360


# --- verify ----------------------------------------------------------------------------------------

LAYERS = [
    {},
    {"activation": "swiglu", "bias": False},
    {"activation": "geglu", "fused": True},
    {"activation": "swiglu", "experts": 4, "top_k": 2, "shared_experts": 1},
]
FORM_IDS = ["plain", "glu", "fused", "moe"]


# The fast loop: each form under one placement (helpers.diagonal); the full run both.
@pytest.mark.parametrize(("layer", "norm"), diagonal(LAYERS, ["pre", "post"]), ids=lambda v: v if isinstance(v, str) else FORM_IDS[LAYERS.index(v)])
def test_verify_rmsnorm_forward_and_backward(norm: str, layer: dict[str, object]) -> None:
    report = verify(make_config(2, 5, 8, 12, norm=norm, norm_type="rms", **layer), backward=True)  # type: ignore[arg-type]
    assert report.ok, [c for c in report.checks if not c.ok]
    names_ = [c.name for c in report.checks]
    assert "rmsnorm FLOPs" in names_ and "rmsnorm elementwise FLOPs" in names_
    assert any(n.startswith("RMSNorm matches its formula") for n in names_)
    assert any(n.startswith("drms_gamma") for n in names_) and not any("ln_beta" in n for n in names_)


def test_verify_rmsnorm_with_tensor_parallelism() -> None:
    assert verify(make_config(2, 4, 8, 16, norm="post", norm_type="rms", activation="swiglu"), tp=2, backward=True).ok


def test_verify_catches_a_wrong_rmsnorm(monkeypatch: pytest.MonkeyPatch) -> None:
    """A LayerNorm without β passed off as RMSNorm (it subtracts the mean) is caught."""
    real = kernels.NORM_KERNELS["rms"]

    def wrong(blk: np.ndarray, p: dict[str, np.ndarray], stats: np.ndarray | None) -> None:
        blk -= blk.mean(axis=1, keepdims=True)
        real.rows(blk, p, stats)

    monkeypatch.setitem(kernels.NORM_KERNELS, "rms", replace(real, rows=wrong))
    report = verify(make_config(2, 5, 8, 12, norm="pre", norm_type="rms"))
    assert not report.ok
    failed = [c.name for c in report.checks if not c.ok]
    assert failed[0] == "RMSNorm matches its formula (math module, 4 rows with mean ≈ 1)"
    assert [n.split(" (")[0] for n in failed[1:]] == ["output = float64 reference"]  # and the reference disagrees


def test_verify_catches_a_wrong_rmsnorm_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backward that forgets the x̂·mean(γ·dy·x̂) term fails the finite differences."""
    real = kernels.NORM_KERNELS["rms"]

    def wrong(dy: np.ndarray, xhat: np.ndarray, inv: np.ndarray, p: dict[str, np.ndarray], g: dict[str, np.ndarray], input_grad: bool) -> np.ndarray:
        g[names.RMS_GAMMA] = (dy * xhat).sum(axis=0)
        return np.asarray(inv * dy * p[names.RMS_GAMMA])

    monkeypatch.setitem(kernels.NORM_KERNELS, "rms", replace(real, backward=wrong))
    report = verify(make_config(2, 5, 8, 12, norm="post", norm_type="rms"), backward=True)
    assert [c.name for c in report.checks if not c.ok] == ["gradients = finite differences (float64, the layer itself, 10 tokens)"]


@settings(max_examples=examples(0.1))
@given(
    b=st.integers(1, 4), s=st.integers(1, 9), d=st.integers(1, 24), f=st.integers(1, 64), bias=st.booleans(),
    act=st.sampled_from(["relu", "gelu", "swiglu"]), norm=st.sampled_from(["pre", "post"]), kind=st.sampled_from(list(NORM_TYPES)),
    seed=st.integers(0, 2**16),
)  # fmt: skip
def test_norm_closed_forms_observed(b: int, s: int, d: int, f: int, bias: bool, act: str, norm: str, kind: str, seed: int) -> None:
    cfg = FFNConfig(b, s, d, f, activation=act, bias=bias, norm=norm, norm_type=kind)
    bare = analyze(replace(cfg, norm="none"))
    r = analyze(cfg)
    n = NORM_TYPES[kind]
    rows = b * s
    assert r.totals.params - bare.totals.params == n.params_per_element * d == r.totals.norm_params
    assert r.totals.flops - bare.totals.flops == rows * d + rows * (n.flops_per_element * d + n.flops_per_row)  # residual + norm
    report = verify(cfg, seed=seed)
    assert [c for c in report.checks if not c.ok] == []
