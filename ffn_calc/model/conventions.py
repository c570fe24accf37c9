"""The counting convention of ffn-calc, stated once.

Everything the tool counts that is a convention rather than a fact lives here; the core,
the verifier and the README's convention section all read it from this module.

FLOPs
    A multiply-add is 2 FLOPs. A matmul (M, K)·(K, N) is M·K·N MACs and 2·M·K·N FLOPs.
    The "MACs" figure covers matmuls only; elementwise work has FLOPs and no MACs.
Elementwise work (counted in FLOPs, never in MACs)
    bias add        1 FLOP per output element
    residual add    1 FLOP per element
    activation      ACTIVATION_FLOPS_PER_ELEMENT below: the arithmetic operations of the
                    formula as written in ACTIVATION_FORMULAS, with each transcendental
                    function (exp, erf, tanh) counted as one FLOP
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

FLOPS_PER_MAC = 2

DTYPE_BYTES: dict[str, int] = {
    "float64": 8,
    "float32": 4,
    "bfloat16": 2,
    "float16": 2,
    "int8": 1,
}

ACTIVATION_FORMULAS: dict[str, str] = {
    "relu": "max(0, h)",
    "gelu": "0.5·h·(1 + erf(h/√2))",
    "gelu_tanh": "0.5·h·(1 + tanh(√(2/π)·(h + 0.044715·h³)))",
    "silu": "h / (1 + exp(−h))",
}

ACTIVATION_FLOPS_PER_ELEMENT: dict[str, int] = {
    "relu": 1,  # one compare-and-select
    "gelu": 5,  # divide, erf, add, multiply by h, multiply by 0.5
    "gelu_tanh": 9,  # h³ (2), ×0.044715, +h, ×√(2/π), tanh, +1, ×h, ×0.5
    "silu": 4,  # negate, exp, add, divide
}

# Gated variants: name → the nonlinearity applied to the gate.
GLU_VARIANTS: dict[str, str] = {
    "swiglu": "silu",
    "geglu": "gelu",
    "geglu_tanh": "gelu_tanh",
    "reglu": "relu",
}

GLU_MULTIPLY_FLOPS_PER_ELEMENT = 1
ROUTER_SOFTMAX_FLOPS_PER_LOGIT = 3
BIAS_ADD_FLOPS_PER_ELEMENT = 1
RESIDUAL_ADD_FLOPS_PER_ELEMENT = 1
LAYERNORM_FLOPS_PER_ELEMENT = 7
LAYERNORM_FLOPS_PER_ROW = 2


def layernorm_flops(rows: int, width: int) -> int:
    """FLOPs of a LayerNorm over `rows` vectors of `width` elements (see module docstring)."""
    return rows * (LAYERNORM_FLOPS_PER_ELEMENT * width + LAYERNORM_FLOPS_PER_ROW)


CONVENTION_SUMMARY = (
    "FLOPs = 2 × MACs for every multiply-add; MACs count matmuls only. "
    "Bias add 1 FLOP/element, residual add 1 FLOP/element, "
    "ReLU 1, GELU 5, GELU-tanh 9, SiLU 4 FLOPs/element (exp/erf/tanh count 1), "
    "GLU: the activation's cost + 1 multiply per element. LayerNorm 7 FLOPs/element + 2/row. "
    "MoE: router softmax 3 FLOPs/logit; combine (2·k − 1) FLOPs/element."
)

# --- backward (training) ---------------------------------------------------------------------------
# A matmul's backward is two products as costly as the forward one: dX = dY·Wᵀ and dW = Xᵀ·dY
# (the first linear's dX is counted too: in a stack of layers the layer below needs it).
# Elementwise backward costs per element, counted like the forward ones (the derivative's
# arithmetic, transcendental functions as 1 FLOP, and the multiply by the incoming gradient):
ACTIVATION_BACKWARD_FLOPS_PER_ELEMENT: dict[str, int] = {
    "relu": 1,  # select the gradient where h > 0
    "gelu": 11,  # Φ(h) (4) + φ(h) (4) + h·φ(h) (1) + add (1) + × grad (1)
    "gelu_tanh": 19,  # u and tanh (6) + du/dh (4) + 0.5(1+t) + 0.5h(1−t²)du/dh (8) + × grad (1)
    "silu": 9,  # σ(h) (4) + σ(1 + h(1−σ)) (4) + × grad (1)
}
# GLU, a = act(g) ⊙ u: dg = da ⊙ u ⊙ act'(g) and du = da ⊙ act(g), so per element the
# activation's backward cost + its forward cost (act(g) again) + 2 multiplies.
GLU_BACKWARD_EXTRA_FLOPS_PER_ELEMENT = 2
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
