"""Sweep throughput: configurations per second, measured end to end through the CLI.

Runs `ffn-calc sweep` on a 100,000-configuration grid to CSV (one process, then the default
worker pool) and on 20,000 JSON lines from stdin, several times each, and prints medians.
Start-up is included, so these are what a shell script sees.

    python benchmarks/sweep_rate.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

GRID = ["--batch", "1:100", "--seq-len", "1:1000", "--d-model", "4096", "-f", "csv"]


def timed(args: list[str], stdin: str | None = None) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ffn_calc", "sweep", *args], input=stdin, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout.count("\n") - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lines = "\n".join(
        json.dumps({"batch": 1 + i % 64, "seq_len": 128 + i % 4096, "model": ("bert-base", "llama-3-8b", "mixtral-8x7b")[i % 3]})
        for i in range(20_000)
    )
    cases = {
        "grid 100,000, one process (-j 1)": (GRID + ["-j", "1"], None),
        "grid 100,000, default workers": (GRID, None),
        "stdin 20,000 JSON lines": (["--stdin", "-f", "csv"], lines),
    }
    print(f"{'case':<36} {'median s':>9} {'configs/s':>11}   (runs: {args.runs})")
    for name, (argv, stdin) in cases.items():
        seconds, rows = zip(*(timed(argv, stdin) for _ in range(args.runs)), strict=True)
        med = statistics.median(seconds)
        print(f"{name:<36} {med:9.3f} {rows[0] / med:11,.0f}")


if __name__ == "__main__":
    main()
