"""`--no-input-grad`: a layer whose input needs no gradient (the first of a stack, or after a
frozen embedding) skips, as autograd does, every product and step whose only use is that
gradient; `verify --backward --no-input-grad` observes it."""

from __future__ import annotations

from fractions import Fraction

import pytest
from helpers import Run

import ffn_calc
from ffn_calc.model import training
from ffn_calc.model.layer import make_config


def ratio(**layer: object) -> Fraction:
    t = ffn_calc.train(make_config(2, 16, 64, 96, **layer), input_grad=False).totals  # type: ignore[arg-type]
    return Fraction(t.backward_matmul_flops, t.forward_matmul_flops)


def test_the_published_ratios() -> None:
    assert ratio() == Fraction(3, 2)  # linear1's dX skipped: 2 products of 2 become 1
    assert ratio(activation="swiglu") == Fraction(4, 3)  # gate's and up's dX skipped: 6 products become 4
    assert ratio(activation="swiglu", fused=True) == Fraction(4, 3)
    assert ratio(norm="post") == Fraction(3, 2)
    assert ratio(norm="pre") == 2  # the products read LN(x), whose γ and β need its gradient


def test_by_hand_plain_layer() -> None:
    # 2 × 16 tokens, d 64, d_ff 96, biases: linear2's dX and dW, linear1's dW only.
    t = ffn_calc.train(make_config(2, 16, 64, 96), input_grad=False)
    kinds = [(op.stage, op.kind) for op in t.backward]
    assert ("linear1", "input-grad") not in kinds and ("linear2", "input-grad") in kinds
    assert t.totals.backward_matmul_flops == 2 * (32 * 96 * 64) * 3
    assert not [op for op in t.backward if op.kind == "grad-sum"]


def test_pre_norm_keeps_only_the_norm_weights_gradients() -> None:
    t = ffn_calc.train(make_config(2, 16, 64, 96, norm="pre"), input_grad=False)
    norm = next(op for op in t.backward if op.stage == "layernorm")
    assert norm.elementwise_flops == 32 * 64 * 3  # dγ = Σ dy·x̂ (2), dβ = Σ dy (1), per element
    assert norm.formula.startswith("dγ, dβ")
    rms = ffn_calc.train(make_config(2, 16, 64, 96, norm="pre", norm_type="rms"), input_grad=False)
    assert next(op for op in rms.backward if op.stage == "rmsnorm").elementwise_flops == 32 * 64 * 2


def test_a_mixture_drops_the_router_and_experts_input_gradients_and_the_dispatch() -> None:
    t = ffn_calc.train(make_config(2, 16, 64, 96, experts=4, top_k=2, shared_experts=1, activation="swiglu"), input_grad=False)
    kinds = {(op.stage, op.kind) for op in t.backward}
    for stage in ("router", "expert_gate", "expert_up", "shared_gate", "shared_up"):
        assert (stage, "input-grad") not in kinds
    assert ("expert_down", "input-grad") in kinds and ("router", "weight-grad") in kinds
    assert not any(op.stage == "dispatch" for op in t.backward)


@pytest.mark.parametrize(
    "layer",
    [{}, {"activation": "swiglu"}, {"norm": "pre"}, {"norm": "post", "norm_type": "rms", "activation": "geglu", "fused": True},
     {"experts": 4, "top_k": 2, "shared_experts": 1, "activation": "swiglu"}],
)  # fmt: skip
def test_verify_observes_it(layer: dict[str, object]) -> None:
    report = ffn_calc.verify(make_config(2, 8, 16, 24, **layer), backward=True, input_grad=False)  # type: ignore[arg-type]
    assert report.ok, [c.name for c in report.checks if not c.ok]
    assert any(c.name == "input gradient computed" and c.observed is False for c in report.checks)


def test_a_model_that_still_counts_the_input_gradient_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = training.needs_grad
    monkeypatch.setattr(training, "needs_grad", lambda report, input_grad=True: real(report, True))
    report = ffn_calc.verify(make_config(2, 8, 16, 24), backward=True, input_grad=False)
    assert not report.ok


def test_the_cli_flags(cli: Run) -> None:
    assert cli("train", "2", "16", "64", "--no-input-grad", "--get", "totals.backward_matmul_flops").out == f"{3 * 2 * 32 * 64 * 256}\n"
    assert cli("verify", "2", "8", "16", "--backward", "--no-input-grad", "--get", "ok").out == "true\n"
    code, out, err = cli("verify", "2", "8", "16", "--no-input-grad")
    assert code == 2 and out == "" and err == "ffn-calc: error: --no-input-grad: applies to the backward pass; add --backward\n"
