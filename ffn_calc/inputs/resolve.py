"""From what the user typed to an FFNConfig: built-in defaults, then a preset (--model), then a
config.json (--config), then the flags given on the command line, each overriding the last.
Standard library only; the CLI and the sweep's JSON lines both come through here."""

from __future__ import annotations

import inspect
import typing
from dataclasses import fields, replace
from typing import Any

from ffn_calc.errors import ConfigError, closest
from ffn_calc.model.layer import FFNConfig, check_size, make_config


def layer_config(
    batch: int,
    seq_len: int,
    d_model: int | None = None,
    *,
    model: str | None = None,
    config: str | None = None,
    d_ff: str | int | None = None,
    multiple_of: int | None = None,
    ffn_dim_multiplier: float | None = None,
    activation: str | None = None,
    bias: bool | None = None,
    fused: bool | None = None,
    norm: str | None = None,
    norm_type: str | None = None,
    dtype: str | None = None,
    weight_dtype: str | None = None,
    group_size: int | None = None,
    layers: int | None = None,
    dense_layers: int | None = None,
    dense_d_ff: int | None = None,
    experts: int | None = None,
    top_k: int | None = None,
    shared_experts: int | None = None,
    shared_expert_gate: bool | None = None,
    capacity_factor: float | None = None,
) -> FFNConfig:
    """One layer from what a user says about it: defaults < the preset `model` < the
    config.json at path `config` < the flags (keywords; None means not given). `d_ff` is as
    `--d-ff` takes it: None (4 × d_model), N, "Mx" or "glu". `norm_type` (layer, rms) needs
    `norm` pre or post; without it a preset's or config.json's kind is kept. `dtype` defaults to
    the model's (a preset's or config.json's torch_dtype), else float32; `weight_dtype` stores
    the weight matrices apart (int4 with `group_size` scales, float8). `layers` counts the layers
    of this FFN; `dense_layers` more have a dense FFN of width `dense_d_ff` (a mixed stack; a
    preset's or config.json's, else none). The command line's options that describe the layer
    (api/options.py, the sweep's JSON-line keys too) are one spec per keyword here, checked when
    that module loads."""
    given = {k: v for k, v in locals().items() if k in _FLAGS}  # first: locals() is the parameters here
    _check_types({"model": model, "config": config, **given})
    values: dict[str, Any] = {k: v for k, v in DEFAULTS.items() if k in FILLABLE}
    origin: list[str] = []
    d_ff_from = ""
    if model is not None:
        from ffn_calc.catalogue import presets  # data, loaded only when a preset is named

        try:
            preset = presets.lookup(model)
        except KeyError:
            hint = closest(model.strip().lower(), presets.PRESETS)
            raise ConfigError("--model", f"unknown model {model!r}; {hint} (`ffn-calc models` lists all {len(presets.PRESETS)})") from None
        values.update({k: getattr(preset, k) for k in FILLABLE + MODEL_ONLY if getattr(preset, k) is not None})
        d_ff_from = f"preset {preset.name}"
        origin.append(f"preset {preset.name}: {preset.source}" + (f" ({preset.note})" if preset.note else ""))
        if preset.dtype is not None:
            origin.append(f"dtype {preset.dtype} from preset {preset.name}: its config.json's torch_dtype (--dtype overrides)")
    if config is not None:
        from ffn_calc.inputs.config_json import read_config  # json and pathlib: only when a file is read

        file = read_config(config)
        if any(given[k] is None for k in file.requires):
            raise ConfigError("--config", file.refusal)
        if file.missing and d_ff is None:
            raise ConfigError("--config", file.missing)
        values.update(file.values)
        d_ff_from = "config.json" if "d_ff" in file.values else d_ff_from
        used = ", ".join(f"{k}={v}" for k, v in file.used.items())
        origin.append(f"config {file.path}: used {used}")
        origin += [f"config: {note}" for note in file.notes]
        if file.ignored:
            origin.append(f"config: ignored {', '.join(file.ignored)}")
    if d_model is not None:
        values["d_model"] = d_model
    elif "d_model" not in values:
        raise ConfigError("D_MODEL", "missing: give it after BATCH and SEQ_LEN, or use --model or --config")
    overridden = [k for k, v in given.items() if v is not None and k in values and values[k] != v and (model or config)]
    if overridden:
        origin.append(f"flags override: {', '.join(overridden)}")
    values.update({k: v for k, v in given.items() if v is not None})
    if shared_expert_gate is None and not values.get("shared_experts"):
        values["shared_expert_gate"] = False  # a preset's or config.json's gate goes with its shared experts
    if dense_d_ff is not None and not values.get("dense_layers"):
        raise ConfigError("--dense-d-ff", "is the width of the dense layers; add --dense-layers N")
    if not values.get("dense_layers"):
        values["dense_d_ff"] = 0  # --dense-layers 0 drops a preset's dense layers, and their width
    if norm_type is not None and values.get("norm", "none") == "none":
        raise ConfigError("--norm-type", f"{norm_type!r} applies to the norm that --norm pre or post adds; add --norm pre (or post)")
    if values.get("experts") and not values.get("top_k"):
        raise ConfigError("--top-k", "a mixture of experts needs --top-k (experts per token)")
    if "attention" in values:
        from ffn_calc.model.attention import attention_of

        values["attention"] = attention_of(values["attention"])
    d_ff_value = values.pop("d_ff", None)
    d_model_value = check_size("D_MODEL", values.pop("d_model"))
    cfg = make_config(batch, seq_len, d_model_value, d_ff_value, origin=tuple(origin), **values)
    if d_ff_from and d_ff is None:
        cfg = replace(cfg, d_ff_rule=f"from {d_ff_from}: {cfg.d_ff}")
    return cfg


_SIGNATURE = inspect.signature(layer_config, eval_str=True)
_PARAMETERS = tuple(_SIGNATURE.parameters)
KEYWORDS = _PARAMETERS  # every keyword of layer_config, in order (api/options.py has a spec for each)


def _check_types(values: dict[str, Any]) -> None:
    """Each option of the type its annotation says (JSON lines and the API can pass anything):
    a bool is no number here, a whole number is a float."""
    for name, value in values.items():
        if value is None:
            continue
        want = _SIGNATURE.parameters[name].annotation
        kinds = [k for k in typing.get_args(want) if k is not type(None)] or [want]
        ok = any(isinstance(value, k) and not (isinstance(value, bool) and k is not bool) for k in kinds)
        ok = ok or (float in kinds and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            what = " or ".join({"str": "text", "int": "a whole number", "float": "a number", "bool": "true or false"}[k.__name__] for k in kinds)
            raise ConfigError("--" + name.replace("_", "-"), f"must be {what}, got {value!r}")


_FLAGS = _PARAMETERS[5:]  # after batch, seq_len, d_model (the sizes) and model, config (the sources)
# What a preset or a config.json may fill in: the fields a preset has (inputs/presets.py).
FILLABLE = (
    "d_model", "d_ff", "activation", "bias", "layers", "experts", "top_k", "shared_experts", "norm_type", "dtype", "shared_expert_gate",
    "dense_layers", "dense_d_ff",
)  # fmt: skip
# What a preset or a config.json says about the model that no flag sets: gpt-oss's router bias, the attention's shape.
MODEL_ONLY = ("router_bias", "attention")
# The defaults of the options a preset or config file may fill in (FFNConfig's own), so that
# "flags override" names real overrides.
DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(FFNConfig) if f.name in _FLAGS and f.name != "d_ff" and f.init}
