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
    LayerNorm       7 FLOPs per element + 2 per row: mean 1, centre 1, variance 2 (square,
                    sum), normalise 1, affine 2 (scale, shift), and per row eps-add + rsqrt
    MoE router      a matmul (d_model → experts, no bias), then softmax: 3 FLOPs per logit
                    (exp, sum, divide); the top-k selection is comparisons, not counted
    MoE combine     each token's k expert outputs scaled by their router weights and summed:
                    (2·k − 1) FLOPs per output element, + 1 per element to add the shared experts
Matmul-only FLOPs are reported on their own as well; they are the figure papers quote
(Kaplan et al. 2020; Megatron-LM; nanoGPT), 4·d_model·d_ff per token for a plain FFN.
"""

from __future__ import annotations

from ffn_calc.model.activations import ACTIVATIONS, GATED, activation

FLOPS_PER_MAC = 2

GLU_MULTIPLY_FLOPS_PER_ELEMENT = 1
ROUTER_SOFTMAX_FLOPS_PER_LOGIT = 3
BIAS_ADD_FLOPS_PER_ELEMENT = 1
RESIDUAL_ADD_FLOPS_PER_ELEMENT = 1
LAYERNORM_FLOPS_PER_ELEMENT = 7
LAYERNORM_FLOPS_PER_ROW = 2
GLU_BACKWARD_EXTRA_FLOPS_PER_ELEMENT = 2  # see activation_backward_flops


def layernorm_flops(rows: int, width: int) -> int:
    """FLOPs of a LayerNorm over `rows` vectors of `width` elements (see module docstring)."""
    return rows * (LAYERNORM_FLOPS_PER_ELEMENT * width + LAYERNORM_FLOPS_PER_ROW)


def activation_flops(name: str) -> int:
    """Forward FLOPs per element of the activation stage of `--activation name`: the
    nonlinearity's own cost, and for a GLU (act(g) ⊙ u) the multiply by u as well."""
    return activation(name).flops + (GLU_MULTIPLY_FLOPS_PER_ELEMENT if name in GATED else 0)


def activation_backward_flops(name: str) -> int:
    """Backward FLOPs per element of that stage. A GLU's dg = da ⊙ u ⊙ act'(g) and
    du = da ⊙ act(g) cost the nonlinearity's backward, its forward again and 2 multiplies."""
    a = activation(name)
    return a.backward_flops + (a.flops + GLU_BACKWARD_EXTRA_FLOPS_PER_ELEMENT if name in GATED else 0)


def _activation_costs() -> str:
    return ", ".join(f"{a.label} {a.flops}" for a in ACTIVATIONS.values())


CONVENTION_SUMMARY = (
    "FLOPs = 2 × MACs for every multiply-add; MACs count matmuls only. "
    f"Bias add {BIAS_ADD_FLOPS_PER_ELEMENT} FLOP/element, residual add {RESIDUAL_ADD_FLOPS_PER_ELEMENT} FLOP/element, "
    f"{_activation_costs()} FLOPs/element (exp/erf/tanh count 1), "
    f"GLU: the activation's cost + {GLU_MULTIPLY_FLOPS_PER_ELEMENT} multiply per element. "
    f"LayerNorm {LAYERNORM_FLOPS_PER_ELEMENT} FLOPs/element + {LAYERNORM_FLOPS_PER_ROW}/row. "
    f"MoE: router softmax {ROUTER_SOFTMAX_FLOPS_PER_LOGIT} FLOPs/logit; combine (2·k − 1) FLOPs/element."
)


def conventions_dict() -> dict[str, object]:
    """The convention as JSON: every per-element cost, keyed as the README documents."""
    return {
        "flops_per_mac": FLOPS_PER_MAC,
        "bias_add_flops_per_element": BIAS_ADD_FLOPS_PER_ELEMENT,
        "residual_add_flops_per_element": RESIDUAL_ADD_FLOPS_PER_ELEMENT,
        "activation_flops_per_element": {a.name: a.flops for a in ACTIVATIONS.values()},
        "layernorm_flops_per_element": LAYERNORM_FLOPS_PER_ELEMENT,
        "layernorm_flops_per_row": LAYERNORM_FLOPS_PER_ROW,
        "glu_multiply_flops_per_element": GLU_MULTIPLY_FLOPS_PER_ELEMENT,
        "router_softmax_flops_per_logit": ROUTER_SOFTMAX_FLOPS_PER_LOGIT,
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
LAYERNORM_BACKWARD_FLOPS_PER_ELEMENT = 11  # dγ, dβ, and dx = (γ·dy − mean(γ·dy) − x̂·mean(γ·dy·x̂)) / σ
LAYERNORM_BACKWARD_FLOPS_PER_ROW = 2
# Mixture of experts (dropless). The router's softmax: dlogits = p ⊙ (dp − Σ p·dp), 4 per logit;
# the renormalised top-k weights w = c / Σc: dc = (dw − Σ dw·w) / Σc, 4 per selected weight;
# combine: dye = w·dy and dw = Σ dy·ye, 3 per routed element; dispatch: each routed row's
# gradient added back into its token's, 1 per element.
ROUTING_BACKWARD_FLOPS_PER_LOGIT = 4
RENORM_BACKWARD_FLOPS_PER_WEIGHT = 4
COMBINE_BACKWARD_FLOPS_PER_ELEMENT = 3
GATHER_BACKWARD_FLOPS_PER_ELEMENT = 1
ROUTING_INDEX_BYTES = 8  # int64, kept for backward
DROPOUT_FLOPS_PER_ELEMENT = 1  # apply the mask (and scale) forward; the same backward
DROPOUT_MASK_BYTES_PER_ELEMENT = 1
LAYERNORM_SAVED_BYTES_PER_ROW = 8  # mean and 1/σ in float32
