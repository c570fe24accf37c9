"""The classic interview questions about the FFN, answered with the numbers of the layer at hand.

Each answer carries `values`: every number it prints, as (name, expression, value). The value is
the core's figure (from `analyze` of the layer, or of a variant of it: a 4× ReLU FFN of the same
d_model, the same layer with a norm) or the registry's; the expression is written out from the
sizes so a reader can check it by eye, and the tests evaluate each expression and require it to
equal the value. Attention is not modelled: its 4·d² is stated as an assumption where used.
Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ffn_calc.model import structure as names
from ffn_calc.model.conventions import GLU_MULTIPLY_FLOPS_PER_ELEMENT, activation_flops
from ffn_calc.model.forward import FFNReport, analyze
from ffn_calc.model.layer import FFNConfig, glu_matched_d_ff
from ffn_calc.model.norms import norm_type

LLAMA_MULTIPLE_OF = 256  # LLaMA's multiple_of (llama/model.py, 7B)
ATTENTION_PROJECTIONS = 4  # Q, K, V, O, each d_model × d_model (multi-head attention)


@dataclass(frozen=True)
class Value:
    """A number an answer prints: `expression` (digits and · + − / //) evaluates to `value`."""

    name: str
    expression: str
    value: int | float
    unit: str = ""


@dataclass(frozen=True)
class Fact:
    topic: str
    answer: str
    values: tuple[Value, ...] = ()


def shown(v: Value) -> str:
    """The value as an answer prints it: 134,217,728; 0.78%; 10,922.67."""
    if isinstance(v.value, int):
        text = f"{v.value:,}"
    elif v.unit == "%":
        text = f"{v.value:.2f}" if abs(v.value) >= 0.01 else f"{v.value:.2g}"
    else:
        text = f"{v.value:,.2f}".rstrip("0").rstrip(".")
    return text + ("%" if v.unit == "%" else "")


class _Answer:
    """Collects the values an answer prints, in the order it prints them."""

    def __init__(self) -> None:
        self.values: list[Value] = []

    def __call__(self, name: str, expression: str, value: int | float, unit: str = "", bare: bool = False) -> str:
        v = Value(name, expression, value, unit)
        self.values.append(v)
        return shown(v) if bare else f"{expression} = {shown(v)}"

    def fact(self, topic: str, answer: str) -> Fact:
        return Fact(topic, answer, tuple(self.values))


def _bare_ffn(cfg: FFNConfig, activation: str, d_ff: int) -> FFNReport:
    """One token through a dense FFN of this d_model, without biases or norm."""
    return analyze(
        replace(
            cfg,
            batch=1,
            seq_len=1,
            activation=activation,
            d_ff=d_ff,
            bias=False,
            fused=False,
            norm="none",
            experts=0,
            top_k=0,
            shared_experts=0,
            shared_expert_gate=False,
            router_bias=False,
            capacity_factor=None,
            layers=1,
        )
    )


def _pct(part: int, whole: int) -> tuple[str, float]:
    return f"100·{part}/{whole}", 100 * part / whole


def facts(report: FFNReport) -> tuple[Fact, ...]:
    c = report.config
    d, f = c.d_model, c.d_ff
    four = _bare_ffn(c, "relu", 4 * d).totals
    attention = ATTENTION_PROJECTIONS * d * d
    w4 = four.weight_params  # a 4× FFN's weights, 8·d²
    out: list[Fact] = []

    a = _Answer()
    out.append(
        a.fact(
            "Why d_ff = 4 × d_model",
            "The original Transformer's choice, kept because it trains well; the wide hidden layer is where a block's "
            f"parameters go. Without biases a 4× FFN has 2·d·4d = {a('4x FFN weights', f'2·{d}·{4 * d}', w4)} "
            f"weights (8·d²), against attention's 4·d² = {a('attention weights', f'4·{d}·{d}', attention)} (Q, K, V and O, "
            f"each d×d): {a('FFN / attention', f'{w4}/{attention}', w4 / attention)} times as many. "
            f"Per token it costs 2 FLOPs per weight: {a('4x FFN FLOPs per token', f'2·{w4}', four.matmul_flops_per_token or 0)} FLOPs.",
        )
    )

    a = _Answer()
    m = LLAMA_MULTIPLE_OF
    llama = glu_matched_d_ff(d, m).value
    glu = _bare_ffn(c, "swiglu", llama).totals.weight_params
    floor = 8 * d // 3
    extra = (glu - w4, w4)
    this = ""
    if c.is_glu and f != llama:
        own = _bare_ffn(c, c.activation, f).totals.weight_params
        this = (
            f" This layer's d_ff = {a('d_ff', str(f), f, bare=True)} gives 3·d·f = {a('this GLU weights', f'3·{d}·{f}', own)}: "
            f"{a('this GLU over 8d2', f'100·({own} − {w4})/{w4}', 100 * (own - w4) / w4, '%')} against 8·d²."
        )
    out.append(
        a.fact(
            "Why 8/3 × d_model for a GLU",
            "A GLU has three matrices (gate, up, down) instead of two. To keep a 4× FFN's "
            f"8·d² = {a('8d2', f'8·{d}·{d}', w4)} weights, 3·d·f = 8·d² gives f = 8·d/3 = "
            f"{a('8d/3', f'8·{d}/3', 8 * d / 3)}. LLaMA takes int(8·d/3) = {a('int(8d/3)', f'8·{d}//3', floor)} and rounds it up to a "
            f"multiple of {a('multiple_of', str(m), m, bare=True)}: f = {a('LLaMA d_ff', f'{m}·{llama // m}', llama)}, so "
            f"3·d·f = {a('LLaMA GLU weights', f'3·{d}·{llama}', glu)} weights, "
            f"{a('rounding over 8d2', f'100·({glu} − {w4})/{w4}', 100 * extra[0] / extra[1], '%')} more than 8·d²." + this,
        )
    )

    a = _Answer()
    share4 = _pct(w4, w4 + attention)
    p = report.totals.params
    share = _pct(p, p + attention)
    moe = " (all its experts: each must be stored)" if c.is_moe else ""
    out.append(
        a.fact(
            "Why the FFN holds about two thirds of a layer's parameters",
            "Assuming multi-head attention with four d×d projections (4·d²) and leaving out biases, norms and embeddings, "
            f"a 4× FFN's 8·d² is 8/(8 + 4) of a layer: {a('4x FFN share', f'100·{w4}/({w4} + {attention})', share4[1], '%')}. "
            f"This layer's FFN{moe}, {a('this FFN params', str(p), p, bare=True)} parameters: "
            f"{a('this FFN share', f'100·{p}/({p} + {attention})', share[1], '%')}. With grouped-query attention "
            "(n_kv_heads/n_heads = r) attention has (2 + 2r)·d², less, and the FFN's share is larger.",
        )
    )

    a = _Answer()
    relu, gelu, swiglu = (_bare_ffn(c, act, f) for act in ("relu", "gelu", "swiglu"))
    silu = activation_flops("silu")
    cost = {act: f"{f}·{activation_flops(act)}" for act in ("relu", "gelu", "swiglu")}  # per token, at width f
    reports = {"relu": relu, "gelu": gelu, "swiglu": swiglu}
    per = {act: r.stage(names.GLU if act == "swiglu" else names.ACTIVATION).elementwise_flops for act, r in reports.items()}
    one = {act: a(f"{act} FLOPs/element", str(activation_flops(act)), activation_flops(act), bare=True) for act in ("relu", "gelu")}
    out.append(
        a.fact(
            "ReLU against GELU against SwiGLU",
            f"FLOPs per element (the activation registry): ReLU max(0, h) {one['relu']}, GELU {one['gelu']}, SwiGLU silu(g)⊙u "
            f"{a('SwiGLU FLOPs/element', f'{silu} + {GLU_MULTIPLY_FLOPS_PER_ELEMENT}', activation_flops('swiglu'))}. At this layer's width "
            f"f = {a('d_ff', str(f), f, bare=True)}, per token: ReLU {a('ReLU FLOPs per token', cost['relu'], per['relu'])}, "
            f"GELU {a('GELU FLOPs per token', cost['gelu'], per['gelu'])}, "
            f"SwiGLU {a('SwiGLU FLOPs per token', cost['swiglu'], per['swiglu'])} FLOPs, small beside the matmuls "
            f"({a('plain matmul FLOPs per token', f'4·{d}·{f}', relu.totals.matmul_flops_per_token or 0)} plain, "
            f"{a('GLU matmul FLOPs per token', f'6·{d}·{f}', swiglu.totals.matmul_flops_per_token or 0)} gated). "
            f"Weights at equal width: ReLU and GELU 2·d·f = {a('plain weights', f'2·{d}·{f}', relu.totals.weight_params)}, "
            f"SwiGLU 3·d·f = {a('GLU weights', f'3·{d}·{f}', swiglu.totals.weight_params)}: 1.5 times as many, which is why a GLU "
            "runs at 2/3 of the width (explain --compare relu swiglu compares them at equal parameters). "
            "GELU and SiLU are smooth, with a small gradient below zero; ReLU's units can die (zero gradient for good).",
        )
    )

    a = _Answer()
    kind = c.norm_kind or norm_type(c.norm_type)
    normed = analyze(replace(c, batch=1, seq_len=1, norm="pre", norm_type=kind.name, layers=1))
    stage = normed.stage(kind.stage)
    ffn_flops = report.totals.matmul_flops_per_token
    norm_share = ""
    if ffn_flops:
        nf = stage.elementwise_flops
        norm_share = f", {a('norm share', f'100·{nf}/{ffn_flops}', 100 * nf / ffn_flops, '%')} of the FFN's matmul FLOPs"
    out.append(
        a.fact(
            "Pre-LN against post-LN",
            "Pre-LN, x + F(N(x)) (GPT-2, LLaMA): the norm sits on the branch, so the residual stream passes each layer's input "
            "straight through, an identity path from the first layer to the last; it trains stably without warm-up. Post-LN, "
            "N(x + F(x)) (the original Transformer, BERT): the norm sits on the main path after the residual add, so every "
            "gradient passes through a norm in every layer; it needs learning-rate warm-up and is hard to train deep "
            f"(Xiong et al. 2020). Either way the cost is the same: this layer's {kind.label} has "
            f"{a('norm params', f'{kind.params_per_element}·{d}', stage.norm_params)} parameters and costs "
            f"{a('norm FLOPs per token', f'{kind.flops_per_element}·{d} + {kind.flops_per_row}', stage.elementwise_flops)} "
            f"FLOPs per token{norm_share}; "
            f"the residual add {a('residual FLOPs per token', f'1·{d}', normed.stage(names.RESIDUAL).elementwise_flops)}.",
        )
    )

    a = _Answer()
    ln = analyze(replace(c, batch=1, seq_len=1, norm="pre", norm_type="layer", layers=1)).totals.norm_params
    out.append(
        a.fact(
            "LayerNorm against BatchNorm",
            "The statistics differ: LayerNorm takes a mean and variance per token over its "
            f"d = {a('d_model', str(d), d, bare=True)} features ({a('tokens', f'{c.batch}·{c.seq_len}', c.tokens)} pairs for this input), "
            "the same computation in training and inference, whatever the batch or padding; BatchNorm takes them per feature "
            f"over the batch and positions ({a('features', str(d), d, bare=True)} pairs, "
            f"each over {a('tokens', str(c.tokens), c.tokens, bare=True)} values), "
            "so it depends on the batch size and on padding, and needs running averages at inference. The parameters are the "
            f"same: a scale γ and a shift β per feature, 2·d = {a('LayerNorm params', f'2·{d}', ln)} either way "
            "(BatchNorm also keeps a running mean and variance, as buffers, not parameters).",
        )
    )

    if c.is_moe:
        a = _Answer()
        t = report.totals
        out.append(
            a.fact(
                "Mixture of experts: total against active",
                f"All {a('experts', str(c.experts), c.experts, bare=True)} experts' weights are stored: "
                f"{a('params', str(t.params), t.params, bare=True)} parameters; "
                f"a token runs only {a('top_k', str(c.top_k), c.top_k, bare=True)} of them"
                + (" and the shared ones" if c.shared_experts else "")
                + f": {a('active params', str(t.active_params), t.active_params, bare=True)} parameters, "
                f"{a('active share', f'100·{t.active_params}/{t.params}', 100 * t.active_params / t.params, '%')}. FLOPs follow the "
                "active parameters, memory the total.",
            )
        )
    return tuple(out) + REASONS


REASONS = (
    Fact(
        "Why a nonlinearity between the two linears",
        "Without it x·W1·W2 is one linear map of rank ≤ d_model: the two layers would add parameters but no expressive power.",
    ),
    Fact(
        "Why 'position-wise'",
        "The same W1 and W2 act on every token on its own; tokens mix only in attention, so a "
        "(batch, seq, d_model) input is batch·seq rows of one matmul.",
    ),
    Fact(
        "Why two Conv1d layers of kernel size 1 are the same thing",
        "A kernel of size 1 sees one position at a time with weights shared across positions — a per-position linear map, with W_conv[:, :, 0] = Wᵀ.",
    ),
)
