"""ffn-calc: exact shapes, parameters, FLOPs and memory of a Transformer feed-forward layer.

The Python API (`ffn_calc.api`, and the README's "Use from Python"):

    >>> import ffn_calc
    >>> report = ffn_calc.analyze(ffn_calc.layer(3, 6, 8, d_ff=32))
    >>> report.totals.params, report.totals.flops
    (552, 19728)

Everything in `ffn_calc.api.__all__` is here, loaded on first use: importing this package loads
nothing else, so that the command line, which lives in it, is up (and owns Ctrl-C) before the
API's modules load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ffn_calc.api import *  # noqa: F403
    from ffn_calc.api import __all__ as __all__


def _api() -> Any:
    import importlib  # not `from ffn_calc import api`, which would ask this __getattr__ for it

    api = importlib.import_module("ffn_calc.api")
    from ffn_calc import json_fields

    json_fields.SHOW.setdefault("markdown", _markdown)
    json_fields.SHOW.setdefault("rows", _rows)
    return api


def _markdown(result: Any) -> str:
    """A result's tables in a notebook: `-f markdown` (render/markdown.py; the core never sees rich)."""
    from ffn_calc.render import chunks

    return "".join(chunks(result, "markdown"))


def _rows(result: Any) -> list[dict[str, Any]]:
    """A result's rows as `-f csv` has them: the dicts of render.csv_rows."""
    from ffn_calc.render import csv_rows

    return csv_rows(result)


def __getattr__(name: str) -> object:
    api = _api()

    if name == "__all__":
        return list(api.__all__)
    if name in api.__all__:
        value = getattr(api, name)
        if name not in api.LAZY:
            globals()[name] = value  # the next read is a plain attribute
        return value
    raise AttributeError(f"module 'ffn_calc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_api().__all__))
