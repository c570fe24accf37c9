"""`explain`: the formulas in symbols, then with the numbers substituted, a data-flow diagram,
and the facts people are asked about. Standard library only; renderers print it.

Every value shown is the core's own figure (from the FFNReport); the substituted expression
beside it is written out from the config so a reader can check it by eye, and the tests
evaluate each expression and require it to equal the core's value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ffn_calc.model.forward import FFNReport

EXPLAIN_SCHEMA = "ffn-calc/explain/1"


@dataclass(frozen=True)
class Formula:
    """`symbolic` = `substituted` = `value` (in `unit`)."""

    name: str
    symbolic: str
    substituted: str
    value: int
    unit: str


@dataclass(frozen=True)
class Fact:
    topic: str
    answer: str


@dataclass(frozen=True)
class Explanation:
    report: FFNReport
    formulas: tuple[Formula, ...]
    diagram: tuple[str, ...]
    facts: tuple[Fact, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as `explain -f json` prints it (schema ffn-calc/explain/1)."""
        return {
            "schema": EXPLAIN_SCHEMA,
            "config": self.report.config.to_dict(),
            "formulas": [asdict(f) for f in self.formulas],
            "diagram": list(self.diagram),
            "facts": [asdict(f) for f in self.facts],
        }


def _terms(report: FFNReport) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(symbolic, substituted) terms of the parameter count and of the matmul FLOPs per token."""
    c = report.config
    d, f = str(c.d_model), str(c.d_ff)
    mats = 3 if c.is_glu else 2
    params: list[tuple[str, str]] = []
    flops: list[tuple[str, str]] = []

    def core(times_sym: str, times_num: str, width_sym: str, width_num: str, flop_sym: str, flop_num: str) -> None:
        params.append((f"{times_sym}{mats}·d_model·{width_sym}", f"{times_num}{mats}·{d}·{width_num}"))
        if c.bias:
            extra_sym = f"2·{width_sym} + d_model" if c.is_glu else f"{width_sym} + d_model"
            extra_num = f"2·{width_num} + {d}" if c.is_glu else f"{width_num} + {d}"
            params.append((f"{times_sym}({extra_sym})", f"{times_num}({extra_num})"))
        flops.append((f"{flop_sym}{2 * mats}·d_model·{width_sym}", f"{flop_num}{2 * mats}·{d}·{width_num}"))

    if not c.is_moe:
        core("", "", "d_ff", f, "", "")
    else:
        e, k = str(c.experts), str(c.top_k)
        core("experts·", f"{e}·", "d_ff", f, "top_k·", f"{k}·")
        params.append(("d_model·experts", f"{d}·{e}"))
        flops.append(("2·d_model·experts", f"2·{d}·{e}"))
        if c.shared_experts:
            s = str(c.shared_experts)
            core("", "", "shared·d_ff", f"{s}·{f}", "", "")
    if c.norm_kind is not None:  # γ (and β): one vector of d_model each
        per = c.norm_kind.params_per_element
        params.append(("d_model", f"{d}") if per == 1 else (f"{per}·d_model", f"{per}·{d}"))
    return params, flops


def _join(terms: list[tuple[str, str]]) -> tuple[str, str]:
    return " + ".join(t[0] for t in terms), " + ".join(t[1] for t in terms)


def formulas(report: FFNReport) -> tuple[Formula, ...]:
    c, t = report.config, report.totals
    params, flops = _terms(report)
    p_sym, p_num = _join(params)
    f_sym, f_num = _join(flops)
    out = [Formula("parameters", p_sym, p_num, t.params, "parameters")]
    if c.is_moe:
        out.append(
            Formula(
                "routed experts' parameters, all",
                "experts·(one expert)",
                f"{c.experts}·{t.expert_params // c.experts}",
                t.expert_params,
                "parameters",
            )
        )
        out.append(Formula("active parameters (one token)", "parameters − (experts − top_k)·(one expert)",
                           f"{t.params} − ({c.experts} − {c.top_k})·{t.expert_params // c.experts}", t.active_params, "parameters"))  # fmt: skip
    if t.matmul_flops_per_token is not None:
        out.append(Formula("matmul FLOPs per token (forward)", f_sym, f_num, t.matmul_flops_per_token, "FLOPs"))
    out.append(Formula("matmul FLOPs, whole input", "tokens·(2 × MACs per token)" if t.matmul_flops_per_token else "2·ΣM·K·N",
                       f"{c.tokens}·{t.matmul_flops_per_token}" if t.matmul_flops_per_token else "·".join(("2", str(t.macs))),
                       t.matmul_flops, "FLOPs"))  # fmt: skip
    out.append(Formula("weight memory", "parameters·bytes", f"{t.params}·{c.dtype_bytes}", t.weight_bytes, "bytes"))
    live = [s for s in report.stages if s.name in report.peak.live]
    out.append(Formula(
        "peak forward memory", "weights + " + " + ".join(s.name for s in live),
        f"{t.weight_bytes} + " + " + ".join("·".join(map(str, (*s.output_shape, c.dtype_bytes))) for s in live),
        t.peak_bytes, "bytes",
    ))  # fmt: skip
    if c.layers > 1:
        out.append(Formula(f"parameters, {c.layers} layers", "layers·parameters", f"{c.layers}·{t.params}", report.model.params, "parameters"))
    return tuple(out)


def diagram(report: FFNReport) -> tuple[str, ...]:
    """The stages top to bottom: each output with its shape, the operation on the arrow."""
    lines: list[str] = []
    for s in report.stages:
        if s.op != "input":
            weights = ", ".join(f"{w.name} {tuple(w.shape)}" for w in s.weights)
            lines.append(f"   │  {s.formula}" + (f"    [{weights}]" if weights else ""))
            lines.append("   ▼")
        lines.append(f"{s.name} {tuple(s.output_shape)}")
    return tuple(lines)


FACTS = (
    Fact(
        "Why d_ff ≈ 4 × d_model",
        "The original paper's choice (512 → 2048); the wide hidden layer holds most of a "
        "block's parameters (2·d·4d = 8d² against attention's 4d²), and later work kept the ratio because it trains well.",
    ),
    Fact(
        "Why a GLU cuts d_ff to about 2/3 of 4 × d_model",
        "A gated FFN has three matrices instead of two; "
        "d_ff = 8/3·d_model keeps 3·d·d_ff = 8d², the parameters of a 4× FFN (LLaMA then rounds up to multiple_of).",
    ),
    Fact(
        "Why a nonlinearity between the two linears",
        "Without it x·W1·W2 is one linear map of rank ≤ d_model: the two layers would add parameters but no expressive power.",
    ),
    Fact(
        "ReLU's drawbacks",
        "Dead neurons: a unit whose input stays negative gets zero gradient and stops learning; "
        "and its outputs are never negative, so they are not zero-centred.",
    ),
    Fact(
        "GELU and Swish (SiLU)",
        "Smooth, with a small non-zero gradient for negative inputs; GELU (BERT, GPT-2) "
        "weights x by Φ(x), Swish by σ(x); gated forms (SwiGLU, GeGLU) multiply by a learned gate (Shazeer 2020).",
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
    Fact(
        "Why LayerNorm and not BatchNorm",
        "LayerNorm normalises each token over its own features: no dependence "
        "on batch size, padding or sequence length, and the same computation in training and inference.",
    ),
    Fact(
        "Pre-LN against post-LN",
        "Post-LN, LN(x + F(x)) as in the original, needs learning-rate warm-up and is hard "
        "to train deep; pre-LN, x + F(LN(x)) from GPT-2 on, keeps an identity path and trains stably (Xiong et al. 2020).",
    ),
    Fact(
        "Mixture of experts: total against active",
        "All experts' weights must be stored, but each token runs only "
        "top_k of them (plus any shared ones): FLOPs follow the active parameters, memory the total.",
    ),
)


def explain(report: FFNReport) -> Explanation:
    return Explanation(report, formulas(report), diagram(report), FACTS)
