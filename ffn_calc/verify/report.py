"""The result of `verify`, as plain data (no NumPy), so renderers can use it without the verifier."""

from __future__ import annotations

from dataclasses import dataclass

from ffn_calc.model.layer import FFNConfig, VerifyRefused
from ffn_calc.model.forward import FFNReport

__all__ = ["Check", "VerifyRefused", "VerifyReport"]


@dataclass(frozen=True)
class Check:
    """One predicted-against-observed row. `kind`: exact (integers or shapes must be equal),
    tolerance (within the bound its name states), info (reported, not judged)."""

    group: str
    name: str
    predicted: object
    observed: object
    ok: bool
    kind: str = "exact"
    detail: str = ""


@dataclass(frozen=True)
class VerifyReport:
    """What `verify` found: the prediction for the dtype it computed in, every check, and the
    measured wall time of the forward pass (`seconds`) and its rate (`gflops_per_s`, all
    counted FLOPs over that time)."""

    config: FFNConfig
    computed_dtype: str
    dtype_note: str
    prediction: FFNReport
    checks: tuple[Check, ...]
    seconds: float
    gflops_per_s: float
    seed: int
    chunk_tokens: int = 0  # tokens per chunk when the pass ran in chunks to fit; 0 when whole
    chunks: int = 1
    memory_limit_bytes: int = 0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)
