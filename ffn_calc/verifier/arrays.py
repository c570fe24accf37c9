"""Array plumbing of the verifier: elementwise work in bounded blocks on a few threads, float16
products through float32 BLAS, and random arrays made without full-size copies.

Elementwise work runs in blocks of BLOCK_ELEMENTS, on up to THREADS threads, so its scratch
stays bounded whatever the size of the layer.
"""

from __future__ import annotations

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
# project's machine, against about 190 in float32). A float16 product therefore runs through
# float32 BLAS a block at a time, products summed in float32 and rounded to float16 once, as
# half-precision GEMMs on GPUs accumulate; the float32 copies of the operand blocks and of the
# result block are scratch of at most HALF_BLOCK_BYTES each.
HALF_BLOCK_BYTES = 16 << 20  # 2 MiB blocks made (128, K)·(K, 128) products, 25× slower on LLaMA-2-7B


def _half_blocks(m: int, k: int, n: int) -> tuple[int, int]:
    """Rows and columns per block of a float16 (m, k)·(k, n) run in float32."""
    cols = max(1, min(n, HALF_BLOCK_BYTES // (4 * k)))
    rows = max(1, min(m, HALF_BLOCK_BYTES // (4 * k), HALF_BLOCK_BYTES // (4 * cols)))
    return rows, cols


def half_scratch_bytes(m: int, k: int, n: int) -> int:
    """The float32 scratch of a float16 (m, k)·(k, n): one block of each operand and of the result."""
    rows, cols = _half_blocks(m, k, n)
    return 4 * (rows * k + k * cols + rows * cols)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a·b for 2-D operands; float16 through float32 BLAS, block by block (see above)."""
    if a.dtype != np.float16 or a.ndim != 2 or b.ndim != 2:
        return np.matmul(a, b, out=out)
    (m, k), n = a.shape, b.shape[1]
    if out is None:
        out = np.empty((m, n), np.float16)
    rows, cols = _half_blocks(m, k, n)
    for j, j_end in blocks(n, cols):
        # copyto straight into float32: astype of a strided column slice makes a float16
        # contiguous copy first, half as much scratch again as the block itself.
        right = np.empty((k, j_end - j), np.float32)
        np.copyto(right, b[:, j:j_end])
        for i, i_end in blocks(m, rows):
            out[i:i_end, j:j_end] = a[i:i_end].astype(np.float32) @ right
        del right
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
    """Elementwise math runs in at least float32 (float16 blocks are upcast, then stored)."""
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


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any, scale: float) -> np.ndarray:
    """Normal(0, scale²) made in `dtype` directly (float16 in blocks), with no full-size copy."""
    if dtype in (np.float32, np.float64):
        out = rng.standard_normal(shape, dtype=dtype)
        out *= scale
        return out
    out = np.empty(shape, dtype)
    flat = out.reshape(-1)
    for i, j in blocks(flat.size, BLOCK_ELEMENTS):
        flat[i:j] = rng.standard_normal(j - i, dtype=np.float32) * scale
    return out
