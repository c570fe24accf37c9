"""ffn-calc: exact shapes, parameters, FLOPs and memory of a Transformer feed-forward layer.

The Python API (see `ffn_calc.api` and the README's "Use from Python"):

    >>> import ffn_calc
    >>> report = ffn_calc.analyze(ffn_calc.layer(3, 6, 8, d_ff=32))
    >>> report.totals.params, report.totals.flops
    (552, 19728)

The names below are loaded on first use, so that `import ffn_calc` (and the command line,
which lives in this package) starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ffn_calc.api import (
        GPU,
        GPUS,
        PRESETS,
        ConfigError,
        Explanation,
        FFNConfig,
        FFNReport,
        ModelList,
        Preset,
        Roofline,
        SweepResult,
        TrainingOptions,
        TrainingReport,
        VerifyRefused,
        VerifyReport,
        analyze,
        explain,
        layer,
        make_config,
        models,
        roofline,
        sweep,
        train,
        verify,
    )

__all__ = [
    "GPU", "GPUS", "PRESETS", "ConfigError", "Explanation", "FFNConfig", "FFNReport", "ModelList", "Preset", "Roofline",
    "SweepResult", "TrainingOptions", "TrainingReport", "VerifyRefused", "VerifyReport",
    "analyze", "explain", "layer", "make_config", "models", "roofline", "sweep", "train", "verify",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ffn_calc import api

        return getattr(api, name)
    raise AttributeError(f"module 'ffn_calc' has no attribute {name!r}")
