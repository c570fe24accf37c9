"""One field of a result's JSON, for `--get PATH`: a dotted path into the document that
`-f json` prints (`totals.params`, `model.active_params`, `stages.1.output_shape`), printed
bare for a shell script: a number as its digits, a string as itself, true/false/null as JSON
spells them, a list or an object as compact JSON."""

from __future__ import annotations

import json
from typing import Any

from ffn_calc.errors import ConfigError


def field(document: dict[str, Any], path: str) -> Any:
    """The value at `path` (keys and list indices joined by dots), or ConfigError naming the
    choices at the first step that does not exist."""
    value: Any = document
    walked: list[str] = []
    for step in path.split("."):
        if isinstance(value, dict):
            if step not in value:
                where = ".".join(walked) or "the JSON document"
                raise ConfigError("--get", f"{where} has no field {step!r}; choose one of {', '.join(value)}")
            value = value[step]
        elif isinstance(value, list):
            if not value:
                raise ConfigError("--get", f"{'.'.join(walked)} is an empty list; it has no item {step!r}")
            if not (step.isdigit() and int(step) < len(value)):
                raise ConfigError("--get", f"{'.'.join(walked)} is a list of {len(value)}; give an index from 0 to {len(value) - 1}, got {step!r}")
            value = value[int(step)]
        else:
            raise ConfigError("--get", f"{'.'.join(walked)} is a single value ({value!r}); it has no field {step!r}")
        walked.append(step)
    return value


def field_text(document: dict[str, Any], path: str) -> str:
    """The field at `path` as one line of text (see the module docstring)."""
    value = field(document, path)
    if isinstance(value, str):
        return value + "\n"
    return json.dumps(value, ensure_ascii=False, allow_nan=False) + "\n"
