"""The sweep's worker processes (ffn_calc/api/workers.py): results in the tasks' order, a worker's
failure raised in the parent, a dead worker an error rather than a hang, and no worker left
behind however the parent stops reading."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from ffn_calc.api import workers
from ffn_calc.api.workers import WorkerLost, ordered_map


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); it has ended
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def _children() -> set[int]:
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().split(") ")[-1].split()
            except OSError:
                continue
            if int(fields[1]) == me and fields[0] != "Z":
                found.add(int(entry))
    return found


def test_results_come_in_the_order_of_the_tasks() -> None:
    def work(n: int) -> tuple[int, int]:
        time.sleep(0.002 * (n % 3))  # workers finish out of order
        return n, os.getpid()

    results = list(ordered_map(work, range(40), 3))
    assert [n for n, _ in results] == list(range(40))
    assert len({pid for _, pid in results}) == 3 and os.getpid() not in {pid for _, pid in results}
    assert not _children()


def test_an_exception_in_a_worker_is_raised_here_and_the_workers_end() -> None:
    def work(n: int) -> int:
        if n == 5:
            raise ValueError("five")
        return n

    got = []
    with pytest.raises(ValueError, match="five"):
        for n in ordered_map(work, range(20), 2):
            got.append(n)
    assert got == [0, 1, 2, 3, 4]
    assert not _children()


def test_a_worker_killed_is_an_error_not_a_hang() -> None:
    def work(n: int) -> int:
        if n == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
        return n

    start = time.monotonic()
    with pytest.raises(WorkerLost, match="killed by signal 9"):
        list(ordered_map(work, range(10), 2))
    assert time.monotonic() - start < 5
    assert not _children()


def test_a_reader_that_stops_early_leaves_no_worker_behind() -> None:
    rows = ordered_map(lambda n: n, range(1000), 2)
    assert next(rows) == 0
    pids = _children()
    assert len(pids) == 2
    rows.close()  # what Ctrl-C, an error or `| head` does to the generator
    assert not any(_alive(pid) for pid in pids)


def test_workers_ignore_ctrl_c_the_parent_decides() -> None:
    def work(n: int) -> int:
        os.kill(os.getpid(), signal.SIGINT)  # the whole process group's Ctrl-C, as a worker gets it
        return n

    assert list(ordered_map(work, range(6), 2)) == list(range(6))


def test_the_parent_waits_for_a_killed_worker_a_bounded_time() -> None:
    assert workers.JOIN_SECONDS <= 1
    rows: Any = ordered_map(lambda n: time.sleep(60), range(4), 2)  # workers busy for a minute
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        old = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            next(rows)
        finally:
            signal.signal(signal.SIGALRM, old)
    rows.close()
    assert time.monotonic() - start < 2
    assert not _children()
