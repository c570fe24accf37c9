"""The storage types a layer's weights and activations can have: one registry, each with its
size. Choices, help, byte counts and the GPU tables derive from it."""

from __future__ import annotations

from typing import NamedTuple


class DType(NamedTuple):
    """A storage type: `bytes` per element."""

    name: str
    bytes: int
    what: str


DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        DType("float64", 8, "IEEE double"),
        DType("float32", 4, "IEEE single"),
        DType("bfloat16", 2, "brain float: float32's exponent, 8 bits of mantissa"),
        DType("float16", 2, "IEEE half"),
        DType("float8_e4m3fn", 1, "8-bit float, 4 exponent and 3 mantissa bits, finite (no inf): FP8 for weights and activations"),
        DType("float8_e5m2", 1, "8-bit float, 5 exponent and 2 mantissa bits: FP8 with range, for gradients"),
        DType("int8", 1, "8-bit integer"),
    )
}
SIXTEEN_BIT = tuple(name for name, d in DTYPES.items() if d.bytes == 2)  # bfloat16, float16: mixed precision
