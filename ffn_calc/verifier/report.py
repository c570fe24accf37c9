"""The result of `verify`, as plain data (no NumPy), so renderers can use it without the verifier."""

from __future__ import annotations

from dataclasses import dataclass, field

from ffn_calc.errors import VerifyRefused
from ffn_calc.json_fields import JsonForm, json_key
from ffn_calc.model.forward import FFNReport
from ffn_calc.model.layer import FFNConfig
from ffn_calc.schemas import schema

__all__ = ["Check", "Definition", "VerifyRefused", "VerifyReport"]

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
    # OBSERVED, CONVENTION_X_OBSERVED or DEFINITION; "" to infer it from the name (JSON has the inferred one)
    how: str = field(default="", metadata=json_key(get="observed_how"))

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
class VerifyReport(JsonForm):
    """What `verify` found: the prediction for the dtype it computed in, every check, the
    measured wall time of the whole verification (`seconds`: weights, every pass and check)
    with the rate it amounts to (`gflops_per_s`: the main pass's counted FLOPs over that
    time), and the main forward pass's own time (`forward_seconds`)."""

    # JSON (`verify -f json`): the verdict first; the config as the prediction has it, with the dtype asked for.
    config: FFNConfig = field(metadata=json_key(value=lambda v: v.prediction.config.to_dict() | {"dtype": v.config.dtype}))
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
    json_schema = schema("verify")
    json_order = (
        "ok", "config", "computed_dtype", "dtype_note", "seed", "chunk_tokens", "chunks", "memory_limit_bytes", "seconds", "gflops_per_s",
        "forward_seconds", "checks", "definitions", "prediction",
    )  # fmt: skip

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)
