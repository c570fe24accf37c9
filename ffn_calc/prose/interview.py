"""The classic interview questions about the FFN, answered with the numbers of the layer at hand.

Each answer carries `values`: every number it prints, as (name, expression, value). The value is
the core's figure (from `analyze` of the layer, or of a variant of it: a 4× ReLU FFN of the same
d_model, the same layer with a norm) or the registry's; the expression is written out from the
sizes so a reader can check it by eye, and the tests evaluate each expression and require it to
equal the value. Attention's FLOPs are not modelled: its parameters come from the model's attention
shape (model/attention.py) where a preset or config.json gives one, else 4·d² is stated as an assumption.
Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ffn_calc.errors import ConfigError
from ffn_calc.model import structure as names
from ffn_calc.model.conventions import GLU_MULTIPLY, activation_flops
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
    moe = " (all its experts: each must be stored)" if c.is_moe else ""
    baseline = (
        "Assuming multi-head attention with four d×d projections (4·d²) and leaving out biases, norms and embeddings, "
        f"a 4× FFN's 8·d² is 8/(8 + 4) of a layer: {a('4x FFN share', f'100·{w4}/({w4} + {attention})', share4[1], '%')}. "
    )
    if c.attention is None:
        share = _pct(p, p + attention)
        this = (
            f"This layer's FFN{moe}, {a('this FFN params', str(p), p, bare=True)} parameters, beside 4·d²: "
            f"{a('this FFN share', f'100·{p}/({p} + {attention})', share[1], '%')} (no attention shape known for it: a preset "
            "or config.json gives one). With grouped-query attention (n_kv_heads/n_heads = r) attention has (2 + 2r)·d², less, "
            "and the FFN's share is larger."
        )
    else:
        this = _model_share(a, c, p, moe)
    out.append(a.fact("Why the FFN holds about two thirds of a layer's parameters", baseline + this))
    out.append(_training_memory(c))

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
            f"{a('SwiGLU FLOPs/element', f'{silu} + {GLU_MULTIPLY.flops}', activation_flops('swiglu'))}. At this layer's width "
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


def _model_share(a: _Answer, c: FFNConfig, p: int, moe: str) -> str:
    """The FFN's share of the layer with the model's own attention projections (GQA, MQA, MLA)."""
    att = c.attention
    assert att is not None
    d = c.d_model
    total = att.params(d)
    if att.is_mla:
        terms = " + ".join("·".join(map(str, proj.shape)) for proj in att.projections(d))
        shape = (
            f"{att.kind} with {a('heads', str(att.heads), att.heads, bare=True)} heads, q_lora_rank "
            f"{a('q_lora_rank', str(att.q_lora_rank), att.q_lora_rank, bare=True) if att.q_lora_rank else 'none'}, kv_lora_rank "
            f"{a('kv_lora_rank', str(att.kv_lora_rank), att.kv_lora_rank, bare=True)}, qk head dims "
            f"{a('qk_nope_head_dim', str(att.qk_nope_head_dim), att.qk_nope_head_dim, bare=True)} + "
            f"{a('qk_rope_head_dim', str(att.qk_rope_head_dim), att.qk_rope_head_dim, bare=True)} (rope), v head dim "
            f"{a('v_head_dim', str(att.v_head_dim), att.v_head_dim, bare=True)}: its projections "
            + ", ".join(f"{proj.name} {a(proj.name, '·'.join(map(str, proj.shape)), proj.params)}" for proj in att.projections(d))
            + f"; {a('attention params', terms, total)} parameters (its two LoRA-rank RMSNorms included)"
        )
    else:
        n, kv, h = att.heads, att.kv_heads, att.head_dim
        q_o, k_v = 2 * d * n * h, 2 * d * kv * h
        shape = (
            f"{att.kind} with {a('heads', str(n), n, bare=True)} query heads and {a('kv heads', str(kv), kv, bare=True)} "
            f"key/value heads of {a('head_dim', str(h), h, bare=True)}: Q and O 2·d·n_h·h = {a('Q and O', f'2·{d}·{n}·{h}', q_o)}, "
            f"K and V 2·d·n_kv·h = {a('K and V', f'2·{d}·{kv}·{h}', k_v)}, "
            f"{a('attention params', f'{q_o} + {k_v}', total)} parameters"
        )
    share = _pct(p, p + total)
    return (
        f"This model's attention is {shape}. Its FFN{moe}, {a('this FFN params', str(p), p, bare=True)} parameters, is "
        f"{a('this FFN share', f'100·{p}/({p} + {total})', share[1], '%')} of the layer's attention + FFN. Left out: biases, "
        f"the layer's two norms ({2 if c.norm_type == 'layer' else 1}·d each), the embeddings and the output head; a MoE's "
        "router counts with the FFN."
    )


def _training_memory(c: FFNConfig) -> Fact:
    """How much memory training this layer takes, and why 16 bytes per parameter (mixed-precision Adam)."""
    from ffn_calc.model.training import TrainingOptions, train  # the training model: only for this answer

    a = _Answer()
    one = replace(c, layers=1, dense_layers=0, dense_d_ff=0, capacity_factor=None, weight_dtype=None, group_size=None)
    try:
        report = train(one, TrainingOptions())
    except ConfigError as e:  # a dtype no one trains in
        return Fact("How much memory training this layer takes, and why 16 bytes per parameter", f"Not for this layer: {e}.")
    t, p = report.totals, report.forward.totals.params
    if report.options.mixed_precision:
        w = c.dtype_bytes
        why = (
            f"In mixed precision (this layer's {c.dtype}, as trained in practice) each parameter has a {c.dtype} weight "
            f"({a('weight bytes', f'{w}·{p}', t.weight_bytes)} bytes) and gradient ({a('gradient bytes', f'{w}·{p}', t.gradient_bytes)}), "
            f"a float32 master copy the optimizer updates ({a('master bytes', f'4·{p}', t.master_weight_bytes)}) and Adam's "
            f"momentum and variance in float32 ({a('state bytes', f'8·{p}', t.optimizer_state_bytes)}): "
            f"{a('bytes per param', f'{w} + {w} + 4 + 4 + 4', t.bytes_per_param)} bytes per parameter, the ZeRO paper's "
            f"{a('ZeRO', '2 + 2 + 12', 16)} (Megatron keeps float32 gradients: {a('Megatron', '4 + 2 + 12', 18)}). "
            "Pure 16-bit (--no-mixed-precision) keeps 8, at the cost of updates lost to rounding."
        )
    else:
        why = (
            f"In {c.dtype} with Adam: weight, gradient, momentum and variance, 4 bytes each: "
            f"{a('bytes per param', f'{c.dtype_bytes} + {c.dtype_bytes} + 2·{c.dtype_bytes}', t.bytes_per_param)} bytes per parameter. "
            "A 16-bit --dtype trains in mixed precision: 16-bit weights and gradients, float32 master weights and states, "
            f"{a('ZeRO', '2 + 2 + 12', 16)} as well."
        )
    states = t.weight_bytes + t.gradient_bytes + t.master_weight_bytes + t.optimizer_state_bytes
    return a.fact(
        "How much memory training this layer takes, and why 16 bytes per parameter",
        why + f" For this layer's {a('params', str(p), p, bare=True)} parameters that is "
        f"{a('state total', f'{t.bytes_per_param}·{p}', states)} bytes, before the activations saved for the backward pass "
        f"({a('saved activations', str(t.saved_activation_bytes), t.saved_activation_bytes, bare=True)} bytes for "
        f"{a('tokens', f'{c.batch}·{c.seq_len}', c.tokens)} tokens); `train` lists them tensor by tensor, and --dp with --zero shards the states.",
    )


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
