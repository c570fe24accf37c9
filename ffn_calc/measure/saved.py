"""A measured device saved as JSON, used as the roofline's hardware (`roofline --gpu-file FILE`):

    ffn-calc roofline 1 4096 4096 --measure -f json > measured.json
    ffn-calc roofline 8 1024 4096 --gpu-file measured.json

The file is `roofline --measure -f json`'s output (schema ffn-calc/roofline-measured/1); its
`measured_peak_flops_per_s` and `measured_bandwidth_bytes_per_s` become the peak and bandwidth,
for the dtype it was measured in only (a float32 peak says nothing of float64). Standard library only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ffn_calc.errors import ConfigError
from ffn_calc.measure.report import MEASURED_SCHEMA
from ffn_calc.model.roofline import GPU

FLAG = "--gpu-file"


def _number(data: dict[str, Any], key: str, path: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 1:
        raise ConfigError(FLAG, f"{path}: {key} must be a positive number (FLOP/s or bytes/s), got {value!r}")
    return float(value)


def load_measured_gpu(path: str, dtype: str) -> GPU:
    """The GPU record of a saved measurement, for a layer in `dtype`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(FLAG, f"cannot read {path}: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(FLAG, f"{path} is not JSON ({e}); save one with: ffn-calc roofline … --measure -f json > {path}") from None
    if not isinstance(data, dict) or data.get("schema") != MEASURED_SCHEMA:
        raise ConfigError(FLAG, f"{path} is not a saved measurement (schema {MEASURED_SCHEMA}); save one with: ffn-calc roofline … --measure -f json")
    peak = _number(data, "measured_peak_flops_per_s", path)
    bandwidth = _number(data, "measured_bandwidth_bytes_per_s", path)
    found = data.get("measured_device")
    device: dict[str, Any] = found if isinstance(found, dict) else {}
    measured = device.get("dtype") or data.get("config", {}).get("dtype")
    if measured != dtype:
        raise ConfigError(FLAG, f"{path} holds a {measured} measurement; use --dtype {measured}, or measure {dtype} with --measure --dtype {dtype}")
    source = f"measured {device.get('measured_at', '')}, no datasheet: {device.get('library', 'unknown library')} (from {path})"
    return GPU(f"measured {device.get('device', 'device')}", {dtype: peak / 1e12}, bandwidth / 1e9, source.replace("measured ,", "measured,"))
