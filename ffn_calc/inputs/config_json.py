"""Read a Hugging Face-style config.json offline and say which fields it used.

The file's `model_type` names its family in the family table (catalogue/families.py, read from
the transformers code): whether the FFN is gated, its biases, the activation's keys, the norm,
the expert keys and how MoE layers interleave all come from there, and a field the file leaves
out takes its configuration class's default, said so. A model_type not in the table is refused
unless flags describe its FFN (`requires`); nothing is guessed. Standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ffn_calc.errors import ConfigError, shown
from ffn_calc.inputs.limits import JsonRefused, load_json, read_file
from ffn_calc.model.activations import by_config_name
from ffn_calc.model.dtypes import DTYPES
from ffn_calc.model.norms import NORM_TYPES

if TYPE_CHECKING:
    from ffn_calc.catalogue.families import Family

DTYPE_KEYS = ("torch_dtype", "dtype")  # transformers ≥ 4.56 writes `dtype`
# What a file of an unknown family is read for, once flags describe its FFN.
SIZE_KEYS = ("hidden_size", "d_model", "n_embd", "n_embed")
HEAD_KEYS = ("num_attention_heads", "n_head", "num_heads")  # the attention's query heads (T5: num_heads, GPT-2: n_head)
MLA_KEYS = ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")  # DeepSeek V2/V3
FF_KEYS = ("intermediate_size", "d_ff", "n_inner", "ffn_dim", "ffn_hidden_size")
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
EXPERT_HINTS = ("num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts", "num_experts_per_tok", "moe_topk", "top_k")
MAX_LAYERS = 1 << 16  # interleaving is counted layer by layer; a file may say anything
# The flags that describe an FFN, by the layer_config parameter they set.
FLAGS = {"activation": "-a/--activation", "bias": "--bias/--no-bias", "experts": "--experts", "top_k": "--top-k", "d_ff": "--d-ff"}


@dataclass
class ConfigFile:
    """What a config.json says about the FFN, as ffn-calc options, and how it was read.
    `requires` names the options (layer_config's parameters) that flags must give before the
    file can be used, and `refusal` says so in one line."""

    path: str
    values: dict[str, Any] = field(default_factory=dict)  # d_model, d_ff, activation, bias, layers, experts, ...
    used: dict[str, Any] = field(default_factory=dict)  # config key → its value
    notes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: str = ""  # what the file lacks that a flag must give (the FFN width), as an error message
    requires: tuple[str, ...] = ()
    refusal: str = ""


def _size(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError("--config", f"field {key!r} must be a whole number, got {value!r}")
    return value


def _load(path: str) -> dict[str, Any]:
    text = read_file(path, "--config")
    try:
        raw = load_json(text)
    except json.JSONDecodeError as e:
        raise ConfigError("--config", f"{path!r} is not JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except JsonRefused as e:
        raise ConfigError("--config", f"{path!r} is refused: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError("--config", f"{path!r} holds a JSON {type(raw).__name__}, not an object of fields")
    return raw


def read_config(path: str) -> ConfigFile:
    """Parse `path`; raise ConfigError naming what is wrong, missing or not modelled."""
    raw = _load(path)
    text_config = raw.get("text_config")
    cfg: dict[str, Any] = text_config if isinstance(text_config, dict) else raw
    out = ConfigFile(path)
    model_type = str(cfg.get("model_type") or raw.get("model_type") or "")
    if model_type:
        out.used["model_type"] = model_type
    from ffn_calc.catalogue.families import FAMILIES  # the table is data, loaded only when a file is read

    family = FAMILIES.get(model_type)
    if family is None:
        _read_unknown(cfg, model_type, out, len(FAMILIES))
    else:
        if family.refused:
            raise ConfigError("--config", f"model_type {model_type!r} is refused: {family.refused}")
        _Reader(cfg, family, out).read()
    _read_dtype(cfg, raw, out)
    __import__("ffn_calc.inputs.quantization", fromlist=["_"]).read_quantization(raw, out.values, out.used, out.notes)  # quantization_config
    out.ignored = sorted(k for k in cfg if k not in out.used and k.split(".")[0] not in out.used)
    return out


class _Reader:
    """Reads one file of a known family: each key from the file, else its code default (noted)."""

    def __init__(self, cfg: dict[str, Any], family: Family, out: ConfigFile) -> None:
        from ffn_calc.catalogue.families import CODE_DEFAULTS, TRANSFORMERS

        self.cfg, self.family, self.out = cfg, family, out
        self.defaults = CODE_DEFAULTS.get(family.model_type, {})
        self.source = f"{family.model_type}'s configuration class, transformers {TRANSFORMERS}"

    def get(self, key: str) -> Any:
        """The file's value of a (dotted) key, else the code's default (said in the notes), else None."""
        value: Any = self.cfg
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            self.out.used[key] = value
            return value
        if key in self.defaults:
            default = self.defaults[key]
            self.out.notes.append(f"{key} absent: {default!r}, the default of {self.source}")
            self.out.used[key] = default
            return default
        return None

    def first(self, keys: tuple[str, ...]) -> tuple[str, Any] | None:
        """The first key the file gives, else the first with a code default."""
        given = [k for k in keys if self.cfg.get(k) is not None]
        for key in given + [k for k in keys if k not in given]:
            value = self.get(key)
            if value is not None:
                return key, value
        return None

    def read(self) -> None:
        f, out = self.family, self.out
        out.notes.append(f"family {f.model_type}: {f.block} ({f.model}), transformers table" + (f"; {f.note}" if f.note else ""))
        hidden = self.first(f.d_model)
        if hidden is None:
            raise ConfigError("--config", f"{out.path!r} has no hidden size: expected {' or '.join(f.d_model)}")
        d_model = out.values["d_model"] = _size(*hidden)
        self._attention(d_model)
        for key, why in f.unmodelled:
            if self.cfg.get(key):
                raise ConfigError("--config", f"{key} {self.cfg[key]!r}: {why}; ffn-calc cannot count that exactly")
        self._activation()
        bias = f.bias if isinstance(f.bias, bool) else bool(self.get(f.bias))
        out.values["bias"] = bias
        out.notes.append(f"biases {'on' if bias else 'off'}: " + (f"{f.block}'s code" if isinstance(f.bias, bool) else f"{f.bias}"))
        out.values["norm_type"] = NORM_TYPES[f.norm].name
        out.notes.append(f"norm_type {f.norm} ({NORM_TYPES[f.norm].label}), placed {f.placement}; used with --norm pre or post")
        if f.placement not in ("pre", "post"):
            from ffn_calc.catalogue.families import PLACEMENTS

            out.notes.append(f"the model's norms around the FFN: {PLACEMENTS[f.placement]}; --norm pre or post is not that")
        layers = self._layers()
        if f.moe is not None:
            self._moe(d_model, layers)
            return
        width = self.first(f.d_ff)
        if width is not None:
            out.values["d_ff"] = _size(*width)
        elif f.ff_factor:
            out.values["d_ff"] = f.ff_factor * d_model
            out.notes.append(f"d_ff = {f.ff_factor} × {f.d_model[0]} = {f.ff_factor * d_model} ({f.note or f.block})")
        else:
            out.missing = f"{out.path!r} has no FFN width: expected {' or '.join(f.d_ff)}; give it with --d-ff"
        if f.decoder_d_ff:
            decoder = self.get(f.decoder_d_ff)
            if decoder is not None and decoder != out.values.get("d_ff"):
                raise ConfigError(
                    "--config", f"{f.decoder_d_ff} {decoder} differs from {f.d_ff[0]} {out.values.get('d_ff')}: ffn-calc counts one FFN width"
                )
        if layers is not None:
            out.values["layers"] = layers

    def _layers(self) -> int | None:
        f = self.family
        found = self.first(f.layers)
        if found is None:
            return None
        count = _size(*found)
        if f.decoder_layers:
            decoder = self.get(f.decoder_layers)
            count += _size(f.decoder_layers, decoder if decoder is not None else count)
            if decoder is None:  # T5: num_decoder_layers null is num_layers
                self.out.notes.append(f"{f.decoder_layers} absent: as many as {f.layers[0]}")
            self.out.notes.append("layers = encoder + decoder layers")
        return count

    def _activation(self) -> None:
        f, out = self.family, self.out
        if f.act_fixed:
            name = f.act_fixed
            out.notes.append(f"activation {name}: {f.block} fixes it whatever the config says")
            if name == "swiglu_clamped":
                self._clamped()
                out.values["activation"] = name
                return
            spelling, gated = name, f.gated
        else:
            found = self.first(f.act)
            if found is None:
                raise ConfigError("--config", f"{out.path!r} has no activation: expected {' or '.join(f.act)}")
            spelling, gated = str(found[1]), f.gated
            if found[0] == "feed_forward_proj":  # T5Config: "gated-gelu" → gated gelu_new; "relu" → plain relu
                kind, _, act = spelling.rpartition("-")
                gated, spelling = kind == "gated", ("gelu_new" if spelling == "gated-gelu" else act)
            spelling = dict(f.act_rewrite).get(spelling, spelling)
        found_act = by_config_name(spelling)
        if found_act is None or (gated and found_act.gated is None):
            what = "a gated form" if found_act is not None else "an activation"
            self._require(("activation",), f"activation {spelling!r} of model_type {f.model_type!r} has no {what} in ffn-calc; give -a/--activation")
            return
        out.values["activation"] = found_act.gated if gated else found_act.name
        out.notes.append(f"{'gated (GLU)' if gated else 'plain two-matrix'} FFN with {found_act.name} ({spelling}): {f.block}")

    def _attention(self, d_model: int) -> None:
        """The attention's shape, for explain's share of the layer: heads, key/value heads (GQA's
        num_key_value_heads; Falcon's num_kv_heads or multi_query), head_dim (else d_model / heads;
        T5's d_kv); DeepSeek's MLA ranks where kv_lora_rank is given. Nothing when no head count is."""
        from ffn_calc.model.attention import Attention, mla

        found = self.first(HEAD_KEYS)
        if found is None:
            return
        heads = _size(*found)
        if not heads:
            raise ConfigError("--config", f"field {found[0]!r} must be at least 1 (the attention's query heads), got 0")
        if self.get("kv_lora_rank"):
            # q_lora_rank null (V2-Lite): no query compression, not the code's default
            q, kv, nope, rope, v = (0 if k in self.cfg and self.cfg[k] is None else self.get(k) or 0 for k in MLA_KEYS)
            attention = mla(heads, _size("q_lora_rank", q) if q else 0, _size("kv_lora_rank", kv), _size("qk_nope_head_dim", nope),
                            _size("qk_rope_head_dim", rope), _size("v_head_dim", v))  # fmt: skip
        else:
            for key in ("num_key_value_heads", "head_dim"):  # null means the code's default; 0 is no head at all
                if self.get(key) == 0:
                    raise ConfigError("--config", f"field {key!r} must be at least 1 (or null for its default), got 0")
            kv_heads = self.get("num_key_value_heads") or (self.get("num_kv_heads") if self.get("new_decoder_architecture") else None)
            kv_heads = kv_heads or (1 if self.get("multi_query") else heads)
            head_dim = self.get("head_dim") or self.get("d_kv") or d_model // heads
            attention = Attention(heads, _size("num_key_value_heads", kv_heads), _size("head_dim", head_dim))
        self.out.values["attention"] = attention

    def _clamped(self) -> None:
        """gpt-oss's activation constants are the registry's; another value is refused."""
        from ffn_calc.model.activations import CLAMPED_SWIGLU_ALPHA, CLAMPED_SWIGLU_LIMIT

        for key, want in (("swiglu_alpha", CLAMPED_SWIGLU_ALPHA), ("swiglu_limit", CLAMPED_SWIGLU_LIMIT)):
            value = self.get(key)
            if value != want:
                self._require(("activation",), f"{key} {value!r}: ffn-calc's swiglu_clamped has {key[7:]} {want}; give -a/--activation")

    def _require(self, options: tuple[str, ...], message: str) -> None:
        self.out.requires = tuple(dict.fromkeys(self.out.requires + options))
        self.out.refusal = self.out.refusal or message

    def _moe(self, d_model: int, layers: int | None) -> None:
        f, out = self.family, self.out
        m = f.moe
        assert m is not None
        found = self.first(tuple(m.experts.split("|")))  # Qwen3MoeConfig writes num_experts as num_local_experts
        experts, top_k, width = found and found[1], self.get(m.top_k), self.get(m.width)
        if experts is None or top_k is None or width is None:
            raise ConfigError("--config", f"{out.path!r} lacks {m.experts}, {m.top_k} or {m.width}, which {f.block} needs")
        out.values.update(experts=_size(m.experts, experts), top_k=_size(m.top_k, top_k), d_ff=_size(m.width, width))
        if m.router_bias:
            out.values["router_bias"] = True
            out.notes.append(f"the router's linear has a bias ({f.block})")
        shared = 0
        if m.shared:
            shared = _size(m.shared, self.get(m.shared) or 0)
        elif m.shared_width:
            shared_width = _size(m.shared_width, self.get(m.shared_width) or 0)
            if shared_width % width:
                raise ConfigError(
                    "--config",
                    f"{m.shared_width} {shared_width} is not a multiple of the expert width {width}: ffn-calc's shared experts are each {width} wide",
                )
            shared = shared_width // width
            if shared:
                out.notes.append(f"one shared expert {shared_width} wide counted as {shared} of width {width} (the same parameters and FLOPs)")
        if shared:
            out.values["shared_experts"] = shared
            if m.shared_gate:
                out.values["shared_expert_gate"] = True
                out.notes.append(f"shared experts gated by sigmoid(x·w_s), w_s (d_model, 1): {f.block}'s shared_expert_gate")
        if layers is None:
            return
        moe_layers = self._moe_layers(layers)
        dense = layers - moe_layers
        out.values["layers"] = moe_layers
        if dense:
            dense_width = self.get(m.dense_width)
            if dense_width is None:
                raise ConfigError("--config", f"{out.path!r} has {dense} dense layers but no {m.dense_width}, their width")
            out.values.update(dense_layers=dense, dense_d_ff=_size(m.dense_width, dense_width))
            out.notes.append(f"{dense} dense layers ({m.dense_width} {dense_width}) + {moe_layers} MoE layers")
        if not moe_layers:  # every layer is dense: the stack is a dense model, not a mixture with a phantom layer
            for key in ("experts", "top_k", "shared_experts", "shared_expert_gate", "router_bias"):
                out.values.pop(key, None)
            out.values.update(d_ff=out.values.pop("dense_d_ff"), layers=out.values.pop("dense_layers"))
            out.notes[-1] = f"all {dense} layers dense ({m.dense_width} {self.get(m.dense_width)}): no MoE layer, read as a dense model"

    def _moe_layers(self, layers: int) -> int:
        """How many of `layers` the code builds as MoE (families.INTERLEAVES), counted layer by layer."""
        from ffn_calc.catalogue.families import INTERLEAVES

        m = self.family.moe
        assert m is not None
        if layers > MAX_LAYERS:
            raise ConfigError("--config", f"{layers} layers is more than {MAX_LAYERS:,}")
        rule = m.interleave
        if rule == "all":
            is_moe = [True] * layers
        elif rule == "first_k_dense":
            first = _size("first_k_dense_replace", self.get("first_k_dense_replace") or 0)
            is_moe = [i >= first for i in range(layers)]
        elif rule == "sparse_step":
            step = _size("decoder_sparse_step", self.get("decoder_sparse_step"))
            only = self.get("mlp_only_layers") or []
            if not step or not isinstance(only, list):
                raise ConfigError("--config", f"decoder_sparse_step {step!r} and mlp_only_layers {only!r} do not place MoE layers")
            is_moe = [i not in only and (i + 1) % step == 0 for i in range(layers)]
        elif rule == "period_offset":
            period, offset = self.get("expert_layer_period"), self.get("expert_layer_offset")
            if not isinstance(period, int) or not isinstance(offset, int) or period < 1 or offset < 0:
                raise ConfigError("--config", f"expert_layer_period {period!r}, expert_layer_offset {offset!r} do not place MoE layers")
            is_moe = [i % period == offset for i in range(layers)]
        else:  # moe_layers
            listed = self.get("moe_layers")
            if listed is not None and not (isinstance(listed, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in listed)):
                raise ConfigError("--config", f"field 'moe_layers' must be a list of layer indices, got {shown(listed)}")
            if listed is None:
                step = _size("interleave_moe_layer_step", self.get("interleave_moe_layer_step"))
                listed = list(range(step - 1, layers, step)) if step else []
            is_moe = [i in listed for i in range(layers)]
        self.out.notes.append(f"{sum(is_moe)} of {layers} layers MoE: {INTERLEAVES[rule]}")
        return sum(is_moe)


def _read_unknown(cfg: dict[str, Any], model_type: str, out: ConfigFile, known: int) -> None:
    """A family not in the table: its sizes are read, its FFN's structure must come from flags."""
    moe = any(cfg.get(k) for k in EXPERT_HINTS)
    needs = ("activation", "bias") + (("experts", "top_k", "d_ff") if moe else ())
    out.requires, out.refusal = (
        needs,
        (
            f"model_type {model_type or '(none)'!r} is not one of the {known} families ffn-calc reads (catalogue/families.py); "
            f"describe its FFN with {', '.join(FLAGS[k] for k in needs)} (and --norm-type with --norm)"
        ),
    )
    out.notes.append(f"model_type {model_type!r} is not in the family table: the FFN's structure is the flags'")
    for keys, name in ((SIZE_KEYS, "d_model"), (FF_KEYS, "d_ff"), (LAYER_KEYS, "layers")):
        if name == "d_ff" and moe:
            continue
        key = next((k for k in keys if cfg.get(k) is not None), None)
        if key is not None:
            out.used[key] = cfg[key]
            out.values[name] = _size(key, cfg[key])
    if "d_model" not in out.values:
        raise ConfigError("--config", f"{out.path!r} has no hidden size: expected one of {', '.join(SIZE_KEYS)}")
    if "d_ff" not in out.values and not moe:
        out.missing = f"{out.path!r} has no FFN width: expected one of {', '.join(FF_KEYS)}; give it with --d-ff"


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
