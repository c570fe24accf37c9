"""The shape of the code: one registry per idea and everything held to it; the Python API and the
CLI's JSON the same; the private Typer import where we expect it."""

from __future__ import annotations

import inspect
import json
import math
import re
from typing import Any

import numpy as np
import pytest
from helpers import ROOT, Run

import ffn_calc
from ffn_calc.api import options
from ffn_calc.catalogue import presets
from ffn_calc.catalogue.gpus import GPUS
from ffn_calc.inputs import resolve
from ffn_calc.model import conventions as conv
from ffn_calc.model import structure as names
from ffn_calc.model.activations import ACTIVATIONS, GATED_FORMS, NONLINEARITIES, by_config_name
from ffn_calc.model.dtypes import ACTIVATION_DTYPES, DTYPES
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import make_config
from ffn_calc.verifier import kernels, properties
from ffn_calc.verifier import run as verify_run
from ffn_calc.verifier.forward import make_params

# --- the activation registry and the verifier's kernel table ---------------------------------------


def test_the_kernel_table_holds_the_registrys_names() -> None:
    assert set(kernels.KERNELS) == set(NONLINEARITIES)


def test_an_unregistered_activation_raises_rather_than_falling_through() -> None:
    with pytest.raises(KeyError, match="no NumPy kernel"):
        kernels.kernel("relu3")
    with pytest.raises(ValueError, match="--activation"):
        make_config(1, 1, 8, activation="relu3")


# Hand-computed values at h = −1, 0.5 and 2 (act and act'), the oracle every registered
# activation must match: a new activation needs its row here.
ORACLE = {
    "relu": ((0.0, 0.5, 2.0), (0.0, 1.0, 1.0)),
    "relu2": ((0.0, 0.25, 4.0), (0.0, 1.0, 4.0)),
    "gelu": ((-0.15865525393145707, 0.34573123063700656, 1.9544997361036416), (-0.08331547058768629, 0.8674951246561629, 1.085231801078197)),
    "gelu_tanh": ((-0.15880800939172324, 0.34571400982514394, 1.9545976940871754), (-0.08296408384578255, 0.8673699035346424, 1.0860992566236183)),
    # gpt-oss's gate g·σ(1.702·g), g = min(h, 7): below the limit at these h
    "silu_clamped": ((-0.1542042340671787, 0.35038843660638014, 1.9356586231442083), (-0.06777960655633404, 0.8792219119654143, 1.0738153543085418)),
    "silu": ((-0.2689414213699951, 0.3112296656009273, 1.7615941559557646), (0.07232948812851325, 0.7399611873026519, 1.0907842487848955)),
}


@pytest.mark.parametrize("name", sorted(NONLINEARITIES))
def test_every_kernel_matches_the_oracle(name: str) -> None:
    h = np.array([-1.0, 0.5, 2.0])
    values, slopes = ORACLE[name]
    k = kernels.kernel(name)
    assert np.allclose(kernels.activation_values(name, h), values, atol=2e-7)  # GELU's erf: 1.5e-7
    assert np.allclose([k.reference(v) for v in h], values, rtol=1e-12, atol=1e-15)
    assert np.allclose(k.derivative(h), slopes, atol=1e-6)


@pytest.mark.parametrize("name", sorted(NONLINEARITIES))
def test_every_derivative_is_the_slope_of_its_reference(name: str) -> None:
    k, eps = kernels.kernel(name), 1e-6
    for v in (-1.3, -0.2, 0.7, 2.1):  # away from ReLU's kink
        numeric = (k.reference(v + eps) - k.reference(v - eps)) / (2 * eps)
        assert math.isclose(float(k.derivative(np.array([v]))[0]), numeric, rel_tol=1e-5, abs_tol=1e-6)


def test_gated_forms_and_config_spellings_come_from_the_registry() -> None:
    assert ACTIVATIONS == (*NONLINEARITIES, *GATED_FORMS)
    assert GATED_FORMS == {"swiglu": "silu", "geglu": "gelu", "geglu_tanh": "gelu_tanh", "reglu": "relu", "swiglu_clamped": "silu_clamped"}
    for a in NONLINEARITIES.values():
        for spelling in a.config_names:
            assert by_config_name(spelling) is a


def test_the_help_and_the_convention_name_every_activation() -> None:
    help_text = next(s for s in options.SPECS if s.name == "activation").help
    for name in ACTIVATIONS:
        assert re.search(rf"\b{name}\b", help_text)
    for a in NONLINEARITIES.values():
        assert f"{a.label} {a.flops}" in conv.CONVENTION_SUMMARY
        assert conv.conventions_dict()["activation_flops_per_element"][a.name] == a.flops  # type: ignore[index]


def test_relu2_through_every_count() -> None:
    """Squared ReLU came in through the registry and the kernel table alone."""
    r = analyze(make_config(2, 3, 8, 16, activation="relu2"))
    assert r.stage("activation").elementwise_flops == 2 * 6 * 16
    t = ffn_calc.train(make_config(2, 3, 8, 16, activation="relu2"), recompute="selective")
    assert t.totals.recompute_flops == 2 * 6 * 16  # its backward reads its input, so selective recomputes it
    assert [op.elementwise_flops for op in t.backward if op.stage == "activation"] == [3 * 6 * 16]
    assert ffn_calc.verify(make_config(2, 3, 8, 16, activation="relu2"), backward=True).ok


# --- other registries ------------------------------------------------------------------------------


def test_what_a_preset_fills_is_the_presets_layer_fields() -> None:
    from dataclasses import fields

    assert resolve.FILLABLE == tuple(f.name for f in fields(presets.Preset) if f.name in inspect.signature(resolve.layer_config).parameters)


def test_every_dtype_table_covers_the_registry() -> None:
    for gpu in GPUS.values():
        assert set(gpu.tflops) <= set(DTYPES) and "bfloat16" in gpu.tflops, gpu.name
    assert set(verify_run.NUMPY_DTYPES) | set(verify_run.DTYPE_NOTES) == set(ACTIVATION_DTYPES)  # 4-bit: weights only
    assert set(properties.RTOL) == set(verify_run.NUMPY_DTYPES)


@pytest.mark.parametrize(("activation", "fused", "experts"), [("relu", False, 0), ("swiglu", False, 0), ("geglu", True, 0), ("silu", False, 4)])
def test_the_verifier_names_its_weights_as_the_model_does(activation: str, fused: bool, experts: int) -> None:
    cfg = make_config(
        1, 2, 8, 12, activation=activation, fused=fused, experts=experts, top_k=2 if experts else 0, shared_experts=1 if experts else 0, norm="pre"
    )
    params = make_params(np.random.default_rng(0), cfg, np.float32)
    assert sorted(params) == sorted(t.name for t in analyze(cfg).weights)
    for name in params:
        assert names.linear_of(name) is not None or name in (names.W_ROUTER, names.LN_GAMMA, names.LN_BETA)


# --- the Python API --------------------------------------------------------------------------------

COMMANDS = [
    ("shapes", ["2", "3", "8", "--norm", "pre"], lambda: ffn_calc.analyze(ffn_calc.layer(2, 3, 8, norm="pre"))),
    ("shapes", ["1", "4", "--model", "mixtral-8x7b"], lambda: ffn_calc.analyze(ffn_calc.layer(1, 4, model="mixtral-8x7b"))),
    (
        "train",
        ["2", "4", "8", "--tp", "2", "--dropout", "--recompute", "selective"],
        lambda: ffn_calc.train(ffn_calc.layer(2, 4, 8), tp=2, dropout=True, recompute="selective"),
    ),
    ("roofline", ["1", "16", "8", "--gpu", "a100-80gb"], lambda: ffn_calc.roofline(ffn_calc.layer(1, 16, 8), "a100-80gb")),
    ("explain", ["1", "8", "--model", "deepseek-v3"], lambda: ffn_calc.explain(ffn_calc.layer(1, 8, model="deepseek-v3"))),
    ("models", [], ffn_calc.models),
    ("verify", ["2", "3", "8", "--norm", "post", "--backward"], lambda: ffn_calc.verify(ffn_calc.layer(2, 3, 8, norm="post"), backward=True)),
]
VOLATILE = {"seconds", "forward_seconds", "gflops_per_s", "memory_limit_bytes"}


def _stable(doc: object) -> object:
    """The document without timings and measured noise (peak bytes, float differences)."""
    if isinstance(doc, dict):
        return {k: _stable(v) for k, v in doc.items() if k not in VOLATILE}
    if isinstance(doc, list):
        return [_stable(v) for v in doc]
    return doc


@pytest.mark.parametrize(("command", "args", "call"), COMMANDS, ids=[f"{c} {' '.join(a)}" for c, a, _ in COMMANDS])
def test_to_dict_is_the_cli_json(cli: Run, command: str, args: list[str], call: Any) -> None:
    code, out, _ = cli(command, *args, "-f", "json")
    assert code == 0
    cli_doc, api_doc = json.loads(out), json.loads(json.dumps(call().to_dict()))
    if command == "verify":  # measured values (peak bytes, max |Δ|) differ between two runs
        for doc in (cli_doc, api_doc):
            doc["checks"] = [{k: v for k, v in c.items() if k not in ("observed", "detail")} for c in doc["checks"]]
    assert _stable(cli_doc) == _stable(api_doc)


def test_sweep_to_dict_is_the_cli_json_lines(cli: Run) -> None:
    code, out, _ = cli("sweep", "--batch", "1,2", "--seq-len", "4:16:x2", "--d-model", "8", "-a", "swiglu", "-f", "jsonl")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    rows = ffn_calc.sweep("1,2", "4:16:x2", sizes={"d_model": "8"}, activation="swiglu").to_dict()["rows"]
    assert rows == lines and len(rows) == 6


def test_the_api_lists_what_it_offers() -> None:
    for name in ffn_calc.__all__:
        assert getattr(ffn_calc, name) is not None
    with pytest.raises(AttributeError):
        ffn_calc.no_such_thing  # noqa: B018


def test_presets_are_data_only() -> None:
    source = inspect.getsource(presets)
    assert "import ffn_calc" not in source and "from ffn_calc" not in source


def test_the_private_typer_import_is_where_we_expect_it() -> None:
    try:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError, NoSuchOption  # noqa: F401
    except ImportError as e:  # pragma: no cover - only after a Typer upgrade
        pytest.fail(f"Typer moved its vendored click ({e}); update ffn_calc/cli/click_compat.py, the one place that imports it")
    found = [p for p in (ROOT / "ffn_calc").rglob("*.py") if "typer._click" in p.read_text() and p.name != "click_compat.py"]
    assert not found, f"typer._click imported outside click_compat.py: {found}"


# Hand-computed cases for bugs the mutation benchmark (benchmarks/mutants.py) once planted unseen.
def test_float8_is_one_byte_per_element() -> None:
    for name in ("float8_e4m3fn", "float8_e5m2"):
        assert DTYPES[name].bytes == 1
        r = analyze(make_config(1, 1, 8, 16, dtype=name))
        assert r.totals.weight_bytes == r.totals.params
