"""`explain --compare A B`: two layers side by side, and how B differs from A. Standard library only.

Every figure is the one `analyze` gives each layer; a difference is B's minus A's, and its
percentage is relative to A's. `rule` says how the two layers were chosen (two presets as
published, or two activations at equal parameters and by which width rule).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ffn_calc.model.forward import FFNReport, analyze
from ffn_calc.model.layer import FFNConfig

COMPARE_SCHEMA = "ffn-calc/compare/1"

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
class Side:
    label: str
    report: FFNReport

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "config": self.report.config.to_dict(), "totals": asdict(self.report.totals), "model": asdict(self.report.model)}


@dataclass(frozen=True)
class Comparison:
    a: Side
    b: Side
    rule: str
    differences: tuple[Difference, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as `explain --compare A B -f json` prints it (schema ffn-calc/compare/1)."""
        return {
            "schema": COMPARE_SCHEMA,
            "rule": self.rule,
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "differences": [asdict(d) for d in self.differences],
        }


def compare(a: FFNConfig, b: FFNConfig, labels: tuple[str, str], rule: str) -> Comparison:
    ra, rb = analyze(a), analyze(b)
    rows = []
    for name, unit in QUANTITIES:
        x, y = quantity(ra, name), quantity(rb, name)
        diff = None if x is None or y is None else y - x
        rows.append(Difference(name, unit, x, y, diff, None if diff is None or not x else 100 * diff / x))
    return Comparison(Side(labels[0], ra), Side(labels[1], rb), rule, tuple(rows))
