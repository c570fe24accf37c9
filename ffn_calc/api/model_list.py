"""`models`: every preset with its FFN counted by the model."""

from __future__ import annotations

from dataclasses import dataclass, field

from ffn_calc.catalogue.presets import PRESETS, Preset
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.json_fields import JsonForm, json_key
from ffn_calc.model.forward import analyze
from ffn_calc.schemas import schema


@dataclass(frozen=True)
class ModelRow(JsonForm):
    """A preset with its FFN counted by the core: one layer's parameters (all, and those that
    serve one token) and the model's over its `layers`."""

    # JSON: the preset's sizes first, its source and note last.
    preset: Preset = field(
        metadata=json_key(
            spread=("name", "d_model", "d_ff", "activation", "bias", "norm_type", "experts", "top_k", "shared_experts", "layers", "source", "note")
        )
    )
    params_per_layer: int
    active_params_per_layer: int
    model_params: int
    json_order = (
        "name", "d_model", "d_ff", "activation", "bias", "norm_type", "experts", "top_k", "shared_experts", "layers",
        "params_per_layer", "active_params_per_layer", "model_params", "source", "note",
    )  # fmt: skip


@dataclass(frozen=True)
class ModelList(JsonForm):
    rows: tuple[ModelRow, ...] = field(metadata=json_key("models"))
    json_schema = schema("models")


def model_catalogue() -> ModelList:

    rows = []
    for preset in PRESETS.values():
        report = analyze(layer_config(1, 1, model=preset.name))
        rows.append(ModelRow(preset, report.totals.params, report.totals.active_params, report.model.params))
    return ModelList(tuple(rows))
