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
    GIVEN_COLUMNS,
    NUMBER_COLUMNS,
    PARALLEL_FROM,
)
from ffn_calc.api.options import LINE_KEYS, NAMES, SWEPT, WIDTHS
from ffn_calc.errors import ConfigError, closest
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.json_fields import JsonForm, json_key
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
    if column in GIVEN_COLUMNS:
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
    for column, key in (("model", "model"), ("d_ff_given", "d_ff")):
        if column in columns:
            values[columns.index(column)] = (given or {}).get(key)
    return values


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
    return analyze(layer_config(**args))


# Worker state for parallel sweeps (set once per process by the pool's initializer).
_WORKER: dict[str, Any] = {}


def _init_worker(fixed: dict[str, Any], columns: tuple[str, ...]) -> None:
    _WORKER.update(fixed=fixed, columns=columns)


def _rows_of(points: list[dict[str, Any]]) -> list[list[Any]] | ConfigError:
    fixed, columns = _WORKER["fixed"], _WORKER["columns"]
    try:
        return [row(report_for(p, fixed), columns, {**fixed, **p}) for p in points]
    except ConfigError as e:
        return e


def _chunks(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


CHUNK = 2_000


def sweep_rows(axes: list[Axis], fixed: dict[str, Any], columns: tuple[str, ...], jobs: int) -> Iterator[list[Any]]:
    """The rows of the sweep, in order. With jobs > 1 and a large sweep, worker processes
    compute chunks of rows in parallel; the output is the same, row for row.

    Everything that can be wrong is checked here, before the first row, so that a bad sweep
    writes nothing: the number of points, and every combination of the axes other than batch
    and seq_len (sizes that cannot make a configuration invalid once parsed)."""
    total = combinations(axes)
    shape_axes = [a for a in axes if a.name not in ("batch", "seq_len")]
    for point in grid(shape_axes):
        report_for({"batch": 1, "seq_len": 1, **point}, fixed)
    return _rows(axes, fixed, columns, jobs, total)


def _rows(axes: list[Axis], fixed: dict[str, Any], columns: tuple[str, ...], jobs: int, total: int) -> Iterator[list[Any]]:
    points = grid(axes)
    if jobs <= 1 or total < PARALLEL_FROM:
        for point in points:
            yield row(report_for(point, fixed), columns, {**fixed, **point})
        return
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(fixed, columns)) as pool:
        for rows in pool.imap(_rows_of, _chunks(points, CHUNK)):
            if isinstance(rows, ConfigError):
                raise rows
            yield from rows


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
            item = json.loads(text)
            if not isinstance(item, dict):
                raise ConfigError("line", f'expected a JSON object such as {{"batch": 1, "seq_len": 128, "d_model": 768}}, got {type(item).__name__}')
            unknown = sorted(set(item) - LINE_KEYS)
            if unknown:
                raise ConfigError(unknown[0], f"is not an option; {closest(unknown[0], sorted(LINE_KEYS))}")
            for key in ("batch", "seq_len"):
                if key not in item:
                    raise ConfigError(key, "is missing")
            args = {**(fixed or {}), **item}  # the flags given hold for every line; a line's own keys win
            for key in ("batch", "seq_len", "d_model"):
                if key in args and (isinstance(args[key], bool) or not isinstance(args[key], int) or not 1 <= args[key] <= MAX_SIZE):
                    raise ConfigError(key, f"must be a whole number from 1 to 2^40, got {args[key]!r}")
            report = analyze(layer_config(**args))
        except json.JSONDecodeError as e:
            yield number, LineError(number, f"not JSON ({e.msg} at column {e.colno})"), {}
        except ConfigError as e:
            yield number, LineError(number, f"{e.argument}: {e.message}"), {}
        except (TypeError, ValueError) as e:
            yield number, LineError(number, str(e)), {}
        else:
            yield number, report, args


def _line_rows_of(chunk: list[tuple[int, str]]) -> list[tuple[int, list[Any] | LineError]]:
    columns = _WORKER["columns"]
    return [
        (number, result if isinstance(result, LineError) else row(result, columns, given))
        for number, result, given in line_reports(chunk, _WORKER["fixed"])
    ]


def line_rows(
    lines: Iterable[str], columns: tuple[str, ...], jobs: int, fixed: dict[str, Any] | None = None
) -> Iterator[tuple[int, list[Any] | LineError]]:
    """Rows for JSON lines, in input order. Past the first CHUNK lines, with jobs > 1, worker
    processes answer chunks of lines in parallel; the output is the same, line for line."""
    numbered = enumerate(lines, start=1)
    first = list(islice(numbered, CHUNK))
    _WORKER.update(columns=columns, fixed=fixed)
    if jobs <= 1 or len(first) < CHUNK:
        for number, result, given in chain(line_reports(first, fixed), line_reports(numbered, fixed)):
            yield number, result if isinstance(result, LineError) else row(result, columns, given)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    chunks = chain([first], iter(lambda: list(islice(numbered, CHUNK)), []))
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(fixed or {}, columns)) as pool:
        for results in pool.imap(_line_rows_of, chunks):
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
    `chart` column's value, when a chart is drawn). `rows` is consumed once: a sweep may have
    millions of rows and is streamed. `swept` names the columns that vary. Its JSON form holds
    the columns and the rows as objects."""

    columns: tuple[str, ...]
    rows: Iterable[list[Any]] = field(metadata=json_key(value=_row_objects))
    swept: tuple[str, ...] = field(metadata=json_key(omit=True))
    chart: str | None = field(default=None, metadata=json_key(omit=True))
    json_schema = schema("sweep")


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
    cols = tuple(c for c in swept if c in (*NAMED_AXES, "d_ff_given") and c not in cols) + cols
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
) -> SweepResult:
    """One row per JSON line (a `line` column first); a bad line goes to `on_error(line number,
    message)` and the sweep carries on. `fixed` holds the layer options given as flags: they hold for every
    line, and a line's own keys win."""
    cols = parse_columns(columns)
    extra = _check_chart(chart)
    cols = ("line", *cols)
    wanted = cols[1:] + extra

    def rows() -> Iterator[list[Any]]:
        for number, result in line_rows(lines, wanted, jobs, fixed):
            if isinstance(result, LineError):
                on_error(result.line, result.message)
                continue
            yield [number, *result]

    return SweepResult(cols, rows(), ("line",), chart)
