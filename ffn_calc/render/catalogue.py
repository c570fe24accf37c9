"""Rendering `models` (the presets) and `explain` (formulas, diagram, facts)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ffn_calc.inputs.catalogue import ModelList
from ffn_calc.model import conventions as conv
from ffn_calc.model.explain import Explanation
from ffn_calc.render.base import View, csv_rows, tables
from ffn_calc.render.layout import Col, Grid, Num, config_line, fit, n

if TYPE_CHECKING:
    from rich.console import RenderableType


@csv_rows.register(ModelList)
def _csv_rows_ModelList(models: ModelList) -> list[dict[str, Any]]:
    return [r.to_dict() for r in models.rows]


@tables.register(ModelList)
def _tables_ModelList(models: ModelList, view: View | None = None) -> list[RenderableType]:
    from rich.table import Table

    view = view or View()
    ps = [r.preset for r in models.rows]

    def experts(p: Any) -> str:
        if not p.experts:
            return "—"
        return f"{p.experts}, top-{p.top_k}" + (f"\n+ {p.shared_experts} shared" if p.shared_experts else "")

    table = Grid(
        "Models (--model NAME): the FFN of one layer",
        [
            Col("name", [p.name for p in ps]),
            Col("d_model", [Num(p.d_model) for p in ps]),
            Col("d_ff", [Num(p.d_ff) for p in ps]),
            Col("activation", [p.activation for p in ps]),
            Col("bias", ["yes" if p.bias else "no" for p in ps]),
            Col("experts", [experts(p) if p.experts else "" for p in ps], stack=True),
            Col("layers", [Num(p.layers) for p in ps]),
            Col("FFN params / layer", [Num(r.params_per_layer, "params") for r in models.rows], short="params"),
            Col("active / layer", [Num(r.active_params_per_layer, "params") for r in models.rows], short="active"),
        ],
    )
    sources = Table(title="Sources", title_justify="left")
    sources.add_column("name", no_wrap=True)
    sources.add_column("source")
    for r in models.rows:
        sources.add_row(r.preset.name, r.preset.source + (f"; {r.preset.note}" if r.preset.note else ""))
    return [fit(table, view.exact), sources]


@csv_rows.register(Explanation)
def _csv_rows_Explanation(ex: Explanation) -> list[dict[str, Any]]:
    return [asdict(f) for f in ex.formulas]


@tables.register(Explanation)
def _tables_Explanation(ex: Explanation, view: View | None = None) -> list[RenderableType]:
    from rich.table import Table
    from rich.text import Text

    out: list[RenderableType] = [Text(config_line(ex.report)), Text("")]
    out.append(Text("Formulas, then the numbers substituted", style="bold"))
    for f in ex.formulas:
        out.append(Text(f"{f.name}\n  = {f.symbolic}\n  = {f.substituted}\n  = {n(f.value)} {f.unit}"))
    out.append(Text(""))
    out.append(Text("Data flow", style="bold"))
    out.append(Text("\n".join(ex.diagram)))
    out.append(Text(""))
    facts = Table(title="Why", title_justify="left", show_lines=False)
    facts.add_column("question", min_width=20, ratio=1)
    facts.add_column("answer", min_width=24, ratio=2)
    for fact in ex.facts:
        facts.add_row(fact.topic, fact.answer)
    out.append(facts)
    out.append(Text(f"Convention: {conv.CONVENTION_SUMMARY}", style="dim"))
    return out
