"""Rendering `explain`: the formulas, the data-flow diagram and the interview answers; and
`explain --compare`: two layers side by side. Long lines wrap at spaces with a hanging indent at
the console's width, so no number, name or shape is ever split; the diagram is drawn within 78
columns by the model (diagram.py) and printed as it is."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ffn_calc.model import conventions as conv
from ffn_calc.prose.comparison import Comparison
from ffn_calc.prose.explanation import Explanation
from ffn_calc.render.base import View, csv_rows, tables
from ffn_calc.render.layout import Col, Grid, Num, Wrapped, config_block, fit, hint, n
from ffn_calc.render.shapes import headline as layer_headline

if TYPE_CHECKING:
    from rich.console import RenderableType


@csv_rows.register(Explanation)
def _csv_rows_Explanation(ex: Explanation) -> list[dict[str, Any]]:
    return [asdict(f) for f in ex.formulas]


@tables.register(Explanation)
def _tables_Explanation(ex: Explanation, view: View | None = None) -> list[RenderableType]:
    """A screenful ending with the headline: each formula with its numbers substituted; with
    `view.detail` each step on a line of its own, the data-flow diagram and the interview
    questions answered with this layer's numbers."""
    from rich.text import Text

    view = view or View()
    if view.summary:
        return [layer_headline(ex.report)]
    if view.detail:
        return [*_detail(ex), layer_headline(ex.report)]
    out: list[RenderableType] = [config_block(ex.report), Text("Formulas, with the numbers substituted", style="bold")]
    for f in ex.formulas:
        out += [Text(f.name), Wrapped(f"  = {f.symbolic}", 4), Wrapped(f"  = {f.substituted} = {n(f.value)} {f.unit}", 4)]
    out.append(hint("--detail: the data-flow diagram, and interview questions answered with this layer's numbers"))
    return [*out, layer_headline(ex.report)]


def _detail(ex: Explanation) -> list[RenderableType]:
    from rich.text import Text

    out: list[RenderableType] = [config_block(ex.report), Text("")]
    out.append(Text("Formulas, then the numbers substituted", style="bold"))
    for f in ex.formulas:
        out += [Text(f.name), Wrapped(f"  = {f.symbolic}", 6), Wrapped(f"  = {f.substituted}", 6), Text(f"  = {n(f.value)} {f.unit}")]
    out += [Text(""), Text("Data flow", style="bold"), Text("\n".join(ex.diagram), no_wrap=True, overflow="ignore"), Text("")]
    out.append(Text("Interview questions, answered with this layer's numbers", style="bold"))
    for fact in ex.facts:
        out += [Wrapped(fact.topic, style="bold"), Wrapped("  " + fact.answer, 2)]
    out += [Text(""), Wrapped(f"Convention: {conv.CONVENTION_SUMMARY}", style="dim")]
    return out


LABELS = {
    "params": "parameters",
    "active_params": "active parameters",
    "model_params": "parameters × layers",
    "matmul_flops_per_token": "matmul FLOPs / token",
    "flops_per_token": "FLOPs / token",
    "weight_bytes": "weight memory",
    "peak_bytes": "peak memory",
}


class Signed(Num):
    """A difference: a + before a positive one."""

    def text(self, exact: bool) -> str:
        t = super().text(exact)
        return "+" + t if self.value is not None and self.value > 0 else t


@csv_rows.register(Comparison)
def _csv_rows_Comparison(cmp: Comparison) -> list[dict[str, Any]]:
    return [asdict(d) for d in cmp.differences]


@tables.register(Comparison)
def _tables_Comparison(cmp: Comparison, view: View | None = None) -> list[RenderableType]:
    from rich.text import Text

    view = view or View()
    out: list[RenderableType] = []
    for letter, side in (("A", cmp.a), ("B", cmp.b)):
        out += [Text(f"{letter}: {side.label}", style="bold"), config_block(side.report)]
    out += [Wrapped(f"Chosen as: {cmp.rule}", indent=2), Text("")]
    sides = (cmp.a.report.config, cmp.b.report.config)
    hidden = set() if any(c.is_moe for c in sides) else {"active_params"}  # equal to params: said once
    hidden |= set() if any(c.layers > 1 for c in sides) else {"model_params"}
    rows = [d for d in cmp.differences if d.quantity not in hidden]
    grid = Grid(
        "B against A (B − A; % of A)",
        [
            Col("quantity", [LABELS[d.quantity] for d in rows]),
            Col("A", [Num(d.a, d.unit) for d in rows]),
            Col("B", [Num(d.b, d.unit) for d in rows]),
            Col("B − A", [Signed(d.difference, d.unit) for d in rows]),
            Col("%", ["—" if d.percent is None else f"{d.percent:+.2f}%" for d in rows], right=True),
        ],
    )
    out.append(Wrapped("FLOPs per token: the forward pass, FLOPs = 2 × MACs. Memory: in each layer's dtype.", style="dim"))
    out.append(fit(grid, view.exact))  # the answer, last
    return out
