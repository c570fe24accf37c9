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
from typing import Annotated, Any

import typer

from ffn_calc import __version__, api
from ffn_calc.api.options import COMMANDS as COMMAND_NAMES
from ffn_calc.api.options import SIZE_AXES, TRAINING_AXES
from ffn_calc.cli import INTERRUPTED, interrupted
from ffn_calc.cli.click_compat import ClickException, NoArgsIsHelpError, NoSuchOption, keep_words_whole
from ffn_calc.cli.options import CONVENTION_HELP, Given, command
from ffn_calc.cli.output import InputFailed, OutputFailed, PipeClosed, emit, fit_stdout, pipe_guard, progress
from ffn_calc.errors import ConfigError, VerifyRefused, WorkerLost, closest
from ffn_calc.model.layer import FFNConfig
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


# Each command's options are its specs' (ffn_calc/api/options.py); `given` holds them by name.


@app.command(epilog=CONVENTION_HELP)
@command()
def shapes(cfg: FFNConfig, given: Given) -> None:
    """Each stage's tensor shapes, parameters, FLOPs, MACs and memory. Example: ffn-calc shapes 3 6 8 --d-ff 32"""
    report = api.analyze(cfg)
    view = View(exact=given.exact, summary=given.summary, detail=given.detail)
    if given.chart and not given.summary:
        from ffn_calc.render.shapes import Charted

        emit(Charted(report), given.format, given.get, view, given.svg)
    else:
        emit(report, given.format, given.get, view, given.svg)


def _training(given: Given) -> dict[str, Any]:
    """The training step's options (train's, and verify's with --backward), as the API takes them."""
    return {
        "recompute": given.recompute,
        "optimizer": given.optimizer,
        "mixed_precision": given.mixed_precision,
        "dropout": given.dropout,
        "input_grad": not given.no_input_grad,
    }


@app.command(epilog=CONVENTION_HELP)
@command()
def verify(cfg: FFNConfig, given: Given) -> None:
    """Run the layer in NumPy with random weights and confirm every number `shapes` predicts.
    Exit status 0 when all match, 1 when any does not. Example: ffn-calc verify 3 6 8 --d-ff 32"""
    if given.no_input_grad and not given.backward:
        raise ConfigError("--no-input-grad", "applies to the backward pass; add --backward")
    with progress(api.analyze(cfg).totals.flops, cfg.tokens) as advance:
        report = api.verify(
            cfg,
            seed=given.seed,
            max_memory_bytes=given.max_memory,
            progress=advance,
            backward=given.backward,
            tp=given.tp,
            ep=given.ep,
            sequence_parallel=given.sequence_parallel,
            dp=given.dp,
            zero=given.zero,
            node_size=given.node_size,
            pp=given.pp,
            microbatches=given.microbatches,
            schedule=given.schedule,
            chunks=given.chunks,
            **_training(given),
        )
    emit(report, given.format, given.get, View(every=given.all or given.detail, detail=given.detail), given.svg)
    if not report.ok:
        raise typer.Exit(1)


@app.command(epilog=CONVENTION_HELP)
@command(resolve=False)
def explain(given: Given) -> None:
    """The formulas with the numbers substituted, a data-flow diagram, and the interview questions
    answered with this layer's numbers; or, with --compare, two layers side by side.
    Example: ffn-calc explain 1 512 --model bert-base"""
    if given.compare is not None:
        first, second = given.compare
        result: Any = api.compare(first=first, second=second, **given.layer)
    else:
        result = api.explain(api.layer(**given.layer))
    emit(result, given.format, given.get, View(summary=given.summary, detail=given.detail), given.svg)


@app.command(epilog=CONVENTION_HELP)
@command(resolve=False)
def sweep(given: Given) -> None:
    """One row per configuration: lists and ranges of sizes, models, activations and dtypes, or
    JSON lines on stdin. Example: ffn-calc sweep 1,8 512,2048 --model bert-base,gpt2-xl -f csv"""
    if given.chart is not None and given.format not in ("table", "markdown"):
        raise ConfigError("--chart", "draws for --format table or markdown only")
    layer = {k: v for k, v in given.layer.items() if v is not None}
    if len(given.sizes or ()) > 3:
        raise ConfigError("BATCH", f"sweep takes at most three sizes, BATCH SEQ_LEN [D_MODEL], got {len(given.sizes)}: {' '.join(given.sizes)}")
    for name, text in zip(SIZE_AXES, given.sizes or (), strict=False):  # batch, seq_len, d_model: the grid's first size axes
        if name in layer:
            raise ConfigError(f"--{name.replace('_', '-')}", f"is given twice, as {name.upper()} and as the option; give one")
        layer[name] = text
    for name in TRAINING_AXES:  # the training step's options: a list of sizes or of names, as the layer's
        if getattr(given, name, None) is not None:
            layer[name] = getattr(given, name)
    sizes = {name: layer.pop(name) for name in SIZE_AXES if name in layer}
    bad_lines = 0

    def bad_line(number: int, message: str) -> None:
        nonlocal bad_lines
        bad_lines += 1
        fail(f"line {number}: {message}")

    result = api.sweep(
        sizes.pop("batch", None),
        sizes.pop("seq_len", None),
        sizes=sizes,
        lines=_stdin_lines() if given.stdin else None,
        stream=True,
        on_error=bad_line,
        columns=given.columns,
        chart=given.chart,
        jobs=given.jobs or os.cpu_count() or 1,
        **layer,
    )
    if given.format == "table" or given.chart is not None:  # laid out whole, not streamed
        result = _at_most_table_rows(result)
    emit(result, given.format, view=View(exact=given.exact), svg=given.svg)
    if bad_lines:
        raise typer.Exit(1)


# A table (and a chart) is laid out whole before it is printed, its rows kept, and read by a person:
# past this many rows a sweep is refused as one, with a pointer to the formats that stream.
TABLE_ROWS = 10_000


def _at_most_table_rows(result: Any) -> Any:
    """The sweep, refused in one line when its table would hold more than TABLE_ROWS rows: at
    once for a grid, whose size is known; for JSON lines, at the first row past it (nothing has
    been printed by then: the table waits for its last row)."""
    from dataclasses import replace

    from ffn_calc.api.sweep_executor import SweepRows

    def refuse(rows: str) -> ConfigError:
        return ConfigError("--format", f"a table holds at most {TABLE_ROWS:,} rows, and this sweep has {rows}; use -f csv or -f jsonl, which stream")

    total = result.rows.total
    if total is not None:
        if total > TABLE_ROWS:
            raise refuse(f"{total:,}")
        return result

    def counted() -> Any:
        for i, values in enumerate(result.rows, start=1):
            if i > TABLE_ROWS:
                raise refuse("more")
            yield values

    return replace(result, rows=SweepRows(counted, once=True))


def _stdin_lines() -> Any:
    """The JSON lines on stdin, each bounded (inputs/limits.py); a closed stdin or a read error
    is the environment's (InputFailed)."""
    from ffn_calc.inputs.limits import bounded_lines

    stream = sys.stdin
    if stream is None:
        raise InputFailed("standard input is closed; nothing to read the JSON lines from (give them on stdin, or drop --stdin)")
    try:
        yield from bounded_lines(getattr(stream, "buffer", stream))
    except OSError as e:
        raise InputFailed(f"cannot read standard input: {e.strerror or e}") from None


@app.command(epilog=CONVENTION_HELP)
@command()
def train(cfg: FFNConfig, given: Given) -> None:
    """A training step: the backward pass GEMM by GEMM, recomputation, the tensors saved for
    backward, gradients and optimizer states. Example: ffn-calc train 4 2048 1024 -a gelu --dtype bfloat16 --mixed-precision --dropout"""
    report = api.train(
        cfg, **_training(given), tp=given.tp, sequence_parallel=given.sequence_parallel, ep=given.ep,
        dp=given.dp, zero=given.zero, node_size=given.node_size,
        pp=given.pp, microbatches=given.microbatches, schedule=given.schedule, chunks=given.chunks,
    )  # fmt: skip
    emit(report, given.format, given.get, View(exact=given.exact, summary=given.summary, detail=given.detail), given.svg)


@app.command(epilog=CONVENTION_HELP)
@command()
def roofline(cfg: FFNConfig, given: Given) -> None:
    """Each GEMM on the roofline: arithmetic intensity, compute- or memory-bound, a lower-bound
    time, for prefill (BATCH × SEQ_LEN tokens) and decode (one token per sequence), and the
    token count where each GEMM crosses the ridge point. With --measure, on this machine's measured
    peak and bandwidth, each GEMM timed beside its bound. Example: ffn-calc roofline 1 8192 --model llama-3-8b --gpu h100-sxm"""
    if not given.measure:
        if given.device != "auto" or given.measure_seconds is not None:
            raise ConfigError("--device" if given.device != "auto" else "--measure-seconds", "applies to --measure; add --measure or drop it")
        result = api.roofline(
            cfg, given.gpu, peak_tflops=given.peak_tflops, bandwidth_gbs=given.bandwidth_gbs, tp=given.tp, ep=given.ep, gpu_file=given.gpu_file
        )
        emit(result, given.format, given.get, View(summary=given.summary, detail=given.detail), given.svg)
        return
    if given.gpu is not None or given.peak_tflops is not None or given.bandwidth_gbs is not None or given.gpu_file is not None:
        raise ConfigError("--measure", "measures this machine's peak and bandwidth; drop --gpu, --gpu-file and --peak-tflops/--bandwidth-gbs")
    if given.ep > 1:
        raise ConfigError("--measure", "times dense GEMMs; drop --ep")
    if given.summary:
        raise ConfigError("--summary", "shows a datasheet roofline's verdicts; --measure prints its measurements whole: drop -q or --measure")
    measured = api.measure_roofline(cfg, device=given.device, seconds=given.measure_seconds, tp=given.tp, progress=_measuring())
    emit(measured, given.format, given.get, View(detail=given.detail), given.svg)


def _measuring() -> Any:
    """A one-line status of --measure's steps on stderr when it is a terminal (each step
    overwrites the last; the line is cleared when the next one starts or output begins)."""
    if not sys.stderr.isatty():
        return None

    def say(step: str) -> None:
        sys.stderr.write(f"\r\x1b[Kmeasuring {step}…")
        sys.stderr.flush()

    import atexit

    atexit.register(lambda: sys.stderr.write("\r\x1b[K"))
    return say


@app.command()
@command()
def gpus(given: Given) -> None:
    """The GPUs --gpu knows: dense datasheet peaks by dtype, memory bandwidth and the datasheet
    each comes from. Example: ffn-calc gpus -f csv"""
    emit(api.gpus(), given.format, given.get, View(detail=given.detail), given.svg)


@app.command()
@command()
def models(given: Given) -> None:
    """The published models --model knows, with their FFN sizes and sources. Example: ffn-calc models"""
    emit(api.models(), given.format, given.get, View(exact=given.exact, detail=given.detail), given.svg)


def _summary(doc: str | None) -> str:
    """A command's first sentence, its line in the top-level help (click cut it at 45 characters)."""
    text = " ".join((doc or "").split())
    return text.split(". ")[0].rstrip(".") + "."


for _info in app.registered_commands:
    _info.short_help = _info.short_help or _summary(_info.callback.__doc__ if _info.callback else None)


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


# Exit statuses (docs/guide.md, "Errors and exit status"); 0, 1 (verify's mismatch, a sweep's bad
# line) and 2 (bad input) are the commands'. The environment's failures have statuses of their own
# (sysexits.h's), so that a script never reads one as a mismatch.
EXIT_BUG = 70  # EX_SOFTWARE: a bug in ffn-calc
EXIT_SYSTEM = 71  # EX_OSERR: out of memory, a worker process killed or not started
EXIT_IO = 74  # EX_IOERR: stdout or stdin closed, a full disk, a file that cannot be written


def _short(message: str) -> str:
    """A message with every overlong word (a 400-digit number, a pasted document) cut to its start."""
    return re.sub(r"[^\s'\",;]{81,}", lambda m: f"{m[0][:40]}… ({len(m[0]):,} characters)", message)


def fail(message: str, code: int = 2) -> int:
    """Print one error line on stderr (if it can be written) and return the exit status to use."""
    try:
        sys.stderr.write(f"ffn-calc: error: {_short(' '.join(message.split()))}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr full or closed: the exit status still says it
        pass
    return code


def _usage_message(e: ClickException, args: list[str]) -> str:
    message = " ".join(e.format_message().replace("Value error, ", "").split())
    choices = getattr(getattr(getattr(e, "param", None), "type", None), "choices", None)
    bad = re.search(r": '([^']*)' is not one of", message)
    if choices and bad:  # an unknown choice: the closest names, not the whole list
        name = (getattr(e.param, "opts", None) or ["value"])[0]  # type: ignore[attr-defined]
        message = f"{name}: unknown value {bad.group(1)!r}; {closest(bad.group(1).lower(), [str(c) for c in choices])}"
    # A parser's unknown name reads as click's choices do: "--dtype: unknown value 'x'; did you mean ..."
    message = re.sub(r"^Invalid value for '(--[\w-]+)'(?: / '-\w')?: (unknown value)", r"\1: \2", message)
    option = getattr(e, "option_name", "") or ""
    if isinstance(e, NoSuchOption) and option[1:2].isdigit():
        # A negative number reads as an option to the parser (-768 as -7 and 68); say what it really is.
        typed = next((a for a in args if a.startswith(option) and re.fullmatch(r"-[\d_.]+", a)), option)
        message = f"BATCH, SEQ_LEN and D_MODEL must be whole numbers of at least 1, got {typed}"
    ctx = getattr(e, "ctx", None)
    command = ctx.command_path if ctx is not None else "ffn-calc"
    if command == "ffn-calc" and args and args[0] in COMMAND_NAMES:  # an error of the command's own parser
        command = f"ffn-calc {args[0]}"
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


# The command line's own inputs, bounded where they are read (files and JSON lines: inputs/limits.py).
MAX_ARGUMENT_CHARS = 10_000  # one argument: a list of 2,000 sizes (a range says more in less)
MAX_ENV_DIGITS = 5  # COLUMNS, LINES: a number of character cells


def check_argument(position: int, text: str) -> None:
    """One command-line argument, refused when it is longer than any real one."""
    if len(text) > MAX_ARGUMENT_CHARS:
        raise ConfigError(f"argument {position}", f"is {len(text):,} characters long; the most is {MAX_ARGUMENT_CHARS:,}")


def sane_environment(environ: Any) -> None:
    """Drop a size (COLUMNS, LINES) that is not a number of at most MAX_ENV_DIGITS digits: read as
    unset, as a word there always was, so that neither this tool nor the libraries that read it
    (rich, click) meet a 5,000-digit number."""
    for name in ("COLUMNS", "LINES"):
        value = environ.get(name)
        if value is not None and not (value.strip().isdigit() and len(value.strip()) <= MAX_ENV_DIGITS):
            del environ[name]


def _install_completion(args: list[str]) -> int:
    """`ffn-calc --install-completion`: Typer's, with its files written whole or not at all; a
    home that cannot be written is one line and exit 74."""
    from ffn_calc.cli.click_compat import completion_writes
    from ffn_calc.cli.output import write_atomically

    try:
        with completion_writes(write_atomically):
            app(args=args, prog_name="ffn-calc", standalone_mode=False)
    except SystemExit as e:  # Typer's installer exits 0 when it is done
        return e.code if isinstance(e.code, int) else 0
    except (OSError, OutputFailed) as e:
        where = getattr(e, "filename", None)
        why = f"{where}: {e.strerror}" if isinstance(e, OSError) and where else str(getattr(e, "strerror", None) or e)
        return fail(f"cannot install the shell completion ({why}); check that your home folder can be written", EXIT_IO)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run a command: `argv`, else sys.argv's (the process's own, through ffn_calc.cli.run)."""
    if sys.stderr is None:  # started with stderr closed (`2>&-`): errors are lost, the exit status is not
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
    if sys.stdout is None:  # started with stdout closed (`>&-`): nowhere to put the answer
        return fail("standard output is closed; nothing to write the answer to", EXIT_IO)
    sane_environment(os.environ)
    if argv is None:
        fit_stdout("text", sys.stderr)  # error lines in ASCII look-alikes on a stream that cannot hold × or —
    word = os.environ.get("COMP_CWORD", "0")
    if os.environ.get("_FFN_CALC_COMPLETE") and not (word.isdigit() and len(word) <= 5):
        return 1  # completions asked for a word number no shell gives: none, and no noise in the prompt
    args = sys.argv[1:] if argv is None else list(argv)
    if argv is None:
        # This process is the command, and all it holds at exit goes with the process: frozen
        # then, nothing is walked again by the garbage collector's passes at shutdown.
        atexit.register(gc.freeze)
        if args[:1] not in (["verify"], ["sweep"]):
            # A table command's objects (rich's renderables, the report) live until it prints and
            # exits; the collector's passes over them free nothing (about 1.5 ms of the table
            # path). verify (large NumPy arrays) and sweep (many rows) keep the collector.
            gc.disable()
    try:
        for position, text in enumerate(args, start=1):
            check_argument(position, text)
        if "--install-completion" in args[:1]:
            return _install_completion(args)
        if not args or "--help" in args or "-h" in args:
            keep_words_whole()  # help wraps between words (loaded only for help: click's wrapper)
        with api.spoken_as_flags():  # the API's errors name this command line's flags
            result = _app_for(args)(args=args, prog_name="ffn-calc", standalone_mode=False)
        if result == INTERRUPTED:  # Typer turned a Ctrl-C into Exit(130)
            return interrupted()
        return result if isinstance(result, int) else 0
    except NoArgsIsHelpError as e:  # bare `ffn-calc`: help is the answer
        with pipe_guard():
            _print_help(e.ctx)
        return 0
    except ClickException as e:
        return fail(_usage_message(e, args), e.exit_code or 2)
    except ConfigError as e:
        return fail(f"{e.argument}: {e.message}")
    except VerifyRefused as e:
        return fail(str(e))
    except (typer.Abort, KeyboardInterrupt):
        return interrupted()
    except MemoryError:
        return fail("out of memory; try smaller sizes", EXIT_SYSTEM)
    except WorkerLost as e:
        return fail(str(e), EXIT_SYSTEM)
    except (BrokenPipeError, PipeClosed):
        # The reader went away (| head): stop quietly, and keep Python from complaining at exit.
        _stdout_to_devnull()
        return 0
    except OutputFailed as e:  # a full disk, an I/O error: the environment's fault, not ours
        _stdout_to_devnull()
        return fail(f"cannot write the output: {e}", EXIT_IO)
    except InputFailed as e:
        return fail(str(e), EXIT_IO)
    except SystemExit as e:
        # Only rich exits on its own, with status 1, when the reader of `--help` goes away
        # (`ffn-calc shapes --help | head -1`); it has already pointed stdout at /dev/null.
        if e.code == 1:
            return 0
        raise
    except Exception as e:  # a bug: say so in one line; FFN_CALC_DEBUG=1 shows the traceback
        if os.environ.get("FFN_CALC_DEBUG"):
            raise
        return fail(f"internal error ({type(e).__name__}: {e}); please report it, with FFN_CALC_DEBUG=1 for the traceback", EXIT_BUG)
