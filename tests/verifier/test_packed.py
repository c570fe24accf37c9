"""verify --weight-dtype (issue 17 part 5, the verifier's side): every checkpoint format of the
registry (GPTQ at 2, 3, 4 and 8 bits, AWQ, bitsandbytes NF4 with and without double
quantization, MXFP4, NVFP4, FP8 with block and row scales) stored as its checkpoints store it,
dequantized tile by tile inside the products, its bytes observed from the packed arrays, and the
output held to a float64 reference built from the stored arrays by a dequantizer of its own."""

from __future__ import annotations

import json
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

GROUPS: dict[str, int | None] = {f: (32 if f.startswith(("gptq", "awq")) else None) for f in packed.VERIFIED}
LAYERS: dict[str, dict[str, Any]] = {
    "dense": {"activation": "swiglu", "norm": "pre", "norm_type": "rms"},
    "moe": {"activation": "swiglu", "experts": 4, "top_k": 2},
}
# The scale tensor each format's test plants a one-element error in (the model's side).
SCALES = {f: "scales" for f in packed.VERIFIED if f.startswith(("gptq", "awq"))} | {
    "mxfp4": "_scales", "nf4": "weight.absmax", "nf4_dq": "weight.nested_absmax", "nvfp4": "weight_scale",
    "fp8_block": "weight_scale_inv", "fp8_row": "weight_scale",
}  # fmt: skip


def layer(fmt: str, kind: str, dtype: str = "float32", d: int = 64, f: int = 128) -> FFNConfig:
    return make_config(2, 8, d, f, weight_dtype=fmt, group_size=GROUPS[fmt], bias=False, dtype=dtype, **LAYERS[kind])


def failed(report: VerifyReport) -> list[str]:
    return [c.name for c in report.checks if not c.ok]


def pack(fmt: str, k: int = 64, n: int = 96) -> packed.PackedWeight:
    w = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32)
    cfg = layer(fmt, "dense")
    assert cfg.weight_packing is not None
    return packed.quantize(w, cfg.weight_packing)


def test_every_format_of_the_registry_is_run() -> None:
    assert set(packed.VERIFIED) == set(weight_formats.WEIGHT_FORMATS)
    assert set(SCALES) == set(packed.VERIFIED)


@pytest.mark.parametrize("fmt", packed.VERIFIED)
@pytest.mark.parametrize("kind", LAYERS)
def test_each_format_runs_and_its_stored_tensors_are_observed(fmt: str, kind: str) -> None:
    cfg = layer(fmt, kind)
    report = verify(cfg)
    assert report.ok, failed(report)
    stored = [c for c in report.checks if "(dtype, shape, .nbytes of the packed array)" in c.name]
    assert cfg.weight_packing is not None
    names = {t.name for t in cfg.weight_packing.tensors(64, 128)}
    assert {c.name.split(" ")[1] for c in stored} == names
    assert any("float64 reference" in c.name and c.kind == "tolerance" for c in report.checks)


@pytest.mark.parametrize("fmt", ["awq_int4", "nf4", "nf4_dq", "nvfp4", "fp8_row"])
def test_sixteen_bit_activations_with_packed_weights(fmt: str) -> None:
    report = verify(layer(fmt, "dense", "bfloat16" if fmt.startswith("nf4") else "float16"))
    assert report.ok, failed(report)


@pytest.mark.parametrize("fmt", packed.VERIFIED)
def test_the_two_dequantizers_agree(fmt: str) -> None:
    pw = pack(fmt)
    ours = pw.dequantized()
    theirs = reference.dequantize(fmt, pw.arrays, 64, 96, pw.group)
    assert np.allclose(ours, theirs, rtol=2**-22, atol=0)  # the tile rounds to float32 once
    w = np.random.default_rng(0).standard_normal((64, 96)).astype(np.float32)
    assert float(np.abs(ours - w).max()) < 1.0  # a quantization of w, not noise


def _gptq(bits: int, column: list[int]) -> dict[str, np.ndarray]:
    """GPTQ arrays of a (32, 32) matrix whose column 0 has the given int32 words, every zero point
    stored 0 (z = 1), every scale 1."""
    qweight = np.zeros((bits, 32), np.int32)
    qweight[:, 0] = np.array(column, np.uint32).view(np.int32)
    return {"qweight": qweight, "qzeros": np.zeros((1, bits), np.int32), "scales": np.ones((1, 32), np.float16), "g_idx": np.zeros(32, np.int32)}


# (format, arrays, K, N, group, {(k, n): value}): bit patterns decoded by hand.
HAND: list[tuple[str, dict[str, np.ndarray], int, int, int, dict[tuple[int, int], float]]] = [
    # 3 bits: value 10 = 0b101 straddles words 0 and 1 (bits 30, 31 and 32): word 0 = 1 << 30, word 1 = 1; w = 5 − 1
    ("gptq_int3", _gptq(3, [1 << 30, 1, 0]), 32, 32, 32, {(10, 0): 4.0, (9, 0): -1.0, (11, 0): -1.0, (10, 1): -1.0}),
    # 3 bits: value 21 = 0b110 at bit 63: bit 31 of word 1 is 0, word 2's bits 0, 1 are 0b11; w = 6 − 1
    ("gptq_int3", _gptq(3, [0, 0, 3]), 32, 32, 32, {(21, 0): 5.0, (22, 0): -1.0}),
    ("gptq_int2", _gptq(2, [0, 12]), 32, 32, 32, {(17, 0): 2.0, (16, 0): -1.0}),  # value 17 = 3 at bits 34, 35
    ("gptq_int8", _gptq(8, [0, 200 << 8, 0, 0, 0, 0, 0, 0]), 32, 32, 32, {(5, 0): 199.0, (4, 0): -1.0}),  # value 5 at bit 40
    # NF4: the first value in the high nibble: 0xF0 → codes 15 (+1) then 0 (−1), × absmax 2
    ("nf4", {"weight": np.array([[0xF0]], np.uint8), "weight.absmax": np.array([2.0], np.float32),
             "weight.quant_map": np.array(packed.NF4_CODE, np.float32)}, 2, 1, 64, {(0, 0): 2.0, (1, 0): -2.0}),
    # double quantization: absmax = map[255] (1.0) × nested 0.5 + offset 0.25 = 0.75; 0xF7 → codes 15 (+1), 7 (0)
    ("nf4_dq", {"weight": np.array([[0xF7]], np.uint8), "weight.absmax": np.array([255], np.uint8),
                "weight.quant_map": np.array(packed.NF4_CODE, np.float32), "weight.nested_absmax": np.array([0.5], np.float32),
                "weight.nested_quant_map": packed.dynamic_map(),
                packed.STATE: np.frombuffer(json.dumps({"nested_blocksize": 256, "nested_offset": 0.25}).encode(), np.uint8)},
     2, 1, 64, {(0, 0): 0.75, (1, 0): 0.0}),
    # E2M1, low nibble first: 0x2D → 0xD = −(2^1 · 1.5) = −3, then 0x2 = 1.0; E8M0 128 = 2
    ("mxfp4", {"_blocks": np.array([[[0x2D] + [0] * 15]], np.uint8), "_scales": np.array([[128]], np.uint8)}, 32, 1, 32,
     {(0, 0): -6.0, (1, 0): 2.0, (2, 0): 0.0}),
    # NVFP4: E4M3 0x40 = 2, × weight_scale_2 0.5: −3 and 1
    ("nvfp4", {"weight": np.array([[0x2D] + [0] * 7], np.uint8), "weight_scale": np.array([[0x40]], np.uint8),
               "weight_scale_2": np.array(0.5, np.float32), "input_scale": np.array(1.0, np.float32)}, 16, 1, 16, {(0, 0): -3.0, (1, 0): 1.0}),
    # E4M3 0x3C = 1.5, 0xC4 = −3 (sign, exponent 8, mantissa 4), 0x01 = 2^−9 (subnormal); block scale 2
    ("fp8_block", {"weight": np.array([[0x3C, 0xC4, 0x01]], np.uint8), "weight_scale_inv": np.array([[2.0]], np.float32)}, 3, 1, 128,
     {(0, 0): 3.0, (1, 0): -6.0, (2, 0): 2.0**-8}),
    ("fp8_row", {"weight": np.array([[0x30], [0x30]], np.uint8), "weight_scale": np.array([[4.0], [-1.0]], np.float32)}, 1, 2, 1,
     {(0, 0): 2.0, (0, 1): -0.5}),  # 0x30 = 0.5
]  # fmt: skip


@pytest.mark.parametrize("case", HAND, ids=[f"{c[0]}-{i}" for i, c in enumerate(HAND)])
def test_known_bit_patterns_decode_as_by_hand(case: Any) -> None:
    import ml_dtypes

    fmt, arrays, k, n, group, want = case
    arrays = dict(arrays)
    for name in {"nvfp4": ["weight_scale"], "fp8_block": ["weight"], "fp8_row": ["weight"]}.get(fmt, []):
        if arrays[name].dtype == np.uint8:
            arrays[name] = arrays[name].view(ml_dtypes.float8_e4m3fn)  # stored as E4M3, written here as bytes
    tile = packed.PackedWeight(fmt, (k, n), arrays, group).dequantized()
    ref = reference.dequantize(fmt, arrays, k, n, group)
    for (i, j), value in want.items():
        assert tile[i, j] == value, (i, j, tile[i, j])
        assert ref[i, j] == value, (i, j, ref[i, j])


@pytest.mark.parametrize("fmt", packed.VERIFIED)
def test_a_scale_tensor_one_element_short_in_the_model_is_caught(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = weight_formats.WEIGHT_FORMATS[fmt]
    real = spec.tensors

    def short(k: int, n: int, g: int, dtype: str) -> Any:
        return tuple(
            weight_formats.StoredTensor(t.name, t.dtype, (t.shape[0] - 1, *t.shape[1:]), t.holds) if t.name == SCALES[fmt] else t
            for t in real(k, n, g, dtype)
        )

    monkeypatch.setattr(spec, "tensors", short)
    cfg = make_config(
        2, 8, 96, 224, weight_dtype=fmt, group_size=GROUPS[fmt], bias=False, activation="swiglu"
    )  # sizes no other test analyzed (cached)
    bad = failed(verify(cfg))
    assert any(f"{SCALES[fmt]} (dtype, shape" in name for name in bad), bad
    assert any(name.endswith(" bytes") and name.startswith("W_") for name in bad), bad


@pytest.mark.parametrize("fmt", packed.VERIFIED)
def test_a_tile_dequantizer_swapping_two_values_fails_the_reference(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = packed.PackedWeight.rows

    def swapped(self: packed.PackedWeight, lo: int, hi: int, *tile: Any) -> np.ndarray:
        r = real(self, lo, hi, *tile)
        r[[0, 1]] = r[[1, 0]]  # the two values of a nibble pair (rows lo and lo + 1) read in the other order
        return r

    monkeypatch.setattr(packed.PackedWeight, "rows", swapped)
    assert any("float64 reference" in name for name in failed(verify(layer(fmt, "dense"))))


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

    def doubled(self: packed.PackedWeight, lo: int, hi: int, *tile: Any) -> np.ndarray:
        return real(self, lo, hi, *tile) * 2 if self.format == "mxfp4" else real(self, lo, hi, *tile)  # 2^(s − 126)

    monkeypatch.setattr(packed.PackedWeight, "rows", doubled)
    assert any("float64 reference" in n for n in failed(verify(layer("mxfp4", "dense"))))


def test_nf4_dq_quant_state_one_byte_long_in_the_model_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The quant state's nested_offset takes as many characters as json.dumps writes: its rows
    allow exactly that difference, named, and not one byte more."""
    report = verify(layer("nf4_dq", "moe"))
    assert report.ok, failed(report)
    assert [c for c in report.checks if packed.STATE in c.name]
    spec = weight_formats.WEIGHT_FORMATS["nf4_dq"]
    real = spec.tensors

    def longer(k: int, n: int, g: int, dtype: str) -> Any:
        return tuple(weight_formats.StoredTensor(t.name, t.dtype, (t.shape[0] + 1,), t.holds) if t.name == packed.STATE else t
                     for t in real(k, n, g, dtype))  # fmt: skip

    monkeypatch.setattr(spec, "tensors", longer)
    bad = failed(verify(make_config(2, 8, 96, 160, weight_dtype="nf4_dq", bias=False, activation="swiglu")))
    assert any(packed.STATE in name for name in bad), bad
    assert "weight bytes" in bad


def test_gptq_act_order_shuffled_g_idx_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """desc_act: the inputs grouped in a permuted order, g_idx[perm[i]] = i // G; the tile reads
    each input's group through g_idx, and a tile that assumed k // G would fail the reference."""
    real = packed.quantize
    rng = np.random.default_rng(1)
    monkeypatch.setattr(forward, "quantize", lambda w, p: real(w, p, rng.permutation(w.shape[-2])))
    cfg = layer("gptq_int4", "dense")
    assert verify(cfg).ok
    pw = real(np.ones((64, 32), np.float32), packing("gptq_int4", 32, "float32"), np.random.default_rng(2).permutation(64))
    assert np.bincount(pw.arrays["g_idx"]).tolist() == [32, 32] and not np.all(np.diff(pw.arrays["g_idx"]) >= 0)

    real_rows = packed.PackedWeight.rows

    def sequential(self: packed.PackedWeight, lo: int, hi: int, *tile: Any) -> np.ndarray:
        twin = packed.PackedWeight(
            self.format, self.shape, self.arrays | {"g_idx": (np.arange(self.shape[0]) // self.group).astype(np.int32)}, self.group
        )
        return real_rows(twin, lo, hi, *tile)

    monkeypatch.setattr(packed.PackedWeight, "rows", sequential)
    assert any("float64 reference" in n for n in failed(verify(cfg)))


def test_a_plain_weight_dtype_apart_from_dtype_is_refused_in_one_line() -> None:
    cfg = make_config(2, 8, 64, 128, activation="swiglu", bias=False, weight_dtype="float8_e4m3fn", dtype="bfloat16")
    with pytest.raises(VerifyRefused, match="verify stores --weight-dtype in a checkpoint format") as e:
        verify(cfg)
    assert "\n" not in str(e.value)


def test_packed_weights_with_backward_are_refused() -> None:
    with pytest.raises(VerifyRefused, match="forward pass only"):
        verify(layer("gptq_int4", "dense"), backward=True)


@pytest.mark.parametrize(("fmt", "value"), [("nvfp4", 64 // 2 + 64 // 16), ("fp8_block", 64 + 4), ("fp8_row", 64 + 4), ("nf4_dq", 19)])
def test_what_the_run_cannot_observe_is_a_definition(fmt: str, value: int) -> None:
    """W4A4/W8A8 formats: the input bytes of a product (the run multiplies in --dtype); nf4_dq:
    the characters the model counts for nested_offset."""
    report = verify(layer(fmt, "dense"))
    assert [d.value for d in report.definitions if d.name.startswith(f"{fmt}:")] == [value]


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


def wide(fmt: str) -> FFNConfig:
    """A layer whose tiles' temporaries, were they made per tile, would exceed the peak check's
    allowance (main before the packed scratch: gptq_int3 +29%, nf4 +42% over the predicted peak)."""
    group = 128 if fmt.startswith(("gptq", "awq")) else None
    return make_config(1, 64, 512, 1408, weight_dtype=fmt, group_size=group, activation="swiglu")


def peak_rows(report: VerifyReport) -> list[Any]:
    return [c for c in report.checks if "peak bytes (tracemalloc" in c.name]


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=[] if f == "gptq_int3" else [pytest.mark.slow]) for f in packed.VERIFIED])
def test_a_wide_layer_passes_the_peak_check_in_every_format(fmt: str) -> None:
    """The packed products run in the workspace's packed scratch (set aside by its .nbytes):
    what the pass holds beyond it is the model's tensors, within the strict allowance."""
    report = verify(wide(fmt))
    rows = peak_rows(report)
    assert rows and all(c.ok for c in rows), [(c.name, c.detail) for c in rows]
    assert report.ok, failed(report)


def test_an_unbounded_temporary_in_the_tile_fails_the_peak_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tile that makes the whole dequantized matrix (K × N float32) beside the scratch is
    caught by the peak check, which must not tolerate it."""
    real = packed.PackedWeight.rows

    def whole(self: packed.PackedWeight, lo: int, hi: int, *tile: Any) -> np.ndarray:
        full = np.zeros(self.shape, np.float32)
        j0, j1 = tile[0] if tile and tile[0] else (0, self.shape[1])
        full[lo:hi, j0:j1] = real(self, lo, hi, *tile)
        return full[lo:hi, j0:j1]

    monkeypatch.setattr(packed.PackedWeight, "rows", whole)
    rows = peak_rows(verify(wide("gptq_int3")))
    assert rows and not any(c.ok for c in rows), [(c.name, c.detail) for c in rows]


@pytest.mark.parametrize("fmt", packed.VERIFIED)
def test_the_plan_counts_the_packed_scratch_the_pass_makes(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """scratch_allowance holds exactly the packed scratch's bytes as the pass's workspace makes
    them (.nbytes), so a run it would not fit beside is refused before it allocates."""
    from ffn_calc.model.forward import analyze
    from ffn_calc.verifier import arrays, memory

    cfg = wide(fmt)
    pred = analyze(cfg)
    products = [s.matmul for s in pred.stages if s.matmul]
    made = arrays.Workspace(products, "float32", fmt)
    assert made.packed is not None and made.packed.nbytes > 0
    whole, floor = memory.required_bytes(pred), memory.required_bytes(pred, 1)
    monkeypatch.setattr(packed, "packed_scratch_bytes", lambda *_: 0)
    assert whole - memory.required_bytes(pred) == made.packed.nbytes
    assert floor > memory.required_bytes(pred, 1)  # one token's chunk has its own, smaller scratch
    monkeypatch.undo()
    with pytest.raises(VerifyRefused):
        memory.plan_chunks(pred, floor - 1)
    assert memory.plan_chunks(pred, whole) == (0, whole)


@pytest.mark.parametrize("fmt", packed.VERIFIED)
def test_a_product_split_into_row_and_column_tiles_is_the_whole_one(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With output tiles of at most 2,048 elements (PACKED_ELEMENTS lowered), a (100, 64)·(64, 96)
    product runs in 3 × 3 tiles of 45 × 32 (the last rows 10) in its scratch; each output is the same float32 sum of 64
    products as in one tile, so the result equals the whole matrix's product to float32's
    rounding of that sum (in float16 activations too: the accumulator and input tiles)."""
    pw = pack(fmt)
    dense = pw.dequantized().astype(np.float64)
    a = np.random.default_rng(3).standard_normal((100, 64)).astype(np.float32)
    monkeypatch.setattr(packed, "PACKED_ELEMENTS", 64 * 32)
    assert packed.packed_plan(100, 96) == (45, 32)
    for dtype in (np.float32, np.float16):
        x = a.astype(dtype)
        scratch = packed.PackedScratch([(100, 64, 96)], fmt, np.dtype(dtype).name, pw.bits)
        got = packed.packed_matmul(x, pw, None, scratch).astype(np.float64)
        exact = x.astype(np.float64) @ dense
        bound = 64 * 2.0**-23 * (np.abs(x).astype(np.float64) @ np.abs(dense)) + (np.abs(exact) * 2.0**-10 if dtype == np.float16 else 0)
        assert np.all(np.abs(got - exact) <= bound + 1e-30)
