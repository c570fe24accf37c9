"""Quantized weights as checkpoints store them, for real: `verify --weight-dtype` quantizes each
random weight matrix, packs it into the arrays its format writes, and the products dequantize
those arrays a tile of K rows at a time inside the product (arrays.matmul). The bytes are then
observed from the packed arrays' `.nbytes`, tensor by tensor, against the model's
`Packing.tensors(K, N)`; the float64 reference runs on weights dequantized from the same arrays
by reference.dequantize, which shares no code with the tile dequantizer here.

Layouts, from the code that writes them (weight_formats.py names each source):
- GPTQ, 2, 3, 4 or 8 bits (AutoGPTQ v1 QuantLinear.pack, auto_gptq/nn_modules/qlinear/
  qlinear_cuda_old.py): qweight (K·b/32, N) int32, the K values of each output a little-endian
  stream of b-bit fields, value k at bit b·k of the column's words (3 bits: 32 values in 3 words,
  values 10 and 21 across word boundaries, as pack's `intweight[i] << 30` and `>> 2 & 1` do);
  qzeros (G, N·b/32) int32, the zero point minus one (v1's offset) streamed the same way along N;
  scales (G, N) float16; g_idx (K,) int32, each input's group (sequential: desc_act false; with
  act_order, GPTQ's desc_act: g_idx[perm[i]] = i // G). w = scale · (q − (z + 1)).
- AWQ (AutoAWQ WQLinear_GEMM): qweight (K, N/8) int32 and qzeros (G, N/8) int32, packed along N
  in the order 0 2 4 6 1 3 5 7 (nibble t holds column 8j + ORDER[t]); scales (G, N) float16.
  w = scale · (q − z).
- MXFP4 (gpt-oss): _blocks (N, K/32, 16) uint8, two E2M1 values a byte, the even one in the low
  nibble; _scales (N, K/32) uint8, an E8M0 exponent: w = e2m1 · 2^(s − 127). ml_dtypes'
  float4_e2m1fn and float8_e8m0fnu decode both.
- bitsandbytes NF4 (bitsandbytes backends/default/ops.py quantize_4bit and dequantize_4bit;
  functional.py quantize_4bit with compress_statistics, create_dynamic_map, QuantState.as_dict
  (packed=True)): the torch weight (N, K) flattened, blocks of G values with a float32 absmax,
  each value the index of the nearest NF4 code to value/absmax, two a byte with the FIRST value in
  the HIGH nibble (`quantized[::2] << 4 | quantized[1::2]`), stored (ceil(K·N/2), 1) uint8.
  Double quantization: offset = absmax.mean(), absmax − offset quantized blockwise in blocks of
  256 to the nearest of the 256-value dynamic map (uint8 indices) with a float32 absmax each;
  absmax = map[q] · nested_absmax[i // 256] + offset, the offset stored only in the quant state's
  JSON (json.dumps, as pack_dict_to_tensor writes it) and read back from it.
- NVFP4 (ModelOpt's checkpoint, vLLM modelopt.py ModelOptNvFp4LinearMethod; the nibble packing of
  compressed-tensors nvfp4_quantized.py pack_fp4_to_uint8): weight (N, K/2) uint8, two E2M1 values
  a byte, the even one in the low nibble; weight_scale (N, K/16) float8_e4m3fn; weight_scale_2 ()
  float32 = amax / (6 · 448); w = e2m1 · e4m3 · weight_scale_2. input_scale () float32 is stored
  (its bytes observed) as 1: the products do not quantize their input (see below).
- FP8 with block scales (DeepSeek-V3 inference/kernel.py weight_dequant: y = x · s per block):
  weight (N, K) float8_e4m3fn, weight_scale_inv (ceil(N/B), ceil(K/B)) float32 = block amax / 448.
- FP8 with row scales (fbgemm quantize_fp8_per_row, as FbgemmFp8Linear stores it): weight (N, K)
  float8_e4m3fn, weight_scale (N, 1) float32 = row amax / 448.

NVFP4 and the FP8 formats also quantize each product's input on a GPU (W4A4, W8A8); here the
products take their input in --dtype and dequantize only the weights, so the roofline's input
bytes (`input_row_bytes`) are a definition, not observed.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ffn_calc.model.weight_formats import BNB_NESTED_BLOCK, BNB_OFFSET_CHARS, WEIGHT_FORMATS, Packing, bnb_quant_state_json

# Every format of the registry with stored tensors: verify runs them all.
VERIFIED = tuple(WEIGHT_FORMATS)
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
DEPTH = 32  # K rows dequantized per tile: a multiple of every format's packing along K
PACKED_ELEMENTS = 1 << 22  # the most float32 elements of a packed product's output tile (16 MiB, as arrays.NARROW_BLOCK_BYTES)
FP8_MAX = 448.0  # float8_e4m3fn's largest finite value
# bitsandbytes functional.py get_4bit_type("nf4"): the 16 NF4 codes, as float32.
NF4_CODE = (-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
            -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
            0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0)  # fmt: skip


def _ml() -> Any:
    return importlib.import_module("ml_dtypes")


def dynamic_map() -> np.ndarray:
    """bitsandbytes functional.py create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    for exponent i = 0..6, 2^i means of linspace(0.1, 1, 2^i + 1) scaled by 10^(i − 6), with their
    negatives, then 0 and 1, sorted: 256 float32 values (torch's linspace may differ in the last
    bit; the map is stored, and both dequantizers read the stored one)."""
    data: list[float] = []
    for i in range(7):
        bounds = np.linspace(0.1, 1, 2**i + 1, dtype=np.float32)
        means = (bounds[:-1] + bounds[1:]) / np.float32(2)
        data += (np.float32(10.0 ** (i - 6)) * means).tolist() + (-np.float32(10.0 ** (i - 6)) * means).tolist()
    return np.array(sorted([*data, 0.0, 1.0]), np.float32)


class PerExpert:
    """One stored tensor of a routed expert stack whose experts' tensors may differ in length (the
    quant state's JSON: its nested_offset's digits): a list of arrays, each expert's own, with
    the `shape` (E, L) when they agree (else (E, the lengths)), `dtype` and `nbytes` read off them."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = parts

    @property
    def dtype(self) -> np.dtype:
        return self.parts[0].dtype

    @property
    def shape(self) -> tuple[Any, ...]:
        shapes = {p.shape for p in self.parts}
        return (len(self.parts), *self.parts[0].shape) if len(shapes) == 1 else (len(self.parts), tuple(p.shape for p in self.parts))

    @property
    def nbytes(self) -> int:
        return sum(int(p.nbytes) for p in self.parts)

    def __getitem__(self, index: Any) -> Any:
        return self.parts[index] if isinstance(index, (int, np.integer)) else PerExpert(self.parts[index])


class PackedWeight:
    """One weight matrix (or a routed expert stack of them) stored as its format's arrays.
    `shape` is the logical (…, K, N), `arrays` the stored tensors by the format's names, each
    with a leading expert dimension when there is one; `nbytes` their sum, read off them."""

    def __init__(self, fmt: str, shape: tuple[int, ...], arrays: dict[str, Any], group: int) -> None:
        self.format, self.shape, self.arrays, self.group = fmt, shape, arrays, group
        self.ndim = len(shape)
        self.bits = int(fmt[len("gptq_int") :]) if fmt.startswith("gptq_int") else 4

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.arrays.values())

    @property
    def offset_excess(self) -> int:
        """Bytes the quant states' JSON takes beyond the model's count: each nested_offset as
        json.dumps wrote it, less the BNB_OFFSET_CHARS the model counts (0 for other formats)."""
        if self.format != "nf4_dq":
            return 0
        texts = [bytes(p).decode() for p in _parts(self.arrays[STATE])]
        return sum(len(_offset_text(t)) - BNB_OFFSET_CHARS for t in texts)

    def __getitem__(self, index: Any) -> PackedWeight:
        """An expert (an int) or a run of experts (a slice), as its own PackedWeight."""
        arrays = {name: a[index] for name, a in self.arrays.items()}
        lead = np.empty(self.shape[:-2], bool)[index].shape
        return PackedWeight(self.format, (*lead, *self.shape[-2:]), arrays, self.group)

    def rows(self, lo: int, hi: int, cols: tuple[int, int] | None = None, scratch: PackedScratch | None = None) -> np.ndarray:
        """Rows lo:hi, columns cols (all by default) of the (K, N) matrix, dequantized to float32
        (lo, hi multiples of DEPTH, or hi = K) in `scratch`'s buffers: every intermediate is
        written with out= into them, so a tile holds no array of its own (one made for this
        tile when None). The (hi − lo, c) result is a view into the scratch."""
        assert self.ndim == 2
        a, fmt = self.arrays, self.format
        k, n = self.shape
        j0, j1 = cols or (0, n)
        d, c = hi - lo, j1 - j0
        if scratch is None:
            scratch = PackedScratch([(1, k, n)], fmt, "float32", self.bits)
        buf = scratch.buffers
        out = buf["w"][: d * c].reshape(d, c)
        if fmt.startswith("gptq_int"):
            b = self.bits
            words = a["qweight"].view(np.uint32)[lo * b // 32 : -(-hi * b // 32), j0:j1]
            q = _take_fields(words, b, d, buf["q"], buf["u"], axis=0)  # (d, c)
            groups = a["g_idx"][lo:hi]
            zw = buf["zw"][: d * (c * b // 32)].reshape(d, c * b // 32)
            _gather(a["qzeros"].view(np.uint32), groups, (j0 * b // 32, j1 * b // 32), zw, scratch)
            z = _take_fields(zw, b, c, buf["z"], buf["u"], axis=1)  # (d, c)
            np.subtract(q, z, out=q)
            np.subtract(q, np.uint32(1), out=q)
            np.copyto(out, q.view(np.int32))  # q − (z + 1), exact in float32
            s = buf["s16"][: d * c].reshape(d, c)
            _gather(a["scales"], groups, (j0, j1), s, scratch)
            np.multiply(out, s, out=out)
            return out
        if fmt == "awq_int4":
            q = _awq_fields(a["qweight"].view(np.uint32)[lo:hi, j0 // 8 : j1 // 8], buf["q"])
            groups = buf["kb"][:d]
            np.floor_divide(scratch.arange[lo:hi], self.group, out=groups)
            zw = buf["zw"][: d * (c // 8)].reshape(d, c // 8)
            _gather(a["qzeros"].view(np.uint32), groups, (j0 // 8, j1 // 8), zw, scratch)
            z = _awq_fields(zw, buf["z"])
            np.subtract(q, z, out=q)
            np.copyto(out, q.view(np.int32))
            s = buf["s16"][: d * c].reshape(d, c)
            _gather(a["scales"], groups, (j0, j1), s, scratch)
            np.multiply(out, s, out=out)
            return out
        vals = buf["vals"][: c * d].reshape(c, d)  # the (N, K) layout these formats store
        idx = buf["idx"][: c * d].reshape(c, d)
        if fmt == "mxfp4":
            blocks = a["_blocks"][j0:j1, lo // 32]  # (c, 16): one block of 32 values along K
            nib = buf["b1"][: c * 32].reshape(c, 32)
            np.bitwise_and(blocks, np.uint8(15), out=nib[:, 0::2])
            np.right_shift(blocks, np.uint8(4), out=nib[:, 1::2])
            np.copyto(idx, nib[:, :d])
            np.take(_table("float4_e2m1fn"), idx, out=vals, mode="wrap")
            sidx, scale = buf["jk"][:c], buf["aux"][:c]
            np.copyto(sidx, a["_scales"][j0:j1, lo // 32])
            np.take(_table("float8_e8m0fnu"), sidx, out=scale, mode="wrap")
            np.multiply(vals, scale[:, None], out=vals)
            np.copyto(out, vals.T)
            return out
        if fmt in ("nf4", "nf4_dq"):
            flat, byte = buf["flat"][: c * d].reshape(c, d), buf["b1"][: c * d].reshape(c, d)
            jk = buf["jk"][:c]
            np.multiply(scratch.arange[j0:j1], k, out=jk)
            np.add(jk[:, None], scratch.arange[None, lo:hi], out=flat)  # (c, d) in the (N, K) weight
            np.right_shift(flat, 1, out=idx)
            np.take(a["weight"].reshape(-1), idx, out=byte, mode="wrap")
            np.bitwise_and(flat, 1, out=idx)
            np.left_shift(idx, 2, out=idx)
            np.bitwise_xor(idx, 4, out=idx)  # 4 for the even value (the high nibble), 0 for the odd
            np.right_shift(byte, idx, out=idx)
            np.bitwise_and(idx, 15, out=idx)
            np.take(a["weight.quant_map"], idx, out=vals, mode="wrap")
            absmax = buf["aux"][: c * d].reshape(c, d)
            np.floor_divide(flat, self.group, out=idx)  # each value's block
            if fmt == "nf4":
                np.take(a["weight.absmax"], idx, out=absmax, mode="wrap")
            else:
                offset = np.float32(float(_offset_text(bytes(a[STATE]).decode())))
                np.take(a["weight.absmax"], idx, out=byte, mode="wrap")
                np.floor_divide(idx, BNB_NESTED_BLOCK, out=idx)
                nested = out.reshape(c, d)  # the result's buffer, free until the last step
                np.take(a["weight.nested_absmax"], idx, out=nested, mode="wrap")
                np.copyto(idx, byte)
                np.take(a["weight.nested_quant_map"], idx, out=absmax, mode="wrap")
                np.multiply(absmax, nested, out=absmax)
                np.add(absmax, offset, out=absmax)
            np.multiply(vals, absmax, out=vals)
            np.copyto(out, vals.T)
            return out
        if fmt == "nvfp4":
            pairs = a["weight"][j0:j1, lo // 2 : -(-hi // 2)]  # (c, d/2)
            codes = buf["b1"][: c * 2 * pairs.shape[1]].reshape(c, -1)
            np.bitwise_and(pairs, np.uint8(15), out=codes[:, 0::2])
            np.right_shift(pairs, np.uint8(4), out=codes[:, 1::2])
            np.copyto(idx, codes[:, :d])
            np.take(_table("float4_e2m1fn"), idx, out=vals, mode="wrap")
            e = -(-d // 16)
            sidx, scale = buf["flat"][: c * e].reshape(c, e), buf["aux"][: c * e].reshape(c, e)
            np.copyto(sidx, a["weight_scale"][j0:j1, lo // 16 : lo // 16 + e].view(np.uint8))
            np.take(_table("float8_e4m3fn"), sidx, out=scale, mode="wrap")
            np.multiply(scale, a["weight_scale_2"], out=scale)
            v3 = vals.reshape(c, e, 16)  # K is a multiple of 16: so is every tile's depth
            np.multiply(v3, scale[:, :, None], out=v3)
            np.copyto(out, vals.T)
            return out
        if fmt in ("fp8_block", "fp8_row"):
            np.copyto(idx, a["weight"][j0:j1, lo:hi].view(np.uint8))
            np.take(_table("float8_e4m3fn"), idx, out=vals, mode="wrap")
            if fmt == "fp8_row":
                np.multiply(vals, a["weight_scale"][j0:j1], out=vals)
            else:
                s = a["weight_scale_inv"]
                jk, kb, scale = buf["jk"][:c], buf["kb"][:d], buf["aux"][: c * d].reshape(c, d)
                np.floor_divide(scratch.arange[j0:j1], self.group, out=jk)
                np.multiply(jk, s.shape[1], out=jk)
                np.floor_divide(scratch.arange[lo:hi], self.group, out=kb)
                np.add(jk[:, None], kb[None, :], out=idx)
                np.take(s.reshape(-1), idx, out=scale, mode="wrap")
                np.multiply(vals, scale, out=vals)
            np.copyto(out, vals.T)
            return out
        raise KeyError(fmt)

    def dequantized(self) -> np.ndarray:
        """The whole matrix (or stack) in float32, for the float64 reference."""
        if self.ndim == 3:
            return np.stack([self[e].dequantized() for e in range(self.shape[0])])
        k = self.shape[0]
        return np.concatenate([self.rows(lo, min(k, lo + DEPTH)) for lo in range(0, k, DEPTH)])


STATE = "weight.quant_state.bitsandbytes__nf4"


def _parts(a: Any) -> list[np.ndarray]:
    return a.parts if isinstance(a, PerExpert) else [a]


def _offset_text(state: str) -> str:
    """The nested_offset of a quant state's JSON, as written (the last field, as_dict's order)."""
    return state.rsplit('"nested_offset": ', 1)[1].rstrip("}")


def _stream(q: np.ndarray, b: int, axis: int) -> np.ndarray:
    """b-bit values along `axis` into int32 words, AutoGPTQ's pack: value i at bit b·i of the
    words' stream, a value split across two words when it straddles their boundary."""
    v = np.moveaxis(q.astype(np.uint32), axis, -1)
    v = v.reshape(*v.shape[:-1], -1, 32)
    words = np.zeros((*v.shape[:-1], b), np.uint32)
    for i in range(32):
        word, shift = divmod(b * i, 32)
        words[..., word] |= v[..., i] << np.uint32(shift)
        if shift + b > 32:
            words[..., word + 1] |= v[..., i] >> np.uint32(32 - shift)
    return np.moveaxis(words.reshape(*v.shape[:-2], -1).view(np.int32), -1, axis)


def _awq_unpack(words: np.ndarray) -> np.ndarray:
    """(r, N/8) int32 words → (r, N) 4-bit values, nibble t of word j being column 8j + AWQ_ORDER[t]."""
    nib = (words[:, :, None] >> (4 * np.arange(8, dtype=np.int32))[None, None, :]) & 15
    out = np.empty_like(nib)
    out[:, :, list(AWQ_ORDER)] = nib
    return out.reshape(words.shape[0], -1)


def _pack8(q: np.ndarray, axis: int) -> np.ndarray:
    """Eight 4-bit values along `axis` into one int32, value t at bits 4t."""
    q = np.moveaxis(q.astype(np.uint32), axis, -1)
    q = q.reshape(*q.shape[:-1], -1, 8)
    word = np.zeros(q.shape[:-1], np.uint32)
    for t in range(8):
        word |= q[..., t] << np.uint32(4 * t)
    return np.moveaxis(word.view(np.int32), -1, axis)


def _nearest(values: np.ndarray, code: np.ndarray) -> np.ndarray:
    """The index of the nearest code to each value (ties to the lower index, as torch.argmin)."""
    order = np.argsort(code, kind="stable")
    sorted_code = code[order]
    right = np.clip(np.searchsorted(sorted_code, values), 1, len(code) - 1)
    left = right - 1
    pick = np.where(np.abs(values - sorted_code[left]) <= np.abs(sorted_code[right] - values), left, right)
    return order[pick]


def _blockwise(flat: np.ndarray, block: int, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """bitsandbytes' blockwise quantization of a flat float32 array: a float32 absmax per block
    of `block` values (the last one cut short) and each value/absmax's nearest code."""
    pad = -len(flat) % block
    blocks = np.concatenate([flat, np.zeros(pad, np.float32)]).reshape(-1, block)
    absmax = np.abs(blocks).max(axis=1).astype(np.float32)
    scaled = np.clip(blocks * (np.float32(1) / np.where(absmax > 0, absmax, 1))[:, None], -1, 1).reshape(-1)[: len(flat)]
    return _nearest(scaled, code).astype(np.uint8), absmax


def quantize(w: np.ndarray, packing: Packing, act_order: np.ndarray | None = None) -> PackedWeight:
    """A float32 (…, K, N) matrix quantized and packed as `packing` stores it (asymmetric b-bit
    per group of G along K for GPTQ and AWQ; MXFP4's and NVFP4's nearest E2M1 under their block
    scales; bitsandbytes' nearest NF4 code of value/absmax; FP8's nearest E4M3 under an amax/448
    scale). `act_order`: GPTQ's desc_act, the order the inputs are grouped in (a permutation of K)."""
    if w.ndim == 3:
        parts = [quantize(w[e], packing, act_order) for e in range(w.shape[0])]
        arrays: dict[str, Any] = {}
        for name in parts[0].arrays:
            each = [p.arrays[name] for p in parts]
            arrays[name] = np.stack(each) if len({x.shape for x in each}) == 1 and name != STATE else PerExpert(each)
        return PackedWeight(packing.format, w.shape, arrays, parts[0].group)
    k, n = w.shape
    fmt = packing.format
    if fmt.startswith("gptq_int") or fmt == "awq_int4":
        b = int(fmt[-1]) if fmt.startswith("gptq_int") else 4
        top = (1 << b) - 1
        g = packing.group_size or k
        perm = np.arange(k) if act_order is None else act_order
        g_idx = np.empty(k, np.int32)
        g_idx[perm] = np.arange(k) // g  # desc_act: g_idx[perm[i]] = i // G
        starts = np.arange(0, k, g)  # the last group cut short when G does not divide K (GPTQ: ceil(K/G) groups)
        lo, hi = np.minimum.reduceat(w[perm], starts, axis=0), np.maximum.reduceat(w[perm], starts, axis=0)
        scale16 = ((hi - lo) / top).astype(np.float16)
        scale16[scale16 == 0] = 1  # a constant group (or one below float16's range): any scale stores it
        s = scale16.astype(np.float32)
        zero = np.clip(np.round(-lo / s), 1 if fmt != "awq_int4" else 0, top).astype(np.int32)  # GPTQ v1 stores zero − 1
        q = np.clip(np.round(w / s[g_idx]) + zero[g_idx], 0, top).astype(np.int32)
        if fmt != "awq_int4":
            arrays = {"qweight": _stream(q, b, 0), "qzeros": _stream(zero - 1, b, 1), "scales": scale16, "g_idx": g_idx}
        else:
            arrays = {"qweight": _pack8(q.reshape(k, -1, 8)[:, :, list(AWQ_ORDER)].reshape(k, n), 1),
                      "qzeros": _pack8(zero.reshape(k // g, -1, 8)[:, :, list(AWQ_ORDER)].reshape(k // g, n), 1), "scales": scale16}  # fmt: skip
        return PackedWeight(fmt, (k, n), arrays, g)
    if fmt == "mxfp4":
        ml = _ml()
        blocks = w.T.reshape(n, k // 32, 32)
        amax = np.abs(blocks).max(axis=2)
        exp = np.clip(np.ceil(np.log2(np.maximum(amax, 1e-30) / 6)), -127, 127)  # E2M1's largest is 6: the block fits
        scale = np.exp2(exp).astype(np.float32)
        codes = np.clip(blocks / scale[:, :, None], -6, 6).astype(ml.float4_e2m1fn).view(np.uint8) & 15
        pairs = (codes[:, :, 0::2] | (codes[:, :, 1::2] << 4)).astype(np.uint8)
        return PackedWeight(fmt, (k, n), {"_blocks": pairs, "_scales": (exp + 127).astype(np.uint8)}, 32)
    if fmt in ("nf4", "nf4_dq"):
        g = packing.group_size
        code = np.array(NF4_CODE, np.float32)
        flat = np.ascontiguousarray(w.T).reshape(-1)  # the torch weight (N, K), flattened
        q, absmax = _blockwise(flat, g, code)
        q = np.concatenate([q, np.zeros(len(q) % 2, np.uint8)])
        arrays = {"weight": ((q[0::2] << 4) | q[1::2]).astype(np.uint8)[:, None], "weight.absmax": absmax, "weight.quant_map": code}
        offset = None
        if fmt == "nf4_dq":
            offset = np.float32(absmax.mean())
            nested = dynamic_map()
            qa, absmax2 = _blockwise((absmax - offset).astype(np.float32), BNB_NESTED_BLOCK, nested)
            arrays |= {"weight.absmax": qa, "weight.nested_absmax": absmax2, "weight.nested_quant_map": nested}
        # QuantState.as_dict(packed=True): its non-tensor items in their order, json.dumps'd (pack_dict_to_tensor)
        items: dict[str, Any] = {"quant_type": "nf4", "blocksize": g, "dtype": packing.act_dtype, "shape": [n, k]}
        if offset is not None:
            items |= {"nested_blocksize": BNB_NESTED_BLOCK, "nested_dtype": "float32", "nested_offset": float(offset)}
        state = json.dumps(items)
        arrays[STATE] = np.frombuffer(state.encode(), np.uint8).copy()
        return PackedWeight(fmt, (k, n), arrays, g)
    if fmt == "nvfp4":
        ml = _ml()
        wt = w.T.reshape(n, k // 16, 16)
        global_scale = np.float32(max(float(np.abs(w).max()), 1e-30) / (6 * FP8_MAX))
        block = (np.abs(wt).max(axis=2) / (6 * global_scale)).astype(ml.float8_e4m3fn)
        total = block.astype(np.float32) * global_scale
        codes = np.clip(wt / np.where(total > 0, total, 1)[:, :, None], -6, 6).astype(ml.float4_e2m1fn).view(np.uint8) & 15
        codes = codes.reshape(n, k)
        arrays = {"weight": (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8), "weight_scale": block,
                  "weight_scale_2": np.array(global_scale, np.float32), "input_scale": np.array(1.0, np.float32)}  # fmt: skip
        return PackedWeight(fmt, (k, n), arrays, 16)
    if fmt in ("fp8_block", "fp8_row"):
        ml = _ml()
        wt = np.ascontiguousarray(w.T)
        if fmt == "fp8_row":
            g = k
            scale = np.maximum(np.abs(wt).max(axis=1, keepdims=True), 1e-30) / np.float32(FP8_MAX)
            full = scale
        else:
            g = packing.group_size
            rows, cols = np.arange(0, n, g), np.arange(0, k, g)
            amax = np.maximum.reduceat(np.maximum.reduceat(np.abs(wt), rows, axis=0), cols, axis=1)  # the edges' blocks cut short
            scale = np.maximum(amax, 1e-30) / np.float32(FP8_MAX)
            full = scale[np.arange(n) // g][:, np.arange(k) // g]
        scale = scale.astype(np.float32)
        stored = (wt / full).astype(ml.float8_e4m3fn)
        name = "weight_scale_inv" if fmt == "fp8_block" else "weight_scale"
        return PackedWeight(fmt, (k, n), {"weight": stored, name: scale}, g)
    raise KeyError(fmt)


def prepare(packing: Packing | None) -> None:
    """Import ml_dtypes and make each format's first casts (E2M1, E4M3 and E8M0 build tables that
    stay), before the pass's memory is traced."""
    if packing is not None and packing.format in WEIGHT_FORMATS:
        for name in ("float4_e2m1fn", "float8_e8m0fnu", "float8_e4m3fn"):
            _table(name)
        w = np.linspace(-1, 1, 256 * 256, dtype=np.float32).reshape(256, 256)
        quantize(w, packing).rows(0, 32)


def packed_plan(m: int, n: int) -> tuple[int, int]:
    """Rows and columns of a packed (m, k)·(k, n)'s output tile: each float32 buffer of the
    tile at most PACKED_ELEMENTS elements, columns a multiple of 32 when N is split (GPTQ's
    zeros stream 32 columns in b words)."""
    rows = max(1, min(m, math.isqrt(PACKED_ELEMENTS)))
    cols = min(n, PACKED_ELEMENTS // max(rows, DEPTH))
    return rows, n if cols >= n else max(32, cols // 32 * 32)


def _buffer_sizes(rows: int, cols: int, tile: int, fmt: str, narrow: bool) -> dict[str, tuple[Any, int]]:
    """The buffers (dtype, elements) a packed product's tile of at most `rows` rows, `cols`
    columns and `tile` outputs uses in
    `fmt` (see PackedWeight.rows), with the float32 copy of the input's tile and the output
    block's accumulator when the activations are not float32 (`narrow`)."""
    d, c = DEPTH, cols
    sizes: dict[str, tuple[Any, int]] = {"w": (np.float32, d * c), "part": (np.float32, tile)}
    if narrow:
        sizes |= {"lhs": (np.float32, rows * d), "acc": (np.float32, tile)}
    if fmt.startswith("gptq_int") or fmt == "awq_int4":
        words = c * int(fmt[-1]) // 32 if fmt.startswith("gptq_int") else c // 8
        sizes |= {"q": (np.uint32, d * c), "z": (np.uint32, d * c), "zw": (np.uint32, d * words), "s16": (np.float16, d * c),
                  "kb": (np.int64, d), "kr": (np.int64, d), "idx": (np.int64, d * c)}  # fmt: skip
        if fmt.startswith("gptq_int"):
            sizes["u"] = (np.uint32, max(c, d * -(-c // 32)))
        return sizes
    sizes |= {"vals": (np.float32, c * d), "idx": (np.int64, c * d)}
    if fmt == "mxfp4":
        sizes |= {"b1": (np.uint8, c * 32), "jk": (np.int64, c), "aux": (np.float32, c)}
    elif fmt in ("nf4", "nf4_dq"):
        sizes |= {"flat": (np.int64, c * d), "b1": (np.uint8, c * d), "jk": (np.int64, c), "aux": (np.float32, c * d)}
    elif fmt == "nvfp4":
        sizes |= {"b1": (np.uint8, c * d), "flat": (np.int64, c * d // 16), "aux": (np.float32, c * d // 16)}
    elif fmt == "fp8_block":
        sizes |= {"jk": (np.int64, c), "kb": (np.int64, d), "aux": (np.float32, c * d)}
    return sizes


def packed_scratch_bytes(products: Iterable[tuple[int, int, int]], fmt: str, dtype: str) -> int:
    """The bytes a PackedScratch for these products would hold, for planning the memory before
    anything is allocated (the peak check sets aside the scratch's own .nbytes, not this)."""
    return sum(np.dtype(t).itemsize * count for t, count in _scratch_sizes(list(products), fmt, dtype).values())


def _scratch_sizes(products: list[tuple[int, int, int]], fmt: str, dtype: str) -> dict[str, tuple[Any, int]]:
    if not products:
        return {}
    plans = [packed_plan(m, n) for m, _, n in products]
    rows, cols, tile = max(r for r, _ in plans), max(c for _, c in plans), max(r * c for r, c in plans)
    return _buffer_sizes(rows, cols, tile, fmt, dtype != "float32") | {"arange": (np.int64, max(max(k, n) for _, k, n in products))}


class PackedScratch:
    """The scratch of the packed products, made once before a pass as the narrow products'
    Workspace is (arrays.py): buffers for the largest output tile of `products` ((m, k, n)
    each) in `fmt`, into which every step of a tile's dequantization and product writes
    (out=), and the indices 0…max(K, N) the index arithmetic reads. `nbytes` is its arrays'."""

    def __init__(self, products: Iterable[tuple[int, int, int]], fmt: str, dtype: str, bits: int = 4) -> None:
        products = list(products)
        sizes = _scratch_sizes(products, fmt, dtype)
        self.format, self.narrow = fmt, dtype != "float32"
        self.buffers = {name: np.empty(count, t) for name, (t, count) in sizes.items()}
        self.arange = self.buffers.pop("arange", np.empty(0, np.int64))
        self.arange[...] = np.arange(self.arange.size) if self.arange.size else 0
        self.rows = max((packed_plan(m, n)[0] for m, _, n in products), default=0)
        self.cols = max((packed_plan(m, n)[1] for m, _, n in products), default=0)
        self.tile = self.buffers["part"].size if self.buffers else 0

    @property
    def nbytes(self) -> int:
        return int(self.arange.nbytes) + sum(int(b.nbytes) for b in self.buffers.values())

    def plan(self, m: int, k: int, n: int, fmt: str, narrow: bool) -> tuple[int, int] | None:
        """Rows and columns of the output tiles a (m, k)·(k, n) product in `fmt` runs in within
        this scratch (packed_plan's, made narrower or shorter to fit); None when it cannot."""
        if fmt != self.format or self.arange.size < max(k, n) or (narrow and not self.narrow) or not self.cols:
            return None
        rows, cols = packed_plan(m, n)
        if cols > self.cols:
            cols = self.cols if self.cols >= n else self.cols // 32 * 32
        rows = min(rows, self.rows, self.tile // max(1, cols))
        return (rows, cols) if rows and cols and (cols == n or cols % 32 == 0) else None


def packed_matmul(a: np.ndarray, b: PackedWeight, out: np.ndarray | None = None, scratch: PackedScratch | None = None) -> np.ndarray:
    """a·W with W packed, in output tiles of `scratch`'s size: DEPTH rows of a tile's columns of
    W dequantized to float32 at a time into the scratch, each partial product summed in float32
    over the whole depth, each output element stored in a's dtype once. A scratch that cannot
    hold this product (or none) is replaced by one made for it, which the peak then shows."""
    m, k = a.shape
    n = b.shape[1]
    if out is None:
        out = np.empty((m, n), a.dtype)
    narrow, direct = a.dtype != np.float32, out.dtype == np.float32
    plan = None if scratch is None else scratch.plan(m, k, n, b.format, narrow or not direct)
    if scratch is None or plan is None:
        scratch = PackedScratch([(m, k, n)], b.format, "float32" if not narrow and direct else "narrow", b.bits)
        plan = packed_plan(m, n)
    buf, (rows, cols) = scratch.buffers, plan
    for i in range(0, m, rows):
        i_end = min(m, i + rows)
        for j in range(0, n, cols):
            j_end = min(n, j + cols)
            r, c = i_end - i, j_end - j
            part = buf["part"][: r * c].reshape(r, c)
            acc = out[i:i_end, j:j_end] if direct else buf["acc"][: r * c].reshape(r, c)
            for lo in range(0, k, DEPTH):
                hi = min(k, lo + DEPTH)
                lhs = a[i:i_end, lo:hi]
                if narrow:
                    lhs = buf["lhs"][: r * (hi - lo)].reshape(r, hi - lo)
                    np.copyto(lhs, a[i:i_end, lo:hi])
                np.matmul(lhs, b.rows(lo, hi, (j, j_end), scratch), out=part)
                if lo:
                    np.add(acc, part, out=acc)
                else:
                    np.copyto(acc, part)
            if not direct:
                np.copyto(out[i:i_end, j:j_end], acc)  # the one rounding to the storage dtype
    return out


def _gather(src: np.ndarray, rows: np.ndarray, cols: tuple[int, int], out: np.ndarray, scratch: PackedScratch) -> None:
    """out[r] = src[rows[r], cols[0]:cols[1]], through flat indices in the scratch (np.take with
    an axis copies a non-contiguous source; its mode="wrap" writes into out unbuffered)."""
    d, c = out.shape
    kr, idx = scratch.buffers["kr"][:d], scratch.buffers["idx"][: d * c].reshape(d, c)
    np.multiply(rows, src.shape[1], out=kr)
    np.add(kr[:, None], scratch.arange[None, cols[0] : cols[1]], out=idx)
    np.take(src.reshape(-1), idx, out=out, mode="wrap")


def _take_fields(words: np.ndarray, b: int, count: int, qbuf: np.ndarray, ubuf: np.ndarray, axis: int) -> np.ndarray:
    """The b-bit fields of uint32 words (AutoGPTQ's stream, field i at bit b·i, 32 fields per b
    words) along `axis`, into qbuf as a uint32 array: (count, cols) along 0, (rows, count) along 1."""
    mask = np.uint32((1 << b) - 1)
    if axis == 0:
        c = words.shape[1]
        q, u = qbuf[: count * c].reshape(count, c), ubuf[:c]
        for i in range(count):
            word, shift = divmod(b * i, 32)
            np.right_shift(words[word], np.uint32(shift), out=q[i])
            if shift + b > 32:  # the field's high bits open the next word
                np.left_shift(words[word + 1], np.uint32(32 - shift), out=u)
                np.bitwise_or(q[i], u, out=q[i])
    else:
        d = words.shape[0]
        q = qbuf[: d * count].reshape(d, count)
        w3, q3 = words.reshape(d, -1, b), q.reshape(d, -1, 32)
        u = ubuf[: d * w3.shape[1]].reshape(d, w3.shape[1])
        for i in range(32):
            word, shift = divmod(b * i, 32)
            np.right_shift(w3[:, :, word], np.uint32(shift), out=q3[:, :, i])
            if shift + b > 32:
                np.left_shift(w3[:, :, word + 1], np.uint32(32 - shift), out=u)
                np.bitwise_or(q3[:, :, i], u, out=q3[:, :, i])
    np.bitwise_and(q, mask, out=q)
    return q


def _awq_fields(words: np.ndarray, qbuf: np.ndarray) -> np.ndarray:
    """(r, N/8) uint32 words → (r, N) 4-bit values in qbuf, nibble t of word j being column 8j + AWQ_ORDER[t]."""
    r, w = words.shape
    q = qbuf[: r * w * 8].reshape(r, w * 8)
    q3 = q.reshape(r, w, 8)
    for t, col in enumerate(AWQ_ORDER):
        np.right_shift(words, np.uint32(4 * t), out=q3[:, :, col])
    np.bitwise_and(q, np.uint32(15), out=q)
    return q


_TABLES: dict[str, np.ndarray] = {}


def _table(name: str) -> np.ndarray:
    """Every code of an ml_dtypes type of at most 8 bits as float32, by its bits (ml_dtypes' own
    conversion), made once (prepare makes them before the pass is traced)."""
    if name not in _TABLES:
        bits = 4 if name.startswith("float4") else 8
        _TABLES[name] = np.arange(1 << bits, dtype=np.uint8).view(getattr(_ml(), name)).astype(np.float32)
    return _TABLES[name]


def stored_checks(pred: Any, params: dict[str, Any]) -> list[Any]:
    """Each packed weight's stored tensors against the model's (Packing.tensors): names, dtypes,
    shapes and bytes, every one read off the packed arrays."""
    from ffn_calc.verifier.report import Check

    checks = []
    for t in pred.weights:
        w = params.get(t.name)
        if t.packing is None or not isinstance(w, PackedWeight):
            continue
        *lead, k, n = t.shape
        for s in t.packing.tensors(k, n):
            arr = w.arrays.get(s.name)
            want = (s.dtype, (*lead, *s.shape), int(np.prod(lead, dtype=np.int64)) * s.bytes)
            seen = None if arr is None else (_stored_dtype(arr), tuple(arr.shape), int(arr.nbytes))
            name = f"{t.name} {s.name} (dtype, shape, .nbytes of the packed array)"
            if s.name == STATE and arr is not None:
                checks.append(_state_check(name, t.packing, k, n, want, seen, _parts(arr), w.offset_excess))
            else:
                checks.append(Check("memory", name, want, seen, want == seen))
    return checks


def _state_check(name: str, packing: Packing, k: int, n: int, want: Any, seen: Any, parts: list[np.ndarray], excess: int) -> Any:
    """The quant state's JSON, whose text is compared too (a field in the wrong order or a shape
    written (K, N) would keep its length): it must be the model's (bnb_quant_state_json) but for
    nf4_dq's nested_offset (absmax.mean(), json.dumps of a float32), which takes as many
    characters as its digits; the bytes must be the model's plus the characters each offset
    takes beyond the model's BNB_OFFSET_CHARS (a count the model cannot know before the weights
    exist)."""
    from ffn_calc.verifier.report import Check

    double = packing.format == "nf4_dq"
    model = bnb_quant_state_json("nf4", packing.group_size, packing.act_dtype, k, n, double)
    texts = [bytes(p).decode() for p in parts]
    if double:
        head = model[: model.rindex(": ") + 2]
        same = all(t.startswith(head) and t.endswith("}") and t.count(": ") == model.count(": ") for t in texts)
    else:
        same = all(t == model for t in texts)
    ok = same and want[0] == seen[0] and seen[2] - want[2] == excess
    text = "" if same else f"; the JSON differs from the model's: {texts[0]!r} against {model!r}"
    if not excess:
        return Check("memory", name, want, seen, ok, detail=f"its text compared with the model's{text}")
    offsets = sorted({_offset_text(t) for t in texts})
    detail = (f"nested_offset written as {', '.join(offsets[:3])}{' …' if len(offsets) > 3 else ''} by json.dumps: "
              f"{excess:+,} bytes against the {BNB_OFFSET_CHARS} characters the model counts for each; "
              f"the rest of the text is the model's{text}")  # fmt: skip
    return Check("memory", name, want, seen, ok, "tolerance", detail)


def _stored_dtype(arr: np.ndarray) -> str:
    return str(arr.dtype)
