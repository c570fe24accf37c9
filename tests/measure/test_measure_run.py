"""A real measurement on this machine's CPU, kept small: the report is consistent with itself
(every layer GEMM's achieved rate at most the measured peak, times positive, the decode GEMMs
memory-bound), its JSON strict and complete; and the refusals come before any allocation."""

from __future__ import annotations

import json
import math
import re

import pytest
from helpers import ROOT

from ffn_calc import api
from ffn_calc.errors import ConfigError
from ffn_calc.measure.report import MEASURED_SCHEMA, MeasuredRoofline
from ffn_calc.measure.run import measure_roofline
from ffn_calc.model.layer import make_config
from ffn_calc.render import to_csv, to_json

MIB = 2**20


@pytest.fixture(scope="module")
def measured() -> MeasuredRoofline:
    # float64: the decode GEMMs' intensity (¼ FLOP/byte) sits far below any ridge this CPU can show
    cfg = make_config(1, 32, 128, 512, dtype="float64")
    return measure_roofline(cfg, device="cpu", budget_seconds=0.3, stream_array_bytes=32 * MIB)


def test_the_report_is_consistent(measured: MeasuredRoofline) -> None:
    d = measured.device
    assert d.device == "cpu" and d.dtype == "float64" and d.peak_flops_per_s > 0 and d.bandwidth_bytes_per_s > 0
    assert d.peak_flops_per_s == max(g.best_flops_per_s for g in d.gemms)
    assert d.bandwidth_bytes_per_s == max(s.best_bytes_per_s for s in d.stream)
    assert [g.mkn for g in d.gemms if g.what == "square"][:3] == [(256,) * 3, (512,) * 3, (1024,) * 3]
    assert measured.roofline.peak_flops == pytest.approx(d.peak_flops_per_s)
    assert measured.roofline.bandwidth == pytest.approx(d.bandwidth_bytes_per_s)
    assert [(g.phase, g.stage) for g in measured.gemms] == [
        ("prefill", "linear1"),
        ("prefill", "linear2"),
        ("decode", "linear1"),
        ("decode", "linear2"),
    ]
    for g in (*measured.gemms, *measured.knee.points):
        assert g.measured_seconds > 0 and g.bound_seconds > 0 and g.timed.calls >= 1
        assert g.timed.best_seconds <= g.measured_seconds
        assert g.achieved_over_bound == g.bound_seconds / g.measured_seconds
    for g in measured.gemms:  # the peak is the best call of every GEMM timed before the roofline was drawn
        assert g.achieved_flops_per_s <= d.peak_flops_per_s * (1 + 1e-9)
    assert all(g.bound == "memory" for g in measured.gemms if g.phase == "decode")


def test_the_knee_is_swept_across_the_predicted_crossover(measured: MeasuredRoofline) -> None:
    k = measured.knee
    rows = [p.mkn[0] for p in k.points]
    assert k.predicted_m is not None and rows[0] <= k.predicted_m <= rows[-1]
    assert all(p.mkn[1:] == (k.k, k.n) == (128, 512) for p in k.points)
    assert rows == sorted(rows) and all(b == 2 * a for a, b in zip(rows, rows[1:], strict=False))
    assert k.estimate.m is not None and k.estimate.m > 0 and k.predicted.m is not None
    assert k.ratio == k.estimate.m / k.predicted.m


def test_json_gives_the_measured_peaks_and_every_gemm_figures(measured: MeasuredRoofline) -> None:
    doc = json.loads(to_json(measured))  # strict: no NaN or Infinity
    assert doc["schema"] == MEASURED_SCHEMA
    assert doc["measured_peak_flops_per_s"] == measured.device.peak_flops_per_s
    assert doc["measured_bandwidth_bytes_per_s"] == measured.device.bandwidth_bytes_per_s
    assert doc["gpu"]["name"] == "measured cpu" and "no datasheet" in doc["gpu"]["source"]
    for phase in doc["phases"]:
        for gemm in phase["gemms"]:
            assert {"bound_seconds", "measured_seconds", "achieved_flops_per_s", "achieved_bytes_per_s", "achieved_over_bound"} <= set(gemm)
            assert gemm["bound_seconds"] == gemm["seconds"]
    assert {"measured_m", "predicted_m", "predicted_knee_m", "definition", "points"} <= set(doc["knee"])
    assert doc["measured_device"]["library"].startswith("NumPy")
    rows = to_csv(measured).splitlines()
    assert len(rows) == 1 + 4 + len(measured.knee.points) and rows[0].startswith("phase,stage,m,k,n")


def test_a_saved_measurement_is_a_gpu(measured: MeasuredRoofline, tmp_path: object) -> None:
    from pathlib import Path

    saved = Path(str(tmp_path)) / "measured.json"
    saved.write_text(to_json(measured))
    again = api.roofline(make_config(4, 64, 128, 512, dtype="float64"), gpu_file=str(saved))
    assert again.gpu.name == "measured cpu"
    assert again.peak_flops == pytest.approx(measured.device.peak_flops_per_s, rel=1e-12)
    assert again.bandwidth == pytest.approx(measured.device.bandwidth_bytes_per_s, rel=1e-12)
    assert math.isclose(again.ridge, measured.roofline.ridge, rel_tol=1e-12)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"dtype": "bfloat16"}, "no fast bfloat16 matmul"),
        ({"dtype": "float16"}, "--dtype float32 or float64"),
        ({"experts": 4, "top_k": 2}, "mixture-of-experts"),
        ({"weight_dtype": "int4"}, "drop --weight-dtype"),
    ],
)
def test_what_cannot_be_measured_is_refused_in_one_line(options: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as e:
        measure_roofline(make_config(1, 8, 64, **options), device="cpu")  # type: ignore[arg-type]
    assert e.value.argument == "--measure" and says in e.value.message and "\n" not in e.value.message


def test_operands_past_half_the_free_memory_are_refused_before_allocation() -> None:
    with pytest.raises(ConfigError, match=r"needs .* GiB of operands and half the free memory"):
        measure_roofline(make_config(1, 2**22, 2**16, dtype="float64"), device="cpu")


def test_a_budget_must_be_a_positive_number() -> None:
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ConfigError, match="--measure-seconds"):
            measure_roofline(make_config(1, 8, 64), device="cpu", budget_seconds=bad)


def test_an_unknown_device_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        measure_roofline(make_config(1, 8, 64), device="tpu")


def test_every_json_key_is_documented(measured: MeasuredRoofline) -> None:
    def keys(value: object) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        return {k for v in value for k in keys(v)} if isinstance(value, list) else set()

    documented = set(re.findall(r"`([a-z_]+)(?:\[\])?`", (ROOT / "docs" / "json.md").read_text(encoding="utf-8")))
    assert not keys(measured.to_dict()) - documented
