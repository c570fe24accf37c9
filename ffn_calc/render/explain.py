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
from ffn_calc.render.layout import Col, Grid, Num, config_line, fit, n

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult


class Wrapped:
    """Text wrapped at spaces to the width it is printed at; continuation lines indented by
    `indent` (a word wider than the page stays whole on its own line)."""

    def __init__(self, text: str, indent: int = 2, style: str = "") -> None:
        self.text, self.indent, self.style = text, indent, style

    def lines(self, width: int) -> list[str]:
        out: list[str] = []
        for paragraph in self.text.split("\n"):
            words = paragraph.lstrip(" ").split(" ")
            line = " " * (len(paragraph) - len(paragraph.lstrip(" "))) + words[0]
            for word in words[1:]:
                if len(line) + 1 + len(word) > width:
                    out.append(line)
                    line = " " * self.indent + word
                else:
                    line += " " + word
            out.append(line)
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        for line in self.lines(options.max_width):
            yield Text(line, style=self.style, no_wrap=True, overflow="ignore")


@csv_rows.register(Explanation)
def _csv_rows_Explanation(ex: Explanation) -> list[dict[str, Any]]:
    return [asdict(f) for f in ex.formulas]


@tables.register(Explanation)
def _tables_Explanation(ex: Explanation, view: View | None = None) -> list[RenderableType]:
    from rich.text import Text

    out: list[RenderableType] = [Wrapped(config_line(ex.report), indent=5), Text("")]
    if view is not None and view.summary:  # -q: each formula's value, one line each
        return out + [Text(f"{f.name} = {n(f.value)} {f.unit}") for f in ex.formulas]
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
        out += [Text(f"{letter}: {side.label}", style="bold"), Wrapped(config_line(side.report), indent=5)]
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
    out.append(fit(grid, view.exact))
    out.append(Wrapped("FLOPs per token: the forward pass, FLOPs = 2 × MACs. Memory: in each layer's dtype.", style="dim"))
    return out
