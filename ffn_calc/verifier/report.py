"""The result of `verify`, as plain data (no NumPy), so renderers can use it without the verifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ffn_calc.model.errors import VerifyRefused
from ffn_calc.model.forward import FFNReport
from ffn_calc.model.layer import FFNConfig

__all__ = ["Check", "VerifyRefused", "VerifyReport"]

VERIFY_SCHEMA = "ffn-calc/verify/1"


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
                }
                for c in self.checks
            ],
            "prediction": self.prediction.to_dict(),
        }


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
