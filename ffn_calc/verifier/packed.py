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
from typing import Any

import numpy as np

from ffn_calc.model.weight_formats import BNB_NESTED_BLOCK, BNB_OFFSET_CHARS, WEIGHT_FORMATS, Packing, bnb_quant_state_json

# Every format of the registry with stored tensors: verify runs them all.
VERIFIED = tuple(WEIGHT_FORMATS)
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
DEPTH = 32  # K rows dequantized per tile: a multiple of every format's packing along K
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

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Rows lo:hi of the (K, N) matrix, dequantized to float32 (lo, hi multiples of DEPTH, or hi = K)."""
        assert self.ndim == 2
        a, fmt = self.arrays, self.format
        k, n = self.shape
        if fmt.startswith("gptq_int"):
            b = self.bits
            q = _unstream(a["qweight"][lo * b // 32 : -(-hi * b // 32)], b, axis=0)[: hi - lo]
            groups = a["g_idx"][lo:hi]
            z = _unstream(a["qzeros"][groups], b, axis=1)
            return (a["scales"][groups].astype(np.float32) * (q - (z + 1)).astype(np.float32)).astype(np.float32)
        if fmt == "awq_int4":
            q = _awq_unpack(a["qweight"][lo:hi])
            groups = np.arange(lo, hi) // self.group
            z = _awq_unpack(a["qzeros"][groups])
            return a["scales"][groups].astype(np.float32) * (q - z).astype(np.float32)
        if fmt == "mxfp4":
            ml = _ml()
            blocks = a["_blocks"][:, lo // 32 : -(-hi // 32)]  # (N, b, 16)
            nib = np.stack([blocks & 15, blocks >> 4], axis=-1).reshape(blocks.shape[0], blocks.shape[1], 32)
            values = nib.astype(np.uint8).view(ml.float4_e2m1fn).astype(np.float32)  # one E2M1 code a byte
            scale = a["_scales"][:, lo // 32 : -(-hi // 32)].view(ml.float8_e8m0fnu).astype(np.float32)
            return np.ascontiguousarray((values * scale[:, :, None]).reshape(blocks.shape[0], -1)[:, : hi - lo].T)
        if fmt in ("nf4", "nf4_dq"):
            flat = np.arange(n, dtype=np.int64)[:, None] * k + np.arange(lo, hi, dtype=np.int64)[None, :]  # (N, t) in the (N, K) weight
            byte = a["weight"][flat >> 1, 0]
            codes = np.where(flat & 1, byte & 15, byte >> 4)  # the even value in the high nibble
            block = flat // self.group
            if fmt == "nf4":
                absmax = a["weight.absmax"][block]
            else:
                offset = np.float32(float(_offset_text(bytes(a[STATE]).decode())))
                absmax = a["weight.nested_quant_map"][a["weight.absmax"][block]] * a["weight.nested_absmax"][block // BNB_NESTED_BLOCK] + offset
            return np.ascontiguousarray((a["weight.quant_map"][codes] * absmax).T)
        if fmt == "nvfp4":
            ml = _ml()
            pairs = a["weight"][:, lo // 2 : -(-hi // 2)]  # (N, t/2)
            codes = np.stack([pairs & 15, pairs >> 4], axis=-1).reshape(n, -1)[:, : hi - lo]
            values = codes.view(ml.float4_e2m1fn).astype(np.float32)
            scale = a["weight_scale"][:, np.arange(lo, hi) // 16].astype(np.float32) * a["weight_scale_2"]
            return np.ascontiguousarray((values * scale).T)
        if fmt == "fp8_block":
            s = a["weight_scale_inv"][np.arange(n) // self.group][:, np.arange(lo, hi) // self.group]
            return np.ascontiguousarray((a["weight"][:, lo:hi].astype(np.float32) * s).T)
        if fmt == "fp8_row":
            return np.ascontiguousarray((a["weight"][:, lo:hi].astype(np.float32) * a["weight_scale"]).T)
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


def _unstream(words: np.ndarray, b: int, axis: int) -> np.ndarray:
    """int32 words → the b-bit fields they hold along `axis`, field i at bit b·i of the words'
    little-endian stream (32 fields per b words): AutoGPTQ's pack, 3 bits across word boundaries."""
    w = np.moveaxis(words, axis, -1).view(np.uint32)
    w = w.reshape(*w.shape[:-1], -1, b)  # runs of b words: 32 fields each
    out = np.zeros((*w.shape[:-1], 32), np.uint32)
    mask = np.uint32((1 << b) - 1)
    for i in range(32):
        word, shift = divmod(b * i, 32)
        field = w[..., word] >> np.uint32(shift)
        if shift + b > 32:  # the field's high bits open the next word
            field = field | (w[..., word + 1] << np.uint32(32 - shift))
        out[..., i] = field & mask
    return np.moveaxis(out.reshape(*w.shape[:-2], -1).astype(np.int32), -1, axis)


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
        w = np.linspace(-1, 1, 256 * 256, dtype=np.float32).reshape(256, 256)
        quantize(w, packing).rows(0, 32)


def packed_matmul(a: np.ndarray, b: PackedWeight, out: np.ndarray | None = None) -> np.ndarray:
    """a·W with W packed: DEPTH rows of W dequantized to float32 at a time, the partial products
    summed in float32 over the whole depth, each output element stored in a's dtype once."""
    m, k = a.shape
    n = b.shape[1]
    if out is None:
        out = np.empty((m, n), a.dtype)
    acc = out if out.dtype == np.float32 else np.zeros((m, n), np.float32)
    if acc is out:
        acc[...] = 0
    for lo in range(0, k, DEPTH):
        hi = min(k, lo + DEPTH)
        acc += a[:, lo:hi].astype(np.float32) @ b.rows(lo, hi)
    if acc is not out:
        out[...] = acc
    return out


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
