"""Rendering `models` (the presets) and `explain` (formulas, diagram, facts)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ffn_calc.inputs.catalogue import ModelList
from ffn_calc.model import conventions as conv
from ffn_calc.model.explain import Explanation
from ffn_calc.render.base import config_line, csv_rows, n, tables

if TYPE_CHECKING:
    from rich.console import RenderableType


@csv_rows.register(ModelList)
def _csv_rows_ModelList(models: ModelList) -> list[dict[str, Any]]:
    return [r.to_dict() for r in models.rows]


@tables.register(ModelList)
def _tables_ModelList(models: ModelList) -> list[RenderableType]:
    from rich.table import Table

    table = Table(title="Models (--model NAME): the FFN of one layer", title_justify="left")
    for col, right in (
        ("name", False),
        ("d_model", True),
        ("d_ff", True),
        ("activation", False),
        ("bias", False),
        ("experts", False),
        ("layers", True),
        ("FFN params / layer", True),
        ("active / layer", True),
    ):
        table.add_column(col, justify="right" if right else "left", overflow="fold")
    for r in models.rows:
        p = r.preset
        experts = f"{p.experts}, top-{p.top_k}" + (f" + {p.shared_experts} shared" if p.shared_experts else "") if p.experts else "—"
        table.add_row(
            p.name,
            n(p.d_model),
            n(p.d_ff),
            p.activation,
            "yes" if p.bias else "no",
            experts,
            str(p.layers),
            n(r.params_per_layer),
            n(r.active_params_per_layer),
        )
    sources = Table(title="Sources", title_justify="left")
    sources.add_column("name")
    sources.add_column("source")
    for r in models.rows:
        sources.add_row(r.preset.name, r.preset.source + (f"; {r.preset.note}" if r.preset.note else ""))
    return [table, sources]


@csv_rows.register(Explanation)
def _csv_rows_Explanation(ex: Explanation) -> list[dict[str, Any]]:
    return [asdict(f) for f in ex.formulas]


@tables.register(Explanation)
def _tables_Explanation(ex: Explanation) -> list[RenderableType]:
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
    facts.add_column("question")
    facts.add_column("answer")
    for fact in ex.facts:
        facts.add_row(fact.topic, fact.answer)
    out.append(facts)
    out.append(Text(f"Convention: {conv.CONVENTION_SUMMARY}", style="dim"))
    return out
