"""`models`: every preset with its FFN counted by the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ffn_calc.catalogue.presets import PRESETS, Preset
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model.forward import analyze

MODELS_SCHEMA = "ffn-calc/models/1"


@dataclass(frozen=True)
class ModelRow:
    """A preset with its FFN counted by the core: one layer's parameters (all, and those that
    serve one token) and the model's over its `layers`."""

    preset: Preset
    params_per_layer: int
    active_params_per_layer: int
    model_params: int

    def to_dict(self) -> dict[str, Any]:
        p = self.preset
        return {
            "name": p.name,
            "d_model": p.d_model,
            "d_ff": p.d_ff,
            "activation": p.activation,
            "bias": p.bias,
            "norm_type": p.norm_type,
            "experts": p.experts,
            "top_k": p.top_k,
            "shared_experts": p.shared_experts,
            "layers": p.layers,
            "params_per_layer": self.params_per_layer,
            "active_params_per_layer": self.active_params_per_layer,
            "model_params": self.model_params,
            "source": p.source,
            "note": p.note,
        }


@dataclass(frozen=True)
class ModelList:
    rows: tuple[ModelRow, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as `models -f json` prints it (schema ffn-calc/models/1)."""
        return {"schema": MODELS_SCHEMA, "models": [r.to_dict() for r in self.rows]}


def model_catalogue() -> ModelList:

    rows = []
    for preset in PRESETS.values():
        report = analyze(layer_config(1, 1, model=preset.name))
        rows.append(ModelRow(preset, report.totals.params, report.totals.active_params, report.model.params))
    return ModelList(tuple(rows))
