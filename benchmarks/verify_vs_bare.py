"""The whole `ffn-calc verify` against a bare NumPy forward pass of the same layer.

One side runs the installed command end to end: `ffn-calc verify 1 1024 -m llama-2-7b -f json`
(the console script next to this interpreter, else `python -m ffn_calc`). The other runs a
plain NumPy script, written to a temporary file, that makes the same random float32 weights
(the same shapes, `default_rng().standard_normal(..., dtype=float32)`) and input and runs the
SwiGLU forward once. Both are timed as processes, interleaved, several rounds; the script
prints each side's median and the ratio of the medians (the goal is at most 1.5).

    python benchmarks/verify_vs_bare.py [--rounds 5] [--dtype float32]

`--dtype` is passed to verify (by default it runs in the preset's torch_dtype, float16 for
LLaMA-2-7B, whose products go through float32 tiles); the bare side is float32 either way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARGS = ["verify", "1", "1024", "-m", "llama-2-7b", "-f", "json"]
TOKENS, D_MODEL, D_FF = 1024, 4096, 11008  # LLaMA-2-7B's FFN, as `shapes -m llama-2-7b` gives it

BARE = f"""\
import numpy as np

rng = np.random.default_rng(0)
w_gate = rng.standard_normal(({D_MODEL}, {D_FF}), dtype=np.float32)
w_up = rng.standard_normal(({D_MODEL}, {D_FF}), dtype=np.float32)
w_down = rng.standard_normal(({D_FF}, {D_MODEL}), dtype=np.float32)
x = rng.standard_normal(({TOKENS}, {D_MODEL}), dtype=np.float32)
for w, fan_in in ((w_gate, {D_MODEL}), (w_up, {D_MODEL}), (w_down, {D_FF})):
    w *= fan_in ** -0.5
g = x @ w_gate
y = (g / (1.0 + np.exp(-g)) * (x @ w_up)) @ w_down
print(y.shape)
"""


def verify_command() -> list[str]:
    """The installed console script beside this interpreter, else the module."""
    script = Path(sys.executable).with_name("ffn-calc")
    if script.exists():
        return [str(script), *ARGS]
    found = shutil.which("ffn-calc")
    return [found, *ARGS] if found else [sys.executable, "-m", "ffn_calc", *ARGS]


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dtype", help="passed to verify (default: the preset's torch_dtype)")
    args = parser.parse_args()
    verify_cmd = verify_command() + (["--dtype", args.dtype] if args.dtype else [])
    with tempfile.TemporaryDirectory() as tmp:
        bare_path = Path(tmp) / "bare_forward.py"
        bare_path.write_text(BARE)
        bare_cmd = [sys.executable, str(bare_path)]
        print(f"verify: {' '.join(verify_cmd)}\nbare:   {' '.join(bare_cmd)} (float32 SwiGLU, {TOKENS} × {D_MODEL} → {D_FF})")
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.rounds} rounds, interleaved")
        bare, ours, reported, forward = [], [], [], []
        for i in range(args.rounds):
            first, second = (bare, ours) if i % 2 == 0 else (ours, bare)  # alternate which goes first
            for side in (first, second):
                if side is bare:
                    bare.append(timed(bare_cmd)[0])
                else:
                    seconds, out = timed(verify_cmd)
                    doc = json.loads(out)
                    if not doc["ok"]:
                        raise SystemExit("verify did not pass: " + ", ".join(c["name"] for c in doc["checks"] if not c["ok"]))
                    ours.append(seconds)
                    reported.append(doc["seconds"])
                    forward.append(doc.get("forward_seconds", float("nan")))
            print(f"round {i + 1}: bare {bare[-1]:.2f} s, verify {ours[-1]:.2f} s")
    b, v = statistics.median(bare), statistics.median(ours)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'':<36} {'median':>8}")
    print(f"{'bare NumPy forward (process)':<36} {b:7.2f}s")
    print(f"{'ffn-calc verify (process)':<36} {v:7.2f}s")
    print(f"{'  its JSON seconds (whole verify)':<36} {statistics.median(reported):7.2f}s")
    print(f"{'  its JSON forward_seconds':<36} {statistics.median(forward):7.2f}s")
    print(f"ratio verify / bare: {v / b:.2f} (goal ≤ 1.5)")


if __name__ == "__main__":
    main()
