"""The whole `ffn-calc verify` against the leanest honest floor: a bare NumPy forward pass.

The floor is ../shared/bench/bare_ffn_forward.py's logic, copied here as the floor program:
the same float32 weights from `default_rng().standard_normal`, an in-place SiLU, one forward,
nothing else (no scaling pass, no temporaries beyond the products). The other side runs the
installed command end to end: `ffn-calc verify 1 1024 -m llama-2-7b -f json` (the console
script next to this interpreter, else `python -m ffn_calc`), in the preset's float16 and with
`--dtype float32` and `--dtype bfloat16`. Both are timed as processes, side by side (the order
alternating each round), ROUNDS rounds; the script prints each side's median (wall, and CPU
seconds of every thread), the ratio of the medians against its goal (float32 ≤ 0.9, float16 ≤ 1.2,
bfloat16 ≤ 1.3) and the load average before and after, since the machine may be shared.

    python benchmarks/verify_vs_bare.py [--rounds 5] [--dtype float16 float32 bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARGS = ["verify", "1", "1024", "-m", "llama-2-7b", "-f", "json"]
TOKENS, D_MODEL, D_FF = 1024, 4096, 11008  # LLaMA-2-7B's FFN, as `shapes -m llama-2-7b` gives it
GOALS = {"float16": 1.2, "float32": 0.9, "bfloat16": 1.3}  # verify ÷ floor, medians (issue 20 part 4)

# ../shared/bench/bare_ffn_forward.py, as it is: usage `python floor.py TOKENS D_MODEL D_FF`.
FLOOR = """\
import sys
import numpy as np

n, d, f = map(int, sys.argv[1:4])
rng = np.random.default_rng(0)
x = rng.standard_normal((n, d), dtype=np.float32)
wg, wu = (rng.standard_normal((d, f), dtype=np.float32) for _ in range(2))
wd = rng.standard_normal((f, d), dtype=np.float32)
g = x @ wg
u = x @ wu
e = np.exp(np.negative(g))  # silu(g) = g / (1 + e^-g)
e += 1
np.divide(g, e, out=g)
g *= u
y = g @ wd
print(y.shape)
"""


def verify_command() -> list[str]:
    """The installed console script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("ffn-calc")
    if script.exists():
        return [str(script), *ARGS]
    found = shutil.which("ffn-calc")
    return [found, *ARGS] if found else [sys.executable, "-m", "ffn_calc", *ARGS]


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str]) -> tuple[float, str, float]:
    """Wall seconds, stdout and CPU seconds (user + system, every thread) of one run of `cmd`:
    on a shared machine the CPU seconds move less than the wall time, though they cannot show
    what a second core saves."""
    start, cpu = time.perf_counter(), cpu_children()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return seconds, done.stdout, cpu_children() - cpu


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dtype", nargs="+", default=list(GOALS), choices=list(GOALS), help="verify's dtypes (float16 is the preset's)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        floor_path = Path(tmp) / "bare_ffn_forward.py"
        floor_path.write_text(FLOOR)
        floor_cmd = [sys.executable, str(floor_path), str(TOKENS), str(D_MODEL), str(D_FF)]
        print(f"floor: {' '.join(floor_cmd)} (float32 SwiGLU, {TOKENS} × {D_MODEL} → {D_FF})")
        for dtype in args.dtype:
            verify_cmd = verify_command() + ([] if dtype == "float16" else ["--dtype", dtype])
            before = load()
            floor, ours, reported, floor_cpu, ours_cpu = [], [], [], [], []
            for i in range(args.rounds):
                for side in ("floor", "verify") if i % 2 == 0 else ("verify", "floor"):  # alternate which goes first
                    if side == "floor":
                        seconds, _, cpu = timed(floor_cmd)
                        floor.append(seconds)
                        floor_cpu.append(cpu)
                        continue
                    seconds, out, cpu = timed(verify_cmd)
                    ours_cpu.append(cpu)
                    doc = json.loads(out)
                    if not doc["ok"]:
                        raise SystemExit("verify did not pass: " + ", ".join(c["name"] for c in doc["checks"] if not c["ok"]))
                    ours.append(seconds)
                    reported.append(doc["seconds"])
                print(f"  {dtype} round {i + 1}: floor {floor[-1]:.2f} s, verify {ours[-1]:.2f} s", flush=True)
            f, v = statistics.median(floor), statistics.median(ours)
            cpu = (statistics.median(floor_cpu), statistics.median(ours_cpu))
            results.append((dtype, f, v, statistics.median(reported), cpu, before, load()))
    print(
        f"\n{'dtype':<10} {'floor':>8} {'verify':>8} {'(its JSON s)':>12} {'ratio':>6} {'goal':>5} {'CPU s: floor':>13} {'verify':>7} {'ratio':>6}"
        "  load before → after (1, 5, 15 min)"
    )
    for dtype, f, v, r, (fc, vc), before, after in results:
        cpu_cols = f"{fc:12.2f}s {vc:6.2f}s {vc / fc:6.2f}"
        print(f"{dtype:<10} {f:7.2f}s {v:7.2f}s {r:11.2f}s {v / f:6.2f} {GOALS[dtype]:5.1f} {cpu_cols}  {before} → {after}")


if __name__ == "__main__":
    main()
