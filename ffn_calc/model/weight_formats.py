"""How checkpoints store a quantized weight matrix: one registry entry per format, each the list
of tensors its checkpoint writes for one (K, N) matrix (K inputs, N outputs) with their dtypes and
shapes, read from the code that writes them (each entry's `source`). A matrix's bytes are the sum
of those tensors' bytes, and nothing else: no format is a bits-per-weight average.

Shapes are the checkpoint's own (a torch Linear's weight is (N, K); GPTQ and AWQ keep K first).
A routed expert's matrix is its own set of tensors, as Mixtral's and DeepSeek's checkpoints store
`experts.N.w1` apart; gpt-oss fuses its experts into one (E, …) tensor per projection, the same
bytes (MXFP4 has no per-tensor scalar). Biases, norms and the router are never in these formats:
they stay in the activation dtype.

Products: a weight-only format (GPTQ, AWQ, NF4, MXFP4) is dequantized on the fly and its products
compute in --dtype; a format that also quantizes the product's input (`computes_in`: FP8 with
block or row scales, as DeepSeek-V3 and fbgemm run them, W8A8; ModelOpt's NVFP4, W4A4) computes
in that dtype, and the product reads its input as `input_row_bytes` per row of K values.

Standard library only."""

from __future__ import annotations

from collections.abc import Callable
from math import ceil, prod

from ffn_calc.errors import ConfigError

# The records below are plain slotted classes, built once and never changed: a typing.NamedTuple
# class costs about 0.1 to 0.3 ms to declare, and this module is on every command's start-up path.

# The element types of a checkpoint's tensors (safetensors' dtypes), in bytes.
STORED_DTYPE_BYTES = {
    "int32": 4,
    "uint8": 1,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "int8": 1,
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
}


class StoredTensor:
    """One tensor of a checkpoint: `name` as it follows the module's path (`qweight`,
    `weight.absmax`, …), `dtype` as stored (STORED_DTYPE_BYTES), `shape` in elements, and what
    its elements hold."""

    __slots__ = ("name", "dtype", "shape", "holds")

    def __init__(self, name: str, dtype: str, shape: tuple[int, ...], holds: str) -> None:
        self.name, self.dtype, self.shape, self.holds = name, dtype, shape, holds

    def __repr__(self) -> str:
        return f"StoredTensor({self.describe()})"

    @property
    def bytes(self) -> int:
        return prod(self.shape) * STORED_DTYPE_BYTES[self.dtype]

    def describe(self) -> str:
        """`qweight int32 (512, 11008)`: the name, dtype and shape, as the checkpoint has it."""
        return f"{self.name} {self.dtype} ({', '.join(map(str, self.shape))}{',' if len(self.shape) == 1 else ''})"


class GroupRule:
    """What --group-size means for a format: `what` it counts, its `default`, the values the
    format's code accepts (`allowed`, empty: any from 1), and whether 0 (one group over all of
    K: GPTQ's and AWQ's group_size -1) is one of them."""

    __slots__ = ("what", "default", "allowed", "per_channel")

    def __init__(self, what: str, default: int, allowed: tuple[int, ...] = (), per_channel: bool = False) -> None:
        self.what, self.default, self.allowed, self.per_channel = what, default, allowed, per_channel


class WeightFormat:
    """A checkpoint format for weight matrices: its `tensors(K, N, group, dtype)` for one
    (K, N) matrix (`dtype`: the activation dtype, which bitsandbytes records), the reason it
    refuses a shape (`check`, None when the packing is clean), its `group` rule (None: no
    --group-size), and for a format that quantizes the product's input too, the dtype the product
    computes in and the bytes of one row of K inputs as the product reads them.

    `bits` per weight value; `what`, one line for --help; `layout`, the byte formula per matrix;
    `source`, the code its tensors were read from."""

    __slots__ = ("name", "bits", "what", "layout", "source", "tensors", "check", "group", "computes_in", "input_row_bytes", "input_layout")

    def __init__(
        self,
        name: str,
        bits: int,
        what: str,
        layout: str,
        source: str,
        tensors: Callable[[int, int, int, str], tuple[StoredTensor, ...]],
        check: Callable[[int, int, int, str], str | None],
        group: GroupRule | None = None,
        computes_in: str | None = None,
        input_row_bytes: Callable[[int, int], int] | None = None,
        input_layout: str = "",
    ) -> None:
        self.name, self.bits, self.what, self.layout, self.source = name, bits, what, layout, source
        self.tensors, self.check, self.group = tensors, check, group
        self.computes_in, self.input_row_bytes, self.input_layout = computes_in, input_row_bytes, input_layout

    def __repr__(self) -> str:
        return f"WeightFormat({self.name!r})"


def _clean(k: int, n: int, *rules: tuple[str, int, int]) -> str | None:
    """The first of `rules` (dimension's name, its size, the multiple it must be) that fails."""
    for name, size, multiple in rules:
        if size % multiple:
            return f"{name} = {size} is not a multiple of {multiple}"
    return None


# --- GPTQ (AutoGPTQ v1 QuantLinear: qlinear_cuda_old/cuda/triton/exllama, the layout transformers loads) ---


def _gptq(bits: int) -> WeightFormat:
    def tensors(k: int, n: int, g: int, dtype: str) -> tuple[StoredTensor, ...]:
        groups = ceil(k / (g or k))  # group_size -1 is K: one group
        per_int = "32 per 3 int32s" if bits == 3 else f"{32 // bits} per int32"
        return (
            StoredTensor("qweight", "int32", (k * bits // 32, n), f"{bits}-bit weights, {per_int} along K"),
            StoredTensor("qzeros", "int32", (groups, n * bits // 32), f"{bits}-bit zero points, {per_int} along N; stored when symmetric too"),
            StoredTensor("scales", "float16", (groups, n), "one scale per group of G along K, per output"),
            StoredTensor("g_idx", "int32", (k,), "each input's group (act-order / desc_act permutes it); always stored"),
        )

    def check(k: int, n: int, g: int, dtype: str) -> str | None:
        return _clean(k, n, ("K", k, 32), ("N", n, 32))  # AutoGPTQ's triton and exllama kernels assert both

    return WeightFormat(
        f"gptq_int{bits}", bits,
        f"GPTQ {bits}-bit (AutoGPTQ v1): int32-packed weights and zeros, a float16 scale per group of G along K, g_idx",
        f"K·N·{bits}/8 + ceil(K/G)·N·{bits}/8 + 2·ceil(K/G)·N + 4·K",
        "AutoGPTQ auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py QuantLinear.__init__ (register_buffer qweight, qzeros, scales, g_idx)",
        tensors, check, _GPTQ_GROUP,
    )  # fmt: skip


_GPTQ_GROUP = GroupRule("weights per scale and zero, along K", 128, per_channel=True)  # one rule, every bit width's


# --- AWQ (AutoAWQ WQLinear_GEMM, the "gemm" version transformers loads) ---


def _awq_tensors(k: int, n: int, g: int, dtype: str) -> tuple[StoredTensor, ...]:
    groups = k // (g or k)
    return (
        StoredTensor("qweight", "int32", (k, n // 8), "4-bit weights, 8 per int32 along N"),
        StoredTensor("qzeros", "int32", (groups, n // 8), "4-bit zero points, 8 per int32 along N"),
        StoredTensor("scales", "float16", (groups, n), "one scale per group of G along K, per output"),
    )


def _awq_check(k: int, n: int, g: int, dtype: str) -> str | None:
    return _clean(k, n, ("K", k, g or k), ("N", n, 8))  # WQLinear_GEMM asserts both


# --- bitsandbytes 4-bit (Linear4bit / Params4bit; QuantState.as_dict(packed=True) as saved) ---

BNB_NESTED_BLOCK = 256  # quantize_4bit(compress_statistics=True): quantize_blockwise(absmax, blocksize=256)
BNB_DTYPES = ("float16", "bfloat16", "float32")  # quantize_4bit refuses other input dtypes
# `nested_offset` is absmax.mean().item(), a float32 written by json.dumps: its length depends on the
# weights. Counted as 19 characters, the length of most float32 means between 0.01 and 0.1
# (0.0234375 has 9; 0.023399999365210533 has 20): the one figure here that is not exact.
BNB_OFFSET_CHARS = 19


def bnb_quant_state_json(quant_type: str, blocksize: int, dtype: str, k: int, n: int, double: bool) -> str:
    """The text `pack_dict_to_tensor` stores as uint8 in `weight.quant_state.bitsandbytes__<type>`:
    json.dumps of the quant state's non-tensor items, in as_dict's order (nested_offset as
    BNB_OFFSET_CHARS characters)."""
    text = f'{{"quant_type": "{quant_type}", "blocksize": {blocksize}, "dtype": "{dtype}", "shape": [{n}, {k}]'
    if double:
        text += f', "nested_blocksize": {BNB_NESTED_BLOCK}, "nested_dtype": "float32", "nested_offset": {"0" * BNB_OFFSET_CHARS}'
    return text + "}"


def _bnb4(quant_type: str, double: bool) -> WeightFormat:
    def tensors(k: int, n: int, g: int, dtype: str) -> tuple[StoredTensor, ...]:
        values = k * n
        blocks = -(values // -g)  # ceil: blocks of g values along the flattened (N, K) weight
        out = [
            StoredTensor("weight", "uint8", ((values + 1) // 2, 1), "4-bit codes, two per byte, of the flattened weight"),
            StoredTensor("weight.absmax", "uint8" if double else "float32", (blocks,),
                         "each block's absmax, 8-bit (double quantization)" if double else "each block's absmax"),
            StoredTensor("weight.quant_map", "float32", (16,), f"the {quant_type.upper()} code table"),
        ]  # fmt: skip
        if double:
            out += [
                StoredTensor("weight.nested_absmax", "float32", (-(blocks // -BNB_NESTED_BLOCK),), f"a scale per {BNB_NESTED_BLOCK} absmax"),
                StoredTensor("weight.nested_quant_map", "float32", (256,), "the 8-bit dynamic code table of the absmax"),
            ]
        state = bnb_quant_state_json(quant_type, g, dtype, k, n, double)
        out.append(StoredTensor(f"weight.quant_state.bitsandbytes__{quant_type}", "uint8", (len(state.encode()),),
                                "the quant state's JSON (type, blocksize, dtype, shape" + (", nested_offset" if double else "") + ")"))  # fmt: skip
        return tuple(out)

    def check(k: int, n: int, g: int, dtype: str) -> str | None:
        if dtype not in BNB_DTYPES:
            return f"bitsandbytes quantizes {', '.join(BNB_DTYPES)} weights, not {dtype}; give one of them as --dtype"
        return None

    name = quant_type + ("_dq" if double else "")
    what = f"bitsandbytes {quant_type.upper()}: 4-bit codes, a float32 absmax per block of 64" + (
        f"; double quantization: 8-bit absmax, a float32 scale per {BNB_NESTED_BLOCK} blocks" if double else ""
    )
    layout = "ceil(K·N/2) + 4·B + 64" if not double else "ceil(K·N/2) + B + 4·ceil(B/256) + 64 + 1024"
    return WeightFormat(
        name, 4, what,
        f"{layout} + the quant state's JSON" + (f" (its nested_offset counted as {BNB_OFFSET_CHARS} characters)" if double else "")
        + ", B = ceil(K·N/G) blocks",
        "bitsandbytes functional.py quantize_4bit, QuantState.as_dict(packed=True); nn/modules.py Linear4bit._save_to_state_dict; "
        "_ops.py quantize_4bit's shapes",
        tensors, check, _BNB_GROUP,
    )  # fmt: skip


_BNB_GROUP = GroupRule("values per absmax block, along the flattened weight", 64, (32, 64, 128, 256, 512, 1024, 2048, 4096))


# --- MXFP4 (OCP microscaling; gpt-oss's experts: `<proj>_blocks`, `<proj>_scales`) ---

MX_BLOCK = 32


def _mxfp4_tensors(k: int, n: int, g: int, dtype: str) -> tuple[StoredTensor, ...]:
    return (
        StoredTensor("_blocks", "uint8", (n, k // MX_BLOCK, 16), "E2M1 values, two per byte, 32 per block along K"),
        StoredTensor("_scales", "uint8", (n, k // MX_BLOCK), "one E8M0 scale (a power of two) per block of 32"),
    )


def _mxfp4_check(k: int, n: int, g: int, dtype: str) -> str | None:
    return _clean(k, n, ("K", k, MX_BLOCK))


# --- NVFP4 (NVIDIA ModelOpt's NVFP4 checkpoints: W4A4) ---

NV_BLOCK = 16


def _nvfp4_tensors(k: int, n: int, g: int, dtype: str) -> tuple[StoredTensor, ...]:
    return (
        StoredTensor("weight", "uint8", (n, k // 2), "E2M1 values, two per byte along K"),
        StoredTensor("weight_scale", "float8_e4m3fn", (n, k // NV_BLOCK), "one E4M3 scale per 16 values along K"),
        StoredTensor("weight_scale_2", "float32", (), "the weight's global scale"),
        StoredTensor("input_scale", "float32", (), "the input's global scale (its values are quantized to NVFP4 too)"),
    )


def _nvfp4_check(k: int, n: int, g: int, dtype: str) -> str | None:
    return _clean(k, n, ("K", k, NV_BLOCK))


def _nvfp4_input(k: int, g: int) -> int:
    return k // 2 + k // NV_BLOCK


# --- FP8 with scales: DeepSeek-V3's 128 × 128 blocks (transformers FP8Linear), fbgemm's rows ---


def _fp8_block_tensors(k: int, n: int, g: int, dtype: str) -> tuple[StoredTensor, ...]:
    return (
        StoredTensor("weight", "float8_e4m3fn", (n, k), "the weight"),
        StoredTensor("weight_scale_inv", "float32", (ceil(n / g), ceil(k / g)), f"one scale per {g} × {g} block, the edges' blocks cut short"),
    )


def _fp8_block_input(k: int, g: int) -> int:
    return k + 4 * ceil(k / g)  # act_quant: FP8 values and a float32 scale per g along K, per token


def _fp8_row_tensors(k: int, n: int, g: int, dtype: str) -> tuple[StoredTensor, ...]:
    return (
        StoredTensor("weight", "float8_e4m3fn", (n, k), "the weight"),
        StoredTensor("weight_scale", "float32", (n, 1), "one scale per output row"),
    )


def _fp8_row_input(k: int, g: int) -> int:
    return k + 4  # quantize_fp8_per_row: FP8 values and one float32 scale per token


def _any_shape(k: int, n: int, g: int, dtype: str) -> str | None:
    return None


def plain(dtype: str, bits: int) -> WeightFormat:
    """A weight matrix in a plain element type (--weight-dtype float8_e4m3fn, int8, bfloat16, …):
    one tensor, no scales."""

    def tensors(k: int, n: int, g: int, act: str) -> tuple[StoredTensor, ...]:
        return (StoredTensor("weight", dtype, (n, k), f"the weight in {dtype}, no scales"),)

    return WeightFormat(dtype, bits, f"{dtype}, no scales", f"K·N·{bits // 8}", "a torch Linear's weight", tensors, _any_shape)


WEIGHT_FORMATS: dict[str, WeightFormat] = {
    f.name: f
    for f in (
        *(_gptq(bits) for bits in (2, 3, 4, 8)),
        WeightFormat(
            "awq_int4", 4, "AWQ 4-bit (AutoAWQ GEMM): int32-packed weights and zeros along N, a float16 scale per group of G along K",
            "K·N/2 + (K/G)·N/2 + 2·(K/G)·N",
            "AutoAWQ awq/modules/linear/gemm.py WQLinear_GEMM.__init__ (register_buffer qweight, qzeros, scales)",
            _awq_tensors, _awq_check, GroupRule("weights per scale and zero, along K (must divide K)", 128, per_channel=True),
        ),
        _bnb4("nf4", double=False),
        _bnb4("nf4", double=True),
        WeightFormat(
            "mxfp4", 4, "MXFP4 (OCP microscaling, gpt-oss): E2M1 values, one E8M0 scale byte per 32 along K",
            "K·N/2 + K·N/32",
            "transformers integrations/mxfp4.py (Mxfp4GptOssExperts; the reverse op writes blocks reshaped to (*scales.shape, 16))",
            _mxfp4_tensors, _mxfp4_check, GroupRule("values per E8M0 scale (OCP MX: 32)", MX_BLOCK, (MX_BLOCK,)),
        ),
        WeightFormat(
            "nvfp4", 4, "NVFP4 (ModelOpt, W4A4): E2M1 values, an E4M3 scale per 16 along K, two float32 global scales; "
            "products in FP4", "K·N/2 + K·N/16 + 8",
            "vLLM model_executor/layers/quantization/modelopt.py ModelOptNvFp4LinearMethod.create_weights "
            "(weight, weight_scale, weight_scale_2, input_scale), the ModelOpt checkpoint layout",
            _nvfp4_tensors, _nvfp4_check, GroupRule("values per E4M3 scale (NVFP4: 16)", NV_BLOCK, (NV_BLOCK,)),
            "float4_e2m1fn", _nvfp4_input, "E2M1 values and an E4M3 scale per 16 along K: K/2 + K/16 bytes per row",
        ),
        WeightFormat(
            "fp8_block", 8, "FP8 E4M3 with a float32 scale per B × B block (DeepSeek-V3's weight_block_size, B = 128); "
            "products in FP8", "K·N + 4·ceil(N/B)·ceil(K/B)",
            "transformers integrations/finegrained_fp8.py FP8Linear.__init__ (weight, weight_scale_inv: ceil division)",
            _fp8_block_tensors, _any_shape, GroupRule("the edge of the square block of one scale", 128),
            "float8_e4m3fn", _fp8_block_input, "FP8 values and a float32 scale per B along K: K + 4·ceil(K/B) bytes per row",
        ),
        WeightFormat(
            "fp8_row", 8, "FP8 E4M3 with a float32 scale per output row (fbgemm_fp8); products in FP8", "K·N + 4·N",
            "transformers integrations/fbgemm_fp8.py FbgemmFp8Linear.__init__ (weight, weight_scale (N, 1); input_scale_ub is not saved)",
            _fp8_row_tensors, _any_shape, None,
            "float8_e4m3fn", _fp8_row_input, "FP8 values and one float32 scale per row: K + 4 bytes per row",
        ),
    )
}  # fmt: skip

# Earlier names, kept: each means the checkpoint format it was described as.
WEIGHT_ALIASES: dict[str, tuple[str, str]] = {
    "int4": ("gptq_int4", "--weight-dtype int4 is gptq_int4 (it was described as GPTQ symmetric; it counted a 16-bit scale per group "
             "only, where GPTQ checkpoints also store 4-bit zeros, even when symmetric, and g_idx)"),
    "int4_asym": ("awq_int4", "--weight-dtype int4_asym is awq_int4 (it was described as AWQ's asymmetric 4-bit; it counted a 16-bit "
                  "zero per group, where AWQ packs its zeros in 4 bits, 8 per int32)"),
}  # fmt: skip


class Packing:
    """How the weight matrices are stored when --weight-dtype sets them apart: `format` (a
    WEIGHT_FORMATS name, or an element dtype stored plainly), its `bits` per value, its
    `group_size` (0: none, or one group over all of K), and the activation dtype `act_dtype`
    (bitsandbytes records it). Equal and hashed by value: a sweep's layers share their weights."""

    __slots__ = ("format", "bits", "group_size", "act_dtype")

    def __init__(self, format: str, bits: int, group_size: int, act_dtype: str) -> None:
        self.format, self.bits, self.group_size, self.act_dtype = format, bits, group_size, act_dtype

    def _key(self) -> tuple[str, int, int, str]:
        return (self.format, self.bits, self.group_size, self.act_dtype)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Packing) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Packing{self._key()!r}"

    @property
    def spec(self) -> WeightFormat:
        return WEIGHT_FORMATS.get(self.format) or plain(self.format, self.bits)

    def tensors(self, k: int, n: int) -> tuple[StoredTensor, ...]:
        """The tensors one (K, N) matrix is stored as; ConfigError when the format cannot pack it."""
        spec = self.spec
        reason = spec.check(k, n, self.group_size, self.act_dtype)
        if reason is not None:
            raise ConfigError("--weight-dtype", f"{self.format} cannot store a ({k}, {n}) matrix: {reason}")
        return spec.tensors(k, n, self.group_size, self.act_dtype)

    def bytes(self, shape: tuple[int, ...]) -> int:
        """Bytes of a (…, K, N) matrix: the leading dimension (experts) times one matrix's tensors."""
        *lead, k, n = shape
        return prod(lead) * sum(t.bytes for t in self.tensors(k, n))

    def input_row_bytes(self, k: int) -> int | None:
        """Bytes of one row of K inputs as a product reads them, when the format quantizes its
        input (None: the input is in --dtype)."""
        f = self.spec.input_row_bytes
        return None if f is None else f(k, self.group_size)
