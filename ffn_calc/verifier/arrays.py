"""Array plumbing of the verifier: elementwise work in bounded blocks on a few threads, products
in the narrow dtypes (float16, bfloat16, float8) through float32 BLAS, and random arrays made
without full-size copies.

Elementwise work runs in blocks of BLOCK_ELEMENTS, on up to THREADS threads, so its scratch
stays bounded whatever the size of the layer.
"""

from __future__ import annotations

import importlib
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ffn_calc.verifier.packed import VERIFIED, PackedScratch, PackedWeight, packed_matmul

BLOCK_ELEMENTS = 1 << 12


class _Dtypes(Mapping[str, Any]):
    """Every dtype the verifier stores tensors in, by name: NumPy's own, and bfloat16 and
    float8 from ml_dtypes (the NumPy dtype extension JAX uses), which is imported only when
    one of them is looked up (its import takes about 0.5 s; float32 and float16 never need it)."""

    NATIVE = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
    EXTENDED = ("bfloat16", "float8_e4m3fn", "float8_e5m2")

    def __getitem__(self, name: str) -> Any:
        if name in self.NATIVE:
            return self.NATIVE[name]
        if name in self.EXTENDED:
            return getattr(importlib.import_module("ml_dtypes"), name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter((*self.NATIVE, *self.EXTENDED))

    def __len__(self) -> int:
        return len(self.NATIVE) + len(self.EXTENDED)


NUMPY_DTYPES: Mapping[str, Any] = _Dtypes()


def blocks(total: int, step: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, step):
        yield start, min(total, start + step)


# NumPy multiplies float16 matrices in a plain loop, without BLAS (about 0.4 GFLOP/s on the
# project's machine, against about 190 in float32), and bfloat16 and float8 (ml_dtypes) the
# same way. A product in any of these NARROW dtypes therefore runs through float32 BLAS a tile
# at a time, as low-precision GEMMs on GPUs accumulate: the operands' tiles converted to
# float32 (exactly: every narrow value is a float32), the products summed in float32 over the
# whole depth K, and each output element rounded to the storage dtype once. A tile is
# (rows, depth)·(depth, cols): the weight's tile is `depth` contiguous row segments; when the
# depth is split, each partial product lands in a float32 block and is added to the
# accumulator of that block of the output. Every float32 buffer holds at most
# NARROW_BLOCK_BYTES; they live in a Workspace, made once before a pass (as a GEMM library's
# workspace is), and narrow_scratch_bytes says exactly what one product needs.
NARROW_BLOCK_BYTES = 16 << 20  # 2 MiB tiles made (128, K)·(K, 128) products, 25× slower on LLaMA-2-7B
NARROW = ("float16", "bfloat16", "float8_e4m3fn", "float8_e5m2")
FLOAT8 = ("float8_e4m3fn", "float8_e5m2")
# float8 → float32 goes through a 256-entry table (ml_dtypes' own conversion of every byte),
# a few times faster than ml_dtypes' cast; np.take needs its indices as intp, so the bytes
# are widened CONVERT_ELEMENTS at a time into the workspace: 8 bytes each of scratch.
CONVERT_ELEMENTS = 1 << 15
_TABLES: dict[str, np.ndarray] = {}


def is_narrow(dtype: Any) -> bool:
    """A storage dtype whose products and elementwise work run in float32."""
    return np.dtype(dtype).name in NARROW


def _table(dtype: np.dtype) -> np.ndarray:
    if dtype.name not in _TABLES:
        _TABLES[dtype.name] = np.arange(256, dtype=np.uint8).view(dtype).astype(np.float32)
    return _TABLES[dtype.name]


def to_float32(src: np.ndarray, dst: np.ndarray, indices: np.ndarray | None = None) -> None:
    """dst[...] = src, a 2-D narrow array into float32 of the same shape, exactly. A float8
    source is read through the table, CONVERT_ELEMENTS (or one row) at a time, its bytes
    widened into `indices` (intp, at least that many elements; made here when None)."""
    if src.dtype.name not in FLOAT8:
        copy_rows(dst, src)
        return
    width = max(1, src.shape[1])
    table, rows = _table(src.dtype), max(1, CONVERT_ELEMENTS // width)
    if indices is None:
        indices = np.empty(_index_elements(src.shape[0], width), np.intp)
    bits = src.view(np.uint8)
    for i, j in blocks(src.shape[0], rows):
        idx = indices[: (j - i) * width].reshape(j - i, width)
        np.copyto(idx, bits[i:j])  # np.take would copy uint8 indices to intp on its own
        np.take(table, idx, out=dst[i:j], mode="wrap")  # "wrap": no buffered copy of out


def _index_elements(rows: int, width: int) -> int:
    """The intp indices to_float32 holds for a (rows, width) float8 tile: CONVERT_ELEMENTS, or one row when wider."""
    return min(rows * width, max(CONVERT_ELEMENTS, width))


def _narrow_blocks(m: int, k: int, n: int, budget: int | None = None) -> tuple[int, int, int]:
    """Rows, depth and columns of a tile of a narrow (m, k)·(k, n) run in float32, each of its
    buffers at most `budget` float32 elements (by default NARROW_BLOCK_BYTES' worth)."""
    budget = max(1, NARROW_BLOCK_BYTES // 4 if budget is None else budget)
    rows = max(1, min(m, math.isqrt(budget)))
    cols = max(1, min(n, budget // rows))
    depth = max(1, min(k, budget // cols, budget // rows))
    return rows, depth, cols


def _tile_sizes(m: int, k: int, n: int, dtype: str, plan: tuple[int, int, int] | None = None) -> tuple[int, int]:
    """(float32 elements, intp index elements) of a narrow (m, k)·(k, n) tiled as `plan` (rows,
    depth, cols; by default _narrow_blocks'): one tile of each operand, the output block's
    accumulator and, when the depth is split, the block of one partial product; for float8, the
    indices of the larger operand tile."""
    rows, depth, cols = plan or _narrow_blocks(m, k, n)
    partial = rows * cols if depth < k else 0
    indices = max(_index_elements(rows, depth), _index_elements(depth, cols)) if dtype in FLOAT8 else 0
    return rows * depth + depth * cols + rows * cols + partial, indices


def narrow_scratch_bytes(m: int, k: int, n: int, dtype: str = "float16") -> int:
    """The bytes of a narrow (m, k)·(k, n)'s scratch (see _tile_sizes)."""
    floats, indices = _tile_sizes(m, k, n, dtype)
    return 4 * floats + np.dtype(np.intp).itemsize * indices


class Workspace:
    """The scratch of the narrow products, made once before a pass and reused by every product,
    as a GEMM library's workspace is: sized for the largest of `products` ((m, k, n) each) in
    `dtype`, empty for a dtype whose products need none. What a pass holds beyond the model's
    tensors is then this, and `nbytes` (the arrays' own) is what the peak check sets aside.
    With `weight_format` (a packed --weight-dtype), it holds the packed products' scratch too
    (packed.PackedScratch, sized for the largest of `products`)."""

    def __init__(self, products: Iterable[tuple[int, int, int]] = (), dtype: str = "float32", weight_format: str | None = None) -> None:
        products = list(products)
        sizes = [_tile_sizes(m, k, n, dtype) for m, k, n in products] if dtype in NARROW else []
        self.floats = np.empty(max((f for f, _ in sizes), default=0), np.float32)
        self.indices = np.empty(max((i for _, i in sizes), default=0), np.intp)
        self.packed = PackedScratch(products, weight_format, dtype) if weight_format in VERIFIED else None

    @property
    def nbytes(self) -> int:
        return int(self.floats.nbytes + self.indices.nbytes) + (self.packed.nbytes if self.packed is not None else 0)

    def tiles(self, sizes: list[int]) -> list[np.ndarray] | None:
        """Flat float32 buffers of these sizes, side by side in the workspace; None when they do not fit."""
        out, start = [], 0
        for size in sizes:
            if start + size > self.floats.size:
                return None
            out.append(self.floats[start : start + size])
            start += size
        return out


def _tile(buffer: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A C-contiguous (rows, cols) array at the start of a flat buffer: every block of a product,
    the last ones narrower included, is contiguous, so nothing is copied to write into it."""
    return buffer[: rows * cols].reshape(rows, cols)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, workspace: Workspace | None = None) -> np.ndarray:
    """a·b for 2-D operands; a narrow dtype through float32 BLAS, tile by tile (see above), in
    `workspace` when it is large enough, else in tiles made for this product; a packed weight
    (packed.py) dequantized DEPTH rows at a time."""
    if isinstance(b, PackedWeight):
        return packed_matmul(a, b, out, workspace.packed if workspace is not None else None)
    if not is_narrow(a.dtype) or a.dtype != b.dtype or a.ndim != 2 or b.ndim != 2:
        return np.matmul(a, b, out=out)
    (m, k), n = a.shape, b.shape[1]
    if out is None:
        out = np.empty((m, n), a.dtype)
    name = a.dtype.name
    rows, depth, cols = _narrow_blocks(m, k, n)
    if workspace is None or workspace.floats.size < 4:
        workspace = Workspace([(m, k, n)], name)
    elif _tile_sizes(m, k, n, name)[0] > workspace.floats.size:
        # Fewer rows than the product the workspace was sized for can make wider tiles that add
        # up to more: tiles of a quarter of it each, which fit, rather than new ones beside it.
        rows, depth, cols = _narrow_blocks(m, k, n, workspace.floats.size // 4)
    if workspace.indices.size < _tile_sizes(m, k, n, name, (rows, depth, cols))[1]:
        workspace = Workspace([(m, k, n)], name)  # not sized for float8: a product of its own
        rows, depth, cols = _narrow_blocks(m, k, n)
    tiles = workspace.tiles([rows * depth, depth * cols, rows * cols] + [rows * cols] * (depth < k))
    assert tiles is not None  # _tile_sizes counts exactly these
    left, right, acc = tiles[:3]
    part = tiles[3] if depth < k else acc
    indices = workspace.indices
    for i, i_end in blocks(m, rows):
        for j, j_end in blocks(n, cols):
            r, c = i_end - i, j_end - j
            total = _tile(acc, r, c)
            for p, p_end in blocks(k, depth):
                d = p_end - p
                lhs, rhs = _tile(left, r, d), _tile(right, d, c)
                to_float32(a[i:i_end, p:p_end], lhs, indices)
                to_float32(b[p:p_end, j:j_end], rhs, indices)
                np.matmul(lhs, rhs, out=total if p == 0 else _tile(part, r, c))
                if p:
                    add_rows(total, _tile(part, r, c))
            copy_rows(out[i:i_end, j:j_end], total)  # the one rounding to the storage dtype
    return out


# The conversions of a narrow product run between its BLAS calls, when BLAS's threads are idle:
# each is split by rows between the elementwise threads (NumPy lets go of the GIL in a cast).


def copy_rows(dst: np.ndarray, src: np.ndarray) -> None:
    """dst[...] = src (a cast when the dtypes differ), its rows split between the elementwise threads."""
    each_block(dst.shape[0], row_step(*dst.shape), lambda i, j: np.copyto(dst[i:j], src[i:j]))


def add_rows(acc: np.ndarray, part: np.ndarray) -> None:
    """acc += part, its rows split between the elementwise threads."""
    each_block(acc.shape[0], row_step(*acc.shape), lambda i, j: np.add(acc[i:j], part[i:j], out=acc[i:j]))


# --- elementwise pieces ----------------------------------------------------------------------
#
# Elementwise work runs block by block, the blocks dealt out to THREADS threads in contiguous
# runs (NumPy lets go of the GIL inside its loops, so the threads really run at once; BLAS
# already uses every core for the matmuls). Every block writes only its own rows of an output
# made before the threads start, so the result is bit for bit that of a serial loop. Each
# thread holds at most SCRATCH_BLOCKS block-sized float64 temporaries at a time.

THREADS = min(4, os.cpu_count() or 1)  # past a few threads, memory bandwidth is the limit
SCRATCH_BLOCKS = 4


def elementwise_scratch_bytes(widest_row: int) -> int:
    """The most the elementwise threads hold at once: SCRATCH_BLOCKS float64 blocks each, a
    block being BLOCK_ELEMENTS elements, or one row when a row is wider."""
    return THREADS * SCRATCH_BLOCKS * max(BLOCK_ELEMENTS, widest_row) * 8


_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(1, THREADS - 1), thread_name_prefix="ffn-calc-elementwise")
    return _pool


def _close_pool() -> None:
    """Stop the idle threads, so that a fork (sweep's workers) copies a one-thread process."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None


os.register_at_fork(before=_close_pool)


def compute_type(dtype: np.dtype) -> Any:
    """Elementwise math runs in at least float32 (narrow blocks are upcast, then stored)."""
    return np.float64 if dtype == np.float64 else np.float32


def each_block(total: int, step: int, fn: Callable[[int, int], object]) -> None:
    """fn(i, j) for every block [i, j) of range(total), `step` long, split between up to THREADS
    threads in contiguous runs; the calling thread runs the first run itself. If any block
    raises (or Ctrl-C arrives), the other runs stop at their next block and it is re-raised."""
    count = -(-total // step)
    threads = min(THREADS, count)
    if threads <= 1:
        for i, j in blocks(total, step):
            fn(i, j)
        return
    per = -(-count // threads) * step
    stop = threading.Event()

    def run(lo: int, hi: int) -> None:
        for i, j in blocks(hi - lo, step):
            if stop.is_set():
                return
            fn(lo + i, lo + j)

    runs = list(blocks(total, per))
    futures = [_executor().submit(run, lo, hi) for lo, hi in runs[1:]]
    try:
        run(*runs[0])
        for future in futures:
            future.result()
    except BaseException:
        stop.set()
        raise


def row_step(rows: int, width: int) -> int:
    """Rows per block for a one-pass operation with no scratch (bias, ReLU, residual): one block
    per thread, but never less than BLOCK_ELEMENTS elements, so small tensors stay serial."""
    return max(-(-rows // THREADS), -(-BLOCK_ELEMENTS // max(1, width)))


# --- random arrays ---------------------------------------------------------------------------


RANDOM_ELEMENTS = 1 << 20  # numbers drawn per block: each block its own stream (4 MiB of float32)
CACHE_ELEMENTS = 1 << 14  # drawn, scaled and stored a piece at a time, while it is in the core's cache


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, scale: float) -> np.ndarray:
    """Normal(0, scale²) made in `dtype` directly, in blocks of RANDOM_ELEMENTS drawn on the
    elementwise threads (NumPy's Generator lets go of the GIL while it fills an array). Block b
    has its own stream, PCG64(SeedSequence([key, b])), `key` drawn once from `rng`: the values
    depend on the seed and the block size only, never on the number of threads. A block is
    drawn CACHE_ELEMENTS at a time (a stream gives the same numbers however it is cut), each
    piece scaled while it is in cache; a narrow dtype is drawn in float32 and rounded once."""
    key = int(rng.integers(1 << 63))
    out = np.empty(shape, dtype)
    flat = out.reshape(-1)
    native = flat.dtype in (np.float32, np.float64)

    def fill(i: int, j: int) -> None:
        gen = np.random.Generator(np.random.PCG64(np.random.SeedSequence([key, i // RANDOM_ELEMENTS])))
        piece = None if native else np.empty(min(CACHE_ELEMENTS, j - i), np.float32)
        for lo, hi in blocks(j - i, CACHE_ELEMENTS):
            values = flat[i + lo : i + hi] if piece is None else piece[: hi - lo]
            gen.standard_normal(hi - lo, dtype=values.dtype, out=values)
            if scale != 1.0:
                values *= scale
            if piece is not None:
                flat[i + lo : i + hi] = values

    each_block(flat.size, RANDOM_ELEMENTS, fill)
    return out
