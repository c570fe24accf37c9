"""The devices a roofline can be measured on: the CPU through NumPy (its matmul goes through the
BLAS NumPy was built with, with the threads and kernels that BLAS picked for this environment),
and a CUDA device through PyTorch, when PyTorch is installed and sees one. Each gives the same
few things — a clock, a GEMM of a given shape, the STREAM kernels, its free memory — so that
run.py measures every device with the same code.

Operands are filled with a constant before they are timed: an array from `np.zeros`/`np.ones`
may be pages the kernel has not mapped yet (all reading one shared zero page), whose "traffic"
never reaches memory.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ffn_calc.errors import ConfigError
from ffn_calc.measure.timing import Clock, WallClock

DEVICES = ("auto", "cpu", "cuda")
# The variables that steer the CPU's BLAS; reported as the user has them (never changed here).
BLAS_ENVIRONMENT = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Kernel:
    """A STREAM kernel ready to run: `run()` does one pass, moving `bytes_per_call` bytes as
    counted in `formula` (each array element read or written counts once; the write-allocate
    reads a cache may add are not counted, as STREAM does not count them)."""

    name: str  # copy | triad
    formula: str
    bytes_per_call: int
    run: Callable[[], object]


class Device(Protocol):
    """What run.py needs of a device."""

    kind: str  # cpu | cuda
    name: str  # the processor or the GPU
    library: str  # what runs the GEMMs, with its version, kernels and threads
    threads: int | None  # the CPU threads the BLAS uses (None on a GPU)
    clock: Clock

    def refusal(self, dtype: str) -> str | None:
        """Why `dtype` cannot be measured honestly here, or None."""

    def available_bytes(self) -> int:
        """Memory free for the operands now."""

    def cache_bytes(self) -> int | None:
        """The last-level cache, as the device reports it."""

    def gemm(self, m: int, k: int, n: int, dtype: str, copies: int) -> Callable[[], object]:
        """`copies` sets of (M, K)·(K, N) → (M, N) operands, allocated and filled now; each call
        multiplies the next set, so that operands smaller than the caches are not served from them."""

    def stream(self, array_bytes: int) -> list[Kernel]:
        """The STREAM copy and triad over arrays of `array_bytes` each, allocated and filled now."""

    def release(self) -> None:
        """Return what the last gemm/stream allocated (their closures must be dropped first)."""


# --- the CPU ------------------------------------------------------------------------------------


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**30  # unknown: assume a modest machine rather than none


def _size(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def _last_level_cache() -> int | None:
    """The largest cache of cpu0 (Linux sysfs); a virtual machine may report its host's."""
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            sizes.append(_size((index / "size").read_text()))
        except (OSError, ValueError):
            continue
    return max(sizes, default=None)


def _processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown processor"


def _openblas_runtime() -> dict[str, Any] | None:
    """What the loaded OpenBLAS says of itself (version, the kernels it chose, its threads), asked
    through its own functions, as threadpoolctl does; None when no OpenBLAS is loaded (or not Linux)."""
    import ctypes

    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas_", "openblas_"):
            for suffix in ("64_", ""):
                try:
                    config, core, threads = (getattr(lib, f"{prefix}{f}{suffix}") for f in ("get_config", "get_corename", "get_num_threads"))
                except AttributeError:
                    continue
                config.restype = core.restype = ctypes.c_char_p
                threads.restype = ctypes.c_int
                words = (config() or b"").decode(errors="replace").split()
                version = words[1] if len(words) > 1 and words[0] == "OpenBLAS" else ""
                return {"name": "OpenBLAS", "version": version, "kernels": (core() or b"").decode(errors="replace"), "threads": int(threads())}
    return None


def cpu_blas() -> dict[str, Any]:
    """The BLAS NumPy calls at run time: threadpoolctl's account when it is installed, else
    OpenBLAS's own, else what NumPy was built against (its threads then unknown)."""
    try:
        from threadpoolctl import threadpool_info  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        pass
    else:
        for info in threadpool_info():
            if info.get("user_api") == "blas":
                return {"name": info.get("internal_api", "blas"), "version": info.get("version") or "",
                        "kernels": info.get("architecture") or "", "threads": info.get("num_threads")}  # fmt: skip
    found = _openblas_runtime()
    if found is not None:
        return found
    import numpy as np

    built = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})  # type: ignore[no-untyped-call, unused-ignore]
    return {"name": built.get("name", "unknown BLAS"), "version": built.get("version", ""), "kernels": "", "threads": None}


class CpuDevice:
    """The CPU through NumPy: float32 and float64 GEMMs in its BLAS; STREAM in NumPy's loops, on
    one thread and split over as many threads as the BLAS runs (NumPy releases the GIL in them)."""

    kind = "cpu"

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        blas = cpu_blas()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.threads: int | None = int(blas["threads"] or cores)
        self.name = f"{_processor()}, {plural(cores, 'core')} available"
        version = f" {blas['version']}" if blas["version"] else ""
        kernels = f", {blas['kernels']} kernels" if blas["kernels"] else ""
        self.library = f"NumPy {np.__version__} matmul → {blas['name']}{version}{kernels}, {plural(self.threads, 'thread')}"
        set_env = {k: os.environ[k] for k in BLAS_ENVIRONMENT if k in os.environ}
        if set_env:
            self.library += " (" + ", ".join(f"{k}={v}" for k, v in set_env.items()) + ")"
        self.clock: Clock = WallClock()
        self._held: list[Any] = []
        self._pool: Any = None

    def refusal(self, dtype: str) -> str | None:
        if dtype in ("float32", "float64"):
            return None
        return (f"this CPU has no fast {dtype} matmul — NumPy multiplies {dtype} in its own loops, not through the BLAS, so its rate "
                "would not be the machine's; measure with --dtype float32 or float64 (the shapes are the same)")  # fmt: skip

    def available_bytes(self) -> int:
        return _meminfo_available()

    def cache_bytes(self) -> int | None:
        return _last_level_cache()

    def gemm(self, m: int, k: int, n: int, dtype: str, copies: int) -> Callable[[], object]:
        np = self._np
        a = np.full((copies, m, k), 0.5, dtype=dtype)
        b = np.full((copies, k, n), 0.5, dtype=dtype)
        c = np.full((copies, m, n), 0.0, dtype=dtype)
        self._held = [a, b, c]
        turn = [0]

        def call() -> None:
            i = turn[0]
            turn[0] = (i + 1) % copies
            np.matmul(a[i], b[i], out=c[i])

        return call

    def stream(self, array_bytes: int) -> list[Kernel]:
        """Copy and triad on one thread, and split over the BLAS's threads: with the other cores
        busy, a split kernel waits for its slowest part, so both are timed and the best counts."""
        from concurrent.futures import ThreadPoolExecutor

        np = self._np
        count = array_bytes // 8
        a, b, c = (np.full(count, value) for value in (1.0, 2.0, 0.5))  # float64
        self._held = [a, b, c]

        def copy(s: slice) -> None:
            np.copyto(b[s], a[s])

        def triad(s: slice) -> None:  # NumPy cannot fuse it: s·c into a, then b added into a
            np.multiply(c[s], 3.0, out=a[s])
            np.add(a[s], b[s], out=a[s])

        size = count * 8
        kernels = [
            Kernel("copy", "b = a: 2 array passes, one thread", 2 * size, lambda: copy(slice(None))),
            Kernel("triad", "a = b + s·c in two NumPy passes (a = s·c, a += b): 5 array passes, one thread", 5 * size, lambda: triad(slice(None))),
        ]
        threads = self.threads or 1
        if threads > 1:
            cuts = [count * i // threads for i in range(threads + 1)]
            parts = [slice(lo, hi) for lo, hi in zip(cuts, cuts[1:], strict=False)]
            pool = self._pool = ThreadPoolExecutor(threads)
            kernels += [
                Kernel(f"copy ×{threads}", f"the copy split over {threads} threads", 2 * size, lambda: list(pool.map(copy, parts))),
                Kernel(f"triad ×{threads}", f"the triad split over {threads} threads", 5 * size, lambda: list(pool.map(triad, parts))),
            ]
        return kernels

    def release(self) -> None:
        self._held = []
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


# --- a CUDA device, through PyTorch -------------------------------------------------------------


class CudaClock:
    """CUDA events around the call; `stop` waits for the device to finish the work."""

    def __init__(self, torch: Any) -> None:
        self._torch = torch

    def start(self) -> object:
        begin = self._torch.cuda.Event(enable_timing=True)
        begin.record()
        return begin

    def stop(self, mark: object) -> float:
        end = self._torch.cuda.Event(enable_timing=True)
        end.record()
        end.synchronize()
        return float(mark.elapsed_time(end)) / 1e3  # type: ignore[attr-defined]


class TorchDevice:
    """A device through PyTorch: a CUDA device (cuBLAS GEMMs, float32 without TF32 unless
    PyTorch's setting allows it, timed by CUDA events), or — only so that tests can run this
    code where no GPU is — PyTorch's CPU, timed by the wall clock."""

    DTYPES = ("float64", "float32", "float16", "bfloat16")

    def __init__(self, torch: Any, where: str = "cuda") -> None:
        self._torch = torch
        self._cuda = where == "cuda"
        self._held: list[Any] = []
        self.threads: int | None = None
        if self._cuda:
            self._dev = torch.device("cuda", torch.cuda.current_device())
            props = torch.cuda.get_device_properties(self._dev)
            self.kind, self.name = "cuda", f"{props.name} ({self._dev})"
            tf32 = "on" if torch.backends.cuda.matmul.allow_tf32 else "off"
            self.library = f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}, cuBLAS (TF32 {tf32})"
            self.clock: Clock = CudaClock(torch)
            self._l2 = getattr(props, "L2_cache_size", None)
        else:
            self._dev = torch.device("cpu")
            self.kind, self.name = "cpu", f"{_processor()} (through PyTorch)"
            self.threads = int(torch.get_num_threads())
            self.library = f"PyTorch {torch.__version__} on the CPU, {plural(self.threads, 'thread')}"
            self.clock = WallClock()
            self._l2 = _last_level_cache()

    def refusal(self, dtype: str) -> str | None:
        if dtype in self.DTYPES:
            return None
        return f"torch.matmul has no {dtype} GEMM to time; measure with --dtype {', '.join(self.DTYPES)}"

    def available_bytes(self) -> int:
        return int(self._torch.cuda.mem_get_info(self._dev)[0]) if self._cuda else _meminfo_available()

    def cache_bytes(self) -> int | None:
        return int(self._l2) if self._l2 else None

    def gemm(self, m: int, k: int, n: int, dtype: str, copies: int) -> Callable[[], object]:
        torch = self._torch
        kind = getattr(torch, dtype)
        a = torch.full((copies, m, k), 0.5, dtype=kind, device=self._dev)
        b = torch.full((copies, k, n), 0.5 / k, dtype=kind, device=self._dev)  # sums stay near 0.25 in 16 bits
        c = torch.zeros((copies, m, n), dtype=kind, device=self._dev)
        self._held = [a, b, c]
        turn = [0]

        def call() -> None:
            i = turn[0]
            turn[0] = (i + 1) % copies
            torch.matmul(a[i], b[i], out=c[i])

        return call

    def stream(self, array_bytes: int) -> list[Kernel]:
        torch = self._torch
        count = array_bytes // 4
        a, b, c = (torch.full((count,), value, dtype=torch.float32, device=self._dev) for value in (1.0, 2.0, 0.5))
        self._held = [a, b, c]
        size = count * 4
        return [
            Kernel("copy", "b = a: 2 array passes", 2 * size, lambda: b.copy_(a)),
            Kernel("triad", "a = b + s·c in one kernel: 3 array passes", 3 * size, lambda: torch.add(b, c, alpha=3.0, out=a)),
        ]

    def release(self) -> None:
        self._held = []
        if self._cuda:
            self._torch.cuda.empty_cache()


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _torch_with_cuda() -> Any:
    """PyTorch when it is installed and sees a CUDA device, else None (never an import error)."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch  # type: ignore[import-not-found, unused-ignore]

    return torch if torch.cuda.is_available() else None


def pick_device(name: str) -> Device:
    """`auto`: a CUDA device when PyTorch is installed and sees one, else the CPU."""
    if name not in DEVICES:
        from ffn_calc.errors import closest

        raise ConfigError("--device", f"unknown device {name!r}; {closest(name, DEVICES)}")
    if name == "cpu":
        return CpuDevice()
    torch = _torch_with_cuda()
    if torch is not None:
        return TorchDevice(torch)
    if name == "cuda":
        why = "PyTorch is not installed (pip install 'ffn-calc[gpu]')" if importlib.util.find_spec("torch") is None else "PyTorch sees no CUDA device"
        raise ConfigError("--device", f"cannot measure a CUDA device: {why}; use --device cpu")
    return CpuDevice()
