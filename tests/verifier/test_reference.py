"""The independent float64 reference (verifier/reference.py): it agrees with the fast path on
every form of the layer, and verify catches bugs planted in the fast path that leave every
shape, byte and FLOP count as it was."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from ffn_calc.model import structure as names
from ffn_calc.model.layer import FFNConfig, make_config
from ffn_calc.verifier import forward as fast
from ffn_calc.verifier import kernels, properties, reference, routing
from ffn_calc.verifier.observe import random_norm_weights
from ffn_calc.verifier.recorder import Silent
from ffn_calc.verifier.run import verify

REFERENCE = "output = float64 reference"

LAYERS = {
    "relu": make_config(2, 5, 8, "32"),
    "gelu, pre-LN": make_config(2, 5, 8, "32", activation="gelu", norm="pre"),
    "gelu_tanh, post-LN, no bias": make_config(2, 5, 8, "32", activation="gelu_tanh", norm="post", bias=False),
    "silu, pre-RMSNorm": make_config(2, 5, 8, "32", activation="silu", norm="pre", norm_type="rms"),
    "relu2, post-RMSNorm": make_config(2, 5, 8, "32", activation="relu2", norm="post", norm_type="rms"),
    "swiglu": make_config(2, 5, 8, "24", activation="swiglu", bias=False),
    "geglu fused, bias, pre-LN": make_config(2, 5, 8, "24", activation="geglu", fused=True, norm="pre"),
    "reglu, post-LN": make_config(2, 5, 8, "24", activation="reglu", norm="post"),
    "MoE 6 experts top-2": make_config(2, 5, 8, "16", experts=6, top_k=2),
    "MoE swiglu, shared, pre-RMSNorm": make_config(
        2, 5, 8, "16", activation="swiglu", experts=4, top_k=2, shared_experts=1, norm="pre", norm_type="rms", bias=False
    ),
    "MoE gelu, bias, shared, post-LN": make_config(2, 5, 8, "16", activation="gelu", experts=5, top_k=3, shared_experts=2, norm="post"),
    "MoE Qwen shared-expert gate": make_config(2, 5, 8, "16", activation="swiglu", experts=4, top_k=2, shared_experts=1, shared_expert_gate=True),
}


def _params(cfg: FFNConfig, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    p = fast.make_params(rng, cfg, np.float64)
    random_norm_weights(rng, cfg, p)
    return p, rng.standard_normal((cfg.tokens, cfg.d_model))


def reference_row(cfg: FFNConfig) -> Any:
    report = verify(cfg)
    return next(c for c in report.checks if c.name.startswith(REFERENCE)), report


@pytest.mark.parametrize("cfg", LAYERS.values(), ids=LAYERS.keys())
def test_reference_agrees_with_the_fast_path(cfg: FFNConfig) -> None:
    """In float64 every token of the fast pass within 1e-12 of the reference (GELU's erf is an
    approximation in the fast path: 1e-6 there), and verify's reference row passes in float32."""
    c64 = replace(cfg, dtype="float64")
    p, x = _params(c64)
    got = fast.forward(Silent(), c64, p, x.reshape(cfg.batch, cfg.seq_len, cfg.d_model)).reshape(-1, cfg.d_model)
    want = reference.reference(c64, p, x)
    assert np.max(np.abs(got - want)) <= (1e-6 if cfg.base_activation == "gelu" else 1e-12)
    row, report = reference_row(cfg)
    assert row.ok and row.kind == "tolerance", row
    assert report.ok, [c.name for c in report.checks if not c.ok]


def test_reference_is_written_from_the_definitions() -> None:
    """One token by hand: LayerNorm with γ and β, then x·W + b, ReLU, ·W2 + b2, the residual."""
    cfg = make_config(1, 1, 2, "3", norm="pre")
    p = {
        names.LN_GAMMA: np.array([2.0, 0.5]),
        names.LN_BETA: np.array([0.25, -1.0]),
        "W1": np.array([[1.0, -1.0, 0.5], [2.0, 0.0, -3.0]]),
        "b1": np.array([0.0, 0.5, 1.0]),
        "W2": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        "b2": np.array([0.1, 0.2]),
    }
    x = np.array([[3.0, 1.0]])
    s = 1.0 / math.sqrt(1.0 + 1e-5)  # mean 2, variance 1
    n = np.array([1.0 * s * 2.0 + 0.25, -1.0 * s * 0.5 - 1.0])
    h = np.maximum(n @ p["W1"] + p["b1"], 0)
    y = x[0] + h @ p["W2"] + p["b2"]
    assert np.allclose(reference.reference(cfg, p, x)[0], y, rtol=0, atol=1e-12)


def test_routing_by_hand() -> None:
    """Softmax, sort with ties to the lower index, renormalised top-k."""
    cfg = make_config(1, 1, 2, "4", experts=4, top_k=2)
    chosen = reference.route(cfg, np.array([1.0, 3.0, 3.0, 0.0]))
    assert [e for e, _ in chosen] == [1, 2]
    assert [w for _, w in chosen] == pytest.approx([0.5, 0.5])
    chosen = reference.route(cfg, np.array([0.0, math.log(3.0), 0.0, math.log(2.0)]))
    assert [e for e, _ in chosen] == [1, 3]
    assert [w for _, w in chosen] == pytest.approx([0.6, 0.4])


def test_capacity_factor_is_reported_not_checked() -> None:
    cfg = make_config(2, 8, 8, "16", experts=4, top_k=2, capacity_factor=1.0)
    row, report = reference_row(cfg)
    assert row.kind == "info" and "capacity" in row.detail
    with pytest.raises(ValueError, match="capacity"):
        reference.reference(cfg, *_params(cfg))


def test_tolerance_is_derived_from_the_dtype() -> None:
    cfg = make_config(1, 1024, 4096, "11008", activation="swiglu", bias=False)
    assert properties.reference_tolerance(replace(cfg, dtype="float32")) == pytest.approx(5.1e-5, rel=0.02)
    assert properties.reference_tolerance(replace(cfg, dtype="float16")) == pytest.approx(7.9e-3, rel=0.02)
    assert properties.reference_tolerance(replace(cfg, dtype="float64")) < 1e-12


# --- planted bugs: each leaves every count as it was; the reference must catch it -------------


def _residual_y_plus_y(monkeypatch: pytest.MonkeyPatch) -> None:
    real = fast.add
    monkeypatch.setattr(fast, "add", lambda x, y, *rest: real(y, y, *rest))


def _combine_ignores_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    real = fast.combine
    monkeypatch.setattr(fast, "combine", lambda rec, cfg, w, *rest: real(rec, cfg, np.ones_like(w), *rest))


def _router_least_likely(monkeypatch: pytest.MonkeyPatch) -> None:
    def least(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        index = np.argsort(probs, axis=1, kind="stable")[:, :k]
        chosen = np.take_along_axis(probs, index, axis=1)
        return index, chosen, chosen.sum(axis=1, keepdims=True)

    monkeypatch.setattr(routing, "top_k", least)


def _layernorm_ignores_gamma(monkeypatch: pytest.MonkeyPatch) -> None:
    real = kernels.NORM_KERNELS["layer"]

    def no_gamma(blk: np.ndarray, p: dict[str, np.ndarray], stats: np.ndarray | None) -> None:
        real.rows(blk, {**p, names.LN_GAMMA: np.ones_like(p[names.LN_GAMMA])}, stats)

    monkeypatch.setitem(kernels.NORM_KERNELS, "layer", replace(real, rows=no_gamma))


def _expert_skips_bias(monkeypatch: pytest.MonkeyPatch) -> None:
    real = fast.expert_linear

    def no_bias_add(rec: Any, name: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, bounds: Any) -> np.ndarray:
        if b is None:
            return real(rec, name, x, w, b, bounds)
        y = real(rec, name, x, w, b, bounds)  # counted as usual
        out = real(Silent(), name, x, w, None, bounds)  # ... but the bias never added
        y[...] = out
        return y

    monkeypatch.setattr(fast, "expert_linear", no_bias_add)


PLANTED = {
    "residual computes y + y": (_residual_y_plus_y, make_config(2, 5, 8, "32", norm="pre")),
    "combine ignores the routing weights": (_combine_ignores_weights, make_config(2, 5, 8, "16", experts=4, top_k=2)),
    "router picks the least likely experts": (_router_least_likely, make_config(2, 5, 8, "16", experts=4, top_k=2)),
    "LayerNorm ignores γ": (_layernorm_ignores_gamma, make_config(2, 5, 8, "32", norm="pre")),
    "an expert skips its bias add": (_expert_skips_bias, make_config(2, 5, 8, "16", experts=4, top_k=2, bias=True)),
}


@pytest.mark.parametrize("plant", PLANTED.values(), ids=PLANTED.keys())
def test_planted_bug_is_caught_by_the_reference(monkeypatch: pytest.MonkeyPatch, plant: Any) -> None:
    bug, cfg = plant
    row, report = reference_row(cfg)
    assert row.ok and report.ok  # clean first
    bug(monkeypatch)
    row, report = reference_row(cfg)
    assert not report.ok
    assert not row.ok, row
    # the counts do not see it: every shape, byte, FLOP and parameter row still matches (but a
    # weight the planted kernel no longer reads, which the read check sees too)
    read = "weight tensors read by the pass's kernels"
    assert all(c.ok for c in report.checks if c.group != "structure" and c.name != read)
