"""`explain`: the formulas in symbols, then with the numbers substituted, a data-flow diagram
(diagram.py), and the questions people are asked, answered with this layer's numbers
(interview.py). Standard library only; renderers print it.

Every value shown is the core's own figure (from the FFNReport); the substituted expression
beside it is written out from the config so a reader can check it by eye, and the tests
evaluate each expression and require it to equal the core's value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ffn_calc.json_fields import JsonForm, json_key
from ffn_calc.model.conventions import MULTIPLY_ADD
from ffn_calc.model.forward import FFNReport
from ffn_calc.prose.diagram import diagram
from ffn_calc.prose.interview import Fact, facts
from ffn_calc.schemas import schema


@dataclass(frozen=True)
class Formula:
    """`symbolic` = `substituted` = `value` (in `unit`)."""

    name: str
    symbolic: str
    substituted: str
    value: int
    unit: str


@dataclass(frozen=True)
class Explanation(JsonForm):
    report: FFNReport = field(metadata=json_key("config", get="report.config"))
    formulas: tuple[Formula, ...]
    diagram: tuple[str, ...]
    facts: tuple[Fact, ...]
    json_schema = schema("explain")


def _terms(report: FFNReport) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(symbolic, substituted) terms of the parameter count and of the matmul FLOPs per token."""
    c = report.config
    d, f = str(c.d_model), str(c.d_ff)
    mats = 3 if c.is_glu else 2
    mac = MULTIPLY_ADD.flops  # FLOPs per multiply-add, as the cost table states it
    params: list[tuple[str, str]] = []
    flops: list[tuple[str, str]] = []

    def core(times_sym: str, times_num: str, width_sym: str, width_num: str, flop_sym: str, flop_num: str) -> None:
        params.append((f"{times_sym}{mats}·d_model·{width_sym}", f"{times_num}{mats}·{d}·{width_num}"))
        if c.bias:
            extra_sym = f"2·{width_sym} + d_model" if c.is_glu else f"{width_sym} + d_model"
            extra_num = f"2·{width_num} + {d}" if c.is_glu else f"{width_num} + {d}"
            params.append((f"{times_sym}({extra_sym})", f"{times_num}({extra_num})"))
        flops.append((f"{flop_sym}{mac * mats}·d_model·{width_sym}", f"{flop_num}{mac * mats}·{d}·{width_num}"))

    if not c.is_moe:
        core("", "", "d_ff", f, "", "")
    else:
        e, k = str(c.experts), str(c.top_k)
        core("experts·", f"{e}·", "d_ff", f, "top_k·", f"{k}·")
        params.append(("d_model·experts", f"{d}·{e}"))
        if c.router_bias:  # gpt-oss: the router's bias, one per expert
            params.append(("experts", e))
        flops.append((f"{mac}·d_model·experts", f"{mac}·{d}·{e}"))
        if c.shared_experts:
            s = str(c.shared_experts)
            core("", "", "shared·d_ff", f"{s}·{f}", "", "")
            if c.shared_expert_gate:  # Qwen2-MoE: sigmoid(x·w_s), w_s of shape (d_model, 1)
                params.append(("d_model·1", f"{d}·1"))
                flops.append((f"{mac}·d_model·1", f"{mac}·{d}·1"))
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
    packed = [w for w in report.weights if w.packing is not None]
    if packed:  # --weight-dtype: each matrix as its format stores it, the rest in --dtype
        rest = t.params - sum(w.elements for w in packed)
        out.append(Formula("weight memory", f"Σ {c.weight_dtype} tensors of each matrix + other parameters·bytes",
                           " + ".join(str(w.bytes) for w in packed) + f" + {rest}·{c.dtype_bytes}", t.weight_bytes, "bytes"))  # fmt: skip
    else:
        out.append(Formula("weight memory", "parameters·bytes", f"{t.params}·{c.dtype_bytes}", t.weight_bytes, "bytes"))
    live = [s for s in report.stages if s.name in report.peak.live]
    out.append(Formula(
        "peak forward memory", "weights + " + " + ".join(s.name for s in live),
        f"{t.weight_bytes} + " + " + ".join("·".join(map(str, (*s.output_shape, c.dtype_bytes))) for s in live),
        t.peak_bytes, "bytes",
    ))  # fmt: skip
    gs = report.groups
    if len(gs) > 1:  # a mixed stack: each group's layers × its layer's parameters
        out.append(Formula(f"parameters, {report.model.layers} layers", "Σ layers·parameters of each group",
                           " + ".join(f"{g.config.layers}·{g.totals.params}" for g in gs), report.model.params, "parameters"))  # fmt: skip
    elif c.layers > 1:
        out.append(Formula(f"parameters, {c.layers} layers", "layers·parameters", f"{c.layers}·{t.params}", report.model.params, "parameters"))
    return tuple(out)


def explain(report: FFNReport) -> Explanation:
    return Explanation(report, formulas(report), diagram(report), facts(report))
