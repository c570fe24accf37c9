"""Quantized weights as checkpoints store them, for real: `verify --weight-dtype` quantizes each
random weight matrix, packs it into the arrays its format writes (GPTQ's and AWQ's int32 words,
MXFP4's E2M1 nibble pairs and E8M0 scale bytes), and the products dequantize those arrays a tile
of K rows at a time inside the product (arrays.matmul). The bytes are then observed from the
packed arrays' `.nbytes`, tensor by tensor, against the model's `Packing.tensors(K, N)`; the
float64 reference runs on the dequantized weights.

Layouts, from the code that writes them (weight_formats.py names each source):
- GPTQ (AutoGPTQ v1 QuantLinear.pack): qweight (K/8, N) int32, value k = 8i + t in bits 4t..4t+3
  of row i; qzeros (G, N/8) int32, the zero point minus one (v1's offset), output n = 8j + t in
  bits 4t of column j; scales (G, N) float16; g_idx (K,) int32, each input's group.
  w = scale · (q − (z + 1)).
- AWQ (AutoAWQ WQLinear_GEMM): qweight (K, N/8) int32 and qzeros (G, N/8) int32, packed along N
  in the order 0 2 4 6 1 3 5 7 (nibble t holds column 8j + ORDER[t]); scales (G, N) float16.
  w = scale · (q − z).
- MXFP4 (gpt-oss): _blocks (N, K/32, 16) uint8, two E2M1 values a byte, the even one in the low
  nibble; _scales (N, K/32) uint8, an E8M0 exponent: w = e2m1 · 2^(s − 127). ml_dtypes'
  float4_e2m1fn and float8_e8m0fnu decode both.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ffn_calc.model.weight_formats import Packing

VERIFIED = ("gptq_int4", "awq_int4", "mxfp4")  # the formats verify runs; the rest are refused in one line
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
DEPTH = 32  # K rows dequantized per tile: a multiple of every format's packing along K


class PackedWeight:
    """One weight matrix (or a routed expert stack of them) stored as its format's arrays.
    `shape` is the logical (…, K, N), `arrays` the stored tensors by the format's names, each
    with a leading expert dimension when there is one; `nbytes` their sum, read off them."""

    def __init__(self, fmt: str, shape: tuple[int, ...], arrays: dict[str, np.ndarray], group: int) -> None:
        self.format, self.shape, self.arrays, self.group = fmt, shape, arrays, group
        self.ndim = len(shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.arrays.values())

    def __getitem__(self, index: Any) -> PackedWeight:
        """An expert (an int) or a run of experts (a slice), as its own PackedWeight."""
        arrays = {name: a[index] for name, a in self.arrays.items()}
        lead = np.empty(self.shape[:-2], bool)[index].shape
        return PackedWeight(self.format, (*lead, *self.shape[-2:]), arrays, self.group)

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Rows lo:hi of the (K, N) matrix, dequantized to float32 (lo, hi multiples of DEPTH, or hi = K)."""
        assert self.ndim == 2
        a = self.arrays
        if self.format == "gptq_int4":
            words = a["qweight"][lo // 8 : -(-hi // 8)]
            q = ((words[:, None, :] >> (4 * np.arange(8, dtype=np.int32))[None, :, None]) & 15).reshape(-1, words.shape[1])[: hi - lo]
            groups = a["g_idx"][lo:hi]
            zw = a["qzeros"][groups]
            z = ((zw[:, :, None] >> (4 * np.arange(8, dtype=np.int32))[None, None, :]) & 15).reshape(hi - lo, -1)
            return (a["scales"][groups].astype(np.float32) * (q - (z + 1)).astype(np.float32)).astype(np.float32)
        if self.format == "awq_int4":
            q = _awq_unpack(a["qweight"][lo:hi])
            groups = np.arange(lo, hi) // self.group
            z = _awq_unpack(a["qzeros"][groups])
            return a["scales"][groups].astype(np.float32) * (q - z).astype(np.float32)
        if self.format == "mxfp4":
            ml = importlib.import_module("ml_dtypes")
            blocks = a["_blocks"][:, lo // 32 : -(-hi // 32)]  # (N, b, 16)
            nib = np.stack([blocks & 15, blocks >> 4], axis=-1).reshape(blocks.shape[0], blocks.shape[1], 32)
            values = nib.astype(np.uint8).view(ml.float4_e2m1fn).astype(np.float32)  # one E2M1 code a byte
            scale = a["_scales"][:, lo // 32 : -(-hi // 32)].view(ml.float8_e8m0fnu).astype(np.float32)
            return np.ascontiguousarray((values * scale[:, :, None]).reshape(blocks.shape[0], -1)[:, : hi - lo].T)
        raise KeyError(self.format)

    def dequantized(self) -> np.ndarray:
        """The whole matrix (or stack) in float32, for the float64 reference."""
        if self.ndim == 3:
            return np.stack([self[e].dequantized() for e in range(self.shape[0])])
        k = self.shape[0]
        return np.concatenate([self.rows(lo, min(k, lo + DEPTH)) for lo in range(0, k, DEPTH)])


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


def quantize(w: np.ndarray, packing: Packing) -> PackedWeight:
    """A float32 (…, K, N) matrix quantized and packed as `packing` stores it (asymmetric 4-bit
    per group of G along K for GPTQ and AWQ; MXFP4's nearest E2M1 under a power-of-two scale)."""
    if w.ndim == 3:
        parts = [quantize(w[e], packing) for e in range(w.shape[0])]
        arrays = {name: np.stack([p.arrays[name] for p in parts]) for name in parts[0].arrays}
        return PackedWeight(packing.format, w.shape, arrays, parts[0].group)
    k, n = w.shape
    fmt = packing.format
    if fmt in ("gptq_int4", "awq_int4"):
        g = packing.group_size or k
        group = np.arange(k) // g  # GPTQ's g_idx: ceil(K/G) groups, the last one short when G does not divide K (AWQ's must)
        starts = np.arange(0, k, g)
        lo, hi = np.minimum.reduceat(w, starts, axis=0), np.maximum.reduceat(w, starts, axis=0)
        scale = np.maximum(hi - lo, 1e-8) / 15
        scale16 = scale.astype(np.float16)
        s = scale16.astype(np.float32)
        zero = np.clip(np.round(-lo / s), 1 if fmt == "gptq_int4" else 0, 15).astype(np.int32)  # GPTQ v1 stores zero − 1
        q = np.clip(np.round(w / s[group]) + zero[group], 0, 15).astype(np.int32)
        if fmt == "gptq_int4":
            arrays = {"qweight": _pack8(q, 0), "qzeros": _pack8(zero - 1 & 15, 1), "scales": scale16, "g_idx": group.astype(np.int32)}
        else:
            arrays = {"qweight": _pack8(q.reshape(k, -1, 8)[:, :, list(AWQ_ORDER)].reshape(k, n), 1),
                      "qzeros": _pack8(zero.reshape(k // g, -1, 8)[:, :, list(AWQ_ORDER)].reshape(k // g, n), 1), "scales": scale16}  # fmt: skip
        return PackedWeight(fmt, (k, n), arrays, g)
    if fmt == "mxfp4":
        ml = importlib.import_module("ml_dtypes")
        blocks = w.T.reshape(n, k // 32, 32)
        amax = np.abs(blocks).max(axis=2)
        exp = np.clip(np.ceil(np.log2(np.maximum(amax, 1e-30) / 6)), -127, 127)  # E2M1's largest is 6: the block fits
        scale = np.exp2(exp).astype(np.float32)
        codes = np.clip(blocks / scale[:, :, None], -6, 6).astype(ml.float4_e2m1fn).view(np.uint8) & 15
        pairs = (codes[:, :, 0::2] | (codes[:, :, 1::2] << 4)).astype(np.uint8)
        arrays = {"_blocks": pairs, "_scales": (exp + 127).astype(np.uint8)}
        return PackedWeight(fmt, (k, n), arrays, 32)
    raise KeyError(fmt)


def prepare(packing: Packing | None) -> None:
    """Import ml_dtypes and make its first E2M1 and E8M0 casts (which build tables that stay),
    before the pass's memory is traced, when the format needs them."""
    if packing is not None and packing.format == "mxfp4":
        w = np.linspace(-1, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
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
            checks.append(Check("memory", f"{t.name} {s.name} (dtype, shape, .nbytes of the packed array)", want, seen, want == seen))
    return checks


def _stored_dtype(arr: np.ndarray) -> str:
    return str(arr.dtype)
