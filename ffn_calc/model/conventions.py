"""The counting convention of ffn-calc, stated once.

Everything the tool counts that is a convention rather than a fact lives here; the core,
the verifier and the README's convention section all read it from this module.

FLOPs
    A multiply-add is 2 FLOPs. A matmul (M, K)·(K, N) is M·K·N MACs and 2·M·K·N FLOPs.
    The "MACs" figure covers matmuls only; elementwise work has FLOPs and no MACs.
Elementwise work (counted in FLOPs, never in MACs)
    bias add        1 FLOP per output element
    residual add    1 FLOP per element
    activation      the registry's `flops` (activations.py): the arithmetic operations of the
                    formula as written, with each transcendental function (exp, erf, tanh)
                    counted as one FLOP
    GLU gate        the activation's cost on the gate + 1 multiply per element (act(g) ⊙ u)
    norms           the registry's costs (norms.py), per element and per row:
                    LayerNorm 7 + 2: mean 1, centre 1, variance 2 (square, sum), normalise 1,
                    affine 2 (scale, shift), and per row eps-add + rsqrt;
                    RMSNorm 4 + 2: square 1, sum 1 (mean(x²), its ÷d folded in as LayerNorm's
                    are), normalise 1, scale 1, and per row eps-add + rsqrt
    MoE router      a matmul (d_model → experts, no bias), then softmax: 3 FLOPs per logit
                    (exp, sum, divide); the top-k selection is comparisons, not counted
    MoE combine     each token's k expert outputs scaled by their router weights and summed:
                    (2·k − 1) FLOPs per output element, + 1 per element to add the shared experts
    shared-expert   (Qwen2-MoE) g = x·w_s, a matmul (d_model → 1) of 2·d_model FLOPs per token;
    gate            then sigmoid(g) = 1 / (1 + exp(−g)): 4 FLOPs per token (negate, exp, add,
                    divide), and the shared output scaled by it: 1 multiply per element
Matmul-only FLOPs are reported on their own as well; they are the figure papers quote
(Kaplan et al. 2020; Megatron-LM; nanoGPT), 4·d_model·d_ff per token for a plain FFN.
"""

from __future__ import annotations

from ffn_calc.model.activations import GATED_FORMS, NONLINEARITIES, activation
from ffn_calc.model.norms import NORM_TYPES, norm_type

FLOPS_PER_MAC = 2

GLU_MULTIPLY_FLOPS_PER_ELEMENT = 1
ROUTER_SOFTMAX_FLOPS_PER_LOGIT = 3
BIAS_ADD_FLOPS_PER_ELEMENT = 1
RESIDUAL_ADD_FLOPS_PER_ELEMENT = 1
LAYERNORM_FLOPS_PER_ELEMENT = norm_type("layer").flops_per_element
LAYERNORM_FLOPS_PER_ROW = norm_type("layer").flops_per_row
GLU_BACKWARD_EXTRA_FLOPS_PER_ELEMENT = 2  # see activation_backward_flops
SIGMOID_FLOPS = 4  # 1 / (1 + exp(−g)): negate, exp, add, divide; once per token (the shared-expert gate)
GATE_SCALE_FLOPS_PER_ELEMENT = 1  # sigmoid(g) ⊙ the shared experts' output


def norm_flops(kind: str, rows: int, width: int) -> int:
    """FLOPs of the norm `kind` (layer, rms) over `rows` vectors of `width` elements."""
    return norm_type(kind).flops(rows, width)


def norm_backward_flops(kind: str, rows: int, width: int) -> int:
    """Backward FLOPs of that norm: dx and its weights' gradients (the registry's counts)."""
    return norm_type(kind).backward_flops(rows, width)


def activation_flops(name: str) -> int:
    """Forward FLOPs per element of the activation stage of `--activation name`: the
    nonlinearity's own cost, and for a GLU (act(g) ⊙ u) the multiply by u as well."""
    return activation(name).flops + (GLU_MULTIPLY_FLOPS_PER_ELEMENT if name in GATED_FORMS else 0)


def activation_backward_flops(name: str) -> int:
    """Backward FLOPs per element of that stage. A GLU's dg = da ⊙ u ⊙ act'(g) and
    du = da ⊙ act(g) cost the nonlinearity's backward, its forward again and 2 multiplies."""
    a = activation(name)
    return a.backward_flops + (a.flops + GLU_BACKWARD_EXTRA_FLOPS_PER_ELEMENT if name in GATED_FORMS else 0)


def _activation_costs() -> str:
    return ", ".join(f"{a.label} {a.flops}" for a in NONLINEARITIES.values())


def _norm_costs() -> str:
    return ", ".join(f"{n.label} {n.flops_per_element} FLOPs/element + {n.flops_per_row}/row" for n in NORM_TYPES.values())


CONVENTION_SUMMARY = (
    "FLOPs = 2 × MACs for every multiply-add; MACs count matmuls only. "
    f"Bias add {BIAS_ADD_FLOPS_PER_ELEMENT} FLOP/element, residual add {RESIDUAL_ADD_FLOPS_PER_ELEMENT} FLOP/element, "
    f"{_activation_costs()} FLOPs/element (exp/erf/tanh count 1), "
    f"GLU: the activation's cost + {GLU_MULTIPLY_FLOPS_PER_ELEMENT} multiply per element. "
    f"{_norm_costs()}. "
    f"MoE: router softmax {ROUTER_SOFTMAX_FLOPS_PER_LOGIT} FLOPs/logit; combine (2·k − 1) FLOPs/element."
)


def conventions_dict() -> dict[str, object]:
    """The convention as JSON: every per-element cost, keyed as the README documents."""
    return {
        "flops_per_mac": FLOPS_PER_MAC,
        "bias_add_flops_per_element": BIAS_ADD_FLOPS_PER_ELEMENT,
        "residual_add_flops_per_element": RESIDUAL_ADD_FLOPS_PER_ELEMENT,
        "activation_flops_per_element": {a.name: a.flops for a in NONLINEARITIES.values()},
        **{
            f"{n.stage}_flops_per_{unit}": value
            for n in NORM_TYPES.values()
            for unit, value in (("element", n.flops_per_element), ("row", n.flops_per_row))
        },  # layernorm_…, rmsnorm_…
        "glu_multiply_flops_per_element": GLU_MULTIPLY_FLOPS_PER_ELEMENT,
        "router_softmax_flops_per_logit": ROUTER_SOFTMAX_FLOPS_PER_LOGIT,
        "shared_expert_gate_sigmoid_flops_per_token": SIGMOID_FLOPS,
        "shared_expert_gate_scale_flops_per_element": GATE_SCALE_FLOPS_PER_ELEMENT,
    }


# --- backward (training) ---------------------------------------------------------------------------
# A matmul's backward is two products as costly as the forward one: dX = dY·Wᵀ and dW = Xᵀ·dY
# (the first linear's dX is counted too: in a stack of layers the layer below needs it).
# Elementwise backward costs per element, counted like the forward ones (the derivative's
# arithmetic, transcendental functions as 1 FLOP, and the multiply by the incoming gradient):
# (each activation's own backward cost is in the registry, activations.py; a GLU's in
# activation_backward_flops above)
BIAS_GRAD_FLOPS_PER_ELEMENT = 1  # db = Σ over rows of dY
GRADIENT_SUM_FLOPS_PER_ELEMENT = 1  # a tensor read by c stages: its c gradients are added, (c − 1) adds per element
# A norm's backward (dx and its weights' gradients) is in its registry entry (norms.py):
# LayerNorm 11 per element + 2 per row, RMSNorm 8 + 1.
# Mixture of experts (dropless). The router's softmax: dlogits = p ⊙ (dp − Σ p·dp), 4 per logit;
# the renormalised top-k weights w = c / Σc: dc = (dw − Σ dw·w) / Σc, 4 per selected weight;
# combine: dye = w·dy and dw = Σ dy·ye, 3 per routed element; dispatch: each routed row's
# gradient added back into its token's, 1 per element.
ROUTING_BACKWARD_FLOPS_PER_LOGIT = 4
RENORM_BACKWARD_FLOPS_PER_WEIGHT = 4
COMBINE_BACKWARD_FLOPS_PER_ELEMENT = 3
GATHER_BACKWARD_FLOPS_PER_ELEMENT = 1
# The shared-expert gate (Qwen2-MoE), out = σ ⊙ ys with σ = sigmoid(g), one σ per token:
# dys = σ·dout, 1 per element; dσ = Σ dout·ys over the row, 2 per element (multiply, add);
# dg = dσ·σ·(1 − σ), 3 per token (subtract, two multiplies). Its matmul's backward is a matmul's.
GATE_SCALE_BACKWARD_FLOPS_PER_ELEMENT = 3
SIGMOID_BACKWARD_FLOPS = 3
ROUTING_INDEX_BYTES = 8  # int64, kept for backward
DROPOUT_FLOPS_PER_ELEMENT = 1  # apply the mask (and scale) forward; the same backward
DROPOUT_MASK_BYTES_PER_ELEMENT = 1
# A norm keeps its input and per-row statistics in float32 (norms.py): LayerNorm's mean and
# 1/σ, 8 bytes per row; RMSNorm's 1/rms, 4 bytes per row.
