"""Routing for the NumPy passes, shared by forward and backward: softmax over the experts,
the top-k and their renormalised weights, and the (token, slot) pairs grouped by expert."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (the experts) of a (tokens, experts) block, a new array."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    return z


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index, chosen, total): the k most likely experts of each token (ties to the lower
    index), their probabilities, and the sum the weights chosen / total are renormalised by."""
    index = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(probs, index, axis=1)
    return index, chosen, chosen.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Groups:
    """The n·k (token, slot) pairs, token-major, grouped by expert: `order` lists the pairs
    expert by expert (tokens in order within each), `counts` the pairs of each expert,
    `starts` where each expert's run begins in `order`."""

    order: np.ndarray
    counts: np.ndarray
    starts: np.ndarray

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """Each expert's [start, end) in the grouped rows."""
        return [(int(lo), int(lo + c)) for lo, c in zip(self.starts, self.counts, strict=True)]

    @property
    def rank(self) -> np.ndarray:
        """The place of each grouped pair within its expert's run."""
        return np.arange(self.order.size) - np.repeat(self.starts, self.counts)

    def slots(self) -> np.ndarray:
        """Where each pair's row lands when the grouped rows are stored contiguously (dropless)."""
        slot = np.empty(self.order.size, np.int64)
        slot[self.order] = np.arange(self.order.size)
        return slot


def group(index: np.ndarray, experts: int) -> Groups:
    """Group the pairs of a (tokens, k) expert index by expert."""
    flat = index.reshape(-1)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=experts)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return Groups(order, counts, starts)
