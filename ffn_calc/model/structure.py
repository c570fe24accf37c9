"""The names of a layer's parts, declared once: the linears of each form of the FFN (plain,
gated, gated with a fused gate/up matrix), with their stage, weight and bias names, the
letter of their output and how tensor parallelism splits them; the other stages; the
prefixes of shared and routed experts; the tensors training keeps that are not stage outputs.
The model, training, parallelism and the verifier all name things through this module.
"""

from __future__ import annotations

from typing import NamedTuple


class Linear(NamedTuple):
    """One linear of the FFN core: out = in·W (+ b).

    `first`: it reads the block's input, (d_model, width) — Megatron splits it by columns;
    otherwise it is the block's output linear, (width, d_model), split by rows. `fused`: its
    columns are [gate | up], each half split by columns on its own."""

    stage: str
    weight: str
    bias: str
    symbol: str
    first: bool
    fused: bool = False


PLAIN_LINEARS = (Linear("linear1", "W1", "b1", "h", True), Linear("linear2", "W2", "b2", "y", False))
GATED_LINEARS = (
    Linear("gate", "W_gate", "b_gate", "g", True),
    Linear("up", "W_up", "b_up", "u", True),
    Linear("down", "W_down", "b_down", "y", False),
)
FUSED_LINEARS = (Linear("gate_up", "W_gate_up", "b_gate_up", "gu", True, fused=True), GATED_LINEARS[-1])
ALL_LINEARS = (*PLAIN_LINEARS, *GATED_LINEARS, FUSED_LINEARS[0])


def linears(glu: bool, fused: bool) -> tuple[Linear, ...]:
    """The linears of one FFN block, in order: the first ones (reading the input), then the last."""
    return (FUSED_LINEARS if fused else GATED_LINEARS) if glu else PLAIN_LINEARS


def linear_of(param: str) -> Linear | None:
    """The linear whose weight or bias `param` is (any expert prefix removed), or None."""
    base = param.removeprefix(SHARED).removeprefix(EXPERT)
    return next((lin for lin in ALL_LINEARS if base in (lin.weight, lin.bias)), None)


# Stages other than the linears, by name.
INPUT = "input"
ACTIVATION = "activation"  # a plain FFN's nonlinearity
GLU = "glu"  # a gated FFN's act(g) ⊙ u
RESIDUAL = "residual"  # a norm's stage is named by its registry entry (norms.py)
ROUTER = "router"
ROUTING = "routing"
SHARED_EXPERT_GATE = "shared_expert_gate"  # Qwen2-MoE: g = x·w_s, (tokens, 1)
SHARED_EXPERT_SCALE = "shared_expert_scale"  # sigmoid(g) ⊙ the shared experts' output
DISPATCH = "dispatch"
COMBINE = "combine"

# Weights that are not a linear's.
W_ROUTER = "W_router"
B_ROUTER = "b_router"  # gpt-oss's router bias, (experts,)
W_SHARED_EXPERT_GATE = "W_shared_expert_gate"  # (d_model, 1): HF's shared_expert_gate
LN_GAMMA = "ln_gamma"
LN_BETA = "ln_beta"
RMS_GAMMA = "rms_gamma"  # RMSNorm has γ only

# Prefixes of the blocks of a mixture of experts (the dense FFN has none).
SHARED = "shared_"
EXPERT = "expert_"

# Tensors training keeps that are not the output of a stage.
ROUTING_INDICES = "routing_indices"
LAYERNORM_STATS = "layernorm_stats"
RMSNORM_STATS = "rmsnorm_stats"
DROPOUT_MASK = "dropout_mask"
