"""A GPU from what the user typed: a catalogue name (`--gpu`), or a custom one from its two figures
(`--peak-tflops`, `--bandwidth-gbs`)."""

from __future__ import annotations

import math

from ffn_calc.catalogue.gpus import GPUS
from ffn_calc.errors import ConfigError, closest
from ffn_calc.model.dtypes import COMPUTE_DTYPES
from ffn_calc.model.roofline import GPU


def pick_gpu(name: str | None = None, peak_tflops: float | None = None, bandwidth_gbs: float | None = None) -> GPU:
    """A GPU preset by name (case-insensitive), or a custom one from both of its figures."""
    if (peak_tflops is None) != (bandwidth_gbs is None) or (name is None and peak_tflops is None):
        raise ConfigError("--gpu", f"name a GPU ({', '.join(GPUS)}) or give both --peak-tflops and --bandwidth-gbs")
    if name is not None and peak_tflops is not None:
        raise ConfigError("--gpu", "give a GPU name or a custom --peak-tflops/--bandwidth-gbs, not both")
    if name is None:
        return custom_gpu(peak_tflops, bandwidth_gbs)  # type: ignore[arg-type]
    if name.lower() not in GPUS:
        raise ConfigError("--gpu", f"unknown GPU {name!r}; {closest(name.lower(), GPUS)}")
    return GPUS[name.lower()]


def custom_gpu(peak_tflops: float, bandwidth_gbs: float) -> GPU:
    # At least 1 FLOP/s and 1 byte/s: below that a time is no longer a finite number.
    for name, value, unit in (("--peak-tflops", peak_tflops, 1e12), ("--bandwidth-gbs", bandwidth_gbs, 1e9)):
        if not (math.isfinite(value) and value * unit >= 1 and math.isfinite(value * unit)):
            raise ConfigError(name, f"must be a positive number from {1 / unit:g} up, got {value}")
    return GPU("custom", dict.fromkeys(COMPUTE_DTYPES, peak_tflops), bandwidth_gbs, "given on the command line")
