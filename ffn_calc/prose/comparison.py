"""`explain --compare A B`: two layers side by side, and how B differs from A. Standard library only.

Every figure is the one `analyze` gives each layer; a difference is B's minus A's, and its
percentage is relative to A's. `rule` says how the two layers were chosen (two presets as
published, or two activations at equal parameters and by which width rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ffn_calc.json_fields import JsonForm, json_key
from ffn_calc.model.forward import FFNReport, analyze
from ffn_calc.model.layer import FFNConfig
from ffn_calc.schemas import schema

# (quantity, its unit, how to read it off a report): the rows of a comparison, in order.
QUANTITIES: tuple[tuple[str, str], ...] = (
    ("params", "params"),
    ("active_params", "params"),
    ("model_params", "params"),
    ("matmul_flops_per_token", "flops"),
    ("flops_per_token", "flops"),
    ("weight_bytes", "bytes"),
    ("peak_bytes", "bytes"),
)


def quantity(report: FFNReport, name: str) -> int | None:
    """One of QUANTITIES for `report`: a Totals field, or model_params (× layers)."""
    return report.model.params if name == "model_params" else getattr(report.totals, name)


@dataclass(frozen=True)
class Difference:
    """`b` − `a` of one quantity (parameters, FLOPs per token forward, bytes), and that as a
    percentage of `a`; None where a figure is (a per-token figure under capacity padding)."""

    quantity: str
    unit: str
    a: int | None
    b: int | None
    difference: int | None
    percent: float | None


@dataclass(frozen=True)
class Side(JsonForm):
    label: str
    report: FFNReport = field(metadata=json_key(spread=("config", "totals", "model")))


@dataclass(frozen=True)
class Comparison(JsonForm):
    a: Side
    b: Side
    rule: str
    differences: tuple[Difference, ...]
    json_schema = schema("compare")
    json_order = ("rule", "a", "b", "differences")


def compare(a: FFNConfig, b: FFNConfig, labels: tuple[str, str], rule: str) -> Comparison:
    ra, rb = analyze(a), analyze(b)
    rows = []
    for name, unit in QUANTITIES:
        x, y = quantity(ra, name), quantity(rb, name)
        diff = None if x is None or y is None else y - x
        rows.append(Difference(name, unit, x, y, diff, None if diff is None or not x else 100 * diff / x))
    return Comparison(Side(labels[0], ra), Side(labels[1], rb), rule, tuple(rows))
