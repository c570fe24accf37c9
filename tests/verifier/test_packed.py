"""verify --weight-dtype (issue 17 part 5, the verifier's side): GPTQ, AWQ and MXFP4 weights
stored as their checkpoints store them, dequantized tile by tile inside the products, their
bytes observed from the packed arrays, and the output held to a float64 reference built from
the stored arrays by a dequantizer of its own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ffn_calc.errors import VerifyRefused
from ffn_calc.model import weight_formats
from ffn_calc.model.dtypes import packing
from ffn_calc.model.layer import FFNConfig, make_config
from ffn_calc.verifier import forward, packed, reference
from ffn_calc.verifier.report import VerifyReport
from ffn_calc.verifier.run import verify

GROUPS = {"gptq_int4": 32, "awq_int4": 32, "mxfp4": None}
LAYERS: dict[str, dict[str, Any]] = {
    "dense": {"activation": "swiglu", "norm": "pre", "norm_type": "rms"},
    "moe": {"activation": "swiglu", "experts": 4, "top_k": 2},
}


def layer(fmt: str, kind: str, dtype: str = "float32") -> FFNConfig:
    return make_config(2, 8, 64, 128, weight_dtype=fmt, group_size=GROUPS[fmt], bias=False, dtype=dtype, **LAYERS[kind])


def failed(report: VerifyReport) -> list[str]:
    return [c.name for c in report.checks if not c.ok]


@pytest.mark.parametrize("fmt", packed.VERIFIED)
@pytest.mark.parametrize("kind", LAYERS)
def test_each_format_runs_and_its_stored_tensors_are_observed(fmt: str, kind: str) -> None:
    cfg = layer(fmt, kind)
    report = verify(cfg)
    assert report.ok, failed(report)
    stored = [c for c in report.checks if "(dtype, shape, .nbytes of the packed array)" in c.name]
    names = {t.name for t in packing(fmt, GROUPS[fmt] or 0, "float32").tensors(64, 128)}
    assert {c.name.split(" ")[1] for c in stored} == names
    assert any("float64 reference" in c.name and c.kind == "tolerance" for c in report.checks)


def test_float16_activations_with_packed_weights() -> None:
    assert verify(layer("awq_int4", "dense", "float16")).ok


@pytest.mark.parametrize("fmt", packed.VERIFIED)
def test_the_two_dequantizers_agree(fmt: str) -> None:
    w = np.random.default_rng(0).standard_normal((64, 96)).astype(np.float32)
    pw = packed.quantize(w, packing(fmt, GROUPS[fmt] or 0, "float32"))
    ours = pw.dequantized()
    assert np.array_equal(ours, reference.dequantize(fmt, pw.arrays, 64, 96, pw.group))
    assert float(np.abs(ours - w).max()) < 1.0  # a quantization of w, not noise


def test_a_model_storing_awq_scales_in_float32_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = weight_formats._awq_tensors

    def wide(k: int, n: int, g: int, dtype: str) -> Any:
        q, z, s = real(k, n, g, dtype)
        return q, z, weight_formats.StoredTensor(s.name, "float32", s.shape, s.holds)

    monkeypatch.setattr(weight_formats.WEIGHT_FORMATS["awq_int4"], "tensors", wide)
    cfg = make_config(2, 8, 96, 160, weight_dtype="awq_int4", group_size=32, bias=False, activation="swiglu")  # sizes no other test analyzed (cached)
    bad = failed(verify(cfg))
    assert any("scales (dtype, shape" in n for n in bad)
    assert any(n.endswith(" bytes") and n.startswith("W_") for n in bad)


def test_a_tile_dequantizer_ignoring_awqs_order_fails_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packed, "AWQ_ORDER", tuple(range(8)))  # the product unpacks in plain order; the packing and the reference keep AWQ's
    real = packed.quantize

    def keep_order(w: np.ndarray, p: Any) -> Any:
        with pytest.MonkeyPatch.context() as m:
            m.setattr(packed, "AWQ_ORDER", (0, 2, 4, 6, 1, 3, 5, 7))
            return real(w, p)

    monkeypatch.setattr(forward, "quantize", keep_order)
    assert any("float64 reference" in n for n in failed(verify(layer("awq_int4", "dense"))))


def test_an_e8m0_bias_off_by_one_in_the_product_fails_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    real = packed.PackedWeight.rows

    def doubled(self: packed.PackedWeight, lo: int, hi: int) -> np.ndarray:
        return real(self, lo, hi) * 2 if self.format == "mxfp4" else real(self, lo, hi)  # 2^(s − 126)

    monkeypatch.setattr(packed.PackedWeight, "rows", doubled)
    assert any("float64 reference" in n for n in failed(verify(layer("mxfp4", "dense"))))


@pytest.mark.parametrize("fmt", ["nf4", "nf4_dq", "nvfp4", "fp8_block", "fp8_row", "gptq_int8"])
def test_other_formats_are_refused_in_one_line(fmt: str) -> None:
    cfg = make_config(2, 8, 64, 128, activation="swiglu", bias=False, weight_dtype=fmt)
    with pytest.raises(VerifyRefused, match="verify runs packed weights in gptq_int4, awq_int4, mxfp4 only") as e:
        verify(cfg)
    assert "\n" not in str(e.value)


def test_packed_weights_with_backward_are_refused() -> None:
    with pytest.raises(VerifyRefused, match="forward pass only"):
        verify(layer("gptq_int4", "dense"), backward=True)


@pytest.mark.parametrize(("group", "groups"), [(128, 1), (48, 2), (0, 1)])
def test_gptq_groups_that_do_not_divide_k(group: int, groups: int) -> None:
    # K = 64: the default group 128 (one group, larger than K) and 48 (ceil(64/48) = 2, the last one
    # 16 rows) crashed verify with exit 70; GPTQ stores ceil(K/G) rows of scales and zeros.
    cfg = make_config(2, 4, 64, 64, weight_dtype="gptq_int4", group_size=group, bias=False)
    report = verify(cfg)
    assert report.ok, failed(report)
    w = np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32)
    pw = packed.quantize(w, packing("gptq_int4", group, "float32"))
    assert pw.arrays["scales"].shape == (groups, 64) and pw.arrays["qzeros"].shape == (groups, 8)
    assert int(pw.arrays["g_idx"].max()) == groups - 1
    assert np.array_equal(pw.dequantized(), reference.dequantize("gptq_int4", pw.arrays, 64, 64, pw.group))
    assert float(np.abs(pw.dequantized() - w).max()) < 1.0
