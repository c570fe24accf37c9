"""The storage types a layer's weights and activations can have: one registry, each with its
size in bits. Choices, help, byte counts and the GPU tables derive from it.

Most types store every element in whole bytes (`bytes` = bits / 8) and serve weights and
activations alike. The 4-bit types are weight-only (GPTQ, AWQ, bitsandbytes NF4 style serving):
a matrix (K, N) stores its entries packed two to a byte along K, ceil(K·bits/8)·N bytes (exactly
K·N/2 when K is even), plus per group of `group_size` consecutive entries along K (the input
dimension), for each output column, a 16-bit scale and, for the asymmetric scheme, a 16-bit
zero point: ceil(K/group_size)·N·(scale_bytes + zero_bytes) bytes. Each routed expert's matrix is
its own such array. Biases and norm weights stay in the activation dtype; the products compute
in the activation dtype (the weights are dequantized on the fly)."""

from __future__ import annotations

from math import ceil, prod
from typing import NamedTuple

DEFAULT_GROUP_SIZE = 128


class DType(NamedTuple):
    """A storage type: `bits` per element; `weights_only` for a type that stores weight matrices
    (packed, with `scale_bytes` and `zero_bytes` per group of `group_size` entries along K) and
    never activations."""

    name: str
    bits: int
    what: str
    weights_only: bool = False
    scale_bytes: int = 0
    zero_bytes: int = 0

    @property
    def bytes(self) -> int:
        """Whole bytes per element (activation types; a 4-bit type has 0: see Packing)."""
        return self.bits // 8

    @property
    def grouped(self) -> bool:
        return self.scale_bytes + self.zero_bytes > 0


DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        DType("float64", 64, "IEEE double"),
        DType("float32", 32, "IEEE single"),
        DType("bfloat16", 16, "brain float: float32's exponent, 8 bits of mantissa"),
        DType("float16", 16, "IEEE half"),
        DType("float8_e4m3fn", 8, "8-bit float, 4 exponent and 3 mantissa bits, finite (no inf): FP8 for weights and activations"),
        DType("float8_e5m2", 8, "8-bit float, 5 exponent and 2 mantissa bits: FP8 with range, for gradients"),
        DType("int8", 8, "8-bit integer"),
        DType("int4", 4, "4-bit integer weights, symmetric (GPTQ sym): 0.5 byte per weight + a 16-bit scale per group", True, 2, 0),
        DType("int4_asym", 4, "4-bit integer weights, asymmetric (AWQ, GPTQ): 0.5 byte per weight + a 16-bit scale and zero per group", True, 2, 2),
    )
}
SIXTEEN_BIT = tuple(name for name, d in DTYPES.items() if d.bits == 16)  # bfloat16, float16: mixed precision
ACTIVATION_DTYPES = tuple(name for name, d in DTYPES.items() if not d.weights_only)  # what --dtype takes
WEIGHTS_ONLY = tuple(name for name, d in DTYPES.items() if d.weights_only)


class Packing(NamedTuple):
    """How a weight matrix is stored when its type is not the activation dtype: `bits` per entry
    packed along K, and `group_bytes` (scale + zero) per group of `group_size` entries along K."""

    dtype: str
    bits: int
    group_size: int
    group_bytes: int

    def bytes(self, shape: tuple[int, ...]) -> int:
        """Bytes of a (…, K, N) matrix (the leading dimension: experts, each its own array):
        lead·ceil(K·bits/8)·N packed entries + lead·ceil(K/group_size)·N·group_bytes."""
        *lead, k, n = shape
        count = prod(lead)
        packed = ceil(k * self.bits / 8) * n
        groups = ceil(k / self.group_size) * n if self.group_bytes else 0
        return count * (packed + groups * self.group_bytes)


def packing(name: str, group_size: int) -> Packing:
    """The Packing of weight type `name` (group_size ignored by a type without group scales)."""
    d = DTYPES[name]
    return Packing(name, d.bits, group_size if d.grouped else 0, d.scale_bytes + d.zero_bytes)
