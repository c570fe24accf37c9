"""The columns a sweep can print, from the result's own fields, apart from the sweep itself so
that the command line can list them in its help without loading the sweep machinery."""

from __future__ import annotations

from dataclasses import fields
from functools import cache

from ffn_calc.model.forward import StackTotals, Totals
from ffn_calc.model.layer import FFNConfig

CONFIG_COLUMNS = (
    "batch", "seq_len", "tokens", "d_model", "d_ff", "activation", "bias", "norm", "norm_type", "dtype",
    "experts", "top_k", "shared_experts", "layers",
)  # fmt: skip
TOTAL_COLUMNS = tuple(f.name for f in fields(Totals))  # one layer's totals, as the JSON's `totals`
MODEL_COLUMNS = tuple(f"model_{f.name}" for f in fields(StackTotals) if f.name != "layers")  # the JSON's `model`
# Columns of what was asked rather than what was computed (row() fills them in): `model`, the
# preset's name (empty without one); `d_ff_given`, --d-ff as given, a rule (4x, glu) or a number.
GIVEN_COLUMNS = ("model", "d_ff_given")
# A training step's columns (the row's `train` figures, one rank's): the options that shape it as given (empty
# when not), its totals (`train_…`, the JSON's `totals` of `train`), one data-parallel rank's share (`dp_…`, its
# `data_parallel`; empty without --dp) and the pipeline's scalars (`pp_…`, its `pipeline`; empty without --pp)
# with the busiest stage's peak.
TRAINING_GIVEN = ("dp", "zero", "pp", "microbatches", "schedule")
# Every column but the training step's, which need its dataclasses (columns_with_training).
LAYER_COLUMNS = (("model",) + CONFIG_COLUMNS[:5] + ("d_ff_given",) + CONFIG_COLUMNS[5:] + TOTAL_COLUMNS + MODEL_COLUMNS + ("peak_stage",)
                 + TRAINING_GIVEN)  # fmt: skip
_INT_FIELDS = {f.name for f in fields(FFNConfig) if f.type == "int"}
TRAINING_PREFIXES = ("train_", "dp_", "pp_")


@cache
def _training() -> dict[str, tuple[str, ...]]:
    """The training step's columns, from its dataclasses: imported only when a sweep asks for
    them (the model's training modules cost every command's start-up a few milliseconds)."""
    from ffn_calc.model.data_parallel import DataParallel
    from ffn_calc.model.pipeline import Pipeline
    from ffn_calc.model.step_totals import TrainingTotals

    train = tuple(f"train_{f.name}" for f in fields(TrainingTotals))
    dp = tuple(f"dp_{f.name}" for f in fields(DataParallel) if f.type.startswith("int") and f.name not in ("ranks", "zero"))
    pp = tuple(f"pp_{f.name}" for f in fields(Pipeline) if f.type in ("int", "float") and f.name not in ("stages", "microbatches"))
    training = train + dp + pp + ("pp_busiest_stage_peak_bytes",)
    columns = LAYER_COLUMNS + training
    # Columns with a number in every row (what --chart can draw): the totals, and the whole-number sizes.
    numbers = tuple(c for c in columns if c in TOTAL_COLUMNS + MODEL_COLUMNS + train or c == "tokens" or c in _INT_FIELDS)
    return {"TRAINING_COLUMNS": training, "COLUMNS": columns, "NUMBER_COLUMNS": numbers}


def __getattr__(name: str) -> tuple[str, ...]:
    """COLUMNS, TRAINING_COLUMNS and NUMBER_COLUMNS, made on first use (PEP 562)."""
    if name in ("COLUMNS", "TRAINING_COLUMNS", "NUMBER_COLUMNS"):
        return _training()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEFAULT_COLUMNS = ("batch", "seq_len", "d_model", "d_ff", "params", "flops", "matmul_flops_per_token", "weight_bytes", "peak_bytes")
# Added to the default when a sweep has a data-parallel or a pipeline axis (or flag): its per-rank figures
DP_DEFAULT = ("dp_peak_bytes", "dp_sent_bytes")
PP_DEFAULT = ("pp_bubble_fraction", "pp_busiest_stage_peak_bytes")

PARALLEL_FROM = 20_000  # combinations; below this, starting workers costs more than it saves

__all__ = [
    "CONFIG_COLUMNS", "DEFAULT_COLUMNS", "DP_DEFAULT", "GIVEN_COLUMNS", "LAYER_COLUMNS", "MODEL_COLUMNS",
    "PARALLEL_FROM", "PP_DEFAULT", "TOTAL_COLUMNS", "TRAINING_GIVEN", "TRAINING_PREFIXES",
]  # fmt: skip
