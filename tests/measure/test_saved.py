"""`roofline --gpu-file`: a saved measurement as the roofline's hardware, and the one-line errors
of a file that is not one (ffn_calc/measure/saved.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ffn_calc import api
from ffn_calc.errors import ConfigError
from ffn_calc.measure.report import MEASURED_SCHEMA
from ffn_calc.measure.saved import load_measured_gpu
from ffn_calc.model.layer import make_config


def saved(tmp_path: Path, **changes: Any) -> str:
    doc: dict[str, Any] = {
        "schema": MEASURED_SCHEMA,
        "config": {"dtype": "float32"},
        "measured_peak_flops_per_s": 2.5e11,
        "measured_bandwidth_bytes_per_s": 1.25e10,
        "measured_device": {"device": "cpu", "dtype": "float32", "library": "NumPy → OpenBLAS", "measured_at": "2026-01-01T00:00:00Z"},
    }
    doc.update(changes)
    path = tmp_path / "measured.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_a_saved_measurement_gives_the_peak_and_bandwidth(tmp_path: Path) -> None:
    gpu = load_measured_gpu(saved(tmp_path), "float32")
    assert gpu.name == "measured cpu" and gpu.tflops == {"float32": 0.25} and gpu.bandwidth_gbs == 12.5
    assert "2026-01-01T00:00:00Z" in gpu.source and "no datasheet" in gpu.source
    r = api.roofline(make_config(1, 64, 256), gpu_file=saved(tmp_path))
    assert r.peak_flops == 2.5e11 and r.bandwidth == 1.25e10 and r.ridge == 20.0


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"schema": "ffn-calc/roofline/1"}, "is not a saved measurement"),
        ({"measured_peak_flops_per_s": None}, "measured_peak_flops_per_s must be a positive number"),
        ({"measured_bandwidth_bytes_per_s": 0}, "measured_bandwidth_bytes_per_s must be a positive number"),
        ({"measured_bandwidth_bytes_per_s": True}, "must be a positive number"),
    ],
)
def test_a_file_that_is_not_a_measurement_is_refused(tmp_path: Path, changes: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_measured_gpu(saved(tmp_path, **changes), "float32")
    assert e.value.argument == "--gpu-file" and says in e.value.message


def test_a_measurement_is_for_its_dtype_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds a float32 measurement; use --dtype float32, or measure float64"):
        load_measured_gpu(saved(tmp_path), "float64")


def test_missing_and_broken_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read .*nothing.json"):
        load_measured_gpu(str(tmp_path / "nothing.json"), "float32")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="is not JSON"):
        load_measured_gpu(str(broken), "float32")


def test_a_gpu_file_is_the_hardware_alone(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="give it alone"):
        api.roofline(make_config(1, 64, 256), "a100-80gb", gpu_file=saved(tmp_path))
