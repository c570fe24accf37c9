"""The activation registry: every nonlinearity ffn-calc knows, declared once with all that is
known about it. Choices, help text, the convention sentence, config.json detection, the
training rules and the verifier's kernel table (held to this one by a test) derive from it.

Per-element costs count the arithmetic of the formula as written, each transcendental
function (exp, erf, tanh) as one FLOP. Backward costs include the multiply by the incoming
gradient. A name that is not registered raises; nothing falls through to another activation.
"""

from __future__ import annotations

from typing import NamedTuple


class Activation(NamedTuple):
    """One nonlinearity (a record: immutable, and cheap to declare at start-up).

    `flops` and `backward_flops` are FLOPs per element (see the module docstring), with how
    they are counted in `flops_count` and `backward_count`. `backward_reads` says what the
    backward pass keeps from the forward one: "input" (the pre-activation h) or "output"
    (act(h) itself, which the next linear keeps anyway, as for ReLU). `config_names` are the
    spellings of Hugging Face config.json files (`hidden_act`) that mean it; `gated` is the
    name of its GLU form, act(x·W_gate) ⊙ (x·W_up), if it has one."""

    name: str
    label: str
    formula: str
    flops: int
    flops_count: str
    backward_flops: int
    backward_count: str
    backward_reads: str
    config_names: tuple[str, ...]
    gated: str | None = None


_ALL = (
    Activation(
        "relu", "ReLU", "max(0, h)",
        1, "one compare-and-select",
        1, "select the gradient where h > 0",
        "output", ("relu",), gated="reglu",
    ),
    Activation(
        "gelu", "GELU", "0.5·h·(1 + erf(h/√2))",
        5, "divide, erf, add, multiply by h, multiply by 0.5",
        11, "Φ(h) (4) + φ(h) (4) + h·φ(h) (1) + add (1) + × grad (1)",
        "input", ("gelu", "gelu_python"), gated="geglu",
    ),
    Activation(
        "gelu_tanh", "GELU (tanh)", "0.5·h·(1 + tanh(√(2/π)·(h + 0.044715·h³)))",
        9, "h³ (2), ×0.044715, +h, ×√(2/π), tanh, +1, ×h, ×0.5",
        19, "u and tanh (6) + du/dh (4) + 0.5(1+t) + 0.5h(1−t²)du/dh (8) + × grad (1)",
        "input", ("gelu_new", "gelu_fast", "gelu_pytorch_tanh"), gated="geglu_tanh",
    ),
    Activation(
        "silu", "SiLU", "h / (1 + exp(−h))",
        4, "negate, exp, add, divide",
        9, "σ(h) (4) + σ(1 + h(1−σ)) (4) + × grad (1)",
        "input", ("silu", "swish"), gated="swiglu",
    ),
    Activation(
        "silu_clamped", "clamped SiLU (gpt-oss)", "g·σ(1.702·g), g = min(h, 7); its GLU multiplies by clamp(u, −7, 7) + 1",
        9, "min 1, ×α 1, negate 1, exp 1, add 1, divide 1; the up's clamp 2 and +1 1",
        13, "min's select 1 + σ(α·g) 5 + σ + α·g·σ(1−σ) 5 + × grad 1 + the up clamp's select 1",
        "input", (), gated="swiglu_clamped",
    ),
    Activation(
        "relu2", "squared ReLU", "max(0, h)²",
        2, "compare-and-select, square",
        3, "2·max(0, h) (2) + × grad (1)",
        "input", ("relu2",),
    ),
)  # fmt: skip

# gpt-oss's clamped SwiGLU (GptOssExperts._apply_gate; GptOssConfig swiglu_alpha, swiglu_limit):
# (clamp(up, −limit, limit) + 1) ⊙ g·σ(alpha·g) with g = min(gate, limit). No config.json spelling
# names it: the family table gives it to gpt_oss, whose code fixes it.
CLAMPED_SWIGLU_ALPHA = 1.702
CLAMPED_SWIGLU_LIMIT = 7.0

for _a in _ALL:
    if _a.backward_reads not in ("input", "output"):
        raise ValueError(f"{_a.name}: backward_reads must be input or output")
NONLINEARITIES: dict[str, Activation] = {a.name: a for a in _ALL}
# Gated forms: name → the nonlinearity applied to the gate (swiglu → silu).
GATED_FORMS: dict[str, str] = {a.gated: a.name for a in _ALL if a.gated}
# Every name --activation takes: the plain ones, then the gated ones.
ACTIVATIONS: tuple[str, ...] = tuple(NONLINEARITIES) + tuple(GATED_FORMS)


def activation(name: str) -> Activation:
    """The registered nonlinearity `name`, or the nonlinearity of the gated form `name`."""
    return NONLINEARITIES[GATED_FORMS.get(name, name)]


def by_config_name(spelling: str) -> Activation | None:
    """The activation a config.json's `hidden_act` spelling means, or None if none does."""
    for a in _ALL:
        if spelling in a.config_names:
            return a
    return None
