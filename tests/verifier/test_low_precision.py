"""Real low-precision storage in verify: bfloat16 and float8 tensors held as such (ml_dtypes),
products accumulated in float32 and rounded once, and the scratch that costs predicted."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import make_config
from ffn_calc.verifier import arrays, properties
from ffn_calc.verifier import run as verify_run
from ffn_calc.verifier.run import verify

NARROW = ["bfloat16", "float8_e4m3fn", "float8_e5m2"]
BYTES = {"bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1}


def failed(report: Any) -> list[Any]:
    return [(c.name, c.predicted, c.observed) for c in report.checks if not c.ok]


@pytest.mark.parametrize("dtype", NARROW)
def test_observed_bytes_are_the_dtypes(dtype: str) -> None:
    report = verify(make_config(2, 8, 64, dtype=dtype))
    assert report.computed_dtype == dtype and report.dtype_note == ""
    assert failed(report) == []
    rows = {c.name: c for c in report.checks}
    assert rows["W1 bytes"].observed == 64 * 256 * BYTES[dtype]
    assert rows["linear1 output bytes"].observed == 16 * 256 * BYTES[dtype]
    assert report.prediction.config.dtype_bytes == BYTES[dtype]


@pytest.mark.parametrize("dtype", NARROW)
def test_arrays_are_stored_in_the_dtype(dtype: str) -> None:
    np_dtype = verify_run.NUMPY_DTYPES[dtype]
    a = arrays.random_array(np.random.default_rng(0), (3, 5), np_dtype, 0.1)
    assert a.dtype == np_dtype and a.nbytes == BYTES[dtype] * a.size
    assert arrays.matmul(a, a.T.copy()).dtype == np_dtype


@given(
    m=st.integers(1, 40), k=st.integers(1, 40), n=st.integers(1, 40), block=st.sampled_from([64, 256, 4096, 1 << 21]), dtype=st.sampled_from(NARROW)
)
def test_narrow_product_is_the_float32_product_rounded_once(m: int, k: int, n: int, block: int, dtype: str) -> None:
    np_dtype = verify_run.NUMPY_DTYPES[dtype]
    rng = np.random.default_rng(m * 10_000 + k * 100 + n)
    a = (rng.standard_normal((m, k)) / 2).astype(np_dtype)
    b = (rng.standard_normal((k, n)) / 2).astype(np_dtype)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(arrays, "NARROW_BLOCK_BYTES", block)  # small tiles: the depth split, many partial sums
        got = arrays.matmul(a, b)
    assert got.dtype == np_dtype and got.shape == (m, n)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    # float32 sums, then one rounding to the dtype: half an ulp (u·|exact|, or half the smallest
    # subnormal) plus float32's error on the sum of |products|.
    u = properties.eps(dtype) / 2
    tiny = float(ml_dtypes.finfo(np_dtype).smallest_subnormal)  # type: ignore[no-untyped-call]
    bound = u * np.abs(exact) + tiny / 2 + k * 2.0**-23 * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)) * (1 + u)
    assert np.all(np.abs(got.astype(np.float64) - exact) <= bound)


@pytest.mark.parametrize("dtype", ["float16", *NARROW])
def test_narrow_product_scratch_is_what_the_allowance_says(dtype: str) -> None:
    m, k, n = 512, 768, 3072
    np_dtype = verify_run.NUMPY_DTYPES[dtype]
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((m, k)) / 4).astype(np_dtype)
    b = (rng.standard_normal((k, n)) / 32).astype(np_dtype)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = arrays.matmul(a, b)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert 0 < peak - out.nbytes <= arrays.narrow_scratch_bytes(m, k, n, dtype) + (64 << 10)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", NARROW)
def test_bert_base_peak_holds_in_low_precision(dtype: str) -> None:
    from ffn_calc.inputs.resolve import layer_config

    report = verify(layer_config(1, 128, model="bert-base", dtype=dtype))
    assert failed(report) == []
    peak = next(c for c in report.checks if c.name.startswith("peak bytes"))
    assert peak.ok and report.computed_dtype == dtype


@pytest.mark.slow
def test_float8_layer_of_llama_width_has_no_inf_or_nan() -> None:
    """LLaMA-2-7B's widths (a few tokens): weights of scale 1/√fan_in, products summed in
    float32 and rounded once, so nothing near e4m3's 448 or e5m2's 57,344."""
    from ffn_calc.verifier.forward import forward, make_params
    from ffn_calc.verifier.recorder import Silent

    cfg = make_config(1, 4, 4096, "11008", activation="swiglu", bias=False, dtype="float8_e4m3fn")
    rng = np.random.default_rng(0)
    p = make_params(rng, cfg, ml_dtypes.float8_e4m3fn)
    x = arrays.random_array(rng, (1, 4, 4096), ml_dtypes.float8_e4m3fn, 1.0)
    y = forward(Silent(), cfg, p, x).astype(np.float32)
    assert np.isfinite(y).all() and 0 < np.abs(y).max() < 448


def test_the_tolerances_come_from_the_unit_roundoff() -> None:
    for dtype in NARROW:
        assert properties.RTOL[dtype] == 4 * float(ml_dtypes.finfo(dtype).eps)  # type: ignore[no-untyped-call]
        cfg = make_config(1, 1, 64, dtype=dtype)
        assert properties.reference_tolerance(cfg) > 16 * float(ml_dtypes.finfo(dtype).eps) / 2  # type: ignore[no-untyped-call]
    assert analyze(make_config(1, 1, 8, dtype="bfloat16")).config.dtype_bytes == 2


def test_the_cli_never_imports_numpy_or_ml_dtypes_for_shapes() -> None:
    code = "import sys, runpy; sys.argv = ['ffn-calc', 'shapes', '3', '6', '8', '-f', 'json']\n"
    code += "try:\n    runpy.run_module('ffn_calc', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'ml_dtypes')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_float8_routing_near_ties_are_still_compared_with_the_reference() -> None:
    """In float8 nearly every token's top-k is within rounding of a tie (e4m3 keeps 3 bits of
    mantissa), so the reference is given the experts the pass chose for those tokens and checks
    everything after the choice, rather than comparing no token at all (which crashed)."""
    cfg = make_config(4, 64, 128, 256, activation="geglu", fused=True, dtype="float8_e4m3fn", experts=8, top_k=1, shared_experts=1)
    report = verify(cfg)
    assert failed(report) == []
    row = next(c for c in report.checks if c.name.startswith("output = float64 reference"))
    assert row.name.startswith("output = float64 reference (8 sampled tokens") and row.kind == "tolerance"


# One 16-bit and one 8-bit format in the fast loop; float8_e5m2 (float8's other layout) in the full run.
@pytest.mark.parametrize("dtype", [pytest.param(d, marks=pytest.mark.slow if d == "float8_e5m2" else ()) for d in NARROW])
def test_a_workspace_serves_a_product_of_fewer_rows(dtype: str) -> None:
    """Sized for a (2048, 32)·(32, 4096) product, the workspace also serves an expert's
    (1163, 32)·(32, 4096) one, whose default tiles add up to more: smaller tiles, nothing new
    allocated beyond the output (a MoE layer's peak was 35% over when they were)."""
    np_dtype = verify_run.NUMPY_DTYPES[dtype]
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((1163, 32)) / 4).astype(np_dtype)
    b = (rng.standard_normal((32, 4096)) / 4).astype(np_dtype)
    workspace = arrays.Workspace([(2048, 32, 4096)], dtype)
    assert arrays.narrow_scratch_bytes(1163, 32, 4096, dtype) > workspace.nbytes  # the default tiles would not fit
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = arrays.matmul(a, b, workspace=workspace)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak - out.nbytes < 64 << 10
    # The same products, summed in float32 by BLAS in another blocking: at most one rounding step apart.
    np.testing.assert_allclose(out.astype(np.float64), arrays.matmul(a, b).astype(np.float64), rtol=properties.eps(dtype), atol=1e-6)
