"""Ring collectives run on real buffers, as NCCL's ring runs them: each rank holds its tensor in N
chunks, and in each of N − 1 steps sends one chunk (a copy: its send buffer) to the next rank.
Every rank's sent bytes are counted from the `.nbytes` of the arrays it sent. Used by tensor
parallelism (parallel.py) and data parallelism (data_parallel.py)."""

from __future__ import annotations

import numpy as np


def reduce_scatter(bufs: list[list[np.ndarray]], sent: list[int]) -> None:
    """A ring reduce-scatter, run: `bufs[r]` is rank r's tensor split into N chunks. In each of
    N − 1 steps every rank sends one chunk (a copy: its send buffer) to the next rank, which adds
    it into its own; after them rank r holds chunk r summed over every rank. `sent[r]` grows by
    the `.nbytes` of every array rank r sent."""
    n = len(bufs)
    for step in range(n - 1):
        messages = [(r, (r - step - 1) % n, bufs[r][(r - step - 1) % n].copy()) for r in range(n)]
        for r, c, data in messages:
            sent[r] += data.nbytes
            into = bufs[(r + 1) % n]
            into[c] = into[c] + data


def all_gather(bufs: list[list[np.ndarray]], sent: list[int]) -> None:
    """A ring all-gather, run: rank r starts with chunk r of `bufs[r]` (the others are
    placeholders); in each of N − 1 steps every rank sends the chunk it got last (its own first)
    to the next rank, so that every rank ends with every chunk."""
    n = len(bufs)
    for step in range(n - 1):
        messages = [(r, (r - step) % n, bufs[r][(r - step) % n].copy()) for r in range(n)]
        for r, c, data in messages:
            sent[r] += data.nbytes
            bufs[(r + 1) % n][c] = data


def split(a: np.ndarray, ranks: int, axis: int | None) -> list[np.ndarray]:
    """N chunks of a (copies): along `axis` (a sequence shard each), or of its flat elements,
    the first size % N chunks one element longer (np.array_split)."""
    if axis is None:
        return [part.copy() for part in np.array_split(a.reshape(-1), ranks)]
    return [np.ascontiguousarray(part) for part in np.split(a, ranks, axis=axis)]
