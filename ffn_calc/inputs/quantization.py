"""What a checkpoint's `quantization_config` (config.json) says about its FFN weights: the format
they are stored in, as --weight-dtype and --group-size name it (model/weight_formats.py), read the
way the loader that writes and reads them does (transformers' GPTQConfig, AwqConfig,
BitsAndBytesConfig, Mxfp4Config, FineGrainedFP8Config, FbgemmFp8Config; ModelOpt's
hf_quant_config), and which modules it leaves unconverted. A method or a setting whose bytes
ffn-calc does not model is refused in one line, never guessed. Standard library only; read only
when --config is given."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ffn_calc.errors import ConfigError
from ffn_calc.model.weight_formats import WEIGHT_FORMATS

# A format reader: (quantization_config) → (weight dtype, group size or None, settings read, notes).
Reading = tuple[str, int | None, dict[str, Any], list[str]]


def _refuse(what: str) -> ConfigError:
    guess = "its bytes would be a guess — drop quantization_config from a copy of the file and give --weight-dtype"
    return ConfigError("--config", f"quantization_config: {what}; {guess}")


def _get(q: dict[str, Any], key: str, default: Any, read: dict[str, Any], notes: list[str], why: str = "") -> Any:
    """q[key], recorded in `read`; else `default`, said in `notes` (the loader's own default)."""
    if key in q and q[key] is not None:
        read[key] = q[key]
        return q[key]
    notes.append(f"quantization_config has no {key}: {default!r}, the default of {why}")
    return default


def _whole(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError("--config", f"quantization_config field {key!r} must be a whole number, got {value!r}")
    return value


def _group(key: str, value: Any) -> int:
    """A group size as --group-size takes it: -1 (one group over all of K) is 0."""
    g = _whole(key, value)
    if g < -1 or g == 0:
        raise ConfigError("--config", f"quantization_config field {key!r} must be a positive group size or -1, got {g}")
    return 0 if g == -1 else g


def _gptq(q: dict[str, Any]) -> Reading:
    read: dict[str, Any] = {}
    notes: list[str] = []
    if "bits" not in q:
        raise ConfigError("--config", "quantization_config (gptq) has no bits")
    bits = _whole("bits", _get(q, "bits", None, read, notes))
    name = f"gptq_int{bits}"
    if name not in WEIGHT_FORMATS:
        raise _refuse(f"GPTQ with bits {bits} (AutoGPTQ packs 2, 3, 4 or 8)")
    checkpoint = _get(q, "checkpoint_format", "gptq", read, notes, "GPTQConfig")
    if checkpoint not in ("gptq", "gptq_v2"):  # v2 stores the zeros without the -1 offset: the same tensors
        raise _refuse(f"GPTQ checkpoint_format {checkpoint!r} (its tensors are laid out for that kernel, not AutoGPTQ's)")
    if q.get("modules_in_block_to_quantize"):
        raise _refuse("GPTQ modules_in_block_to_quantize (a per-module choice inside each block)")
    group = _group("group_size", _get(q, "group_size", 128, read, notes, "GPTQConfig"))
    if _get(q, "desc_act", False, read, notes, "GPTQConfig"):
        notes.append("desc_act (act-order): g_idx, stored either way, orders the groups by activation")
    if _get(q, "sym", True, read, notes, "GPTQConfig"):
        notes.append("sym: qzeros are stored all the same (AutoGPTQ writes them for symmetric quantization too)")
    return name, group, read, notes


def _awq(q: dict[str, Any]) -> Reading:
    read: dict[str, Any] = {}
    notes: list[str] = []
    bits = q.get("bits", q.get("w_bit"))
    read["bits"] = bits
    if bits != 4:
        raise _refuse(f"AWQ with bits {bits!r} (WQLinear_GEMM packs 4)")
    version = str(_get(q, "version", "gemm", read, notes, "AwqConfig")).lower()
    if version != "gemm":
        raise _refuse(f"AWQ version {version!r} (only the GEMM layout is modelled: qweight (K, N/8))")
    key = "group_size" if "group_size" in q else "q_group_size"
    group = _group(key, _get(q, key, 128, read, notes, "AwqConfig"))
    if not _get(q, "zero_point", True, read, notes, "AwqConfig"):
        notes.append("zero_point false: WQLinear_GEMM stores its qzeros all the same")
    return "awq_int4", group, read, notes


def _bitsandbytes(q: dict[str, Any]) -> Reading:
    read: dict[str, Any] = {}
    notes: list[str] = []
    if q.get("load_in_8bit"):
        raise _refuse("bitsandbytes load_in_8bit (LLM.int8's int8 weights with row scales)")
    if not _get(q, "load_in_4bit", False, read, notes, "BitsAndBytesConfig"):
        raise _refuse("bitsandbytes with neither load_in_4bit nor load_in_8bit")
    kind = _get(q, "bnb_4bit_quant_type", "fp4", read, notes, "BitsAndBytesConfig")
    if kind != "nf4":
        raise _refuse(f"bitsandbytes bnb_4bit_quant_type {kind!r} (only nf4 is modelled)")
    storage = _get(q, "bnb_4bit_quant_storage", "uint8", read, notes, "BitsAndBytesConfig")
    if storage != "uint8":
        raise _refuse(f"bitsandbytes bnb_4bit_quant_storage {storage!r} (the packed codes are counted in uint8)")
    double = bool(_get(q, "bnb_4bit_use_double_quant", False, read, notes, "BitsAndBytesConfig"))
    compute = q.get("bnb_4bit_compute_dtype")
    if compute is not None:
        read["bnb_4bit_compute_dtype"] = compute
        notes.append(f"bnb_4bit_compute_dtype {compute}: what the products run in; the quant state records the weights' dtype, --dtype")
    return ("nf4_dq" if double else "nf4"), 64, read, notes  # Linear4bit's blocksize: 64


def _mxfp4(q: dict[str, Any]) -> Reading:
    return "mxfp4", 32, {}, []


def _modelopt(q: dict[str, Any]) -> Reading:
    read: dict[str, Any] = {}
    inner = q.get("quantization")
    nested: dict[str, Any] = inner if isinstance(inner, dict) else q  # hf_quant_config.json nests it; config.json does not
    algo = str(nested.get("quant_algo", "")).upper()
    read["quant_algo"] = algo
    if algo != "NVFP4":
        raise _refuse(f"ModelOpt quant_algo {algo or None!r} (only NVFP4, W4A4, is modelled)")
    group = nested.get("group_size", 16)
    if group != 16:
        raise _refuse(f"ModelOpt NVFP4 with group_size {group!r} (NVFP4 scales every 16 values)")
    read["group_size"] = group
    return "nvfp4", 16, read, []


def _fp8(q: dict[str, Any]) -> Reading:
    read: dict[str, Any] = {}
    notes: list[str] = []
    if q.get("scale_fmt") not in (None, "float"):
        raise _refuse(f"FP8 scale_fmt {q['scale_fmt']!r} (whether the checkpoint keeps float32 or 1-byte scales is not read here)")
    fmt = _get(q, "fmt", "e4m3", read, notes, "DeepSeek-V3's config")
    if fmt != "e4m3":
        raise _refuse(f"FP8 fmt {fmt!r} (the block-scaled weights are E4M3)")
    if _get(q, "activation_scheme", "dynamic", read, notes, "FineGrainedFP8Config") != "dynamic":
        raise _refuse("FP8 activation_scheme static (a stored activation_scale per linear)")
    if "weight_block_size" in q and q["weight_block_size"] is None:
        raise _refuse("FP8 without weight_block_size (one scale per tensor)")
    block = _get(q, "weight_block_size", [128, 128], read, notes, "FineGrainedFP8Config")
    if not (isinstance(block, list | tuple) and len(block) == 2 and block[0] == block[1]):
        raise _refuse(f"FP8 weight_block_size {block!r} (only square blocks are modelled)")
    return "fp8_block", _whole("weight_block_size", block[0]), read, notes


def _fbgemm_fp8(q: dict[str, Any]) -> Reading:
    return "fp8_row", None, {}, []


# quant_method → its reader and the key of its list of unconverted modules.
READERS: dict[str, tuple[Callable[[dict[str, Any]], Reading], tuple[str, ...]]] = {
    "gptq": (_gptq, ("modules_to_not_convert",)),
    "awq": (_awq, ("modules_to_not_convert",)),
    "bitsandbytes": (_bitsandbytes, ("llm_int8_skip_modules", "modules_to_not_convert")),
    "mxfp4": (_mxfp4, ("modules_to_not_convert",)),
    "modelopt": (_modelopt, ("exclude_modules", "ignore")),
    "fp8": (_fp8, ("modules_to_not_convert", "ignored_layers")),
    "fbgemm_fp8": (_fbgemm_fp8, ("modules_to_not_convert",)),
}

# The FFN's module names (transformers' modeling code): the matrices under its container (dense,
# routed experts, shared experts; the container is the family table's `container`), and the
# router's names, which ffn-calc never quantizes.
DENSE = ("gate_proj", "up_proj", "down_proj", "gate_up_proj", "w1", "w2", "w3", "fc1", "fc2", "c_fc", "c_proj", "dense_h_to_4h", "dense_4h_to_h")
EXPERT = ("gate_proj", "up_proj", "down_proj", "w1", "w2", "w3")
ROUTER = ("gate", "router", "shared_expert_gate")
_BOUNDARY = r"(?:(?<=\.)|(?=\.|$))"  # transformers' should_convert_module: a match ends at a module boundary


def _matches(pattern: str, name: str) -> bool:
    """transformers' should_convert_module: from the start to a module boundary, as a regex, or as a suffix."""
    try:
        return bool(re.match(rf"(?:{pattern}){_BOUNDARY}", name)) or name.endswith(pattern)
    except re.error:
        raise ConfigError("--config", f"quantization_config: module pattern {pattern!r} is not a valid regular expression") from None


def _unconverted(patterns: list[str], values: dict[str, Any], model_type: str, notes: list[str]) -> bool:
    """Whether the FFN stays in --dtype (every layer's FFN module listed); refuses a list that
    leaves part of it unconverted; says what else the list names."""
    from ffn_calc.catalogue.families import FAMILIES  # the table is data, loaded only when a file is read

    family = FAMILIES.get(model_type)
    container = family.container if family is not None else "mlp"  # a model_type read with flags: LlamaMLP's name
    layers = values.get("layers", 1) + values.get("dense_layers", 0)
    experts = values.get("experts", 0)
    whole = 0
    for pattern in patterns:
        modules = [container.format(i=i) if "{i}" in container else f"model.layers.{i}.{container}" for i in range(layers)]
        hit = sum(_matches(pattern, m) for m in modules)
        if hit == layers:
            whole += 1
            notes.append(f"modules_to_not_convert {pattern!r}: every layer's FFN ({container}) stays in --dtype")
            continue
        if hit:
            raise _refuse(f"{pattern!r} leaves {hit} of {layers} layers' FFN unconverted (one format for every layer is modelled)")
        routed = [f"{m}.experts.{j}.{x}" for m in modules for j in sorted({0, max(experts - 1, 0)}) for x in EXPERT]
        shared = [f"{m}.{s}.{x}" for m in modules for s in ("shared_expert", "shared_experts") for x in EXPERT]
        dense = [f"{m}.{x}" for m in modules for x in (*DENSE, "experts", "shared_expert", "shared_experts")]
        under = routed + shared + dense if experts else dense + routed + shared  # the likelier names first, for the message
        part = next((name for name in under if _matches(pattern, name)), None)
        if part is not None:
            raise _refuse(f"{pattern!r} keeps part of the FFN ({part}) unconverted (one format for all its matrices is modelled)")
        routers = [f"{m}.{r}" for m in modules for r in ROUTER]
        if any(_matches(pattern, name) for name in routers):
            notes.append(f"modules_to_not_convert {pattern!r}: the router, which ffn-calc keeps in --dtype anyway")
        else:
            notes.append(f"modules_to_not_convert {pattern!r}: outside the FFN")
    return whole > 0


def read_quantization(raw: dict[str, Any], values: dict[str, Any], used: dict[str, Any], notes: list[str]) -> None:
    """Read `raw`'s quantization_config into `values` (weight_dtype, group_size), recording what
    was read in `used` and what it means, or assumes, in `notes`; ConfigError when its bytes would
    be a guess."""
    q = raw.get("quantization_config")
    if q is None:
        return
    if not isinstance(q, dict):
        raise ConfigError("--config", f"field 'quantization_config' must be an object, got {q!r}")
    method = str(q.get("quant_method", "")).lower()
    if method not in READERS:
        raise _refuse(f"quant_method {method or None!r} is not a format ffn-calc stores ({', '.join(READERS)})")
    reader, skip_keys = READERS[method]
    weight_dtype, group, read, more = reader(q)
    holder = q["quantization"] if method == "modelopt" and isinstance(q.get("quantization"), dict) else q
    skip_key = next((k for k in skip_keys if holder.get(k) is not None), None)
    skip = holder[skip_key] if skip_key is not None else []
    if not (isinstance(skip, list) and all(isinstance(p, str) for p in skip)):
        raise ConfigError("--config", f"quantization_config field {skip_key!r} must be a list of module names, got {skip!r}")
    if skip_key is not None and skip:
        read[skip_key] = skip
    used["quantization_config"] = ", ".join(f"{k}={v}" for k, v in {"quant_method": method, **read}.items())
    notes += more
    if _unconverted(skip, values, str(used.get("model_type", "")), notes):
        notes.append(f"the FFN's weights are not in {weight_dtype}: they stay in --dtype")
        return
    values["weight_dtype"] = weight_dtype
    rule = WEIGHT_FORMATS[weight_dtype].group
    if group is not None and rule is not None and group != rule.default:  # the format's default goes with it if a flag changes the format
        values["group_size"] = group
    grouped = f", group {group or 'all of K'}" if group is not None else ""
    notes.append(f"weights {weight_dtype}{grouped} from quantization_config (quant_method {method}): {WEIGHT_FORMATS[weight_dtype].layout} "
                 "bytes per (K, N) matrix; the router, biases and norms stay in --dtype")  # fmt: skip
