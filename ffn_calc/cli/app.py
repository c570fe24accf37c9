"""The command line: parse, call the Python API (`ffn_calc.api`), hand the result to `emit`.

stdout carries the answer and nothing else; every error is one line on stderr with a
non-zero exit status (2 for bad input, 1 for a verify that found a mismatch, 130 for Ctrl-C).
NumPy is imported only by `verify`, so the other commands start fast. (The annotations are
objects, not strings, for Typer: see options.py.)
"""

import atexit
import gc
import os
import re
import sys
from enum import Enum
from typing import Annotated, Any

import typer

from ffn_calc import __version__, api
from ffn_calc.api.columns import COLUMNS, DEFAULT_COLUMNS, PARALLEL_FROM
from ffn_calc.cli.click_compat import ClickException, NoArgsIsHelpError, NoSuchOption
from ffn_calc.cli.options import (
    CONVENTION_HELP,
    OUTPUT,
    ChartOpt,
    EpOpt,
    ExactOpt,
    FormatOpt,
    GetOpt,
    MaxMemoryOpt,
    NoInputGradOpt,
    OutputFormat,
    SeedOpt,
    SpOpt,
    SummaryOpt,
    SvgOpt,
    SweepFormat,
    TpOpt,
    complete_activation,
    complete_dtype,
    complete_gpu,
    complete_model,
    count_parser,
    layer_command,
    number_parser,
)
from ffn_calc.cli.output import OutputFailed, PipeClosed, emit, pipe_guard, progress
from ffn_calc.errors import ConfigError, VerifyRefused, closest
from ffn_calc.inputs.resolve import LAYER_FLAGS
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.training_options import OPTIMIZERS, RECOMPUTE
from ffn_calc.render.base import View

EXAMPLE = "ffn-calc shapes 3 6 8 --d-ff 32"


app = typer.Typer(
    name="ffn-calc",
    help=(
        "Exact shapes, parameters, FLOPs and memory of a Transformer feed-forward layer, "
        "FFN(x) = act(x·W1 + b1)·W2 + b2, and a NumPy forward pass that proves them. "
        f"Example: {EXAMPLE}"
    ),
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"ffn-calc {__version__}\n")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """The options that come before a command."""


@app.command(epilog=CONVENTION_HELP)
@layer_command()
def shapes(
    cfg: FFNConfig,
    chart: ChartOpt = False,
    summary: SummaryOpt = False,
    exact: ExactOpt = False,
    fmt: FormatOpt = OutputFormat.table,
    get: GetOpt = None,
    svg: SvgOpt = None,
) -> None:
    """Each stage's tensor shapes, parameters, FLOPs, MACs and memory. Example: ffn-calc shapes 3 6 8 --d-ff 32"""
    report = api.analyze(cfg)
    view = View(exact=exact, summary=summary)
    if chart and not summary:
        from ffn_calc.render.shapes import Charted

        emit(Charted(report), fmt.value, get, view, svg)
    else:
        emit(report, fmt.value, get, view, svg)


@app.command(epilog=CONVENTION_HELP)
@layer_command()
def verify(
    cfg: FFNConfig,
    seed: SeedOpt = 0,
    max_memory: MaxMemoryOpt = None,
    tp: TpOpt = 1,
    sequence_parallel: SpOpt = False,
    ep: EpOpt = 1,
    backward: Annotated[
        bool,
        typer.Option(
            "--backward",
            help="Also run the backward pass with explicit matmuls: its FLOPs and shapes against `train`, its gradients against finite differences.",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    no_input_grad: NoInputGradOpt = False,
    recompute: Annotated[
        str,
        typer.Option("--recompute", help=f"With --backward: the recompute mode ({', '.join(RECOMPUTE)}).", rich_help_panel=OUTPUT),
    ] = "none",
    optimizer: Annotated[
        str, typer.Option("--optimizer", help=f"With --backward: the optimizer whose update runs ({', '.join(OPTIMIZERS)}).", rich_help_panel=OUTPUT)
    ] = "adam",
    mixed_precision: Annotated[
        bool,
        typer.Option(
            "--mixed-precision",
            help="With --backward: float32 master weights and states (16-bit --dtype).",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    dropout: Annotated[bool, typer.Option("--dropout", help="With --backward: dropout on the FFN output.", rich_help_panel=OUTPUT)] = False,
    every: Annotated[
        bool, typer.Option("--all", help="List every check; by default only the verdict and any check that failed.", rich_help_panel=OUTPUT)
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
    get: GetOpt = None,
    svg: SvgOpt = None,
) -> None:
    """Run the layer in NumPy with random weights and confirm every number `shapes` predicts.
    Exit status 0 when all match, 1 when any does not. Example: ffn-calc verify 3 6 8 --d-ff 32"""
    if no_input_grad and not backward:
        raise ConfigError("--no-input-grad", "applies to the backward pass; add --backward")
    with progress(api.analyze(cfg).totals.flops, cfg.tokens) as advance:
        report = api.verify(
            cfg,
            seed=seed,
            max_memory_bytes=max_memory,
            progress=advance,
            backward=backward,
            tp=tp,
            ep=ep,
            input_grad=not no_input_grad,
            sequence_parallel=sequence_parallel,
            recompute=recompute.lower(),
            optimizer=optimizer.lower(),
            mixed_precision=mixed_precision,
            dropout=dropout,
        )
    emit(report, fmt.value, get, View(every=every), svg)
    if not report.ok:
        raise typer.Exit(1)


@app.command(epilog=CONVENTION_HELP)
@layer_command(resolve=False)
def explain(
    options: dict[str, Any],
    compare: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--compare",
            metavar="A B",
            help="Two layers side by side, B against A: two presets (--compare llama-2-7b mistral-7b), or two activations "
            "at equal parameters for this layer (--compare relu swiglu: relu at d_ff 4x, swiglu at LLaMA's GLU width, --d-ff glu).",
            rich_help_panel=OUTPUT,
            show_default=False,
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
    get: GetOpt = None,
    svg: SvgOpt = None,
) -> None:
    """The formulas with the numbers substituted, a data-flow diagram, and the interview questions
    answered with this layer's numbers; or, with --compare, two layers side by side.
    Example: ffn-calc explain 1 512 --model bert-base"""
    given = {k: (v.value if isinstance(v, Enum) else v) for k, v in options.items() if k in LAYER_FLAGS}
    batch, seq_len, d_model = options["batch"], options["seq_len"], options["d_model"]
    if compare is not None:
        result: Any = api.compare(batch, seq_len, *compare, d_model, model=options["model"], config=options["config"], **given)
    else:
        result = api.explain(api.layer(batch, seq_len, d_model, model=options["model"], config=options["config"], **given))
    emit(result, fmt.value, get, svg=svg)


@app.command(epilog=CONVENTION_HELP)
@layer_command(exclude=("batch", "seq_len", "d_model", "d_ff", "layers", "experts", "top_k", "model", "activation", "dtype"), resolve=False)
def sweep(
    options: dict[str, Any],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            metavar="NAME,…",
            help="A published model, or several to sweep: bert-base,gpt2-xl,llama-3-8b (a model column).",
            rich_help_panel="Swept",
            show_default=False,
            autocompletion=complete_model,
        ),
    ] = None,
    activation: Annotated[
        str | None,
        typer.Option(
            "--activation",
            "-a",
            metavar="NAME,…",
            help="Activation, or several to sweep: relu,swiglu.",
            rich_help_panel="Swept",
            show_default=False,
            autocompletion=complete_activation,
        ),
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(
            "--dtype",
            metavar="DTYPE,…",
            help="Storage type, or several to sweep: float32,bfloat16.",
            rich_help_panel="Swept",
            show_default=False,
            autocompletion=complete_dtype,
        ),
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch", metavar="LIST", help="Batch sizes: 1,8,32 or a range 1:64:x2. [default: 1]", rich_help_panel="Swept", show_default=False
        ),
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
        typer.Option(
            "--d-ff", metavar="LIST|Mx|glu", help="d_ff values, or rules: 4x, glu, or several: 4x,glu.", rich_help_panel="Swept", show_default=False
        ),
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
        typer.Option(
            "--format",
            "-f",
            help="table, csv, jsonl (one JSON object per line) or markdown (a pipe table, exact integers).",
            case_sensitive=False,
            rich_help_panel=OUTPUT,
        ),
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
    exact: ExactOpt = False,
    svg: SvgOpt = None,
) -> None:
    """One row per configuration: lists and ranges of sizes, models, activations and dtypes, or
    JSON lines on stdin. Example: ffn-calc sweep --model bert-base,gpt2-xl --seq-len 512,2048 -f csv"""
    from ffn_calc.api.sweep_executor import LineError, grid_sweep, lines_sweep  # loaded by this command only

    if chart is not None and fmt not in (SweepFormat.table, SweepFormat.markdown):
        raise ConfigError("--chart", "draws for --format table or markdown only")
    fixed = {k: (v.value if isinstance(v, Enum) else v) for k, v in options.items() if k in LAYER_FLAGS and v is not None}
    fixed.update(model=model, config=options["config"])
    fixed.update({k: v.strip().lower() for k, v in (("activation", activation), ("dtype", dtype)) if v is not None})
    sizes = {"batch": batch, "seq_len": seq_len, "d_model": d_model, "d_ff": d_ff, "experts": experts, "top_k": top_k, "layers": layers}
    bad_lines = 0

    def bad_line(error: LineError) -> None:
        nonlocal bad_lines
        bad_lines += 1
        sys.stderr.write(f"ffn-calc: error: line {error.line}: {error.message}\n")

    if stdin:
        if any(v is not None for v in sizes.values()):
            raise ConfigError("--stdin", "takes every size from the JSON lines; drop the size options")
        result = lines_sweep(sys.stdin, bad_line, columns, chart, jobs, fixed)
    else:
        result = grid_sweep(sizes, fixed, columns, chart, jobs)
    emit(result, fmt.value, view=View(exact=exact), svg=svg)
    if bad_lines:
        raise typer.Exit(1)


Recompute = Enum("Recompute", {r: r for r in RECOMPUTE}, type=str)  # type: ignore[misc]
Optimizer = Enum("Optimizer", {o: o for o in OPTIMIZERS}, type=str)  # type: ignore[misc]


TRAIN = "Training"


@app.command(epilog=CONVENTION_HELP)
@layer_command()
def train(
    cfg: FFNConfig,
    recompute: Annotated[
        Recompute,
        typer.Option(
            "--recompute",
            help="; ".join(f"{name} ({mode.help})" for name, mode in RECOMPUTE.items()) + ".",
            case_sensitive=False,
            rich_help_panel=TRAIN,
        ),
    ] = Recompute.none,  # type: ignore[attr-defined]
    optimizer: Annotated[
        Optimizer,
        typer.Option(
            "--optimizer",
            help="Optimizer states per parameter: " + ", ".join(f"{name} {states}" for name, states in OPTIMIZERS.items()) + ".",
            case_sensitive=False,
            rich_help_panel=TRAIN,
        ),
    ] = Optimizer.adam,  # type: ignore[attr-defined]
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
    no_input_grad: NoInputGradOpt = False,
    tp: TpOpt = 1,
    sequence_parallel: SpOpt = False,
    ep: EpOpt = 1,
    summary: SummaryOpt = False,
    exact: ExactOpt = False,
    fmt: FormatOpt = OutputFormat.table,
    get: GetOpt = None,
    svg: SvgOpt = None,
) -> None:
    """A training step: the backward pass GEMM by GEMM, recomputation, the tensors saved for
    backward, gradients and optimizer states. Example: ffn-calc train 4 2048 1024 -a gelu --dtype bfloat16 --mixed-precision --dropout"""
    report = api.train(
        cfg,
        recompute=recompute.value,
        optimizer=optimizer.value,
        mixed_precision=mixed_precision,
        dropout=dropout,
        input_grad=not no_input_grad,
        tp=tp,
        sequence_parallel=sequence_parallel,
        ep=ep,
    )
    emit(report, fmt.value, get, View(exact=exact, summary=summary), svg)


@app.command(epilog=CONVENTION_HELP)
@layer_command(exclude=("norm", "layers", "dense_layers", "dense_d_ff", "capacity_factor"))
def roofline(
    cfg: FFNConfig,
    gpu: Annotated[
        str | None,
        typer.Option(
            "--gpu",
            metavar="NAME",
            help="A GPU preset: its dense datasheet peak and bandwidth (`ffn-calc gpus` lists them).",
            rich_help_panel="Hardware",
            show_default=False,
            autocompletion=complete_gpu,
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
    ep: EpOpt = 1,
    fmt: FormatOpt = OutputFormat.table,
    get: GetOpt = None,
    svg: SvgOpt = None,
) -> None:
    """Each GEMM on the roofline: arithmetic intensity, compute- or memory-bound, a lower-bound
    time, for prefill (BATCH × SEQ_LEN tokens) and decode (one token per sequence), and the
    token count where each GEMM crosses the ridge point. Example: ffn-calc roofline 1 8192 --model llama-3-8b --gpu h100-sxm"""
    emit(api.roofline(cfg, gpu, peak_tflops=peak_tflops, bandwidth_gbs=bandwidth_gbs, tp=tp, ep=ep), fmt.value, get, svg=svg)


@app.command()
def gpus(fmt: FormatOpt = OutputFormat.table, get: GetOpt = None, svg: SvgOpt = None) -> None:
    """The GPUs --gpu knows: dense datasheet peaks by dtype, memory bandwidth and the datasheet
    each comes from. Example: ffn-calc gpus -f csv"""
    emit(api.gpus(), fmt.value, get, svg=svg)


@app.command()
def models(exact: ExactOpt = False, fmt: FormatOpt = OutputFormat.table, get: GetOpt = None, svg: SvgOpt = None) -> None:
    """The published models --model knows, with their FFN sizes and sources. Example: ffn-calc models"""
    emit(api.models(), fmt.value, get, View(exact=exact), svg)


def _print_help(ctx: Any) -> None:
    """The command's help, as `--help` shows it."""
    try:
        ctx.command.main(["--help"], prog_name=ctx.command_path, standalone_mode=False)
    except typer.Exit:
        pass


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (a caller captured it): nothing is flushed at exit
        pass


def fail(message: str, code: int = 2) -> int:
    """Print one error line on stderr and return the exit status to use."""
    sys.stderr.write(f"ffn-calc: error: {message}\n")
    return code


def _usage_message(e: ClickException) -> str:
    message = " ".join(e.format_message().replace("Value error, ", "").split())
    choices = getattr(getattr(getattr(e, "param", None), "type", None), "choices", None)
    bad = re.search(r": '([^']*)' is not one of", message)
    if choices and bad:  # an unknown choice: the closest names, not the whole list
        name = (getattr(e.param, "opts", None) or ["value"])[0]  # type: ignore[attr-defined]
        message = f"{name}: unknown value {bad.group(1)!r}; {closest(bad.group(1).lower(), [str(c) for c in choices])}"
    option = getattr(e, "option_name", "") or ""
    if isinstance(e, NoSuchOption) and option[1:2].isdigit():
        # A negative number reads as an option to the parser; say what it really is.
        message = f"BATCH, SEQ_LEN and D_MODEL must be whole numbers of at least 1, got {option}"
    ctx = getattr(e, "ctx", None)
    command = ctx.command_path if ctx is not None else "ffn-calc"
    return f"{message} (see '{command} --help')"


def _app_for(args: list[str]) -> typer.Typer:
    """The app to run: for `ffn-calc COMMAND …`, one with that command alone, since Typer builds
    the options of every registered command before it parses (about 6 ms for all of them);
    for anything else (bare, --help, --version, a typo, shell completion), the whole app."""
    if not args or os.environ.get("_FFN_CALC_COMPLETE"):
        return app
    # A command's name is the one it was given, else its function's, as Typer derives it.
    picked = [c for c in app.registered_commands if c.callback and (c.name or typer.main.get_command_name(c.callback.__name__)) == args[0]]
    if not picked:
        return app
    one = typer.Typer()
    one.info = app.info
    one.registered_callback = app.registered_callback
    one.registered_commands = picked
    one.pretty_exceptions_enable = app.pretty_exceptions_enable
    one.rich_markup_mode = app.rich_markup_mode
    one._add_completion = app._add_completion
    return one


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and of `python -m ffn_calc`."""
    if sys.stdout is None:  # started with stdout closed (`>&-`): nowhere to put the answer
        return fail("standard output is closed; nothing to write the answer to", 1)
    if argv is None:
        # This process is the command, and all it holds at exit goes with the process: frozen
        # then, nothing is walked again by the garbage collector's passes at shutdown.
        atexit.register(gc.freeze)
        if sys.argv[1:2] not in (["verify"], ["sweep"]):
            # A table command's objects (rich's renderables, the report) live until it prints and
            # exits; the collector's passes over them free nothing (about 1.5 ms of the table
            # path). verify (large NumPy arrays) and sweep (many rows) keep the collector.
            gc.disable()
    try:
        result = _app_for(sys.argv[1:] if argv is None else argv)(args=argv, prog_name="ffn-calc", standalone_mode=False)
        if result == 130:  # Typer turned a Ctrl-C into Exit(130)
            sys.stderr.write("ffn-calc: interrupted\n")
        return result if isinstance(result, int) else 0
    except NoArgsIsHelpError as e:  # bare `ffn-calc`: help is the answer
        with pipe_guard():
            _print_help(e.ctx)
        return 0
    except ClickException as e:
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
        _stdout_to_devnull()
        return 0
    except OutputFailed as e:  # a full disk, an I/O error: the environment's fault, not ours
        _stdout_to_devnull()
        return fail(f"cannot write the output: {e}", 1)
    except SystemExit as e:
        # Only rich exits on its own, with status 1, when the reader of `--help` goes away
        # (`ffn-calc shapes --help | head -1`); it has already pointed stdout at /dev/null.
        if e.code == 1:
            return 0
        raise
    except Exception as e:  # a bug: say so in one line; FFN_CALC_DEBUG=1 shows the traceback
        if os.environ.get("FFN_CALC_DEBUG"):
            raise
        return fail(f"internal error ({type(e).__name__}: {e}); please report it, with FFN_CALC_DEBUG=1 for the traceback", 70)
