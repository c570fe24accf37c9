"""The one timing routine (ffn_calc/measure/timing.py), driven by a fake clock: exact medians,
the warm-up, the budget, and the bounds on repeats."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from ffn_calc.measure.timing import MAX_REPEATS, SOLE_CALL, Timing, WallClock, time_calls


class FakeClock:
    """Each call to time takes the next of `durations` seconds; counts the calls made."""

    def __init__(self, durations: Iterable[float]) -> None:
        self.durations = iter(durations)
        self.calls = 0

    def start(self) -> object:
        return None

    def stop(self, mark: object) -> float:
        self.calls += 1
        return next(self.durations)


def test_the_warm_up_is_discarded_and_the_median_is_exact() -> None:
    clock = FakeClock([9.0, 3.0, 1.0, 2.0])
    t = time_calls(lambda: None, clock, budget_seconds=100.0, max_repeats=3)
    assert t == Timing((3.0, 1.0, 2.0), 1)
    assert (t.median, t.best, t.calls) == (2.0, 1.0, 3)


def test_an_even_count_takes_the_mean_of_the_middle_two() -> None:
    t = time_calls(lambda: None, FakeClock([1.0, 4.0, 1.0, 3.0, 2.0]), budget_seconds=100.0, max_repeats=4)
    assert t.median == 2.5


def test_repeats_fill_the_budget_counting_the_warm_up() -> None:
    # warm-up 1 s, then 1 s calls in a 5 s budget: after the 4th call 5 s are spent, and a 5th would pass the budget
    clock = FakeClock([1.0] * 20)
    t = time_calls(lambda: None, clock, budget_seconds=5.0)
    assert t.samples == (1.0,) * 4 and t.warmups == 1 and clock.calls == 5


def test_a_call_longer_than_the_budget_is_timed_once_without_warm_up() -> None:
    clock = FakeClock([7.0, 1.0])
    t = time_calls(lambda: None, clock, budget_seconds=5.0, min_repeats=3)
    assert t == Timing((7.0,), 0) and clock.calls == 1


def test_a_short_first_call_past_the_budget_is_a_pause_not_the_sample() -> None:
    # a 35 ms first call (the other core busy) of a 6 µs GEMM in a 7 ms budget: one timed call follows
    t = time_calls(lambda: None, FakeClock([0.035, 6e-6, 6e-6]), budget_seconds=0.007)
    assert t == Timing((6e-6,), 1)
    assert time_calls(lambda: None, FakeClock([SOLE_CALL, 1.0]), budget_seconds=0.1) == Timing((SOLE_CALL,), 0)


def test_one_slow_call_does_not_leave_a_single_sample() -> None:
    # a warm-up of 0.6 s (the other core busy) in a 1 s budget, then calls of 0.01 s: they fill what is left
    t = time_calls(lambda: None, FakeClock([0.6] + [0.01] * 100), budget_seconds=1.0)
    assert t.calls == MAX_REPEATS


def test_min_and_max_repeats_bound_the_calls() -> None:
    assert time_calls(lambda: None, FakeClock([0.4] * 10), budget_seconds=1.0, min_repeats=3).calls == 3
    assert time_calls(lambda: None, FakeClock([1e-6] * 100), budget_seconds=1.0, max_repeats=5).calls == 5


def test_the_function_runs_once_per_timed_call() -> None:
    ran: list[int] = []
    time_calls(lambda: ran.append(1), FakeClock([1.0] * 10), budget_seconds=3.5)
    assert len(ran) == 3  # the warm-up and two calls: 1 + 1 + 1 spent, a third would pass 3.5


@pytest.mark.parametrize("budget", [0.0, 1e-9])
def test_a_budget_below_one_call_still_gives_one_sample(budget: float) -> None:
    t = time_calls(lambda: None, FakeClock([0.5, 0.5]), budget_seconds=budget)
    assert t.calls == 1 and t.warmups == 0
    t = time_calls(lambda: None, FakeClock([0.1, 0.2]), budget_seconds=budget)
    assert t == Timing((0.2,), 1)


def test_the_wall_clock_measures_real_time() -> None:
    clock = WallClock()
    mark = clock.start()
    sum(range(10_000))
    assert 0 < clock.stop(mark) < 1
