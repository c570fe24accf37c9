"""One timing routine for every device: a warm-up call, then repeats within a time budget, and
the median. The clock is injected: the CPU's is the wall clock, a CUDA device's its events (each
stop waits for the device), a test's a fake that returns the durations it was given.

The rule, for a call `fn` and a budget of B seconds:
1. one warm-up call, timed: its time counts against the budget and is then discarded;
2. if it took B or more and at least SOLE_CALL seconds, a long call that outlasts the whole
   budget: that first call is the only sample (no warm-up; the record says warmups 0), since a
   second would break the budget and the first call's set-up is small beside its work; a shorter
   first call that outlasted its budget (most often a pause: the other cores busy) is followed by
   at least one timed call, whatever the budget;
3. else timed calls, at least `min_repeats` and at most `max_repeats`, while the time spent
   (warm-up included) plus the quickest call so far still fits in B;
the median is the figure reported, the best (the least) the one a peak is taken from ("best of
several"). Counting what was spent, not a count fixed by the warm-up, keeps one slow call (the
other core busy, say) from leaving a kernel a single sample.
Standard library only.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

MAX_REPEATS = 9
MIN_REPEATS = 1
SOLE_CALL = 0.5  # seconds: a first call this long that outlasts its budget is the only sample


class Clock(Protocol):
    """Times one call: `stop(start())` is the seconds between the two, the device's work done."""

    def start(self) -> object: ...

    def stop(self, mark: object) -> float: ...


class WallClock:
    """The CPU's clock: time.perf_counter. NumPy's calls return when their work is done."""

    def start(self) -> object:
        return time.perf_counter()

    def stop(self, mark: object) -> float:
        assert isinstance(mark, float)
        return time.perf_counter() - mark


@dataclass(frozen=True)
class Timing:
    """The timed calls of one kernel, in seconds, in the order they ran (the warm-up left out)."""

    samples: tuple[float, ...]
    warmups: int  # 1, or 0 when the first call alone outlasted the budget and is the sample

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def calls(self) -> int:
        return len(self.samples)


def timed(fn: Callable[[], object], clock: Clock) -> float:
    mark = clock.start()
    fn()
    return clock.stop(mark)


def time_calls(
    fn: Callable[[], object],
    clock: Clock,
    budget_seconds: float,
    *,
    min_repeats: int = MIN_REPEATS,
    max_repeats: int = MAX_REPEATS,
) -> Timing:
    """Time `fn` by the rule in the module's docstring: a warm-up, then repeats that fit in
    `budget_seconds` (at least `min_repeats`, at most `max_repeats`)."""
    first = timed(fn, clock)
    if first >= budget_seconds and first >= SOLE_CALL:
        return Timing((first,), 0)
    samples: list[float] = []
    spent = first
    while len(samples) < max_repeats:
        samples.append(timed(fn, clock))
        spent += samples[-1]
        if len(samples) >= min_repeats and spent + min(samples) > budget_seconds:
            break
    return Timing(tuple(samples), 1)
