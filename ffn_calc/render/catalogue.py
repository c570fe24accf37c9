"""Rendering `models`: the presets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ffn_calc.api.model_list import ModelList
from ffn_calc.render.base import View, csv_rows, tables
from ffn_calc.render.layout import Col, Grid, Num, fit, hint, plural

if TYPE_CHECKING:
    from rich.console import RenderableType


@csv_rows.register(ModelList)
def _csv_rows_ModelList(models: ModelList) -> list[dict[str, Any]]:
    return [r.to_dict() for r in models.rows]


@tables.register(ModelList)
def _tables_ModelList(models: ModelList, view: View | None = None) -> list[RenderableType]:
    """One line a model, what fits 80 columns (name, sizes, activation, experts, parameters);
    with `view.detail` every column and each model's source."""
    view = view or View()
    if view.detail:
        return _detail(models, view)
    rows = models.rows
    ps = [r.preset for r in rows]
    table = Grid(
        "Models (--model NAME): one layer's FFN; experts: routed+shared top-k",
        [
            Col("name", [p.name for p in ps]),
            Col("d_model", [str(p.d_model) for p in ps], right=True),  # as config.json spells them
            Col("d_ff", [str(p.d_ff) for p in ps], right=True),
            Col("activation", [p.activation for p in ps]),
            Col("experts", [f"{p.experts}{f'+{p.shared_experts}' if p.shared_experts else ''} top-{p.top_k}" if p.experts else "" for p in ps]),
            Col("params", [Num(r.params_per_layer, "params") for r in rows]),
            Col("active", [Num(r.active_params_per_layer, "params") for r in rows]),
        ],
    )
    return [fit(table, view.exact), hint(f"{plural(len(rows), 'model')}; --detail: bias, layers and each model's source (config.json or paper)")]


def _detail(models: ModelList, view: View) -> list[RenderableType]:
    from rich.text import Text

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
    # Sources are prose: one paragraph each, name first, wrapped at words (a table column of prose
    # would be narrow at 80 columns).
    sources: list[RenderableType] = [Text(""), Text("Sources", style="bold")]
    for r in models.rows:
        line = Text(r.preset.name, style="bold")
        line.append(": " + r.preset.source + (f"; {r.preset.note}" if r.preset.note else ""))
        sources.append(line)
    return [fit(table, view.exact), *sources]
