"""What the NumPy pass observes as it runs: each stage's output shape and bytes, the operand
shapes of every product it computes (and numpy.einsum_path's own FLOP count of it), and the
elementwise work it does."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from ffn_calc.verifier.arrays import matmul


@dataclass
class Observed:
    shape: tuple[int, ...] = ()
    nbytes: int = 0
    matmuls: list[tuple[int, int, int]] = field(default_factory=list)
    einsum_flops: list[float] = field(default_factory=list)
    elementwise_flops: int = 0


class Recorder:
    """Collects what the forward pass really did, stage by stage."""

    def __init__(self, first_shapes: bool = False) -> None:
        self.stages: dict[str, Observed] = {}
        self.zero_fraction: float | None = None
        self.expert_rows: list[int] | None = None
        self.first_shapes = first_shapes  # in a chunked pass, keep the first chunk's shapes
        self.zeros = self.seen = 0
        self.overhead_s = 0.0  # time spent observing (einsum_path, counting zeros), not computing

    def stage(self, name: str) -> Observed:
        return self.stages.setdefault(name, Observed())

    def output(self, name: str, array: np.ndarray) -> np.ndarray:
        obs = self.stage(name)
        if not (self.first_shapes and obs.shape):
            obs.shape, obs.nbytes = tuple(array.shape), array.nbytes
        return array

    def matmul(self, name: str, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        obs = self.stage(name)
        (m, k), (k2, n) = a.shape, b.shape
        assert k == k2
        obs.matmuls.append((m, k, n))
        start = time.perf_counter()
        obs.einsum_flops.append(_einsum_path_flops(a, b))
        self.overhead_s += time.perf_counter() - start
        return matmul(a, b, out=out)

    def elementwise(self, name: str, flops: int) -> None:
        self.stage(name).elementwise_flops += flops

    def zeros_after_activation(self, a: np.ndarray) -> None:
        start = time.perf_counter()
        self.zeros += a.size - int(np.count_nonzero(a))
        self.seen += a.size
        self.overhead_s += time.perf_counter() - start
        self.zero_fraction = self.zeros / self.seen


class Silent(Recorder):
    """For the extra forward passes of the structural checks: observes nothing."""

    def output(self, name: str, array: np.ndarray) -> np.ndarray:
        return array

    def matmul(self, name: str, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return matmul(a, b, out=out)

    def elementwise(self, name: str, flops: int) -> None:
        pass

    def zeros_after_activation(self, a: np.ndarray) -> None:
        pass


_NAIVE_FLOPS = re.compile(r"Naive FLOP count:\s*([0-9.eE+-]+)")


def _einsum_path_flops(a: np.ndarray, b: np.ndarray) -> float:
    """numpy.einsum_path's own FLOP count for a·b (printed to 4 significant digits)."""
    _, text = np.einsum_path("ij,jk->ik", a, b, optimize=False)
    match = _NAIVE_FLOPS.search(text)
    return float(match.group(1)) if match else float("nan")
