"""The result of `verify`, as plain data (no NumPy), so renderers can use it without the verifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ffn_calc.errors import VerifyRefused
from ffn_calc.model.forward import FFNReport
from ffn_calc.model.layer import FFNConfig

__all__ = ["Check", "Definition", "VerifyRefused", "VerifyReport"]

VERIFY_SCHEMA = "ffn-calc/verify/1"

# How a check's observed figure was reached (`Check.how`).
OBSERVED = "observed"  # read off the arrays, the operands or tracemalloc
CONVENTION_X_OBSERVED = "convention × observed"  # a counting convention (a definition) × counts observed
DEFINITION = "definition"  # not observable; listed in `VerifyReport.definitions`


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
    how: str = ""  # OBSERVED, CONVENTION_X_OBSERVED or DEFINITION; "" to infer it from the name

    @property
    def observed_how(self) -> str:
        """`how`, or for a check that does not say: FLOPs rows (but einsum_path's own count) are
        a convention × observed counts, everything else observed."""
        if self.how:
            return self.how
        return CONVENTION_X_OBSERVED if "FLOPs" in self.name and "einsum_path" not in self.name else OBSERVED


@dataclass(frozen=True)
class Definition:
    """A figure verify uses or the model prints that a run cannot observe, and why."""

    name: str
    value: object
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    """What `verify` found: the prediction for the dtype it computed in, every check, the
    measured wall time of the whole verification (`seconds`: weights, every pass and check)
    with the rate it amounts to (`gflops_per_s`: the main pass's counted FLOPs over that
    time), and the main forward pass's own time (`forward_seconds`)."""

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
    forward_seconds: float = 0.0
    definitions: tuple[Definition, ...] = ()

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as `verify -f json` prints it (schema ffn-calc/verify/1)."""
        return {
            "schema": VERIFY_SCHEMA,
            "ok": self.ok,
            "config": self.prediction.config.to_dict() | {"dtype": self.config.dtype},
            "computed_dtype": self.computed_dtype,
            "dtype_note": self.dtype_note,
            "seed": self.seed,
            "chunk_tokens": self.chunk_tokens,
            "chunks": self.chunks,
            "memory_limit_bytes": self.memory_limit_bytes,
            "seconds": self.seconds,
            "gflops_per_s": self.gflops_per_s,
            "forward_seconds": self.forward_seconds,
            "checks": [
                {
                    "group": c.group,
                    "name": c.name,
                    "predicted": _plain(c.predicted),
                    "observed": _plain(c.observed),
                    "ok": c.ok,
                    "kind": c.kind,
                    "detail": c.detail,
                    "how": c.observed_how,
                }
                for c in self.checks
            ],
            "definitions": [{"name": d.name, "value": _plain(d.value), "reason": d.reason} for d in self.definitions],
            "prediction": self.prediction.to_dict(),
        }


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
