"""Array plumbing of the verifier: elementwise work in bounded blocks on a few threads, products
in the narrow dtypes (float16, bfloat16, float8) through float32 BLAS, and random arrays made
without full-size copies.

Elementwise work runs in blocks of BLOCK_ELEMENTS, on up to THREADS threads, so its scratch
stays bounded whatever the size of the layer.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

BLOCK_ELEMENTS = 1 << 14


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
# NARROW_BLOCK_BYTES, and narrow_scratch_bytes says exactly what they take together.
NARROW_BLOCK_BYTES = 16 << 20  # 2 MiB tiles made (128, K)·(K, 128) products, 25× slower on LLaMA-2-7B
NARROW = ("float16", "bfloat16", "float8_e4m3fn", "float8_e5m2")
FLOAT8 = ("float8_e4m3fn", "float8_e5m2")
# float8 → float32 goes through a 256-entry table (ml_dtypes' own conversion of every byte),
# a few times faster than ml_dtypes' cast; np.take copies its indices to intp first, so the
# table is read CONVERT_ELEMENTS at a time: 8 bytes each of scratch.
CONVERT_ELEMENTS = 1 << 15
_TABLES: dict[str, np.ndarray] = {}


def is_narrow(dtype: Any) -> bool:
    """A storage dtype whose products and elementwise work run in float32."""
    return np.dtype(dtype).name in NARROW


def _table(dtype: np.dtype) -> np.ndarray:
    if dtype.name not in _TABLES:
        _TABLES[dtype.name] = np.arange(256, dtype=np.uint8).view(dtype).astype(np.float32)
    return _TABLES[dtype.name]


def to_float32(src: np.ndarray, dst: np.ndarray) -> None:
    """dst[...] = src, a 2-D narrow array into float32 of the same shape, exactly."""
    if src.dtype.name not in FLOAT8:
        np.copyto(dst, src)
        return
    table, rows = _table(src.dtype), max(1, CONVERT_ELEMENTS // max(1, src.shape[1]))
    bits = src.view(np.uint8)
    for i, j in blocks(src.shape[0], rows):
        np.take(table, bits[i:j], out=dst[i:j], mode="wrap")  # "wrap": no buffered copy of out


def _narrow_blocks(m: int, k: int, n: int) -> tuple[int, int, int]:
    """Rows, depth and columns of a tile of a narrow (m, k)·(k, n) run in float32."""
    budget = max(1, NARROW_BLOCK_BYTES // 4)  # float32 elements per buffer
    rows = max(1, min(m, math.isqrt(budget)))
    cols = max(1, min(n, budget // rows))
    depth = max(1, min(k, budget // cols, budget // rows))
    return rows, depth, cols


def narrow_scratch_bytes(m: int, k: int, n: int, dtype: str = "float16") -> int:
    """The float32 scratch of a narrow (m, k)·(k, n): one tile of each operand, the output
    block's accumulator and, when the depth is split, the block of one partial product; for
    float8, the table's intp indices."""
    rows, depth, cols = _narrow_blocks(m, k, n)
    partial = rows * cols if depth < k else 0
    indices = 0
    if dtype in FLOAT8:  # to_float32 reads a tile CONVERT_ELEMENTS at a time, or one row when wider
        indices = 8 * max(min(t_rows * width, max(CONVERT_ELEMENTS, width)) for t_rows, width in ((rows, depth), (depth, cols)))
    return 4 * (rows * depth + depth * cols + rows * cols + partial) + indices


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a·b for 2-D operands; a narrow dtype through float32 BLAS, tile by tile (see above)."""
    if not is_narrow(a.dtype) or a.dtype != b.dtype or a.ndim != 2 or b.ndim != 2:
        return np.matmul(a, b, out=out)
    (m, k), n = a.shape, b.shape[1]
    if out is None:
        out = np.empty((m, n), a.dtype)
    rows, depth, cols = _narrow_blocks(m, k, n)
    left = np.empty((rows, depth), np.float32)
    right = np.empty((depth, cols), np.float32)
    acc = np.empty((rows, cols), np.float32)
    part = np.empty((rows, cols), np.float32) if depth < k else acc
    for i, i_end in blocks(m, rows):
        for j, j_end in blocks(n, cols):
            r, c = i_end - i, j_end - j
            for p, p_end in blocks(k, depth):
                d = p_end - p
                to_float32(a[i:i_end, p:p_end], left[:r, :d])
                to_float32(b[p:p_end, j:j_end], right[:d, :c])
                np.matmul(left[:r, :d], right[:d, :c], out=acc[:r, :c] if p == 0 else part[:r, :c])
                if p:
                    acc[:r, :c] += part[:r, :c]
            out[i:i_end, j:j_end] = acc[:r, :c]  # the one rounding to the storage dtype
    return out


# --- elementwise pieces ----------------------------------------------------------------------
#
# Elementwise work runs block by block, the blocks dealt out to THREADS threads in contiguous
# runs (NumPy lets go of the GIL inside its loops, so the threads really run at once; BLAS
# already uses every core for the matmuls). Every block writes only its own rows of an output
# made before the threads start, so the result is bit for bit that of a serial loop. Each
# thread holds at most SCRATCH_BLOCKS block-sized float64 temporaries at a time.

THREADS = min(4, os.cpu_count() or 1)  # past a few threads, memory bandwidth is the limit
SCRATCH_BLOCKS = 4
SCRATCH_BYTES = THREADS * SCRATCH_BLOCKS * BLOCK_ELEMENTS * 8

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


RANDOM_ELEMENTS = 1 << 20  # float32 numbers drawn at a time for a narrow array (4 MiB, before the pass)


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, scale: float) -> np.ndarray:
    """Normal(0, scale²) made in `dtype` directly (a narrow dtype in blocks), with no full-size copy."""
    if dtype in (np.float32, np.float64):
        out = rng.standard_normal(shape, dtype=dtype)
        out *= scale
        return out
    out = np.empty(shape, dtype)
    flat = out.reshape(-1)
    block = np.empty(min(flat.size, RANDOM_ELEMENTS), np.float32)
    for i, j in blocks(flat.size, RANDOM_ELEMENTS):
        values = block[: j - i]
        rng.standard_normal(j - i, dtype=np.float32, out=values)
        values *= scale
        flat[i:j] = values
    return out
