"""The FLOP rate of verify's forward pass against bare NumPy matmuls of the same shapes.

Both are timed in the same run, alternating, several times each; the script prints the
medians and the ratio (verify's rate ÷ bare matmuls' rate). verify's pass does all its work:
bias adds, the activation, the recording of operand shapes and einsum_path's FLOP count.

    python benchmarks/verify_rate.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from ffn_calc.config import make_config
from ffn_calc.core import analyze
from ffn_calc.numpy_ffn import Recorder, forward, make_params, random_array

CASES = [
    ("BERT-base layer, 1 × 512 tokens", (1, 512, 768, "3072")),
    ("GPT-2 medium width, 4 × 1024 tokens", (4, 1024, 1024, "4096")),
    ("LLaMA-3-8B width (bare ReLU FFN), 1 × 1024 tokens", (1, 1024, 4096, "14336")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"{'case':<50} {'bare GFLOP/s':>13} {'verify GFLOP/s':>15} {'ratio':>7}")
    for name, (b, s, d, f) in CASES:
        cfg = make_config(b, s, d, f)
        pred = analyze(cfg)
        rng = np.random.default_rng(0)
        p = make_params(rng, cfg, np.float32)
        x = random_array(rng, (b, s, d), np.float32, 1.0)
        x2d = x.reshape(-1, d)
        a = np.maximum(x2d @ p["W1"], 0)
        bare, ours = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            h = x2d @ p["W1"]
            y = a @ p["W2"]
            bare.append(pred.totals.matmul_flops / (time.perf_counter() - start) / 1e9)
            del h, y
            # verify times its pass with tracemalloc running, so this does too.
            tracemalloc.start()
            rec = Recorder()
            start = time.perf_counter()
            out = forward(rec, cfg, p, x)
            # As verify reports it: wall time less the recorder's own bookkeeping.
            ours.append(pred.totals.flops / (time.perf_counter() - start - rec.overhead_s) / 1e9)
            tracemalloc.stop()
            del out
        b_med, o_med = statistics.median(bare), statistics.median(ours)
        print(f"{name:<50} {b_med:13.1f} {o_med:15.1f} {o_med / b_med:7.3f}")


if __name__ == "__main__":
    main()
