"""Every JSON document ffn-calc writes names its schema first ("schema": "ffn-calc/shapes/1"):
the registry, one entry per command's result. A result names its entry (`json_schema =
schema("shapes")`, json_fields.py); a name that is not registered raises. A change to a
document's keys that a reader must notice bumps its version here. Standard library only."""

from __future__ import annotations

SCHEMAS: dict[str, str] = {
    "shapes": "ffn-calc/shapes/1",  # FFNReport (model/forward.py)
    "train": "ffn-calc/train/1",  # TrainingReport (model/training.py)
    "roofline": "ffn-calc/roofline/1",  # Roofline (model/roofline.py)
    "explain": "ffn-calc/explain/1",  # Explanation (prose/explanation.py)
    "compare": "ffn-calc/compare/1",  # Comparison (prose/comparison.py)
    "sweep": "ffn-calc/sweep/1",  # SweepResult (api/sweep_executor.py); `-f jsonl` prints its rows alone
    "models": "ffn-calc/models/1",  # ModelList (api/model_list.py)
    "gpus": "ffn-calc/gpus/1",  # GPUList (catalogue/gpus.py)
    "verify": "ffn-calc/verify/1",  # VerifyReport (verifier/report.py)
    "roofline-measured": "ffn-calc/roofline-measured/1",  # MeasuredRoofline (measure/report.py), roofline --measure
}


def schema(name: str) -> str:
    """The schema of the result `name` (a key of SCHEMAS)."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise KeyError(f"no JSON schema named {name!r}; the registry has {', '.join(SCHEMAS)}") from None
