"""Every spelling of every config.json field ffn-calc reads, read right (issue 20: a
`torch_dtype` of "torch.bfloat16" once became float32 silently)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ffn_calc.inputs.config_json import DTYPE_KEYS, FF_KEYS, LAYER_KEYS, SIZE_KEYS, read_config
from ffn_calc.model.activations import _ALL as ACTIVATIONS
from ffn_calc.model.dtypes import DTYPES

LLAMA = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2, "hidden_act": "silu"}
STORAGE = [name for name, d in DTYPES.items() if not (d.weights_only or d.compute_only or d.alias_of)]


def _write(tmp_path: Path, fields: dict[str, object]) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(fields))
    return str(path)


@pytest.mark.parametrize("key", DTYPE_KEYS)
@pytest.mark.parametrize("name", STORAGE)
@pytest.mark.parametrize("spelling", ["{}", "torch.{}"])
@pytest.mark.parametrize("nested", [False, True])
def test_every_dtype_spelling_is_read(tmp_path: Path, key: str, name: str, spelling: str, nested: bool) -> None:
    value = spelling.format(name)
    fields: dict[str, object] = {"model_type": "llava", "text_config": {**LLAMA, key: value}} if nested else {**LLAMA, key: value}
    out = read_config(_write(tmp_path, fields))
    assert out.values["dtype"] == name
    assert out.used[key] == value


def test_an_unknown_dtype_is_said_not_guessed(tmp_path: Path) -> None:
    out = read_config(_write(tmp_path, {**LLAMA, "torch_dtype": "torch.complex64"}))
    assert "dtype" not in out.values
    assert any("complex64" in n for n in out.notes)


@pytest.mark.parametrize(("keys", "name"), [(SIZE_KEYS, "d_model"), (FF_KEYS, "d_ff"), (LAYER_KEYS, "layers")])
def test_every_size_spelling_of_an_unknown_family_is_read(tmp_path: Path, keys: tuple[str, ...], name: str) -> None:
    base = {"model_type": "not-a-family", "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2}
    for key in keys:
        fields = {k: v for k, v in base.items() if k not in keys} | {key: 96}
        out = read_config(_write(tmp_path, fields))
        assert out.values[name] == 96, key
        assert out.used[key] == 96


@pytest.mark.parametrize("spelling", [s for a in ACTIVATIONS for s in a.config_names])
def test_every_activation_spelling_is_read(tmp_path: Path, spelling: str) -> None:
    want = next(a for a in ACTIVATIONS if spelling in a.config_names)
    out = read_config(_write(tmp_path, {**LLAMA, "hidden_act": spelling}))
    if want.gated is None:
        assert out.requires == ("activation",)
    else:
        assert out.values["activation"] == want.gated
