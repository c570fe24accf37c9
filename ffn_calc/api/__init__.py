"""The Python API: everything the command line does, as functions that return the same frozen
dataclasses the CLI renders. Each result has `to_dict()`, equal to the CLI's `-f json`.

    >>> import ffn_calc
    >>> cfg = ffn_calc.layer(1, 512, model="bert-base")
    >>> ffn_calc.analyze(cfg).totals.params
    4722432

Counts are exact Python integers; bad input raises `ConfigError` (its `argument` names the
option as the CLI spells it). Only `verify` imports NumPy. What a function needs beyond the
layer and its forward pass is imported when it is called, so that the command line, built on
this module, starts fast.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ffn_calc.errors import ConfigError, VerifyRefused
from ffn_calc.inputs.resolve import KEYWORDS, layer_config
from ffn_calc.model.forward import FFNReport, analyze
from ffn_calc.model.layer import FFNConfig, make_config

# --- the API speaks in its own keywords -------------------------------------------------------
# Each public function names itself as the API does (`layer`, not its module's `layer_config`),
# refuses a misspelled keyword naming the closest ones, and raises errors that name its keywords
# (`d_ff: ...`, `add norm='pre'`) where the command line names flags (api/keywords.py, loaded only
# to translate). The command line marks its calls (`spoken_as_flags`), so its errors keep the flags.

_FLAGS_SPOKEN = ContextVar("ffn_calc_flags_spoken", default=False)
P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def spoken_as_flags() -> Iterator[None]:
    """Within: the API's errors name the command line's flags (the command line's calls)."""
    token = _FLAGS_SPOKEN.set(True)
    try:
        yield
    finally:
        _FLAGS_SPOKEN.reset(token)


def api_function(name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Make `fn` a function of the API (see above); `name`: the API's name for it."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        called = name or fn.__name__

        @functools.cache
        def keywords() -> frozenset[str]:  # worked out on the first call, not on every start-up
            import inspect

            parameters = inspect.signature(fn).parameters
            named = {p for p, v in parameters.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)}
            return frozenset(named | (set(KEYWORDS) if any(v.kind == v.VAR_KEYWORD for v in parameters.values()) else set()))

        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            taken = keywords()
            for key in kwargs:
                if key not in taken:
                    from ffn_calc.errors import closest

                    raise TypeError(f"{called}() got an unexpected keyword argument {key!r}; {closest(key, sorted(taken))}")
            if _FLAGS_SPOKEN.get():
                return fn(*args, **kwargs)
            try:
                return fn(*args, **kwargs)
            except ConfigError as e:
                from ffn_calc.api.keywords import in_keywords

                raise in_keywords(e) from None
            except VerifyRefused as e:
                from ffn_calc.api.keywords import in_words

                raise VerifyRefused(in_words(str(e))) from None

        call.__name__ = call.__qualname__ = called
        return call

    return wrap


layer = api_function("layer")(layer_config)

if TYPE_CHECKING:
    from ffn_calc.api.model_list import ModelList
    from ffn_calc.api.sweep_executor import SweepResult
    from ffn_calc.catalogue.gpus import GPUS, GPUList
    from ffn_calc.catalogue.presets import PRESETS, Preset
    from ffn_calc.measure.report import MeasuredRoofline
    from ffn_calc.model.roofline import GPU, Roofline
    from ffn_calc.model.training import TrainingOptions, TrainingReport
    from ffn_calc.prose.comparison import Comparison
    from ffn_calc.prose.explanation import Explanation
    from ffn_calc.verifier.report import VerifyReport

__all__ = [
    "GPU", "GPUS", "GPUList", "PRESETS", "Comparison", "ConfigError", "Explanation", "FFNConfig", "FFNReport", "MeasuredRoofline", "ModelList",
    "Preset", "Roofline", "SweepResult", "TrainingOptions", "TrainingReport", "VerifyRefused", "VerifyReport",
    "analyze", "compare", "explain", "gpus", "layer", "make_config", "measure_roofline", "models", "roofline", "sweep", "train", "verify",
]  # fmt: skip

# Names loaded on first use: name → the module that defines it.
LAZY = {
    "ModelList": "ffn_calc.api.model_list",
    "PRESETS": "ffn_calc.catalogue.presets",
    "Preset": "ffn_calc.catalogue.presets",
    "SweepResult": "ffn_calc.api.sweep_executor",
    "Explanation": "ffn_calc.prose.explanation",
    "Comparison": "ffn_calc.prose.comparison",
    "GPU": "ffn_calc.model.roofline",
    "MeasuredRoofline": "ffn_calc.measure.report",
    "GPUList": "ffn_calc.catalogue.gpus",
    "GPUS": "ffn_calc.catalogue.gpus",
    "Roofline": "ffn_calc.model.roofline",
    "TrainingOptions": "ffn_calc.model.training",
    "TrainingReport": "ffn_calc.model.training",
    "VerifyReport": "ffn_calc.verifier.report",
}


def __getattr__(name: str) -> Any:
    if name in LAZY:
        import importlib

        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'ffn_calc.api' has no attribute {name!r}")


@api_function()
def train(
    cfg: FFNConfig,
    *,
    recompute: str = "none",
    optimizer: str = "adam",
    mixed_precision: bool | None = None,
    dropout: bool = False,
    input_grad: bool = True,
    tp: int = 1,
    sequence_parallel: bool = False,
    ep: int = 1,
    dp: int = 1,
    zero: str = "0",
    node_size: int | None = None,
    pp: int = 1,
    microbatches: int | None = None,
    schedule: str | None = None,
    chunks: int | None = None,
) -> TrainingReport:
    """One training step of the layer (of one rank with `tp` or `ep` > 1), as `ffn-calc train`;
    `input_grad=False` for a first layer, whose input needs no gradient. With `dp` > 1, the
    report's `data_parallel` holds one data-parallel rank's share, sharded as `zero` says
    (0-3, or FSDP's no_shard, shard_grad_op, full_shard, hybrid_shard within `node_size` ranks).
    With `pp` > 1, its `pipeline` holds the stack over `pp` stages: `microbatches` (default 1),
    `schedule` gpipe, 1f1b (default) or interleaved with `chunks` per stage (default 2)."""
    if cfg.weight_packing is not None:
        raise ConfigError(
            "--weight-dtype", f"training with {cfg.weight_dtype} weights is not modelled (weight-only storage for serving); drop --weight-dtype"
        )
    from ffn_calc.model.training import TrainingOptions
    from ffn_calc.model.training import train as run

    options = TrainingOptions(recompute, optimizer, mixed_precision, dropout, input_grad)
    schedule = schedule.strip().lower() if schedule is not None else None
    return run(cfg, options, tp, sequence_parallel, ep, dp, zero.strip().lower(), node_size, pp, microbatches, schedule, chunks)


@api_function()
def roofline(
    cfg: FFNConfig,
    gpu: str | GPU | None = None,
    *,
    peak_tflops: float | None = None,
    bandwidth_gbs: float | None = None,
    tp: int = 1,
    ep: int = 1,
    gpu_file: str | None = None,
) -> Roofline:
    """Each GEMM on the roofline of `gpu` (a preset name, a GPU, or a custom peak and
    bandwidth), prefill and decode, as `ffn-calc roofline`; with `tp` or `ep` > 1, one rank's.
    `gpu_file`: a device measured and saved by `roofline --measure -f json` instead."""
    from ffn_calc.inputs.hardware import pick_gpu
    from ffn_calc.model.parallel import tensor_parallel
    from ffn_calc.model.roofline import GPU
    from ffn_calc.model.roofline import roofline as run

    if gpu_file is not None:
        if gpu is not None or peak_tflops is not None or bandwidth_gbs is not None:
            raise ConfigError("--gpu-file", "is the hardware: give it alone, without --gpu or --peak-tflops/--bandwidth-gbs")
        from ffn_calc.measure.saved import load_measured_gpu

        gpu = load_measured_gpu(gpu_file, cfg.dtype)
    device = gpu if isinstance(gpu, GPU) else pick_gpu(gpu, peak_tflops, bandwidth_gbs)
    if tp > 1:
        cfg = tensor_parallel(cfg, tp).per_rank
    return run(cfg, device, ep)


@api_function()
def measure_roofline(
    cfg: FFNConfig,
    *,
    device: str = "auto",
    seconds: float | None = None,
    tp: int = 1,
    progress: Callable[[str], Any] | None = None,
) -> MeasuredRoofline:
    """The roofline measured on this machine, as `ffn-calc roofline --measure`: the device's
    best matmul rate for the layer's dtype and its STREAM bandwidth, then each GEMM of the layer
    (of one rank with `tp` > 1) timed at its prefill and decode shapes beside the bound those two
    figures give, and a sweep of M across the predicted crossover. `device`: auto (a CUDA device
    when PyTorch sees one, else the CPU), cpu or cuda; `seconds`: the budget the repeats are
    fitted into (5 by default). Imports NumPy (or PyTorch); `progress(step)` is told each step."""
    from ffn_calc.measure.run import DEFAULT_BUDGET
    from ffn_calc.measure.run import measure_roofline as run
    from ffn_calc.model.parallel import tensor_parallel

    if tp > 1:
        cfg = tensor_parallel(cfg, tp).per_rank
    return run(cfg, device=device, budget_seconds=DEFAULT_BUDGET if seconds is None else seconds, progress=progress)


@api_function()
def explain(cfg: FFNConfig) -> Explanation:
    """The formulas with the numbers substituted, the data flow, and the interview questions
    answered with this layer's numbers."""
    from ffn_calc.prose.explanation import explain as run

    return run(analyze(cfg))


@api_function()
def compare(batch: int, seq_len: int, first: str, second: str, d_model: int | None = None, **options: Any) -> Comparison:
    """Two layers side by side, as `ffn-calc explain BATCH SEQ_LEN [D_MODEL] --compare A B`.

    Two presets (`first`, `second`: model names; `options`, the other layer options, apply to
    both), or two activations at equal parameters for the layer that `d_model` and `options`
    describe: a plain FFN at d_ff = 4 × d_model, a gated one at the width that keeps those
    parameters, LLaMA's int(2·4·d_model/3) (`d_ff="glu"`, rounded up to `multiple_of` and scaled
    by `ffn_dim_multiplier` when given); or the same layer with two norm placements (none, pre,
    post) or two kinds of norm (layer, rms; placed as `norm` says, else pre)."""
    from ffn_calc.catalogue.presets import PRESETS
    from ffn_calc.errors import closest
    from ffn_calc.model.activations import ACTIVATIONS, GATED_FORMS
    from ffn_calc.model.layer import NORM_PLACEMENTS
    from ffn_calc.model.norms import NORM_TYPES
    from ffn_calc.prose.comparison import compare as run

    pair = (first.strip().lower(), second.strip().lower())
    kinds = (PRESETS, ACTIVATIONS, NORM_PLACEMENTS, NORM_TYPES)
    for name in pair:
        if not any(name in kind for kind in kinds):
            choices = [c for kind in kinds for c in kind]
            raise ConfigError("--compare", f"{name!r} is not a preset, an activation, a norm placement or a kind of norm; {closest(name, choices)}")
    given = {k: v for k, v in options.items() if v is not None}
    if all(name in ACTIVATIONS for name in pair):
        if "d_ff" in given:
            raise ConfigError("--d-ff", "two activations are compared at equal parameters (4 × d_model plain, the GLU rule gated); drop --d-ff")
        glu_only = ("multiple_of", "ffn_dim_multiplier", "fused")
        sides = tuple(
            layer(batch, seq_len, d_model, **{k: v for k, v in given.items() if name in GATED_FORMS or k not in glu_only},
                  activation=name, d_ff="glu" if name in GATED_FORMS else "4x")
            for name in pair
        )  # fmt: skip
        rule = "equal parameters: a plain FFN at d_ff = 4 × d_model, a GLU at LLaMA's parameter-matched width; " + "; ".join(
            f"{c.activation}: {c.d_ff_rule}" for c in sides
        )
        labels = (f"{sides[0].activation}, d_ff {sides[0].d_ff:,}", f"{sides[1].activation}, d_ff {sides[1].d_ff:,}")
    elif all(name in PRESETS for name in pair):
        for key, flag in (("model", "--model"), ("config", "--config")):
            if key in given:
                raise ConfigError(flag, "two presets are compared as published; drop it or compare two activations instead")
        if d_model is not None:
            raise ConfigError("D_MODEL", "comes from each preset when two presets are compared; drop it")
        sides = tuple(layer(batch, seq_len, model=name, **given) for name in pair)
        from ffn_calc.inputs.resolve import DEFAULTS

        changed = {k: v for k, v in given.items() if DEFAULTS.get(k, v is None) != v}  # the flags that change a preset
        rule = "two presets as published" + (f", with {', '.join(f'{k}={v}' for k, v in changed.items())}" if changed else "")
        labels = pair
    elif all(name in NORM_PLACEMENTS for name in pair):
        if given.pop("norm", "none") != "none":
            raise ConfigError("--norm", "is what --compare varies here; drop it")
        sides = tuple(layer(batch, seq_len, d_model, **{k: v for k, v in given.items() if name != "none" or k != "norm_type"}, norm=name)
                      for name in pair)  # fmt: skip
        rule = "the same layer, its residual and norm placed two ways"
        labels = (f"norm {pair[0]}", f"norm {pair[1]}")
    elif all(name in NORM_TYPES for name in pair):
        if "norm_type" in given:
            raise ConfigError("--norm-type", "is what --compare varies here; drop it")
        placed = given.pop("norm", "none")
        placed = "pre" if placed == "none" else placed
        sides = tuple(layer(batch, seq_len, d_model, **given, norm=placed, norm_type=name) for name in pair)
        rule = f"the same layer with two kinds of norm, placed {placed}"
        labels = (NORM_TYPES[pair[0]].label, NORM_TYPES[pair[1]].label)
    else:
        raise ConfigError(
            "--compare",
            "give two of one kind — presets (llama-2-7b mistral-7b), activations (relu swiglu), norm placements (pre post) "
            f"or kinds of norm (layer rms) — not {first} and {second}",
        )
    return run(sides[0], sides[1], (labels[0], labels[1]), rule)


@api_function()
def gpus() -> GPUList:
    """Every GPU preset with its dense datasheet peaks and bandwidth, as `ffn-calc gpus`."""
    from ffn_calc.catalogue.gpus import gpu_list

    return gpu_list()


@api_function()
def models() -> ModelList:
    """Every preset with its FFN counted, as `ffn-calc models`."""
    from ffn_calc.api.model_list import model_catalogue

    return model_catalogue()


@api_function()
def sweep(
    batch: int | str | list[int] | None = None,
    seq_len: int | str | list[int] | None = None,
    *,
    sizes: dict[str, int | str | list[int]] | None = None,
    lines: Iterable[str] | None = None,
    stream: bool = False,
    on_error: Callable[[int, str], Any] | None = None,
    columns: str | None = None,
    chart: str | None = None,
    jobs: int = 1,
    zero: str | None = None,
    schedule: str | None = None,
    **fixed: Any,
) -> SweepResult:
    """A sweep, as `ffn-calc sweep`: one row per configuration. Its rows can be read as often as
    you like: a grid is computed again on each read (a sweep of millions of rows is never kept
    in memory), JSON lines from a one-pass source (a file, a generator) are read once and their
    rows kept, unless `stream=True`, which reads them once and keeps nothing (the command line's
    way for millions of lines; the rows can then be read only once).

    A grid: `batch` (default 1), `seq_len` and any of `sizes` (d_model, d_ff, experts, top_k,
    layers), each a number, a list of numbers, or text as the CLI takes it ("1,8,32",
    "128:8192:x2"; d_ff also a rule, "4x" or "glu"); `fixed` holds the other layer options
    (`ffn_calc.layer`'s keywords), where a model, activation or dtype given as "a,b,c" is an axis
    too. Or, with `lines`, one row per JSON line (a `line` column first), `fixed` holding for
    every line but a line's own keys winning; a bad line goes to `on_error(line number,
    message)` and the sweep carries on (without `on_error`, it raises ConfigError). `columns`:
    the columns to print ("batch,params,..."); `chart`: a column of numbers drawn as well;
    `jobs`: worker processes for a large sweep (the rows are the same, in the same order).
    A grid also sweeps the training step: `sizes` may hold dp, pp and microbatches, and `zero`
    and `schedule` are a name or "a,b"; the `train_…`, `dp_…` and `pp_…` columns are `train`'s
    figures (one rank's) for each row."""
    from ffn_calc.api.options import SIZE_AXES, SWEPT
    from ffn_calc.api.sweep_executor import grid_sweep, lines_sweep

    axes: dict[str, Any] = {"batch": batch, "seq_len": seq_len, **(sizes or {})}
    unknown = sorted(set(axes) - set(SIZE_AXES))
    if unknown:
        raise ConfigError(unknown[0], f"is not a size a sweep varies; sizes takes {', '.join(SIZE_AXES[2:])}")
    fixed |= {k: v for k, v in (("zero", zero), ("schedule", schedule)) if v is not None}
    for spec in SWEPT:  # a name of a fixed set (activation, dtype) in any case, as the command line takes it
        if spec.choices and isinstance(fixed.get(spec.name), str):
            fixed[spec.name] = fixed[spec.name].strip().lower()
    text: dict[str, str | None] = {
        k: v if isinstance(v, str) or v is None else ",".join(map(str, v if isinstance(v, list) else [v])) for k, v in axes.items()
    }
    if lines is not None:
        if any(v is not None for v in text.values()):
            raise ConfigError("--stdin", "takes every size from the JSON lines; drop the size options")
        return lines_sweep(lines, on_error or _raise_line_error, columns, chart, jobs, fixed, once=stream)
    return grid_sweep(text, fixed, columns, chart, jobs)


def _raise_line_error(number: int, message: str) -> None:
    from ffn_calc.api.keywords import in_keywords

    raise in_keywords(ConfigError(f"line {number}", message))


@api_function()
def verify(
    cfg: FFNConfig,
    *,
    seed: int = 0,
    max_memory_bytes: int | None = None,
    backward: bool = False,
    input_grad: bool = True,
    tp: int = 1,
    ep: int = 1,
    sequence_parallel: bool = False,
    progress: Callable[[int, int, str], Any] | None = None,
    recompute: str = "none",
    optimizer: str = "adam",
    mixed_precision: bool | None = None,
    dropout: bool = False,
    dp: int = 1,
    zero: str = "0",
    node_size: int | None = None,
    pp: int = 1,
    microbatches: int | None = None,
    schedule: str | None = None,
    chunks: int | None = None,
) -> VerifyReport:
    """Run the layer in NumPy and compare what it observes with the prediction, as
    `ffn-calc verify`. Imports NumPy (only this function does). With `backward`, a whole
    training step runs with the options `train` takes (recompute, optimizer, mixed_precision,
    dropout) and every figure of its totals is observed; with `dp` > 1 too, the step of `dp`
    data-parallel ranks sharded as `zero` says runs rank by rank, every per-rank figure and byte
    sent observed, and must equal one rank's step on the whole batch. `progress(done, total, what)` is told
    the forward pass's tokens as they are done (`what` = "tokens"), then each later step by
    name with total 0. With `pp` (and `microbatches`, `schedule`, `chunks`, as `train` takes
    them) the whole stack also runs as that pipeline (docs/verify.md)."""
    from ffn_calc.model.training import TrainingOptions
    from ffn_calc.verifier.run import verify as run

    training = TrainingOptions(recompute, optimizer, mixed_precision, dropout, input_grad)
    if training != TrainingOptions(input_grad=input_grad) and not backward:
        raise ConfigError("--backward", "--recompute, --optimizer, --mixed-precision and --dropout apply to the training step; add --backward")
    if mixed_precision:
        train(cfg, mixed_precision=True)  # the same refusal as `train` (a 16-bit --dtype)

    return run(
        cfg,
        seed=seed,
        max_memory_bytes=max_memory_bytes,
        progress=progress,
        backward=backward,
        tp=tp,
        ep=ep,
        input_grad=input_grad,
        sequence_parallel=sequence_parallel,
        training=training,
        dp=(dp, zero.strip().lower(), node_size) if dp > 1 or zero.strip() != "0" or node_size is not None else None,
        pp=pp,
        microbatches=microbatches,
        schedule=schedule,
        chunks=chunks,
    )
