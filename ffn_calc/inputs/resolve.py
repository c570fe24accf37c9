"""From what the user typed to an FFNConfig: built-in defaults, then a preset (--model), then a
config.json (--config), then the flags given on the command line, each overriding the last.
Standard library only; the CLI and the sweep's JSON lines both come through here."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ffn_calc.model.layer import ConfigError, FFNConfig, check_size, make_config

DEFAULTS: dict[str, Any] = {"activation": "relu", "bias": True, "layers": 1, "experts": 0, "top_k": 0, "shared_experts": 0}
# Options that a preset or config file may fill in; anything else comes from flags or defaults.
FILLABLE = ("d_model", "d_ff", "activation", "bias", "layers", "experts", "top_k", "shared_experts")


def layer_config(
    batch: int,
    seq_len: int,
    d_model: int | None = None,
    model: str | None = None,
    config_path: str | None = None,
    **given: Any,
) -> FFNConfig:
    """Merge defaults < preset < config.json < `given` (flags; None means not given)."""
    values: dict[str, Any] = dict(DEFAULTS)
    origin: list[str] = []
    d_ff_from = ""
    if model is not None:
        from ffn_calc.inputs.presets import PRESETS, lookup

        try:
            preset = lookup(model)
        except KeyError:
            raise ConfigError("--model", f"unknown model {model!r}; see `ffn-calc models` for the {len(PRESETS)} known ones") from None
        values.update({k: getattr(preset, k) for k in FILLABLE})
        d_ff_from = f"preset {preset.name}"
        origin.append(f"preset {preset.name}: {preset.source}" + (f" ({preset.note})" if preset.note else ""))
    if config_path is not None:
        from ffn_calc.inputs.config_json import read_config

        file = read_config(config_path)
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
    overridden = [k for k, v in given.items() if v is not None and k in values and values[k] != v and (model or config_path)]
    if overridden:
        origin.append(f"flags override: {', '.join(overridden)}")
    values.update({k: v for k, v in given.items() if v is not None})
    if values.get("experts") and not values.get("top_k"):
        raise ConfigError("--top-k", "a mixture of experts needs --top-k (experts per token)")
    d_ff = values.pop("d_ff", None)
    d_model_value = check_size("D_MODEL", values.pop("d_model"))
    cfg = make_config(batch, seq_len, d_model_value, d_ff, origin=tuple(origin), **values)
    if d_ff_from and given.get("d_ff") is None:
        cfg = replace(cfg, d_ff_rule=f"from {d_ff_from}: {cfg.d_ff}")
    return cfg
