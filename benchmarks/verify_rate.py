"""The FLOP rate of verify's forward pass against bare NumPy matmuls of the same shapes.

For each layer, a first pass records the (M, K, N) of every product the layer computes; the
bare side then multiplies random operands of exactly those shapes, and nothing else. The two
are timed alternately in one run, several times each. verify's side is timed as verify times
it: tracemalloc on, every stage observed, the recorder's own bookkeeping (einsum_path's FLOP
count, counting zeros after ReLU) taken out of the time. Rates are FLOPs per second by the
convention (verify's FLOPs include the elementwise work it also does); the ratio is verify's
rate ÷ the bare matmuls' rate in the same round, and "time beyond matmuls" is the share of
verify's time that the bare matmuls did not need; the script prints the medians.

    python benchmarks/verify_rate.py [--runs 7] [--case NAME]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import make_config
from ffn_calc.verifier.arrays import THREADS, random_array
from ffn_calc.verifier.forward import forward, make_params
from ffn_calc.verifier.recorder import Recorder

# (batch, seq_len, d_model, d_ff, options): real layers, the activation each uses.
CASES = {
    "ReLU, BERT-base width, 1 × 512 tokens": (1, 512, 768, "3072", {}),
    "ReLU, GPT-2 medium width, 4 × 1024 tokens": (4, 1024, 1024, "4096", {}),
    "SwiGLU, LLaMA-3-8B, 1 × 1024 tokens": (1, 1024, 4096, "14336", {"activation": "swiglu", "bias": False}),
    "GELU + post-LN, BERT-base, 1 × 512 tokens": (1, 512, 768, "3072", {"activation": "gelu", "norm": "post"}),
    "GELU + pre-LN, GPT-2 medium, 4 × 1024 tokens": (4, 1024, 1024, "4096", {"activation": "gelu", "norm": "pre"}),
}


def products(rec: Recorder) -> list[tuple[int, int, int]]:
    return [mkn for stage in rec.stages.values() for mkn in stage.matmuls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--case", choices=list(CASES), action="append", help="only these cases (default: all)")
    args = parser.parse_args()
    print(f"NumPy {np.__version__}; elementwise threads: {THREADS}; runs: {args.runs} per case, alternating")
    print(f"{'case':<46} {'bare GFLOP/s':>13} {'verify GFLOP/s':>15} {'ratio':>7} {'time beyond matmuls':>20}")
    for name in args.case or CASES:
        b, s, d, f, options = CASES[name]
        cfg = make_config(b, s, d, f, **options)
        pred = analyze(cfg)
        rng = np.random.default_rng(0)
        params = make_params(rng, cfg, np.float32)
        x = random_array(rng, (b, s, d), np.float32, 1.0)
        first = Recorder()
        forward(first, cfg, params, x)
        operands = [(random_array(rng, (m, k), np.float32, 1.0), random_array(rng, (k, n), np.float32, 1.0)) for m, k, n in products(first)]
        bare_flops = 2 * sum(m * k * n for m, k, n in products(first))
        assert bare_flops == pred.totals.matmul_flops
        bare, ours, ratios, shares = [], [], [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            for lhs, rhs in operands:
                out = lhs @ rhs
                del out
            bare_s = time.perf_counter() - start
            tracemalloc.start()
            rec = Recorder()
            start = time.perf_counter()
            out = forward(rec, cfg, params, x)
            ours_s = time.perf_counter() - start - rec.overhead_s
            tracemalloc.stop()
            del out
            bare.append(bare_flops / bare_s / 1e9)
            ours.append(pred.totals.flops / ours_s / 1e9)
            ratios.append(ours[-1] / bare[-1])
            shares.append(max(0.0, 1 - bare_s / ours_s))
        print(
            f"{name:<46} {statistics.median(bare):13.1f} {statistics.median(ours):15.1f} "
            f"{statistics.median(ratios):7.3f} {statistics.median(shares):20.1%}"
        )


if __name__ == "__main__":
    main()
