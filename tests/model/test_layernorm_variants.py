"""Two LayerNorms added through the norm registry and the verifier's kernel table alone: Cohere's
without a bias (CohereLayerNorm: γ, no β) and OLMo-1's without any affine (OlmoLayerNorm:
F.layer_norm with no weight or bias). Hand-computed parameters and FLOPs, training, config.json
detection, and shapes, train, verify and verify --backward on dense, GLU and MoE layers, pre-
and post-norm."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from helpers import DATA, Run

from ffn_calc.inputs.config_json import read_config
from ffn_calc.model import structure as names
from ffn_calc.model.conventions import conventions_dict
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import make_config
from ffn_calc.model.norms import NORM_TYPES
from ffn_calc.model.training import TrainingOptions, train
from ffn_calc.verifier import kernels
from ffn_calc.verifier.report import VerifyReport
from ffn_calc.verifier.run import verify

NEW = ("layer_nobias", "layer_nonparam")


def _failed(report: VerifyReport) -> list[str]:
    return [c.name for c in report.checks if not c.ok]


# --- by hand: 2 × 3 tokens, d_model 8, d_ff 32, ReLU with biases, pre-norm ------------------------
#
# The bare FFN: linear1 2·6·8·32 + 6·32 bias, ReLU 6·32, linear2 2·6·32·8 + 6·8 bias = 6,576 FLOPs;
# with a norm, + the residual 6·8 = 48. Weights 2·8·32 + 32 + 8 = 552.


def test_layernorm_without_bias_by_hand() -> None:
    r = analyze(make_config(2, 3, 8, 32, norm="pre", norm_type="layer_nobias"))
    assert [s.name for s in r.stages] == ["input", "layernorm_nobias", "linear1", "activation", "linear2", "residual"]
    ln = r.stage("layernorm_nobias")
    assert [w.name for w in ln.weights] == [names.LN_GAMMA] and ln.norm_params == 8  # γ only
    # 6 rows × (6 per element × 8: mean, centre, square, sum, normalise, scale; + 2 per row: eps add, rsqrt)
    assert ln.elementwise_flops == 6 * (6 * 8 + 2) == 300
    assert r.totals.params == 552 + 8 == 560
    assert r.totals.flops == 6576 + 48 + 300 == 6924
    assert ln.formula == "n = LN(x)" and ln.op == "layernorm_nobias"


def test_layernorm_without_affine_by_hand() -> None:
    r = analyze(make_config(2, 3, 8, 32, norm="pre", norm_type="layer_nonparam"))
    ln = r.stage("layernorm_nonparam")
    assert ln.weights == () and ln.norm_params == 0 and r.totals.norm_params == 0  # no γ, no β
    # 6 rows × (5 per element × 8: mean, centre, square, sum, normalise; + 2 per row)
    assert ln.elementwise_flops == 6 * (5 * 8 + 2) == 252
    assert r.totals.params == 552
    assert r.totals.flops == 6576 + 48 + 252 == 6876


def test_the_three_layernorms_differ_by_their_affine_alone() -> None:
    """LayerNorm's 7 per element = the no-affine LayerNorm's 5 + scale + shift; its backward's 11 =
    7 + dγ 2 + dβ 1 + γ·dy 1; each weight d_model parameters."""
    layer, nobias, nonparam = (NORM_TYPES[n] for n in ("layer", *NEW))
    assert (layer.flops_per_element, nobias.flops_per_element, nonparam.flops_per_element) == (7, 6, 5)
    assert layer.flops_per_row == nobias.flops_per_row == nonparam.flops_per_row == 2
    assert (layer.backward_flops_per_element, nobias.backward_flops_per_element, nonparam.backward_flops_per_element) == (11, 10, 7)
    assert (layer.weight_grad_flops_per_element, nobias.weight_grad_flops_per_element, nonparam.weight_grad_flops_per_element) == (3, 2, 0)
    assert (layer.params_per_element, nobias.params_per_element, nonparam.params_per_element) == (2, 1, 0)
    assert layer.stats == nobias.stats == nonparam.stats == ("mean", "1/σ")
    c = conventions_dict()
    assert (c["layernorm_nobias_flops_per_element"], c["layernorm_nobias_flops_per_row"]) == (6, 2)
    assert (c["layernorm_nonparam_flops_per_element"], c["layernorm_nonparam_flops_per_row"]) == (5, 2)


def test_training_by_hand() -> None:
    """Backward of the pre-norm over 6 rows of 8: dx and dγ 6·(10·8 + 2) = 492 without β; dx alone
    6·(7·8 + 2) = 348 without an affine. Both save the input and the mean and 1/σ of each row."""
    for name, flops in (("layer_nobias", 492), ("layer_nonparam", 348)):
        t = train(make_config(2, 3, 8, 32, norm="pre", norm_type=name), TrainingOptions())
        (op,) = [op for op in t.backward if op.stage == NORM_TYPES[name].stage]
        assert op.elementwise_flops == flops, name
        saved = {s.name: s for s in t.saved}
        assert saved[names.LAYERNORM_STATS].shape == (6, 2) and saved[names.LAYERNORM_STATS].bytes == 6 * 2 * 4
        assert names.INPUT in saved


def test_training_without_the_input_gradient() -> None:
    """When x needs no gradient, LayerNorm without β computes dγ alone (6·8·2 = 96 FLOPs), and the
    LayerNorm without an affine has nothing to compute: no op, no saved input or statistics, and
    the first linear's input gradient is not computed either."""
    options = TrainingOptions(input_grad=False)
    nobias = train(make_config(2, 3, 8, 32, norm="pre", norm_type="layer_nobias"), options)
    (op,) = [op for op in nobias.backward if op.stage == "layernorm_nobias"]
    assert op.elementwise_flops == 6 * 8 * 2 and op.formula == "dγ of LayerNorm (no bias)"
    nonparam = train(make_config(2, 3, 8, 32, norm="pre", norm_type="layer_nonparam"), options)
    assert not [op for op in nonparam.backward if op.stage == "layernorm_nonparam"]
    assert not [op for op in nonparam.backward if (op.stage, op.kind) == ("linear1", "input-grad")]
    assert {s.name for s in nonparam.saved}.isdisjoint({names.INPUT, names.LAYERNORM_STATS})


# --- the verifier's kernels -----------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW)
def test_kernel_against_torch_like_definitions(name: str) -> None:
    """The in-place kernel on rows of 8, float64, against the definition written in NumPy the way
    the models' code writes it (mean, biased variance, rsqrt; then γ for Cohere)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 8)) * 3 + 1
    p = {names.LN_GAMMA: rng.standard_normal(8)} if name == "layer_nobias" else {}
    mean = x.mean(-1, keepdims=True)
    expected = (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-5)
    if p:
        expected = expected * p[names.LN_GAMMA]
    blk = x.copy()
    kernels.norm_kernel(name).rows(blk, p, None)
    assert np.max(np.abs(blk - expected)) < 1e-12


def test_verify_catches_a_layernorm_without_affine_that_skips_the_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    """An RMSNorm passed off as OLMo's LayerNorm: the rows are not centred, and the reference disagrees."""
    real = kernels.NORM_KERNELS["layer_nonparam"]

    def uncentred(blk: np.ndarray, p: dict[str, np.ndarray], stats: np.ndarray | None) -> None:
        blk /= np.sqrt((blk * blk).mean(axis=1, keepdims=True) + kernels.NORM_EPS)

    cfg = make_config(2, 5, 8, 12, norm="pre", norm_type="layer_nonparam")
    assert verify(cfg).ok
    monkeypatch.setitem(kernels.NORM_KERNELS, "layer_nonparam", replace(real, rows=uncentred))
    failed = _failed(verify(cfg))
    assert "LayerNorm (no affine) rows: out has mean 0, variance v/(v + eps)" in failed
    assert any(n.startswith("output = float64 reference") for n in failed)


def test_verify_catches_a_layernorm_without_bias_whose_backward_forgets_the_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    real = kernels.NORM_KERNELS["layer_nobias"]

    def wrong(dy: np.ndarray, xhat: np.ndarray, inv: np.ndarray, p: dict[str, np.ndarray], g: dict[str, np.ndarray], input_grad: bool) -> np.ndarray:
        g[names.LN_GAMMA] = (dy * xhat).sum(axis=0)
        dxhat = dy * p[names.LN_GAMMA]
        return np.asarray(inv * (dxhat - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)))  # RMSNorm's: no mean(dx̂)

    monkeypatch.setitem(kernels.NORM_KERNELS, "layer_nobias", replace(real, backward=wrong))
    report = verify(make_config(2, 5, 8, 12, norm="post", norm_type="layer_nobias"), backward=True)
    assert _failed(report) == ["gradients = finite differences (float64, the layer itself, 10 tokens)"]


# --- every command, every form of the layer -------------------------------------------------------

LAYERS = {
    "dense": {},
    "glu": {"activation": "swiglu", "bias": False},
    "moe": {"activation": "swiglu", "experts": 4, "top_k": 2, "shared_experts": 1},
}


# The fast loop: each norm on each form, under one placement (they alternate); the full run both.
@pytest.mark.parametrize(
    ("name", "layer", "norm"),
    [
        pytest.param(name, layer, norm, marks=() if (i + j) % 2 == k else pytest.mark.slow)
        for i, name in enumerate(NEW)
        for j, layer in enumerate(LAYERS)
        for k, norm in enumerate(["pre", "post"])
    ],
)
def test_verify_forward_and_backward(name: str, layer: str, norm: str) -> None:
    cfg = make_config(2, 5, 8, 12, norm=norm, norm_type=name, **LAYERS[layer])  # type: ignore[arg-type]
    report = verify(cfg, backward=True)
    assert report.ok, _failed(report)
    rows = {c.name for c in report.checks}
    stage = NORM_TYPES[name].stage
    assert {f"{stage} FLOPs", f"{stage} elementwise FLOPs (counted)", f"{stage} elementwise FLOPs"} <= rows
    assert any(n.startswith(f"{NORM_TYPES[name].label} rows:") for n in rows)
    assert (f"d{names.LN_GAMMA} shape" in rows) == (name == "layer_nobias") and f"d{names.LN_BETA} shape" not in rows


@pytest.mark.parametrize("name", NEW)
def test_verify_counts_the_norm_as_hand_computed(name: str) -> None:
    report = verify(make_config(2, 3, 8, 32, norm="pre", norm_type=name))
    row = next(c for c in report.checks if c.name == f"{NORM_TYPES[name].stage} elementwise FLOPs (counted)")
    assert row.ok and row.observed == {"layer_nobias": 300, "layer_nonparam": 252}[name]
    assert "× 48 elements written" in row.detail and "× 6 rows written" in row.detail


@pytest.mark.parametrize("name", NEW)
def test_verify_backward_without_input_grad_recompute_and_dropout(name: str) -> None:
    """The pre-norm with x needing no gradient (OLMo's then runs no backward at all), with every
    recompute mode and dropout."""
    for recompute in ("none", "selective", "full"):
        cfg = make_config(2, 4, 8, 16, activation="gelu", norm="pre", norm_type=name)
        report = verify(cfg, backward=True, input_grad=False, training=TrainingOptions(recompute=recompute, dropout=True, input_grad=False))
        assert report.ok, (recompute, _failed(report))


def test_verify_with_tensor_parallelism() -> None:
    for name in NEW:
        assert verify(make_config(2, 4, 8, 16, norm="post", norm_type=name, activation="swiglu"), tp=2, backward=True).ok, name


@pytest.mark.parametrize("name", NEW)
def test_cli_shapes_train_verify(cli: Run, name: str) -> None:
    code, out, _ = cli("shapes", "2", "3", "8", "--d-ff", "32", "--norm", "pre", "--norm-type", name, "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["config"]["norm_type"] == name and doc["stages"][1]["op"] == NORM_TYPES[name].stage
    assert doc["totals"]["norm_params"] == {"layer_nobias": 8, "layer_nonparam": 0}[name]
    code, out, _ = cli("train", "2", "3", "8", "--d-ff", "32", "--norm", "post", "--norm-type", name, "-f", "json")
    assert code == 0 and any(op["stage"] == NORM_TYPES[name].stage for op in json.loads(out)["backward"])
    for extra in ((), ("--backward",)):
        code, out, _ = cli("verify", "2", "3", "8", "--d-ff", "32", "--norm", "pre", "--norm-type", name, *extra, "-f", "json")
        assert code == 0 and json.loads(out)["ok"], extra


# --- config.json ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("family", "name"), [("cohere", "layer_nobias"), ("cohere2", "layer_nobias"), ("olmo", "layer_nonparam")])
def test_config_json_of_the_family_names_its_norm(family: str, name: str) -> None:
    """The family table (catalogue/families.py) names each family's norm: Cohere's config keys
    its epsilon as LayerNorm's (layer_norm_eps), OLMo's has none (OlmoLayerNorm fixes 1e-5); the
    files are transformers' own configurations (tests/data/families)."""
    f = read_config(str(DATA / "families" / f"{family}.json"))
    assert f.values["norm_type"] == name and f.values["activation"] == "swiglu"
    assert any(n.startswith(f"norm_type {name} ({NORM_TYPES[name].label})") for n in f.notes)
    layer = analyze(make_config(1, 1, f.values["d_model"], f.values["d_ff"], activation="swiglu", bias=False, norm="pre", norm_type=name))
    assert layer.totals.norm_params == NORM_TYPES[name].params_per_element * f.values["d_model"]  # 64 for Cohere's γ, 0 for OLMo's
