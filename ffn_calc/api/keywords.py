"""The API's errors in its own keywords: `in_keywords` turns a ConfigError that names the command
line's flags (`--d-ff: ...`, `add --norm pre`) into one that names the API's keywords (`d_ff: ...`,
`add norm='pre'`), from the option specs (api/options.py): each flag's keyword is its spec's name,
or `_API_SPELLING`'s where the API's differs. Loaded only when an error is translated (a Python
caller's; the command line keeps its flags: api/__init__.py's `api_function`). Standard library only.
"""

from __future__ import annotations

import functools
import re
from contextvars import ContextVar
from typing import Any

from ffn_calc.api.options import SPECS
from ffn_calc.errors import ConfigError

_FLAGS_SPOKEN = ContextVar("ffn_calc_flags_spoken", default=False)

# Where the API's keyword is not the spec's name.
_API_SPELLING = {"no_input_grad": "input_grad=False", "max_memory": "max_memory_bytes", "measure_seconds": "seconds",
                 "stdin": "lines", "compare": "first and second", "gpu_file": "gpu_file"}  # fmt: skip


@functools.cache
def _spellings() -> dict[str, tuple[str, Any]]:
    """Every spelling (--d-ff, -a, --no-bias, BATCH) → (the keyword, the spec's type, or its choices)."""
    table: dict[str, tuple[str, Any]] = {}
    for spec in SPECS:
        keyword = _API_SPELLING.get(spec.name, spec.name)
        kind: Any = spec.choices or spec.type
        if spec.argument:
            table[spec.name.upper()] = (keyword, kind)
        for flags in spec.flags:
            on, _, off = flags.partition("/")
            for flag in on.split():
                switch = spec.type is bool and not off and keyword == spec.name  # --backward → backward=True
                table.setdefault(flag, (f"{keyword}=True" if switch else keyword, kind))
            if off:
                table.setdefault(on, (keyword, kind))
                table.setdefault(off, (f"{keyword}=False", kind))
        if spec.swept and spec.swept.flags:
            for flag in spec.swept.flags:
                table.setdefault(flag, (keyword, kind))
    return table


_SPELLED = r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z](?![\w-])|BATCH|SEQ_LEN|D_MODEL)(?: (\w[\w.]*))?"  # compiled when an error is translated


def in_words(text: str) -> str:
    """`text` with every flag named as the API's keyword."""
    return re.sub(_SPELLED, _word, text)


def _word(match: re.Match[str]) -> str:
    flag, value = match[1], match[2]
    known = _spellings().get(flag)
    if known is None:
        return match[0]
    keyword, kind = known
    if value is not None and "=" not in keyword and (isinstance(kind, tuple) and value in kind or re.fullmatch(r"\d[\d.]*", value)):
        return f"{keyword}={value if value[0].isdigit() else repr(value)}"  # --norm pre → norm='pre'
    return keyword + (f" {value}" if value is not None else "")


def in_keywords(error: ConfigError) -> ConfigError:
    """`error` as a Python caller reads it: the argument and every flag in the message as keywords."""
    argument = _spellings().get(error.argument, (error.argument, None))[0].split("=")[0]
    translated = ConfigError(argument, in_words(error.message))
    translated.flag = error.argument  # type: ignore[attr-defined]  # as the command line names it
    return translated
