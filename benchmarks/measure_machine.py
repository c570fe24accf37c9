"""This machine's measured peak and bandwidth, as `roofline --measure` finds them, over several runs.

Each run measures the device afresh (a small layer, so that its own GEMMs take little time), in
float32 and float64 alternately so that machine noise hits both alike; the script prints each
figure's median, least and most, with the load average before and after — other processes on
the cores move every figure, so a figure without its load says little.

    python benchmarks/measure_machine.py [--runs 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics

from ffn_calc import api
from ffn_calc.inputs.resolve import layer_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="each run's --measure-seconds")
    args = parser.parse_args()
    before = os.getloadavg()
    figures: dict[str, dict[str, list[float]]] = {d: {"peak": [], "bandwidth": [], "decode": [], "prefill": []} for d in ("float32", "float64")}
    library = ""
    for _ in range(args.runs):
        for dtype in figures:
            r = api.measure_roofline(layer_config(1, 64, 1024, dtype=dtype), device="cpu", seconds=args.seconds)
            library = r.device.library
            f = figures[dtype]
            f["peak"].append(r.device.peak_flops_per_s / 1e9)
            f["bandwidth"].append(r.device.bandwidth_bytes_per_s / 1e9)
            f["prefill"].append(statistics.median(g.achieved_over_bound for g in r.gemms if g.phase == "prefill"))
            f["decode"].append(statistics.median(g.achieved_over_bound for g in r.gemms if g.phase == "decode"))
    after = os.getloadavg()
    print(f"{library}; {args.runs} runs per dtype, load average {before[0]:.2f} before, {after[0]:.2f} after")
    for dtype, f in figures.items():
        for name, unit in (("peak", "GFLOP/s"), ("bandwidth", "GB/s"), ("prefill", "achieved ÷ bound"), ("decode", "achieved ÷ bound")):
            values = f[name]
            print(f"{dtype:8} {name:9} median {statistics.median(values):8.3g}  least {min(values):8.3g}  most {max(values):8.3g}  {unit}")


if __name__ == "__main__":
    main()
