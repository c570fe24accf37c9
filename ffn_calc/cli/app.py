"""The command line: parse, call the core (or the verifier), hand the result to one renderer.

stdout carries the answer and nothing else; every error is one line on stderr with a
non-zero exit status (2 for bad input, 1 for a verify that found a mismatch, 130 for Ctrl-C).
NumPy is imported only by `verify`, so the other commands start fast.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Annotated, Any

import typer
from typer._click import exceptions as click_exceptions

from ffn_calc import render
from ffn_calc.model.layer import ConfigError, FFNConfig, VerifyRefused
from ffn_calc.model.forward import analyze
from ffn_calc.cli.options import (
    CONVENTION_HELP,
    LAYER_FLAGS,
    OUTPUT,
    ChartOpt,
    Dtype,
    FormatOpt,
    MaxMemoryOpt,
    OutputFormat,
    SeedOpt,
    SpOpt,
    TpOpt,
    count_parser,
    layer_command,
    number_parser,
)
from ffn_calc.inputs.sweep import COLUMNS, DEFAULT_COLUMNS, PARALLEL_FROM, Axis, LineError, line_rows, parse_columns, parse_values, sweep_rows

EXAMPLE = "ffn-calc shapes 3 6 8 --d-ff 32"

app = typer.Typer(
    name="ffn-calc",
    help=(
        "Exact shapes, parameters, FLOPs and memory of a Transformer feed-forward layer, "
        "FFN(x) = act(x·W1 + b1)·W2 + b2, and a NumPy forward pass that proves them. "
        f"Example: {EXAMPLE}"
    ),
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _console() -> Any:
    from rich.console import Console

    class QuietConsole(Console):
        def on_broken_pipe(self) -> None:  # rich would exit with status 1; end like the other formats
            raise PipeClosed

    # Off a terminal, rich would wrap at 80 columns; a wider page keeps the tables whole.
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
    return QuietConsole(width=width, highlight=False)


def _print_tables(result: object) -> None:
    console = _console()
    for renderable in render.tables(result):
        console.print(renderable)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


WRITERS: dict[OutputFormat, Callable[[object], None]] = {
    OutputFormat.table: _print_tables,
    OutputFormat.json: lambda result: _write(render.to_json(result)),
    OutputFormat.csv: lambda result: _write(render.to_csv(result)),
}


class PipeClosed(Exception):
    """The reader of stdout went away (`| head -1`). Not an OSError, so that Typer lets it
    through to `main`, which ends quietly with status 0."""


@contextmanager
def _pipe_guard() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise PipeClosed from None


def emit(result: object, fmt: OutputFormat) -> None:
    """The one output path: every command hands its result here."""
    with _pipe_guard():
        WRITERS[fmt](result)


@app.command(epilog=CONVENTION_HELP)
@layer_command()
def shapes(cfg: FFNConfig, chart: ChartOpt = False, fmt: FormatOpt = OutputFormat.table) -> None:
    """Each stage's tensor shapes, parameters, FLOPs, MACs and memory. Example: ffn-calc shapes 3 6 8 --d-ff 32"""
    report = analyze(cfg)
    if chart:
        from ffn_calc.render.shapes import Charted

        emit(Charted(report), fmt)
    else:
        emit(report, fmt)


@app.command(epilog=CONVENTION_HELP)
@layer_command()
def verify(
    cfg: FFNConfig,
    seed: SeedOpt = 0,
    max_memory: MaxMemoryOpt = None,
    tp: TpOpt = 1,
    backward: Annotated[
        bool,
        typer.Option(
            "--backward",
            help="Also run the backward pass with explicit matmuls: its FLOPs and shapes against `train`, its gradients against finite differences.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Run the layer in NumPy with random weights and confirm every number `shapes` predicts.
    Exit status 0 when all match, 1 when any does not. Example: ffn-calc verify 3 6 8 --d-ff 32"""
    from ffn_calc.verify.run import verify as run_verify

    with _progress(analyze(cfg).totals.flops, cfg.tokens) as advance:
        report = run_verify(cfg, seed=seed, max_memory_bytes=max_memory, progress=advance, backward=backward, tp=tp)
    emit(report, fmt)
    if not report.ok:
        raise typer.Exit(1)


@app.command(epilog=CONVENTION_HELP)
@layer_command()
def explain(cfg: FFNConfig, fmt: FormatOpt = OutputFormat.table) -> None:
    """The formulas, the numbers substituted, a data-flow diagram and the reasons behind the design,
    for interview preparation. Example: ffn-calc explain 1 512 --model bert-base"""
    from ffn_calc.model.explain import explain as build

    emit(build(analyze(cfg)), fmt)


class SweepFormat(str, Enum):
    table = "table"
    csv = "csv"
    jsonl = "jsonl"


def _axis(name: str, text: str | None, minimum: int = 1) -> list[Axis]:
    if text is None:
        return []
    return [Axis(name, tuple(parse_values("--" + name.replace("_", "-"), text, minimum)))]


@app.command(epilog=CONVENTION_HELP)
@layer_command(exclude=("batch", "seq_len", "d_model", "d_ff", "layers", "experts", "top_k"), resolve=False)
def sweep(
    options: dict[str, Any],
    batch: Annotated[
        str | None,
        typer.Option("--batch", metavar="LIST", help="Batch sizes: 1,8,32 or a range 1:64:x2.", rich_help_panel="Swept", show_default=False),
    ] = None,
    seq_len: Annotated[
        str | None, typer.Option("--seq-len", metavar="LIST", help="Sequence lengths, e.g. 128:8192:x2.", rich_help_panel="Swept", show_default=False)
    ] = None,
    d_model: Annotated[
        str | None,
        typer.Option(
            "--d-model", metavar="LIST", help="d_model values (optional with --model or --config).", rich_help_panel="Swept", show_default=False
        ),
    ] = None,
    d_ff: Annotated[
        str | None,
        typer.Option("--d-ff", metavar="LIST|Mx|glu", help="d_ff values, or one rule: 4x, glu.", rich_help_panel="Swept", show_default=False),
    ] = None,
    experts: Annotated[
        str | None, typer.Option("--experts", metavar="LIST", help="Expert counts.", rich_help_panel="Swept", show_default=False)
    ] = None,
    top_k: Annotated[
        str | None, typer.Option("--top-k", metavar="LIST", help="Experts per token.", rich_help_panel="Swept", show_default=False)
    ] = None,
    layers: Annotated[
        str | None, typer.Option("--layers", "-L", metavar="LIST", help="Layer counts.", rich_help_panel="Swept", show_default=False)
    ] = None,
    stdin: Annotated[
        bool,
        typer.Option(
            "--stdin",
            help='Read configurations as JSON lines on stdin, e.g. {"batch": 8, "seq_len": 512, "model": "bert-base"}.',
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            "-c",
            metavar="A,B,…",
            help=f"Columns to print. Default: {','.join(DEFAULT_COLUMNS)}. Any of: {', '.join(COLUMNS)}.",
            rich_help_panel=OUTPUT,
            show_default=False,
        ),
    ] = None,
    chart: Annotated[
        str | None,
        typer.Option(
            "--chart",
            metavar="COLUMN",
            help="Draw COLUMN as bars against the swept values (table output).",
            rich_help_panel=OUTPUT,
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        SweepFormat,
        typer.Option("--format", "-f", help="table, csv or jsonl (one JSON object per line).", case_sensitive=False, rich_help_panel=OUTPUT),
    ] = SweepFormat.table,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            parser=count_parser("--jobs"),
            metavar="N",
            help=f"Worker processes for sweeps of {PARALLEL_FROM:,} combinations or more. Default: the CPUs.",
            rich_help_panel=OUTPUT,
            show_default=False,
        ),
    ] = os.cpu_count() or 1,
) -> None:
    """One row per configuration: lists and ranges of sizes, or JSON lines on stdin.
    Example: ffn-calc sweep --batch 1,8,32 --seq-len 128:8192:x2 --d-model 4096 -f csv"""
    cols = parse_columns(columns)
    if chart is not None and chart not in COLUMNS:
        raise ConfigError("--chart", f"unknown column {chart!r}; choose from {', '.join(COLUMNS)}")
    if chart is not None and fmt is not SweepFormat.table:
        raise ConfigError("--chart", "draws for --format table only")
    fixed = {k: (v.value if isinstance(v, Enum) else v) for k, v in options.items() if k in LAYER_FLAGS and v is not None}
    fixed.update(model=options["model"], config=options["config"])
    bad_lines = 0
    if stdin:
        if any(v is not None for v in (batch, seq_len, d_model, experts, top_k, layers)) or d_ff is not None:
            raise ConfigError("--stdin", "takes every size from the JSON lines; drop the size options")
        cols = ("line",) + cols if "line" not in cols else cols

        wanted = cols[1:] + ((chart,) if chart else ())

        def from_lines() -> Iterator[list[Any]]:
            nonlocal bad_lines
            for number, result in line_rows(sys.stdin, wanted, jobs):
                if isinstance(result, LineError):
                    bad_lines += 1
                    sys.stderr.write(f"ffn-calc: error: line {number}: {result.message}\n")
                    continue
                yield [number, *result]

        rows = from_lines()
    else:
        if batch is None or seq_len is None:
            raise ConfigError(
                "--batch" if batch is None else "--seq-len", "is needed (a number, a list 1,8,32 or a range 128:8192:x2), or use --stdin"
            )
        axes = _axis("batch", batch) + _axis("seq_len", seq_len) + _axis("d_model", d_model)
        if d_ff is not None and not re.fullmatch(r"[\d_,:x+* ]+", d_ff.lower()) or (d_ff or "").lower().endswith("x"):
            fixed["d_ff"] = d_ff
        else:
            axes += _axis("d_ff", d_ff)
        axes += _axis("experts", experts) + _axis("top_k", top_k) + _axis("layers", layers)
        swept = tuple(a.name for a in axes)
        rows = sweep_rows(axes, fixed, cols + ((chart,) if chart else ()), jobs)
    write_sweep(cols, rows, fmt, chart, swept if not stdin else ("line",))
    if bad_lines:
        raise typer.Exit(1)


def write_sweep(cols: tuple[str, ...], rows: Iterator[list[Any]], fmt: SweepFormat, chart: str | None, swept: tuple[str, ...]) -> None:
    """Stream CSV or JSON lines as rows come; a table (and its chart) once all are in."""
    with _pipe_guard():
        _write_sweep(cols, rows, fmt, chart, swept)


def _write_sweep(cols: tuple[str, ...], rows: Iterator[list[Any]], fmt: SweepFormat, chart: str | None, swept: tuple[str, ...]) -> None:
    from ffn_calc.render import sweep as render_sweep

    if fmt is SweepFormat.csv:
        for text in render_sweep.sweep_csv(cols, rows):
            sys.stdout.write(text)
    elif fmt is SweepFormat.jsonl:
        for text in render_sweep.sweep_jsonl(cols, rows):
            sys.stdout.write(text)
    else:
        kept = list(rows)
        console = _console()
        console.print(render_sweep.sweep_table(cols, [values[: len(cols)] for values in kept]))
        if chart is not None:
            where = [cols.index(c) for c in swept if c in cols]
            labels = [", ".join(f"{cols[i]}={values[i]}" for i in where) for values in kept]
            console.print(render.bar_chart(f"{chart} against {', '.join(swept)}", labels, [values[-1] or 0 for values in kept], "", shares=False))
    sys.stdout.flush()


class Recompute(str, Enum):
    none = "none"
    selective = "selective"
    full = "full"


class Optimizer(str, Enum):
    sgd = "sgd"
    momentum = "momentum"
    adam = "adam"


TRAIN = "Training"


@app.command(epilog=CONVENTION_HELP)
@layer_command()
def train(
    cfg: FFNConfig,
    recompute: Annotated[
        Recompute,
        typer.Option(
            "--recompute",
            help="none; selective (recompute the activation from its saved input); full (save only the layer input, run the forward again).",
            case_sensitive=False,
            rich_help_panel=TRAIN,
        ),
    ] = Recompute.none,
    optimizer: Annotated[
        Optimizer,
        typer.Option("--optimizer", help="Optimizer states per parameter: sgd 0, momentum 1, adam 2.", case_sensitive=False, rich_help_panel=TRAIN),
    ] = Optimizer.adam,
    mixed_precision: Annotated[
        bool,
        typer.Option(
            "--mixed-precision",
            help="16-bit weights and gradients (--dtype bfloat16 or float16) with float32 master weights and optimizer states.",
            rich_help_panel=TRAIN,
        ),
    ] = False,
    dropout: Annotated[
        bool, typer.Option("--dropout", help="Dropout on the FFN output: a 1-byte mask per element is saved.", rich_help_panel=TRAIN)
    ] = False,
    tp: TpOpt = 1,
    sequence_parallel: SpOpt = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """A training step: the backward pass GEMM by GEMM, recomputation, the tensors saved for
    backward, gradients and optimizer states. Example: ffn-calc train 4 2048 1024 -a gelu --dtype bfloat16 --mixed-precision --dropout"""
    from ffn_calc.model.training import TrainingOptions
    from ffn_calc.model.training import train as run_train

    options = TrainingOptions(recompute.value, optimizer.value, mixed_precision, dropout)
    emit(run_train(cfg, options, tp, sequence_parallel), fmt)


@app.command(epilog=CONVENTION_HELP)
@layer_command(exclude=("norm", "layers", "capacity_factor"), dtype=Dtype.bfloat16)  # type: ignore[attr-defined]
def roofline(
    cfg: FFNConfig,
    gpu: Annotated[
        str | None,
        typer.Option(
            "--gpu",
            metavar="NAME",
            help="a100-40gb, a100-80gb, h100-sxm, h100-pcie or h200 (dense datasheet peaks).",
            rich_help_panel="Hardware",
            show_default=False,
        ),
    ] = None,
    peak_tflops: Annotated[
        float | None,
        typer.Option(
            "--peak-tflops",
            parser=number_parser("--peak-tflops"),
            metavar="T",
            help="A custom peak, TFLOP/s (with --bandwidth-gbs).",
            rich_help_panel="Hardware",
            show_default=False,
        ),
    ] = None,
    bandwidth_gbs: Annotated[
        float | None,
        typer.Option(
            "--bandwidth-gbs",
            parser=number_parser("--bandwidth-gbs"),
            metavar="B",
            help="A custom memory bandwidth, GB/s.",
            rich_help_panel="Hardware",
            show_default=False,
        ),
    ] = None,
    tp: TpOpt = 1,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Each GEMM on the roofline: arithmetic intensity, compute- or memory-bound, a lower-bound
    time, for prefill (BATCH × SEQ_LEN tokens) and decode (one token per sequence), and the
    token count where each GEMM crosses the ridge point. Example: ffn-calc roofline 1 8192 --model llama-3-8b --gpu h100-sxm"""
    from ffn_calc.model.roofline import GPUS, custom_gpu
    from ffn_calc.model.roofline import roofline as run_roofline
    from ffn_calc.model.parallel import tensor_parallel

    if (peak_tflops is None) != (bandwidth_gbs is None) or (gpu is None and peak_tflops is None):
        raise ConfigError("--gpu", f"name a GPU ({', '.join(GPUS)}) or give both --peak-tflops and --bandwidth-gbs")
    if gpu is not None and peak_tflops is not None:
        raise ConfigError("--gpu", "give a GPU name or a custom --peak-tflops/--bandwidth-gbs, not both")
    if gpu is not None and gpu.lower() not in GPUS:
        raise ConfigError("--gpu", f"unknown GPU {gpu!r}; choose one of {', '.join(GPUS)}")
    device = GPUS[gpu.lower()] if gpu is not None else custom_gpu(peak_tflops, bandwidth_gbs)  # type: ignore[arg-type]
    if tp > 1:
        cfg = tensor_parallel(cfg, tp).per_rank
    emit(run_roofline(cfg, device), fmt)


@app.command()
def models(fmt: FormatOpt = OutputFormat.table) -> None:
    """The published models --model knows, with their FFN sizes and sources. Example: ffn-calc models"""
    from ffn_calc.inputs.presets import model_catalogue

    emit(model_catalogue(), fmt)


def _print_help(ctx: Any) -> None:
    """The command's help, as `--help` shows it."""
    try:
        ctx.command.main(["--help"], prog_name=ctx.command_path, standalone_mode=False)
    except click_exceptions.Exit:
        pass


EXPECTED_FLOPS_PER_S = 20e9  # a cautious guess for this machine class; only decides whether to show a bar


@contextmanager
def _progress(flops: int, tokens: int) -> Iterator[Callable[[int, int], None] | None]:
    """A transient rich progress bar on stderr, when stderr is a terminal and the pass will
    likely take more than a second."""
    if not sys.stderr.isatty() or flops < EXPECTED_FLOPS_PER_S:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("verify"), BarColumn(), TextColumn("{task.completed:,} / {task.total:,} tokens"),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:  # fmt: skip
        task = bar.add_task("verify", total=tokens)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def fail(message: str, code: int = 2) -> int:
    """Print one error line on stderr and return the exit status to use."""
    sys.stderr.write(f"ffn-calc: error: {message}\n")
    return code


def _usage_message(e: click_exceptions.ClickException) -> str:
    message = " ".join(e.format_message().replace("Value error, ", "").split())
    option = getattr(e, "option_name", "") or ""
    if isinstance(e, click_exceptions.NoSuchOption) and option[1:2].isdigit():
        # A negative number reads as an option to the parser; say what it really is.
        message = f"BATCH, SEQ_LEN and D_MODEL must be whole numbers of at least 1, got {option}"
    ctx = getattr(e, "ctx", None)
    command = ctx.command_path if ctx is not None else "ffn-calc"
    return f"{message} (see '{command} --help')"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and of `python -m ffn_calc`."""
    try:
        result = app(args=argv, prog_name="ffn-calc", standalone_mode=False)
        if result == 130:  # Typer turned a Ctrl-C into Exit(130)
            sys.stderr.write("ffn-calc: interrupted\n")
        return result if isinstance(result, int) else 0
    except click_exceptions.NoArgsIsHelpError as e:  # bare `ffn-calc` or `ffn-calc sweep`: help is the answer
        with _pipe_guard():
            _print_help(e.ctx)
        return 0
    except click_exceptions.ClickException as e:
        return fail(_usage_message(e), e.exit_code or 2)
    except ConfigError as e:
        return fail(f"{e.argument}: {e.message}")
    except VerifyRefused as e:
        return fail(str(e))
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("ffn-calc: interrupted\n")
        return 130
    except MemoryError:
        return fail("out of memory; try smaller sizes", 1)
    except (BrokenPipeError, PipeClosed):
        # The reader went away (| head): stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as e:  # a bug: say so in one line; FFN_CALC_DEBUG=1 shows the traceback
        if os.environ.get("FFN_CALC_DEBUG"):
            raise
        return fail(f"internal error ({type(e).__name__}: {e}); please report it, with FFN_CALC_DEBUG=1 for the traceback", 70)
