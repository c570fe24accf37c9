"""ffn-calc: exact shapes, parameters, FLOPs and memory of a Transformer feed-forward layer.

The Python API (`ffn_calc.api`, and the README's "Use from Python"):

    >>> import ffn_calc
    >>> report = ffn_calc.analyze(ffn_calc.layer(3, 6, 8, d_ff=32))
    >>> report.totals.params, report.totals.flops
    (552, 19728)

Everything in `ffn_calc.api.__all__` is here; what the API loads on first use (the result types
of the commands other than `shapes`) is loaded here on first use too.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ffn_calc import api as _api  # noqa: E402 - the version first: the CLI reads it from here
from ffn_calc.api import *  # noqa: E402, F403

__all__ = list(_api.__all__)


def __getattr__(name: str) -> object:
    if name in __all__:
        return getattr(_api, name)  # the names api.py loads on first use
    raise AttributeError(f"module 'ffn_calc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
