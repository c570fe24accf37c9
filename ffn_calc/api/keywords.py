"""The API speaks in its own keywords. Each public function (`api_function`): names itself as the API
does (`layer`, not its module's `layer_config`); refuses a misspelled keyword naming it with the
closest ones; and raises a ConfigError that names keywords (`d_ff: ...`, `add norm='pre'`) where
the command line names flags (`--d-ff: ...`, `add --norm pre`). The command line marks its calls
(`spoken_as_flags`), so that its errors keep the flags. The translation comes from the option
specs (api/options.py): each flag's keyword is its spec's name, or where the API's keyword differs,
the spec's `keyword`. Standard library only.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from ffn_calc.api.options import SPECS
from ffn_calc.errors import ConfigError, VerifyRefused, closest
from ffn_calc.inputs.resolve import KEYWORDS

_FLAGS_SPOKEN = ContextVar("ffn_calc_flags_spoken", default=False)

# Where the API's keyword is not the spec's name.
_API_SPELLING = {"no_input_grad": "input_grad=False", "max_memory": "max_memory_bytes", "measure_seconds": "seconds",
                 "stdin": "lines", "compare": "first and second", "gpu_file": "gpu_file"}  # fmt: skip


def _table() -> dict[str, tuple[str, Any]]:
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


_TABLE = _table()
_SPELLED = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z](?![\w-])|BATCH|SEQ_LEN|D_MODEL)(?: (\w[\w.]*))?")


def _word(match: re.Match[str]) -> str:
    flag, value = match[1], match[2]
    known = _TABLE.get(flag)
    if known is None:
        return match[0]
    keyword, kind = known
    if value is not None and "=" not in keyword and (isinstance(kind, tuple) and value in kind or re.fullmatch(r"\d[\d.]*", value)):
        return f"{keyword}={value if value[0].isdigit() else repr(value)}"  # --norm pre → norm='pre'
    return keyword + (f" {value}" if value is not None else "")


def in_keywords(error: ConfigError) -> ConfigError:
    """`error` as a Python caller reads it: the argument and every flag in the message as keywords."""
    argument = _TABLE.get(error.argument, (error.argument, None))[0].split("=")[0]
    translated = ConfigError(argument, _SPELLED.sub(_word, error.message))
    translated.flag = error.argument  # type: ignore[attr-defined]  # as the command line names it
    return translated


@contextmanager
def spoken_as_flags() -> Iterator[None]:
    """Within: the API's errors name the command line's flags (the command line's calls)."""
    token = _FLAGS_SPOKEN.set(True)
    try:
        yield
    finally:
        _FLAGS_SPOKEN.reset(token)


P = ParamSpec("P")
R = TypeVar("R")


def api_function(name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Make `fn` a function of the API (see the module's docstring); `name`: the API's name for it."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        called = name or fn.__name__
        parameters = inspect.signature(fn).parameters
        named = [p for p, v in parameters.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]
        taken = set(named) | (set(KEYWORDS) if any(v.kind == v.VAR_KEYWORD for v in parameters.values()) else set())

        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            for key in kwargs:
                if key not in taken:
                    raise TypeError(f"{called}() got an unexpected keyword argument {key!r}; {closest(key, sorted(taken))}")
            if _FLAGS_SPOKEN.get():
                return fn(*args, **kwargs)
            try:
                return fn(*args, **kwargs)
            except ConfigError as e:
                raise in_keywords(e) from None
            except VerifyRefused as e:
                raise VerifyRefused(_SPELLED.sub(_word, str(e))) from None

        call.__name__ = call.__qualname__ = called
        return call

    return wrap
