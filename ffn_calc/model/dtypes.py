"""The storage types a layer's weights and activations can have: one registry, each with its
size in bits. Choices, help, byte counts and the GPU tables derive from it.

Element types store every element in whole bytes (`bytes` = bits / 8) and serve weights and
activations alike. The weight formats (GPTQ, AWQ, bitsandbytes NF4, MXFP4, NVFP4, FP8 with block
or row scales) store weight matrices only, as their checkpoints do: each matrix is the tensors
its format lists (weight_formats.py), and its bytes are theirs. `float4_e2m1fn` is the type FP4
products compute in (Blackwell's FP4 tensor cores): it keys the GPUs' FP4 peaks, and an FP4
activation exists only as a W4A4 product's quantized input (`--weight-dtype nvfp4`), never as a
stored tensor between stages. Biases, norm weights and the router stay in the activation dtype."""

from __future__ import annotations

from typing import NamedTuple

from ffn_calc.model.weight_formats import WEIGHT_ALIASES, WEIGHT_FORMATS, Packing


class DType(NamedTuple):
    """A storage type: `bits` per element, a short `label` (the datasheets' name); a
    `weights_only` type stores weight matrices (a checkpoint format of weight_formats.py, or an
    earlier name for one: `alias_of`) and never activations; a `compute_only` type is what a
    product computes in and is never stored."""

    name: str
    bits: int
    what: str
    label: str
    weights_only: bool = False
    compute_only: bool = False
    alias_of: str | None = None

    @property
    def bytes(self) -> int:
        """Whole bytes per element (element types; a weight format's bytes are its tensors')."""
        return self.bits // 8


DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        DType("float64", 64, "IEEE double", "fp64"),
        DType("float32", 32, "IEEE single", "fp32"),
        DType("bfloat16", 16, "brain float: float32's exponent, 8 bits of mantissa", "bf16"),
        DType("float16", 16, "IEEE half", "fp16"),
        DType("float8_e4m3fn", 8, "8-bit float, 4 exponent and 3 mantissa bits, finite (no inf): FP8 for weights and activations", "fp8"),
        DType("float8_e5m2", 8, "8-bit float, 5 exponent and 2 mantissa bits: FP8 with range, for gradients", "fp8 e5m2"),
        DType("int8", 8, "8-bit integer", "int8"),
        DType("float4_e2m1fn", 4, "4-bit float E2M1 (FP4): what W4A4 products compute in; not a storage type", "fp4", compute_only=True),
        *(DType(f.name, f.bits, f.what, f.name, weights_only=True) for f in WEIGHT_FORMATS.values()),
        *(DType(alias, WEIGHT_FORMATS[name].bits, note, alias, weights_only=True, alias_of=name) for alias, (name, note) in WEIGHT_ALIASES.items()),
    )
}
SIXTEEN_BIT = tuple(name for name, d in DTYPES.items() if d.bits == 16 and not d.weights_only)  # bfloat16, float16: mixed precision
ACTIVATION_DTYPES = tuple(name for name, d in DTYPES.items() if not d.weights_only and not d.compute_only)  # what --dtype takes
COMPUTE_DTYPES = tuple(name for name, d in DTYPES.items() if not d.weights_only)  # what a product can compute in: a GPU's peaks
WEIGHTS_ONLY = tuple(name for name, d in DTYPES.items() if d.weights_only and d.alias_of is None)  # the checkpoint formats


def packing(name: str, group_size: int, dtype: str) -> Packing:
    """The Packing of weight type `name` with `group_size` (ignored by a format without groups),
    for activations in `dtype`."""
    fmt = WEIGHT_FORMATS.get(name)
    return Packing(name, DTYPES[name].bits, group_size if fmt is not None and fmt.group is not None else 0, dtype)
