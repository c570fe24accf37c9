"""The PyTorch device's code (ffn_calc/measure/devices.py, TorchDevice) run where there is no GPU:
on PyTorch's CPU, through the same measurement as every device. Skipped without PyTorch, which
is never a dependency (`pip install 'ffn-calc[gpu]'`); the CUDA clock and memory calls themselves
need a CUDA device."""

from __future__ import annotations

import pytest

from ffn_calc.measure.devices import TorchDevice
from ffn_calc.measure.run import measure_roofline
from ffn_calc.model.layer import make_config

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_the_same_measurement_through_pytorch() -> None:
    device = TorchDevice(torch, "cpu")
    assert device.refusal("bfloat16") is None and device.refusal("int8") is not None
    r = measure_roofline(make_config(1, 32, 128, 512, dtype="float32"), device=device, budget_seconds=0.3, stream_array_bytes=16 * 2**20)
    assert r.device.library.startswith("PyTorch") and [s.kernel for s in r.device.stream] == ["copy", "triad"]
    for g in r.gemms:
        assert g.measured_seconds > 0 and g.achieved_flops_per_s <= r.device.peak_flops_per_s * (1 + 1e-9)
    assert all(g.bound == "memory" for g in r.gemms if g.phase == "decode")
