"""Read a Hugging Face-style config.json offline and say which fields it used.

A gated (GLU) feed-forward is recognised from the config's own fields — the model type or
architecture of a family known to use one, or T5's `feed_forward_proj: gated-*` — and never
guessed from the ratio d_ff / d_model. Standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffn_calc.errors import ConfigError
from ffn_calc.model.activations import NONLINEARITIES, by_config_name
from ffn_calc.model.dtypes import DTYPES
from ffn_calc.model.norms import NORM_TYPES, by_config_key, by_family

# Families whose MLP is act(x·W_gate) ⊙ (x·W_up) then W_down (their modeling_*.py files).
GATED_MODEL_TYPES = {
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3_text",
    "deepseek_v2", "deepseek_v3", "phi3", "olmo", "olmo2", "cohere", "granite", "internlm2", "yi", "baichuan",
}  # fmt: skip
# Families with a plain two-matrix MLP and biases.
PLAIN_BIASED_MODEL_TYPES = {"bert", "roberta", "bloom", "gpt2", "gpt_neox", "gptj", "opt", "distilbert", "electra", "xlm-roberta", "vit"}
# The norm of a family whose config.json has no epsilon key: LayerNorm beside a plain MLP,
# RMSNorm beside a gated one. A family whose norm is otherwise (T5's RMSNorm under a LayerNorm
# key, Cohere's and OLMo's LayerNorms) says so in its norm's registry entry (norms.by_family).
NORM_BY_MODEL_TYPE = {**dict.fromkeys(PLAIN_BIASED_MODEL_TYPES, "layer"), **dict.fromkeys(GATED_MODEL_TYPES, "rms")}

# Families whose config.json may omit the FFN width because the model code fixes it, with
# what the code does: BloomMLP is 4 × hidden_size; FalconMLP is ffn_hidden_size, which
# FalconConfig sets to 4 × hidden_size when it is absent. Their activation and biases likewise.
FAMILY_DEFAULTS: dict[str, tuple[int, str, str]] = {
    "bloom": (4, "gelu_new", "BloomMLP: dense_h_to_4h is 4 × hidden_size, bloom_gelu (tanh approximation), biases"),
    "falcon": (4, "gelu", "FalconConfig: ffn_hidden_size = 4 × hidden_size when absent; nn.GELU; biases per `bias`"),
}
# Families with a gate on their shared experts: Qwen2MoeSparseMoeBlock scales the shared
# expert's output by sigmoid(shared_expert_gate(x)); Qwen3-MoE has no shared expert at all.
SHARED_EXPERT_GATE_MODEL_TYPES = {"qwen2_moe"}
DTYPE_KEYS = ("torch_dtype", "dtype")  # transformers ≥ 4.56 writes `dtype`

SIZE_KEYS = ("hidden_size", "d_model", "n_embd", "n_embed")
FF_KEYS = ("intermediate_size", "d_ff", "n_inner", "ffn_dim", "ffn_hidden_size")
ACT_KEYS = ("hidden_activation", "hidden_act", "activation_function", "feed_forward_proj")
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
EXPERT_KEYS = ("num_local_experts", "n_routed_experts", "num_experts")


@dataclass
class ConfigFile:
    """What a config.json says about the FFN, as ffn-calc options, and how it was read."""

    path: str
    values: dict[str, Any] = field(default_factory=dict)  # d_model, d_ff, activation, bias, layers, experts, ...
    used: dict[str, Any] = field(default_factory=dict)  # config key → its value
    notes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: str = ""  # what the file lacks that a flag must give (the FFN width), as an error message


def _first(cfg: dict[str, Any], keys: tuple[str, ...], used: dict[str, Any]) -> tuple[str, Any] | None:
    for key in keys:
        if key in cfg and cfg[key] is not None:
            used[key] = cfg[key]
            return key, cfg[key]
    return None


def _size(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError("--config", f"field {key!r} must be a whole number, got {value!r}")
    return value


def read_config(path: str) -> ConfigFile:
    """Parse `path`; raise ConfigError naming what is wrong or missing."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("--config", f"cannot read {path!r}: {getattr(e, 'strerror', None) or e}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError("--config", f"{path!r} is not JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(raw, dict):
        raise ConfigError("--config", f"{path!r} holds a JSON {type(raw).__name__}, not an object of fields")
    cfg: dict[str, Any] = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else raw  # type: ignore[assignment]
    out = ConfigFile(path)
    used = out.used
    model_type = str(cfg.get("model_type", raw.get("model_type", ""))).lower()
    archs = cfg.get("architectures") or raw.get("architectures") or []
    if model_type:
        used["model_type"] = model_type
    if archs:
        used["architectures"] = archs

    hidden = _first(cfg, SIZE_KEYS, used)
    if hidden is None:
        raise ConfigError("--config", f"{path!r} has no hidden size: expected one of {', '.join(SIZE_KEYS)}")
    d_model = _size(*hidden)
    out.values["d_model"] = d_model

    experts = _first(cfg, EXPERT_KEYS, used)
    if experts is not None and _size(*experts) > 0:
        out.values["experts"] = _size(*experts)
        top = _first(cfg, ("num_experts_per_tok", "moe_topk", "top_k"), used)
        if top is None:
            raise ConfigError("--config", f"{path!r} has {experts[0]} but no num_experts_per_tok (top-k)")
        out.values["top_k"] = _size(*top)

    ff = _first(cfg, ("moe_intermediate_size",), used) if "experts" in out.values else None
    ff = ff or _first(cfg, FF_KEYS, used)
    family = FAMILY_DEFAULTS.get(model_type)
    if ff is None:
        if model_type == "gpt2" or "n_embd" in used:
            out.values["d_ff"] = 4 * d_model
            out.notes.append("n_inner is absent or null: GPT-2 uses 4 × n_embd")
        elif family is not None:
            out.values["d_ff"] = family[0] * d_model
            out.notes.append(f"no FFN width field: {model_type} uses {family[0]} × hidden_size = {family[0] * d_model} ({family[2]})")
        else:  # a flag may complete it (--d-ff); resolve.py says so if none does
            out.missing = f"{path!r} has no FFN width: expected one of {', '.join(FF_KEYS)}; give it with --d-ff"
    else:
        out.values["d_ff"] = _size(*ff)

    if "experts" in out.values:
        shared = _first(cfg, ("n_shared_experts",), used)
        shared_width = _first(cfg, ("shared_expert_intermediate_size",), used)
        if shared is not None:
            out.values["shared_experts"] = _size(*shared)
        elif shared_width is not None:
            width = _size(*shared_width)
            if width % out.values["d_ff"]:
                raise ConfigError("--config", f"shared_expert_intermediate_size {width} is not a multiple of the expert width {out.values['d_ff']}")
            out.values["shared_experts"] = width // out.values["d_ff"]
            out.notes.append(
                f"one shared expert of width {width} counted as {width // out.values['d_ff']} of width {out.values['d_ff']} "
                "(same parameters and FLOPs)"
            )
        if out.values.get("shared_experts") and model_type in SHARED_EXPERT_GATE_MODEL_TYPES:
            out.values["shared_expert_gate"] = True
            out.notes.append(f"shared experts gated by sigmoid(x·w_s), w_s (d_model, 1): model_type {model_type!r} (shared_expert_gate)")

    gated = model_type in GATED_MODEL_TYPES or any(str(a).split("For")[0].lower() in GATED_MODEL_TYPES for a in archs)
    act_field = _first(cfg, ACT_KEYS, used)
    act_name = str(act_field[1]).lower() if act_field else ""
    if act_field and act_field[0] == "feed_forward_proj":  # T5: relu, gated-gelu, gated-silu
        gated = act_name.startswith("gated-")
        act_name = act_name.removeprefix("gated-")
        if act_name == "gelu":
            act_name = "gelu_new"  # T5 v1.1 runs gated-gelu with gelu_new
            out.notes.append("T5's gated-gelu uses the tanh approximation (gelu_new)")
    if not act_field and family is not None:
        act_name = family[1]
        out.notes.append(f"no activation field: {model_type} uses {act_name} ({family[2]})")
    if model_type.startswith("gemma") and act_name == "gelu":
        act_name = "gelu_pytorch_tanh"
        out.notes.append("Gemma's config says gelu but the model runs the tanh approximation")
    found = by_config_name(act_name) if act_name else NONLINEARITIES["silu" if gated else "relu"]
    if found is None:
        raise ConfigError("--config", f"activation {act_name!r} is not one ffn-calc models; give --activation")
    if not act_field and family is None:
        out.notes.append(f"no activation field: assumed {found.name}")
    if gated and found.gated is None:
        raise ConfigError("--config", f"a gated FFN with {found.name} has no registered gated form; give --activation")
    out.values["activation"] = found.gated if gated else found.name
    out.notes.append(
        f"gated (GLU) from model_type {model_type!r}" if gated and model_type in GATED_MODEL_TYPES
        else "gated (GLU) from feed_forward_proj" if gated and act_field and act_field[0] == "feed_forward_proj"
        else "gated (GLU) from the architecture" if gated
        else "plain two-matrix FFN (no gated marker in model_type, architectures or feed_forward_proj)"
    )  # fmt: skip

    bias_key = "mlp_bias" if "mlp_bias" in cfg else "bias" if model_type == "falcon" and "bias" in cfg else None
    if bias_key is not None:
        used[bias_key] = cfg[bias_key]
        out.values["bias"] = bool(cfg[bias_key])
    elif model_type == "falcon":
        out.values["bias"] = False
        out.notes.append("no bias field: FalconConfig's default is no biases")
    elif gated or model_type.startswith("t5"):
        out.values["bias"] = False
        out.notes.append("no mlp_bias field: this family has no FFN biases")
    elif model_type in PLAIN_BIASED_MODEL_TYPES:
        out.values["bias"] = True
    else:
        out.values["bias"] = True
        out.notes.append("no mlp_bias field and an unknown family: biases assumed")

    _read_norm_type(cfg, model_type, out)
    _read_dtype(cfg, raw, out)

    layers = _first(cfg, LAYER_KEYS, used)
    if layers is not None:
        count = _size(*layers)
        decoder = _first(cfg, ("num_decoder_layers",), used)
        if decoder is not None:
            count += _size(*decoder)
            out.notes.append("layers = encoder + decoder layers")
        if "experts" in out.values:
            count -= _read_dense_layers(cfg, count, out)
        out.values["layers"] = max(count, 1)
    out.ignored = sorted(k for k in cfg if k not in used)
    return out


def _moe_layers(cfg: dict[str, Any], layers: int, used: dict[str, Any]) -> tuple[int, str] | None:
    """How many of `layers` have a MoE FFN, and why, when the file says which (None: all do).
    DeepSeek (modeling_deepseek.py): layer i is MoE when i ≥ first_k_dense_replace and
    i % moe_layer_freq == 0. Qwen-MoE (Qwen2MoeDecoderLayer): when i is not in mlp_only_layers
    and (i + 1) % decoder_sparse_step == 0. Counted in closed form (a file may say anything)."""
    if "first_k_dense_replace" in cfg or "moe_layer_freq" in cfg:
        first = _size("first_k_dense_replace", cfg.get("first_k_dense_replace") or 0)
        freq = max(_size("moe_layer_freq", cfg.get("moe_layer_freq") or 1), 1)
        used.update({k: cfg[k] for k in ("first_k_dense_replace", "moe_layer_freq") if k in cfg})
        # the multiples of freq in [first, layers)
        moe = max(0, (layers - 1) // freq - ((first - 1) // freq if first else -1))
        return moe, f"first_k_dense_replace {first}, moe_layer_freq {freq}: layer i is MoE when i ≥ {first} and i % {freq} == 0"
    if "decoder_sparse_step" in cfg or "mlp_only_layers" in cfg:
        step = max(_size("decoder_sparse_step", cfg.get("decoder_sparse_step") or 1), 1)
        only = cfg.get("mlp_only_layers") or []
        if not isinstance(only, list):
            raise ConfigError("--config", f"field 'mlp_only_layers' must be a list of layer indices, got {only!r}")
        dense = {_size("mlp_only_layers", i) for i in only}
        used.update({k: cfg[k] for k in ("decoder_sparse_step", "mlp_only_layers") if k in cfg})
        moe = layers // step - sum(1 for i in dense if i < layers and (i + 1) % step == 0)
        return moe, f"decoder_sparse_step {step}, mlp_only_layers {sorted(dense)}: layer i is MoE when (i + 1) % {step} == 0, i not listed"
    return None


def _read_dense_layers(cfg: dict[str, Any], layers: int, out: ConfigFile) -> int:
    """The dense layers of a mixed stack (their FFN: intermediate_size wide, the activation,
    biases and norm of the MoE one) as `dense_layers` and `dense_d_ff`; returns their count."""
    found = _moe_layers(cfg, layers, out.used)
    if found is None:
        return 0
    moe, why = found
    dense = layers - moe
    if not dense:
        out.notes.append(f"all {layers} layers are MoE ({why})")
        return 0
    out.values["dense_layers"] = dense
    width = cfg.get("intermediate_size") if "moe_intermediate_size" in out.used else None  # else it is the experts' width
    if width is None:
        out.notes.append(f"{dense} dense layers + {moe} MoE layers ({why}); no intermediate_size beside moe_intermediate_size: give --dense-d-ff")
        return dense
    out.used["intermediate_size"] = width
    out.values["dense_d_ff"] = _size("intermediate_size", width)
    out.notes.append(f"{dense} dense layers (intermediate_size {width}) + {moe} MoE layers ({why})")
    return dense


def _read_norm_type(cfg: dict[str, Any], model_type: str, out: ConfigFile) -> None:
    """The kind of norm (norms.py): a family the registry names (T5's RMSNorm under a LayerNorm
    key) by its model_type, else the epsilon's key (`rms_norm_eps`, `layer_norm_eps`, …), else
    the model_type. Used when --norm pre or post adds the norm; recorded either way."""
    found = by_config_key(cfg)
    if found is not None:
        out.used[found[0]] = cfg[found[0]]
    family = by_family(model_type)
    if family is not None:
        kind, why = family, f"model_type {model_type!r} ({family.family_note})"
    elif found is not None:
        kind, why = found[1], found[0]
    elif model_type in NORM_BY_MODEL_TYPE:
        kind, why = NORM_TYPES[NORM_BY_MODEL_TYPE[model_type]], f"model_type {model_type!r}"
    else:
        kind, why = NORM_TYPES["layer"], "no norm epsilon field and an unknown family: assumed"
    out.values["norm_type"] = kind.name
    out.notes.append(f"norm_type {kind.name} ({kind.label}) from {why}; used with --norm pre or post")


def _read_dtype(cfg: dict[str, Any], raw: dict[str, Any], out: ConfigFile) -> None:
    """The storage type the checkpoint was published in (`torch_dtype`, or `dtype` in newer
    files), the default --dtype; a value ffn-calc has no storage type for is ignored, said so."""
    for source in (raw, cfg):  # the top level first: a multimodal file's text_config may say otherwise
        for key in DTYPE_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value:
                out.used[key] = value
                name = value.removeprefix("torch.")
                if name in DTYPES:
                    out.values["dtype"] = name
                    out.notes.append(f"dtype {name} from {key}, the checkpoint's storage type (--dtype overrides)")
                else:
                    out.notes.append(f"{key} {value!r} is not a storage type ffn-calc has; dtype left to --dtype (default float32)")
                return
