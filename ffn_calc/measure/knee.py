"""The knee of a GEMM's measured time in M, against the roofline's predicted crossover.

The roofline draws a GEMM's time as two lines: flat while it is memory-bound (the K·N weights
are read once, whatever M) and rising in proportion to M once it is compute-bound (2·M·K·N
FLOPs at the peak); the crossover is where they meet. The measured knee is the same
construction on measured times: the flat line at the time of the sweep's smallest M, the
proportional line through the origin and the time of its largest M, and the M where the two
meet, time_first × M_last / time_last. A real number, not one of the swept M; it lies inside
the sweep when the sweep reaches both regimes (it is swept from 1/8 to 8 × the prediction).

The flat line leaves out what the roofline's crossover counts: the activations' bytes, which grow
with M, so that on the bounds themselves the construction lands below the crossover by about
M·(K + N) / (K·N) of it (a few per cent for a layer's shapes). The measured knee is therefore
compared with the same construction on the bounds of the swept M (the predicted knee), and the
roofline's crossover is given beside both.
Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

KNEE_DEFINITION = (
    "the M where the flat line at the measured time of the smallest swept M meets the line through the origin "
    "and the measured time of the largest swept M (the roofline's construction on measured times)"
)
OCTAVES = 3  # the sweep runs from 2^-3 to 2^3 × the predicted crossover, in powers of two
NEVER_SWEEP = 256  # a GEMM the roofline never calls compute-bound is swept from M = 1 to this


@dataclass(frozen=True)
class KneeEstimate:
    """The two measured lines and where they meet. Times in seconds; `m` in rows (a float)."""

    m: float | None  # None: fewer than two distinct M
    flat_m: int  # the smallest swept M: its time is the flat line
    flat_seconds: float
    last_m: int  # the largest swept M: the proportional line passes through its time
    last_seconds: float
    inside: bool  # m lies within the swept M


def sweep_rows(predicted: int | None, most: int | None = None) -> tuple[int, ...]:
    """The M swept: powers of two from 2^-OCTAVES to 2^OCTAVES × the predicted crossover (at
    least 1, at most `most`), or from 1 to NEVER_SWEEP when no M is predicted compute-bound."""
    if predicted is None:
        low, high = 0, int(math.log2(NEVER_SWEEP))
    else:
        centre = math.log2(max(1, predicted))
        low, high = max(0, math.floor(centre) - OCTAVES), math.ceil(centre) + OCTAVES
    rows = tuple(2**e for e in range(low, high + 1))
    if most is not None:
        rows = tuple(m for m in rows if m <= most) or (1,)
    return rows


def measured_knee(points: Sequence[tuple[int, float]]) -> KneeEstimate:
    """The knee of (M, seconds) pairs, by KNEE_DEFINITION."""
    ordered = sorted(points)
    (flat_m, flat_s), (last_m, last_s) = ordered[0], ordered[-1]
    if last_m == flat_m:
        return KneeEstimate(None, flat_m, flat_s, last_m, last_s, False)
    m = flat_s * last_m / last_s
    return KneeEstimate(m, flat_m, flat_s, last_m, last_s, flat_m <= m <= last_m)
