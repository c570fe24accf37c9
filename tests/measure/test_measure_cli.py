"""`roofline --measure` and `--gpu-file` through the command line: the refusals (one line, exit 2,
before anything is measured), a saved device reused, NumPy left alone when nothing is measured,
and one real measurement at 80 columns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, Run

from ffn_calc.measure.report import MEASURED_SCHEMA


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--measure", "--dtype", "bfloat16"], "--measure: this CPU has no fast bfloat16 matmul"),
        (["--measure", "--gpu", "h100-sxm"], "--measure: measures this machine's peak and bandwidth; drop --gpu"),
        (["--measure", "--peak-tflops", "1", "--bandwidth-gbs", "1"], "drop --gpu, --gpu-file and --peak-tflops/--bandwidth-gbs"),
        (["--measure", "--device", "tpu"], "--device: unknown value 'tpu'"),
        (["--device", "cpu", "--gpu", "h100-sxm"], "--device: applies to --measure"),
        (["--measure-seconds", "2", "--gpu", "h100-sxm"], "--measure-seconds: applies to --measure"),
        (["--measure", "--measure-seconds", "0"], "must be a positive number"),
        (["--measure", "--experts", "4", "--top-k", "2"], "--measure: times dense GEMMs; a mixture-of-experts layer"),
        (["--gpu-file", "no-such-file.json"], "--gpu-file: cannot read no-such-file.json"),
    ],
)
def test_what_cannot_be_measured_is_refused_in_one_line(cli: Run, args: list[str], says: str) -> None:
    code, out, err = cli("roofline", "1", "16", "64", *args)
    assert code == 2 and out == "" and says in err and err.count("\n") == 1


def test_a_saved_device_is_the_roofline_hardware(cli: Run, tmp_path: Path) -> None:
    saved = tmp_path / "measured.json"
    doc = {
        "schema": MEASURED_SCHEMA,
        "measured_peak_flops_per_s": 3e11,
        "measured_bandwidth_bytes_per_s": 1.5e10,
        "measured_device": {"device": "cpu", "dtype": "float32", "library": "NumPy → OpenBLAS", "measured_at": "2026-01-01T00:00:00Z"},
    }
    saved.write_text(json.dumps(doc))
    code, out, err = cli("roofline", "1", "4096", "4096", "--gpu-file", str(saved), "-f", "json")
    assert code == 0 and err == ""
    gpu = json.loads(out)["gpu"]
    assert gpu["name"] == "measured cpu" and gpu["peak_flops_per_s"] == 3e11 and gpu["bandwidth_bytes_per_s"] == 1.5e10
    code, _, err = cli("roofline", "1", "4096", "4096", "--gpu-file", str(saved), "--dtype", "float64")
    assert code == 2 and "holds a float32 measurement" in err


def test_a_roofline_without_measure_never_imports_numpy(tmp_path: Path) -> None:
    code = "import sys, runpy; sys.argv = ['ffn-calc', 'roofline', '1', '4096', '4096', '--gpu', 'a100-80gb', '-f', 'json']\n"
    code += "try:\n    runpy.run_module('ffn_calc', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'torch') or m.startswith('ffn_calc.measure')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_measure_on_this_cpu_through_the_cli(cli_proc: Run) -> None:
    code, out, err = cli_proc("roofline", "1", "16", "64", "--measure", "--measure-seconds", "0.2", "--dtype", "float64", "-f", "json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["schema"] == MEASURED_SCHEMA and doc["measured_peak_flops_per_s"] > 0 and doc["measured_bandwidth_bytes_per_s"] > 0
    assert all(g["measured_seconds"] > 0 and g["bound_seconds"] > 0 for p in doc["phases"] for g in p["gemms"])
    code, out, err = cli_proc("roofline", "1", "16", "64", "--measure", "--measure-seconds", "0.2", "--dtype", "float64", env={"COLUMNS": "80"})
    assert code == 0 and err == ""
    assert max(len(line) for line in out.splitlines()) <= 80
    for words in ("measured cpu, no datasheet", "peak", "bandwidth", "÷ bound", "sweep: linear1", "knee: measured M ≈"):
        assert words in out
