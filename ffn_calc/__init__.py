"""ffn-calc: exact shapes, parameters, FLOPs and memory of a Transformer feed-forward layer.

The Python API (`ffn_calc.api`, and the README's "Use from Python"):

    >>> import ffn_calc
    >>> report = ffn_calc.analyze(ffn_calc.layer(3, 6, 8, d_ff=32))
    >>> report.totals.params, report.totals.flops
    (552, 19728)

Everything in `ffn_calc.api.__all__` is here. What the API loads on first use (the result types
of the commands other than `shapes`) is loaded here on first use too, so that the command line,
which lives in this package, starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

from ffn_calc import api as _api  # noqa: E402 - the version first: the CLI reads it from here

if TYPE_CHECKING:
    from ffn_calc.api import *  # noqa: F403

__all__ = list(_api.__all__)
globals().update({name: getattr(_api, name) for name in __all__ if name not in _api.LAZY})


def __getattr__(name: str) -> object:
    if name in _api.LAZY:
        return getattr(_api, name)
    raise AttributeError(f"module 'ffn_calc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
