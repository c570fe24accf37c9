"""What the NumPy passes observe as they run, forward and backward, in one Recorder keyed by
stage and phase: each stage's output shape and bytes, the operand shapes of every product it
computes (and numpy.einsum_path's own FLOP count of it), and the elementwise work it does,
counted from the arrays it wrote. The forward pass's phase is FORWARD; the backward's are the
kinds of `train`'s backward ops (input-grad, weight-grad, bias-grad, elementwise, grad-sum).

Elementwise work is counted, not logged: each elementwise step takes a `Tally` for its
(stage, phase, cost) and, as each block of its output is written, adds that block's size (or
rows) to it. A step that is skipped writes nothing and so counts nothing. The per-element (or
per-row) cost that multiplies the count is a `Cost` of the cost table (conventions.py) or a
registry: a definition, named as such wherever it is used.

A training step keeps what its backward needs through the same recorder: a `Keep` hook sees
every output the forward pass reports (and the per-row statistics and routing indices it
offers) and holds on to the ones it wants; the pass itself is the one verify runs."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ffn_calc.model.conventions import Cost
from ffn_calc.verifier.arrays import Workspace, matmul
from ffn_calc.verifier.compare import Counted, conv_flops

FORWARD = "forward"


class Tally:
    """The units one elementwise operation wrote, added block by block by the code that writes
    them (from the elementwise threads too: list.append is atomic)."""

    def __init__(self) -> None:
        self.parts: list[int] = []

    def elements(self, block: np.ndarray) -> None:
        """`block` was written: count its elements."""
        self.parts.append(block.size)

    def rows(self, block: np.ndarray) -> None:
        """`block` (rows × width, or a vector of one value per row) was written: count its rows."""
        self.parts.append(block.shape[0] if block.ndim else 1)

    @property
    def count(self) -> int:
        return sum(self.parts)


class _Discard(Tally):
    def elements(self, block: np.ndarray) -> None:
        pass

    def rows(self, block: np.ndarray) -> None:
        pass


DISCARD = _Discard()


@dataclass
class Observed:
    """One stage in one phase: its output's shape and bytes (forward), the (M, K, N) of each
    product, einsum_path's count of each, and each elementwise operation's tally."""

    shape: tuple[int, ...] = ()
    nbytes: int = 0
    matmuls: list[tuple[int, int, int]] = field(default_factory=list)
    einsum_flops: list[float] = field(default_factory=list)
    tallies: dict[Cost, Tally] = field(default_factory=dict)

    def counted(self) -> tuple[Counted, ...]:
        """Each elementwise operation of the stage with the units it wrote (0 if it wrote none)."""
        return tuple(Counted(cost, t.count) for cost, t in self.tallies.items())

    @property
    def elementwise_flops(self) -> int:
        """Σ convention × observed units over the stage's elementwise operations."""
        return sum(c.flops for c in self.counted())

    @property
    def matmul_flops(self) -> int:
        """2·M·K·N of the products that ran."""
        return conv_flops(self.matmuls)


class Keep:
    """The tensors a training step keeps from the forward pass, by name: those in `wanted` (what
    `train` says is saved), or every one offered when `wanted` is None (a recompute's, or a
    gradient check's, whole store). Each is held as (rows, last dimension), a view."""

    def __init__(self, wanted: Iterable[str] | None = None) -> None:
        self.wanted = None if wanted is None else frozenset(wanted)
        self.store: dict[str, np.ndarray] = {}

    def wants(self, name: str) -> bool:
        return self.wanted is None or name in self.wanted

    def offer(self, name: str, array: np.ndarray) -> None:
        if self.wants(name):
            self.store[name] = array.reshape(-1, array.shape[-1]) if array.ndim > 2 else array


class Held:
    """The activation gradients a NumPy backward holds at once, measured as it holds them: each
    `note(*arrays)` adds up the .nbytes of the arrays alive together at that point (with
    `outer`, those the layer holds while a block runs; a view counted once, as its base), and
    `most` is the largest such sum. The model's "most gradients alive at once" is a product's
    or an activation's pair; what the NumPy step holds beyond that (an output gradient kept
    until the function that read it returns, a GLU's two input gradients and their sum) is
    `most` minus that pair, which the training peak's allowance takes as it was measured."""

    def __init__(self) -> None:
        self.outer: list[np.ndarray] = []
        self.most = 0

    def note(self, *arrays: np.ndarray | None) -> None:
        seen: dict[int, int] = {}
        for a in (*self.outer, *arrays):
            if a is None:
                continue
            while isinstance(a.base, np.ndarray):
                a = a.base
            seen[id(a)] = a.nbytes
        self.most = max(self.most, sum(seen.values()))


class Recorder:
    """Collects what a pass really did, by (stage, phase). `keep` is the hook of a training step
    (None for verify's forward pass); `einsum`: take numpy.einsum_path's count of each product."""

    def __init__(self, first_shapes: bool = False, workspace: Workspace | None = None, keep: Keep | None = None, einsum: bool = True) -> None:
        self.stages: dict[tuple[str, str], Observed] = {}
        self.workspace = workspace  # the narrow products' tiles, made before the pass (arrays.py)
        self.keep = keep
        self.einsum = einsum
        self.zero_fraction: float | None = None
        self.expert_rows: list[int] | None = None
        self.first_shapes = first_shapes  # in a chunked pass, keep the first chunk's shapes
        self.zeros = self.seen = 0
        self.overhead_s = 0.0  # time spent observing (einsum_path, counting zeros), not computing
        # The parameters each routed expert holds (read off its arrays by observe.py), and the
        # fewest and most of them one token's experts held, over the `routed_tokens` seen.
        self.expert_sizes: np.ndarray | None = None
        self.token_params: tuple[int, int] | None = None
        self.routed_tokens = 0
        # The most bytes the routing's integer bookkeeping (top-k indices, the grouping, the
        # slots) held at once: arrays of the verifier's own, which the model does not count.
        self.routing_bytes = 0
        self.held = Held()  # the gradients a backward holds at once (backward.py notes them)

    def stage(self, name: str, phase: str = FORWARD) -> Observed:
        return self.stages.setdefault((name, phase), Observed())

    def phase(self, phase: str = FORWARD) -> dict[str, Observed]:
        """The stages' observations in one phase, by stage name."""
        return {name: obs for (name, ph), obs in self.stages.items() if ph == phase}

    def flops(self, phase: str) -> tuple[int, int]:
        """(matmul FLOPs, elementwise FLOPs) observed in `phase` (2·M·K·N of each product that ran,
        convention × units written)."""
        obs = self.phase(phase).values()
        return sum(o.matmul_flops for o in obs), sum(o.elementwise_flops for o in obs)

    def output(self, name: str, array: np.ndarray) -> np.ndarray:
        obs = self.stage(name)
        if not (self.first_shapes and obs.shape):
            obs.shape, obs.nbytes = tuple(array.shape), array.nbytes
        if self.keep is not None:
            self.keep.offer(name, array)
        return array

    def keeps(self, name: str) -> bool:
        """Whether the training step's hook wants `name` (a tensor that is not a stage output, such
        as a norm's statistics, is then made and offered)."""
        return self.keep is not None and self.keep.wants(name)

    def offer(self, name: str, array: np.ndarray) -> None:
        """A tensor of the pass that is not a stage output, for the training step's hook."""
        if self.keep is not None:
            self.keep.offer(name, array)

    def matmul(self, name: str, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, phase: str = FORWARD) -> np.ndarray:
        obs = self.stage(name, phase)
        (m, k), (k2, n) = a.shape, b.shape
        assert k == k2
        obs.matmuls.append((m, k, n))
        if self.einsum:
            start = time.perf_counter()
            obs.einsum_flops.append(_einsum_path_flops(a, b))
            self.overhead_s += time.perf_counter() - start
        return matmul(a, b, out=out, workspace=self.workspace)

    def routing_arrays(self, *arrays: np.ndarray) -> None:
        """The routing's integer arrays, alive together through the experts: their .nbytes."""
        self.routing_bytes = max(self.routing_bytes, sum(a.nbytes for a in arrays))

    def tally(self, name: str, cost: Cost, phase: str = FORWARD) -> Tally:
        """The counter of operation `cost` in stage `name` and `phase`, for the code that writes its output."""
        return self.stage(name, phase).tallies.setdefault(cost, Tally())

    def routed(self, index: np.ndarray, kept: np.ndarray | None = None) -> None:
        """The experts the pass routed each token to (`index`: tokens × k; `kept`: False for a
        pair a capacity buffer dropped), reduced at once to the parameters of the distinct
        experts each token read, so nothing of the routing's size is kept."""
        if self.expert_sizes is None:
            return
        start = time.perf_counter()
        read = expert_params_read(index, kept, self.expert_sizes)
        if read.size:
            lo, hi = int(read.min()), int(read.max())
            if self.token_params is not None:
                lo, hi = min(lo, self.token_params[0]), max(hi, self.token_params[1])
            self.token_params = (lo, hi)
        self.routed_tokens += read.size
        self.overhead_s += time.perf_counter() - start

    def zeros_after_activation(self, a: np.ndarray) -> None:
        start = time.perf_counter()
        self.zeros += a.size - int(np.count_nonzero(a))
        self.seen += a.size
        self.overhead_s += time.perf_counter() - start
        self.zero_fraction = self.zeros / self.seen


class Silent(Recorder):
    """For the extra forward passes of the structural checks: observes and keeps nothing."""

    def output(self, name: str, array: np.ndarray) -> np.ndarray:
        return array

    def keeps(self, name: str) -> bool:
        return False

    def matmul(self, name: str, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, phase: str = FORWARD) -> np.ndarray:
        return matmul(a, b, out=out, workspace=self.workspace)

    def tally(self, name: str, cost: Cost, phase: str = FORWARD) -> Tally:
        return DISCARD

    def zeros_after_activation(self, a: np.ndarray) -> None:
        pass

    def routed(self, index: np.ndarray, kept: np.ndarray | None = None) -> None:
        pass


def expert_params_read(index: np.ndarray, kept: np.ndarray | None, sizes: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """For each token (a row of `index`), the parameters of the distinct experts it was routed
    to and kept for: Σ sizes[e] over them, an expert chosen twice counted once. Block by block."""
    out = np.empty(index.shape[0], np.int64)
    for i in range(0, index.shape[0], block):
        idx = index[i : i + block].astype(np.int64)
        if kept is not None:
            idx = np.where(kept[i : i + block], idx, -1)
        idx = np.sort(idx, axis=1)
        first = np.ones(idx.shape, bool)
        first[:, 1:] = idx[:, 1:] != idx[:, :-1]
        out[i : i + block] = np.where(first & (idx >= 0), sizes[np.clip(idx, 0, None)], 0).sum(axis=1)
    return out


_NAIVE_FLOPS = re.compile(r"Naive FLOP count:\s*([0-9.eE+-]+)")


def _einsum_path_flops(a: np.ndarray, b: np.ndarray) -> float:
    """numpy.einsum_path's own FLOP count for a·b (printed to 4 significant digits); a packed
    weight stands in as a zero-strided array of its logical shape (einsum_path reads shapes)."""
    if not isinstance(b, np.ndarray):
        b = np.broadcast_to(np.float32(0), b.shape)
    _, text = np.einsum_path("ij,jk->ik", a, b, optimize=False)
    match = _NAIVE_FLOPS.search(text)
    return float(match.group(1)) if match else float("nan")
