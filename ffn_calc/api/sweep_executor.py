"""Sweeps: many configurations, one row each. Standard library only.

Size arguments take lists and ranges (`1,8,32`, `128:8192:x2`, `64:512:+64`); the sweep is
their Cartesian product, in order, the first axis slowest. JSON lines on stdin are answered
line by line. Every row comes from the core's `analyze`, like a single `shapes` run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain, islice, product
from typing import Any

from ffn_calc.api.columns import (
    COLUMNS,
    CONFIG_COLUMNS,
    DEFAULT_COLUMNS,
    DP_DEFAULT,
    GIVEN_COLUMNS,
    NUMBER_COLUMNS,
    PARALLEL_FROM,
    PP_DEFAULT,
    TRAINING_COLUMNS,
    TRAINING_GIVEN,
)
from ffn_calc.api.options import LINE_KEYS, NAMES, SWEPT, TRAINING_AXES, WIDTHS
from ffn_calc.errors import ConfigError, closest, shown
from ffn_calc.inputs.limits import JsonRefused, check_line, load_json
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.json_fields import JsonForm, data_frame, json_key
from ffn_calc.model.forward import FFNReport, analyze
from ffn_calc.model.layer import MAX_SIZE, parse_size
from ffn_calc.schemas import schema

MAX_COMBINATIONS = 10_000_000
_RANGE = re.compile(r"(?P<lo>[^:]+):(?P<hi>[^:]+)(:(?P<op>[x+*]?)(?P<step>[^:]+))?")


def parse_values(argument: str, text: str, minimum: int = 1) -> list[int]:
    """`1,8,32`, `128:8192:x2` (×2 each step), `64:512:+64` or `64:512:64` (+64), `1:4` (+1); ends inclusive."""
    values: list[int] = []
    for item in text.split(","):
        item = item.strip()
        match = _RANGE.fullmatch(item)
        if match is None:
            values.append(parse_size(argument, item, minimum))
            continue
        lo, hi = parse_size(argument, match["lo"], minimum), parse_size(argument, match["hi"], minimum)
        if hi < lo:
            raise ConfigError(argument, f"the range {item!r} ends before it starts; write it low:high")
        step = parse_size(argument, match["step"], 1) if match["step"] is not None else 1
        if match["op"] in ("x", "*"):
            if step < 2 or lo < 1:
                raise ConfigError(argument, f"a geometric range needs a factor of at least 2 and a start of at least 1, got {item!r}")
            v = lo
            while v <= hi:
                values.append(v)
                v *= step
        else:
            if (hi - lo) // step + 1 > MAX_COMBINATIONS:
                raise ConfigError(argument, f"the range {item!r} has more than {MAX_COMBINATIONS:,} values")
            values.extend(range(lo, hi + 1, step))
    if not values:
        raise ConfigError(argument, "is empty; give a number, a list 1,8,32 or a range 128:8192:x2")
    return values


def parse_columns(text: str | None) -> tuple[str, ...]:
    if text is None:
        return DEFAULT_COLUMNS
    columns = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in columns if c not in COLUMNS]
    if not columns:
        raise ConfigError("--columns", f"names no column; choose from {', '.join(COLUMNS)}")
    if unknown:
        raise ConfigError("--columns", f"unknown column {unknown[0]!r}; {closest(unknown[0], COLUMNS)}")
    return columns


def _getter(column: str) -> Callable[[FFNReport], Any]:
    if column in GIVEN_COLUMNS or column in TRAINING_GIVEN or column in TRAINING_COLUMNS:
        return lambda r: None  # not in the report: row() fills it in from what was asked
    if column == "tokens":
        return lambda r: r.config.tokens
    if column == "peak_stage":
        return lambda r: r.peak.stage
    if column.startswith("model_"):
        key = column[6:]
        return lambda r: getattr(r.model, key)
    if column in CONFIG_COLUMNS:
        return lambda r: getattr(r.config, column)
    return lambda r: getattr(r.totals, column)


@lru_cache(maxsize=64)
def _getters(columns: tuple[str, ...]) -> tuple[Callable[[FFNReport], Any], ...]:
    return tuple(_getter(c) for c in columns)


def row(report: FFNReport, columns: tuple[str, ...], given: dict[str, Any] | None = None) -> list[Any]:
    """The chosen columns of one report, in order, as plain values (exact ints); `given`, the
    options the report was asked with, names its model."""
    values = [get(report) for get in _getters(columns)]
    given_at, trained_at = _filled(columns)
    for i, key in given_at:
        values[i] = (given or {}).get(key)
    if trained_at:
        step = train_report(report, given or {})
        for i in trained_at:
            values[i] = _training_value(step, columns[i])
    return values


@lru_cache(maxsize=64)
def _filled(columns: tuple[str, ...]) -> tuple[tuple[tuple[int, str], ...], tuple[int, ...]]:
    """Where row() fills in what was asked ((index, key of `given`)) and the training step's figures (indices)."""
    keys = {"model": "model", "d_ff_given": "d_ff", **{c: c for c in TRAINING_GIVEN}}
    given_at = tuple((i, keys[c]) for i, c in enumerate(columns) if c in keys)
    return given_at, tuple(i for i, c in enumerate(columns) if c in TRAINING_COLUMNS)


def train_report(report: FFNReport, given: dict[str, Any]) -> Any:
    """The training step of the row's layer, as `train` gives it with the row's --dp, --zero,
    --pp, --microbatches and --schedule (standard library only, as the rest of the sweep)."""
    from ffn_calc.model.training import TrainingOptions, train

    return train(report.config, TrainingOptions(), dp=given.get("dp") or 1, zero=str(given.get("zero") or "0"), pp=given.get("pp") or 1,
                 microbatches=given.get("microbatches"), schedule=given.get("schedule"))  # fmt: skip


def _training_value(step: Any, column: str) -> Any:
    """A training column of a row: `train_…` its totals, `dp_…` one data-parallel rank's share and
    `pp_…` the pipeline's figures (None without --dp, --pp)."""
    if column.startswith("train_"):
        return getattr(step.totals, column[6:])
    part = step.data_parallel if column.startswith("dp_") else step.pipeline
    if part is None:
        return None
    if column == "pp_busiest_stage_peak_bytes":
        return max(s.peak_bytes for s in part.per_stage)
    return getattr(part, column[3:])


@dataclass(frozen=True)
class Axis:
    """One swept option and its values, in order: sizes (ints); names for model, activation
    and dtype; ints and rules (4x, glu) for d_ff."""

    name: str
    values: tuple[int | str, ...]


def combinations(axes: list[Axis]) -> int:
    """How many points the sweep has; raises ConfigError past MAX_COMBINATIONS."""
    total = 1
    for axis in axes:
        total *= len(axis.values)
    if total > MAX_COMBINATIONS:
        raise ConfigError("--" + axes[0].name.replace("_", "-"), f"the sweep has {total:,} combinations; the most is {MAX_COMBINATIONS:,}")
    return total


def grid(axes: list[Axis]) -> Iterator[dict[str, Any]]:
    """The points of the sweep in order, the first axis slowest (call combinations() first)."""
    names = [a.name for a in axes]
    return (dict(zip(names, combo, strict=True)) for combo in product(*(a.values for a in axes)))


def report_for(point: dict[str, Any], fixed: dict[str, Any]) -> FFNReport:
    args = {**fixed, **point}
    return analyze(layer_config(**{k: v for k, v in args.items() if k not in TRAINING_AXES}))


NOTEBOOK_ROWS = 10_000  # the most rows a notebook shows as a table
CHUNK = 2_000  # rows (grid points or JSON lines) a worker computes at a time


def _points(axes: list[Axis], start: int, stop: int) -> Iterator[dict[str, Any]]:
    """Points start to stop - 1 of the grid, in its order (the first axis slowest)."""
    sizes = [len(a.values) for a in axes]
    digits = []
    rest = start
    for size in reversed(sizes):
        rest, digit = divmod(rest, size)
        digits.append(digit)
    digits.reverse()
    for _ in range(stop - start):
        yield {a.name: a.values[d] for a, d in zip(axes, digits, strict=True)}
        k = len(digits) - 1
        while k >= 0:  # the next point: the last axis moves fastest
            digits[k] += 1
            if digits[k] < sizes[k]:
                break
            digits[k] = 0
            k -= 1


def sweep_rows(axes: list[Axis], fixed: dict[str, Any], columns: tuple[str, ...], jobs: int) -> SweepRows:
    """The rows of the sweep, in order. With jobs > 1 and a large sweep, worker processes
    compute chunks of rows in parallel; the output is the same, row for row.

    Everything that can be wrong is checked here, before the first row, so that a bad sweep
    writes nothing: the number of points, and every combination of the axes other than batch
    and seq_len (sizes that cannot make a configuration invalid once parsed)."""
    total = combinations(axes)
    trains = any(c in TRAINING_COLUMNS for c in columns) or any(a.name in TRAINING_AXES for a in axes) or bool(set(fixed) & set(TRAINING_AXES))
    # a training step depends on the batch too (--microbatches divides it): then every batch is checked
    shape_axes = [a for a in axes if a.name not in ("seq_len",) + (() if trains else ("batch",))]
    for point in grid(shape_axes):
        report = report_for({"batch": 1, "seq_len": 1, **point}, fixed)
        if trains:
            train_report(report, {**fixed, **point})
    return SweepRows(lambda: _rows(axes, fixed, columns, jobs, total), total)


def _rows(axes: list[Axis], fixed: dict[str, Any], columns: tuple[str, ...], jobs: int, total: int) -> Iterator[list[Any]]:
    if jobs <= 1 or total < PARALLEL_FROM:
        for point in grid(axes):
            yield row(report_for(point, fixed), columns, {**fixed, **point})
        return
    from ffn_calc.api.workers import ordered_map

    def work(span: tuple[int, int]) -> list[list[Any]]:  # in a worker: a task is two numbers, its rows are made there
        return [row(report_for(p, fixed), columns, {**fixed, **p}) for p in _points(axes, *span)]

    for rows in ordered_map(work, ((i, min(i + CHUNK, total)) for i in range(0, total, CHUNK)), jobs):
        yield from rows


class SweepRows:
    """The rows of a sweep, in order, as lists of the chosen columns' values. Read them as often
    as you like: each read of a grid computes it again (nothing is kept, so a sweep of millions
    of rows streams); rows read from a one-pass source of JSON lines (a file, stdin, a
    generator) are kept on the first read, unless `once` (the command line, which streams them
    and reads them once). `total`: how many rows a grid has (None for JSON lines)."""

    def __init__(self, run: Callable[[], Iterator[list[Any]]], total: int | None = None, once: bool = False, keep: bool = False) -> None:
        self._run, self.total, self._once, self._keep = run, total, once, keep
        self._kept: list[list[Any]] | None = None
        self._read = False

    def __iter__(self) -> Iterator[list[Any]]:
        if self._kept is not None:
            return iter(self._kept)
        if self._read and self._once:
            raise RuntimeError("these sweep rows were streamed once (once=True) and are gone; run the sweep again")
        self._read = True
        if self._keep:
            self._kept = list(self._run())
            return iter(self._kept)
        return self._run()

    def __repr__(self) -> str:
        return f"SweepRows({self.total:,} rows)" if self.total is not None else "SweepRows(one per JSON line)"


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


def line_reports(
    lines: Iterable[tuple[int, str]], fixed: dict[str, Any] | None = None
) -> Iterator[tuple[int, FFNReport | LineError, dict[str, Any]]]:
    """Answer numbered JSON lines in order: (line number, report, the line's options with the
    flags), or (line number, what was wrong, {})."""
    import json

    for number, text in lines:
        if not text.strip():
            continue
        try:
            check_line(text)
            item = load_json(text)
            if not isinstance(item, dict):
                raise ConfigError("line", f'expected a JSON object such as {{"batch": 1, "seq_len": 128, "d_model": 768}}, got {type(item).__name__}')
            unknown = sorted(set(item) - LINE_KEYS)
            if unknown:
                key = unknown[0] if len(unknown[0]) <= 40 else shown(unknown[0])
                raise ConfigError(key, f"is not an option; {closest(unknown[0][:100], sorted(LINE_KEYS))}")
            for key in ("batch", "seq_len"):
                if key not in item:
                    raise ConfigError(key, "is missing")
            args = {**(fixed or {}), **item}  # the flags given hold for every line; a line's own keys win
            for key in ("batch", "seq_len", "d_model"):
                if key in args and (isinstance(args[key], bool) or not isinstance(args[key], int) or not 1 <= args[key] <= MAX_SIZE):
                    raise ConfigError(key, f"must be a whole number from 1 to 2^40, got {shown(args[key])}")
            report = analyze(layer_config(**args))
        except json.JSONDecodeError as e:
            yield number, LineError(number, f"not JSON ({e.msg} at column {e.colno})"), {}
        except JsonRefused as e:
            yield number, LineError(number, f"refused: {e}"), {}
        except RecursionError:  # a value nested within the bounds that a check still walked too deep
            yield number, LineError(number, "refused: it is nested too deeply"), {}
        except ConfigError as e:
            yield number, LineError(number, f"{e.argument}: {e.message}"), {}
        except (TypeError, ValueError) as e:
            yield number, LineError(number, str(e)), {}
        else:
            yield number, report, args


def line_rows(
    lines: Iterable[str], columns: tuple[str, ...], jobs: int, fixed: dict[str, Any] | None = None
) -> Iterator[tuple[int, list[Any] | LineError]]:
    """Rows for JSON lines, in input order. Past the first CHUNK lines, with jobs > 1, worker
    processes answer chunks of lines in parallel; the output is the same, line for line."""
    numbered = enumerate(lines, start=1)
    first = list(islice(numbered, CHUNK))
    if jobs <= 1 or len(first) < CHUNK:
        for number, result, given in chain(line_reports(first, fixed), line_reports(numbered, fixed)):
            yield number, result if isinstance(result, LineError) else row(result, columns, given)
        return
    from ffn_calc.api.workers import ordered_map

    def work(chunk: list[tuple[int, str]]) -> list[tuple[int, list[Any] | LineError]]:  # in a worker
        return [(n, result if isinstance(result, LineError) else row(result, columns, given)) for n, result, given in line_reports(chunk, fixed)]

    for results in ordered_map(work, chain([first], iter(lambda: list(islice(numbered, CHUNK)), [])), jobs):
        yield from results


# --- planning: from what the user typed to the rows of a sweep ---------------------------------

# The grid's axes are the options sweep takes a list of (api/options.py: SWEPT, in the grid's
# order, the slowest first): sizes, each a list or range; d_ff's widths, which may instead be one
# rule (4x, glu) or a list of rules and numbers (4x,glu); and names (--model a,b,c,
# -a relu,swiglu, --dtype float32,bfloat16), an axis when there is more than one.
NAMED_AXES = tuple(s.name for s in SWEPT if s.swept and s.swept.values == NAMES)
_D_FF_VALUES = re.compile(r"[\d_,:x+* ]+")


def _row_objects(result: SweepResult) -> list[dict[str, Any]]:
    """The rows as objects, each as `sweep -f jsonl` prints one line (the chart's value left out)."""
    width = len(result.columns)
    return [dict(zip(result.columns, r[:width], strict=True)) for r in result.rows]


@dataclass(frozen=True)
class SweepResult(JsonForm):
    """The rows of a sweep, in order, each the chosen `columns` as exact values (then the
    `chart` column's value, when a chart is drawn). `rows` can be read as often as you like
    (SweepRows: a grid is computed again on each read rather than kept, since a sweep may have
    millions of rows). `swept` names the columns that vary. Its JSON form holds the columns and
    the rows as objects."""

    columns: tuple[str, ...]
    rows: SweepRows = field(metadata=json_key(value=_row_objects))
    swept: tuple[str, ...] = field(metadata=json_key(omit=True))
    chart: str | None = field(default=None, metadata=json_key(omit=True))
    json_schema = schema("sweep")

    def to_pandas(self) -> Any:
        """The rows as a pandas DataFrame, one column per `columns` (pandas is not a dependency)."""
        width = len(self.columns)
        return data_frame()([values[:width] for values in self.rows], columns=list(self.columns))

    def _repr_markdown_(self) -> str | None:
        """A notebook's display: the table, for a sweep of at most NOTEBOOK_ROWS rows (else the repr)."""
        total = self.rows.total
        return None if total is None or total > NOTEBOOK_ROWS else super()._repr_markdown_()


def _check_chart(chart: str | None) -> tuple[str, ...]:
    if chart is not None and chart not in NUMBER_COLUMNS:
        what = "a column of numbers" if chart in COLUMNS else "a known column"
        raise ConfigError("--chart", f"draws {what}, not {chart!r}; choose from {', '.join(NUMBER_COLUMNS)}")
    return (chart,) if chart else ()


def grid_sweep(
    axes: dict[str, str | None], fixed: dict[str, Any], columns: str | None = None, chart: str | None = None, jobs: int = 1
) -> SweepResult:
    """A grid sweep: `axes` maps each size of SWEPT to the text typed for it (a number, a list
    1,8,32 or a range 128:8192:x2; None when not swept; batch defaults to 1); `fixed` holds
    the other layer options, where a model, activation or dtype given as a list (a,b,c) is an
    axis too. Everything that can be wrong is found here, before the first row."""
    cols = parse_columns(columns)
    if columns is None:  # a training axis asked for: its per-rank figures shown without -c
        given = {k for k in TRAINING_AXES if axes.get(k) is not None or fixed.get(k) is not None}
        cols += DP_DEFAULT * bool(given & {"dp", "zero"})
        cols += PP_DEFAULT * bool(given & {"pp", "microbatches", "schedule"})
    extra = _check_chart(chart)
    seq_len = axes.get("seq_len")
    if seq_len is None:
        raise ConfigError("--seq-len", "is needed (a number, a list 128,512 or a range 128:8192:x2), or use --stdin")
    axes = {**axes, "batch": axes.get("batch") or "1"}  # one sequence unless asked: a model's answer per sequence
    fixed = dict(fixed)
    named: dict[str, Axis] = {}  # the lists of names first (they are checked first), then every axis in the grid's order
    for spec in SWEPT:
        value = fixed.get(spec.name)
        if spec.swept and spec.swept.values == NAMES and isinstance(value, str) and "," in value:
            names = tuple(v.strip().lower() for v in value.split(","))
            if not all(names):
                raise ConfigError(spec.label, f"has an empty name in {value!r}; write names separated by commas, e.g. {spec.swept.example}")
            named[spec.name] = Axis(spec.name, names)
            del fixed[spec.name]
    built: list[Axis] = []
    for spec in SWEPT:
        name, how, flag = spec.name, spec.swept, spec.for_command("sweep").label
        assert how is not None
        if how.values == NAMES:
            built += [named[name]] if name in named else []
            continue
        text = axes.get(name)
        if text is None:
            continue
        if how.values == WIDTHS:
            items = [item.strip() for item in text.split(",")]
            if any(_is_rule(item) for item in items):
                if len(items) == 1:
                    fixed[name] = text  # one rule for every point: 4x, 8/3x, glu
                    continue
                values: list[int | str] = []
                for item in items:
                    values.extend([item.lower()] if _is_rule(item) else parse_values(flag, item))
                built.append(Axis(name, tuple(values)))
                continue
        built.append(Axis(name, tuple(parse_values(flag, text))))
    # A swept name (and a swept d_ff rule) is always a column, so that each row says what it is.
    swept = tuple("d_ff_given" if a.name == "d_ff" and any(isinstance(v, str) for v in a.values) else a.name for a in built)
    cols = tuple(c for c in swept if c in (*NAMED_AXES, *TRAINING_GIVEN, "d_ff_given") and c not in cols) + cols
    rows = sweep_rows(built, fixed, cols + extra, jobs)
    return SweepResult(cols, rows, swept, chart)


def _is_rule(item: str) -> bool:
    """A d_ff rule (4x, 8/3x, 2.5x, glu) rather than a number, a list or a range (64:512:x2)."""
    return not _D_FF_VALUES.fullmatch(item.lower()) or item.lower().endswith("x")


def lines_sweep(
    lines: Iterable[str],
    on_error: Callable[[int, str], Any],
    columns: str | None = None,
    chart: str | None = None,
    jobs: int = 1,
    fixed: dict[str, Any] | None = None,
    once: bool = False,
) -> SweepResult:
    """One row per JSON line (a `line` column first); a bad line goes to `on_error(line number,
    message)` and the sweep carries on. `fixed` holds the layer options given as flags: they hold for every
    line, and a line's own keys win. Lines that can be read again (a list) are read again on each
    read of the rows; a one-pass source's rows are kept on the first read, unless `once`."""
    cols = parse_columns(columns)
    extra = _check_chart(chart)
    training = [f"the column {c}" for c in (*cols, *extra) if c in TRAINING_COLUMNS]
    training += ["--" + k.replace("_", "-") for k in TRAINING_AXES if (fixed or {}).get(k) is not None]
    if training:
        raise ConfigError("--stdin", f"answers each line's layer; the training step is swept on a grid only: drop --stdin or {training[0]}")
    cols = ("line", *cols)
    wanted = cols[1:] + extra

    def rows() -> Iterator[list[Any]]:
        for number, result in line_rows(lines, wanted, jobs, fixed):
            if isinstance(result, LineError):
                on_error(result.line, result.message)
                continue
            yield [number, *result]

    again = iter(lines) is not lines  # a list, a tuple: each read of the rows reads them again
    return SweepResult(cols, SweepRows(rows, once=once and not again, keep=not once and not again), ("line",), chart)
