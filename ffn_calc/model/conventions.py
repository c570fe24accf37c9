"""The counting convention of ffn-calc, stated once: one table of costs.

Every cost the tool counts by convention rather than observes is one entry here, or (for an
activation or a norm) one entry of its registry, activations.py or norms.py, which carries its
own costs. The model's stages (forward.py), its training backward (training.py) and the
verifier's counting all read these entries; no cost is written anywhere else, and a test
searches the package for one that is (tests/model/test_costs.py). This docstring lists every
entry of the table and a test holds it to the table.

FLOPs
    A multiply-add is 2 FLOPs. A matmul (M, K)·(K, N) is M·K·N MACs and 2·M·K·N FLOPs, forward
    and backward alike. The "MACs" figure covers matmuls only; elementwise work has FLOPs and
    no MACs. Matmul-only FLOPs are reported on their own as well; they are the figure papers
    quote (Kaplan et al. 2020; Megatron-LM; nanoGPT), 4·d_model·d_ff per token for a plain FFN.

Elementwise work, counted per unit written, each transcendental function (exp, erf, tanh,
rsqrt) one FLOP:
    multiply-add                 2 per mac       a matmul's multiply-add (FLOPs = 2 × MACs)
  forward
    bias add                     1 per element   out = x·W + b: one add per output element
    residual add                 1 per element   r = x + FFN(…)
    GLU multiply                 1 per element   act(g) ⊙ u, beside the activation's own cost
    router softmax               3 per logit     exp, sum, divide; top-k selection is comparisons, not counted
    top-k renormalise      2·k − 1 per token     w = c / Σc over the k chosen: k − 1 adds, k divides
    weighted combine       2·k − 1 per element   y = Σₖ w·ye: k multiplies, k − 1 adds
    shared experts add           1 per element   the shared experts' output added to the routed ones'
    sigmoid gate                 4 per token     Qwen2-MoE's σ(g) = 1 / (1 + exp(−g)): negate, exp, add, divide
    gate scale                   1 per element   σ(g) ⊙ the shared experts' output
    dropout                      1 per element   the mask (and its scale) applied to the FFN output
  backward (a matmul's is its two products, dX = dY·Wᵀ and dW = Xᵀ·dY, each 2·M·K·N)
    bias gradient                1 per element   db = Σ over rows of dY, per element of dY
    gradient sum                 1 per element   a tensor read by c stages gets c gradients: c − 1 adds
    GLU multiplies, backward     2 per element   dg = da ⊙ u ⊙ act'(g) and du = da ⊙ act(g), beside act' and act again
    router softmax, backward     4 per logit     dlogits = p ⊙ (dp − Σ p·dp)
    top-k renormalise, backward  4 per weight    dc = (dw − Σ dw·w) / Σc, per selected weight
    weighted combine, backward   3 per element   dye = w·dy and dw = Σ dy·ye, per routed element
    dispatch, backward           1 per element   each routed row's gradient added back into its token's
    gate scale, backward         3 per element   dys = σ·dout (1), dσ = Σ dout·ys over the row (2)
    sigmoid gate, backward       3 per token     dg = dσ·σ·(1 − σ): subtract, two multiplies
    dropout, backward            1 per element   the same mask on the gradient

Activations and norms
    each activation's forward and backward FLOPs per element are its registry entry's
    (activations.py); a GLU's stage adds the GLU multiply, its backward the GLU multiplies and
    the activation again. Each norm's FLOPs per element and per row, forward and backward, and
    those of its weights' gradients alone, are its registry entry's (norms.py).

Storage conventions (bytes, not FLOPs): the routing's expert indices are int64, the dropout
mask one byte per element, a norm's per-row statistics float32 (norms.py).
"""

from __future__ import annotations

from typing import NamedTuple

from ffn_calc.model.activations import GATED_FORMS, NONLINEARITIES, activation
from ffn_calc.model.norms import NORM_TYPES, norm_type

FORWARD, BACKWARD, BOTH = "forward", "backward", "forward and backward"


class Cost(NamedTuple):
    """One counting rule: `flops` per `unit` written (element, row, token, logit, weight, mac), in
    the `phase` it belongs to, with what it counts. A cost that grows with top_k (the MoE
    combine and renormalisation) is `flops` + `per_k`·k per unit: read it through `at(k)`.

    `name` keys it in the JSON (`key`, as in `bias_add_flops_per_element`); `label` is the
    operation as verify's rows name it; `source` how verify cites where it comes from —
    conventions.<KEY> for an entry of this table, or `cited` when that says more (an entry
    built from a registry cites the registry)."""

    name: str
    label: str
    flops: int
    unit: str
    phase: str
    counts: str
    per_k: int = 0
    cited: str = ""

    @property
    def key(self) -> str:
        """Its key in the JSON's `conventions`: name_flops_per_unit (flops_per_mac for the multiply-add)."""
        return "_".join(part for part in (self.name, "flops_per", self.unit) if part)

    @property
    def source(self) -> str:
        return self.cited or f"conventions.{self.key.upper()}"

    @property
    def formula(self) -> str:
        """Its FLOPs per unit as written in the docstring: 1, or 2·k − 1."""
        if not self.per_k:
            return str(self.flops)
        constant = f" − {-self.flops}" if self.flops < 0 else f" + {self.flops}" if self.flops else ""
        return f"{self.per_k}·k{constant}"

    def at(self, k: int) -> Cost:
        """The cost for top_k = k, its FLOPs per unit a plain number."""
        return self._replace(flops=self.flops + self.per_k * k, per_k=0)


COSTS: dict[str, Cost] = {}


def _cost(*fields: object) -> Cost:
    """Declare one entry of the table; a name declared twice raises."""
    cost = Cost(*fields)  # type: ignore[arg-type]
    if cost.name in COSTS:
        raise ValueError(f"the cost {cost.name!r} is declared twice")
    COSTS[cost.name] = cost
    return cost


MULTIPLY_ADD = _cost("", "multiply-add", 2, "mac", BOTH, "a matmul's multiply-add: FLOPs = 2 × MACs")

BIAS_ADD = _cost("bias_add", "bias add", 1, "element", FORWARD, "out = x·W + b: one add per output element")
RESIDUAL_ADD = _cost("residual_add", "residual add", 1, "element", FORWARD, "r = x + FFN(…): one add per element")
GLU_MULTIPLY = _cost("glu_multiply", "GLU multiply", 1, "element", FORWARD, "act(g) ⊙ u: one multiply per element, beside the activation's cost")
ROUTER_SOFTMAX = _cost("router_softmax", "router softmax", 3, "logit", FORWARD, "exp, sum, divide; the top-k selection is comparisons, not counted")
TOP_K_RENORM = _cost("top_k_renormalise", "top-k renormalise", -1, "token", FORWARD, "w = c / Σc over the k chosen: k − 1 adds, k divides",
                     2, "the routing stage's (2·k − 1) per token: k − 1 adds, k divides")  # fmt: skip
COMBINE = _cost("combine", "weighted combine", -1, "element", FORWARD, "y = Σₖ w·ye: k multiplies, k − 1 adds per output element",
                2, "conventions: MoE combine (2·k − 1) FLOPs per output element")  # fmt: skip
SHARED_ADD = _cost("shared_experts_add", "shared experts add", 1, "element", FORWARD, "the shared experts' output added to the routed ones'",
                   0, "conventions: + 1 per element to add the shared experts")  # fmt: skip
GATE_SIGMOID = _cost("shared_expert_gate_sigmoid", "sigmoid gate", 4, "token", FORWARD, "σ(g) = 1 / (1 + exp(−g)): negate, exp, add, divide")
GATE_SCALE = _cost("shared_expert_gate_scale", "gate scale", 1, "element", FORWARD, "σ(g) ⊙ the shared experts' output")
DROPOUT = _cost("dropout", "dropout", 1, "element", FORWARD, "the mask (and its scale) applied to the FFN output")

BIAS_GRAD = _cost("bias_grad", "bias gradient", 1, "element", BACKWARD, "db = Σ over rows of dY, per element of dY")
GRADIENT_SUM = _cost("gradient_sum", "gradient sum", 1, "element", BACKWARD, "a tensor read by c stages gets c gradients: c − 1 adds")
GLU_MULTIPLY_BACKWARD = _cost("glu_multiply_backward", "GLU multiplies, backward", 2, "element", BACKWARD,
                              "dg = da ⊙ u ⊙ act'(g) and du = da ⊙ act(g), beside act' and act again")  # fmt: skip
ROUTER_SOFTMAX_BACKWARD = _cost("router_softmax_backward", "router softmax, backward", 4, "logit", BACKWARD, "dlogits = p ⊙ (dp − Σ p·dp)")
TOP_K_RENORM_BACKWARD = _cost("top_k_renormalise_backward", "top-k renormalise, backward", 4, "weight", BACKWARD,
                              "dc = (dw − Σ dw·w) / Σc, per selected weight")  # fmt: skip
COMBINE_BACKWARD = _cost("combine_backward", "weighted combine, backward", 3, "element", BACKWARD, "dye = w·dy and dw = Σ dy·ye, per routed element")
DISPATCH_BACKWARD = _cost("dispatch_backward", "dispatch, backward", 1, "element", BACKWARD, "each routed row's gradient added back into its token's")
GATE_SCALE_BACKWARD = _cost("shared_expert_gate_scale_backward", "gate scale, backward", 3, "element", BACKWARD,
                            "dys = σ·dout (1), dσ = Σ dout·ys over the row (2)")  # fmt: skip
GATE_SIGMOID_BACKWARD = _cost("shared_expert_gate_sigmoid_backward", "sigmoid gate, backward", 3, "token", BACKWARD,
                              "dg = dσ·σ·(1 − σ): subtract, two multiplies")  # fmt: skip
DROPOUT_BACKWARD = _cost("dropout_backward", "dropout, backward", 1, "element", BACKWARD, "the same mask on the gradient")

# Storage conventions (bytes, not FLOPs).
ROUTING_INDEX_BYTES = 8  # int64, kept for backward
DROPOUT_MASK_BYTES_PER_ELEMENT = 1


def activation_cost(name: str) -> Cost:
    """The nonlinearity of `--activation name` (its gated form's too), per element, forward."""
    a = activation(name)
    return Cost(a.name, a.label, a.flops, "element", FORWARD, a.flops_count, cited=f"activation registry: {a.name}.flops ({a.flops_count})")


def activation_backward_cost(name: str) -> Cost:
    """Its derivative times the incoming gradient, per element."""
    a = activation(name)
    return Cost(a.name, f"{a.label}, backward", a.backward_flops, "element", BACKWARD, a.backward_count,
                cited=f"activation registry: {a.name}.backward_flops ({a.backward_count})")  # fmt: skip


def activation_stage_costs(name: str) -> tuple[Cost, ...]:
    """What the activation stage of `--activation name` costs per element: the nonlinearity,
    and for a GLU (act(g) ⊙ u) the multiply by u."""
    return (activation_cost(name), GLU_MULTIPLY) if name in GATED_FORMS else (activation_cost(name),)


def activation_backward_costs(name: str) -> tuple[Cost, ...]:
    """What its backward costs per element: the nonlinearity's backward; for a GLU, whose
    dg = da ⊙ u ⊙ act'(g) and du = da ⊙ act(g), also act(g) again and the GLU multiplies."""
    if name in GATED_FORMS:
        return activation_backward_cost(name), activation_cost(name), GLU_MULTIPLY_BACKWARD
    return (activation_backward_cost(name),)


def activation_flops(name: str) -> int:
    """Forward FLOPs per element of the activation stage of `--activation name`: the
    nonlinearity's own cost, and for a GLU (act(g) ⊙ u) the multiply by u as well."""
    return sum(c.flops for c in activation_stage_costs(name))


def activation_backward_flops(name: str) -> int:
    """Backward FLOPs per element of that stage. A GLU's dg = da ⊙ u ⊙ act'(g) and
    du = da ⊙ act(g) cost the nonlinearity's backward, its forward again and the GLU's
    backward multiplies."""
    return sum(c.flops for c in activation_backward_costs(name))


def norm_costs(kind: str) -> tuple[Cost, Cost]:
    """The norm `kind`'s forward costs: per element and per row (norms.py)."""
    n = norm_type(kind)
    source = f"norm registry: {n.name} ({n.flops_count})"
    return (Cost(n.name, n.label, n.flops_per_element, "element", FORWARD, n.flops_count, cited=source),
            Cost(n.name, f"{n.label} per row", n.flops_per_row, "row", FORWARD, n.flops_count, cited=source))  # fmt: skip


def norm_backward_costs(kind: str, input_grad: bool = True) -> tuple[Cost, ...]:
    """Its backward costs: dx and its weights' gradients, per element and per row; or, when its
    input needs no gradient, its weights' gradients alone, per element."""
    n = norm_type(kind)
    source = f"norm registry: {n.name} ({n.backward_count})"
    if not input_grad:
        return (Cost(n.name, f"{n.label} weight gradients", n.weight_grad_flops_per_element, "element", BACKWARD, n.backward_count, cited=source),)
    return (Cost(n.name, f"{n.label}, backward", n.backward_flops_per_element, "element", BACKWARD, n.backward_count, cited=source),
            Cost(n.name, f"{n.label}, backward, per row", n.backward_flops_per_row, "row", BACKWARD, n.backward_count, cited=source))  # fmt: skip


def _activation_text() -> str:
    return ", ".join(f"{a.label} {a.flops}" for a in NONLINEARITIES.values())


def _norm_text() -> str:
    return ", ".join(f"{n.label} {n.flops_per_element} FLOPs/element + {n.flops_per_row}/row" for n in NORM_TYPES.values())


CONVENTION_SUMMARY = (
    f"FLOPs = {MULTIPLY_ADD.flops} × MACs for every multiply-add; MACs count matmuls only. "
    f"Bias add {BIAS_ADD.flops} FLOP/element, residual add {RESIDUAL_ADD.flops} FLOP/element, "
    f"{_activation_text()} FLOPs/element (exp/erf/tanh count 1), "
    f"GLU: the activation's cost + {GLU_MULTIPLY.flops} multiply per element. "
    f"{_norm_text()}. "
    f"MoE: router softmax {ROUTER_SOFTMAX.flops} FLOPs/logit; combine ({COMBINE.formula}) FLOPs/element."
)


def conventions_dict() -> dict[str, object]:
    """The forward convention as JSON, keyed as the README documents: the multiply-add, the bias
    and residual adds, each activation, each norm per element and per row, then the GLU
    multiply, the router softmax and the shared-expert gate."""
    return {
        MULTIPLY_ADD.key: MULTIPLY_ADD.flops,
        **{c.key: c.flops for c in (BIAS_ADD, RESIDUAL_ADD)},
        "activation_flops_per_element": {a.name: a.flops for a in NONLINEARITIES.values()},
        **{
            f"{n.stage}_flops_per_{unit}": value
            for n in NORM_TYPES.values()
            for unit, value in (("element", n.flops_per_element), ("row", n.flops_per_row))
        },  # layernorm_…, rmsnorm_…
        **{c.key: c.flops for c in (GLU_MULTIPLY, ROUTER_SOFTMAX, GATE_SIGMOID, GATE_SCALE)},
    }
