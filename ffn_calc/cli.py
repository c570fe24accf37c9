"""The command line: parse, call the core (or the verifier), hand the result to one renderer.

stdout carries the answer and nothing else; every error is one line on stderr with a
non-zero exit status (2 for bad input, 1 for a verify that found a mismatch, 130 for Ctrl-C).
NumPy is imported only by `verify`, so the other commands start fast.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import Annotated, Any, Callable

import typer
from typer._click import exceptions as click_exceptions

from ffn_calc import conventions as conv
from ffn_calc import render
from ffn_calc.checks import VerifyRefused
from ffn_calc.config import ACTIVATIONS, DTYPES, NORMS, ConfigError, FFNConfig, make_config, parse_size
from ffn_calc.core import analyze

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

Activation = Enum("Activation", {a: a for a in ACTIVATIONS}, type=str)  # type: ignore[misc]
Norm = Enum("Norm", {n: n for n in NORMS}, type=str)  # type: ignore[misc]
Dtype = Enum("Dtype", {d: d for d in DTYPES}, type=str)  # type: ignore[misc]


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _size(argument: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return parse_size(argument, text)
        except ConfigError as e:
            raise typer.BadParameter(e.message) from None

    return parse


LAYER = "Layer"
OUTPUT = "Output"
CONVENTION_HELP = (
    f"Counting convention: {conv.CONVENTION_SUMMARY} "
    "Memory: weights and activations in --dtype; peak = weights + the tensors alive at the "
    "busiest moment of an out-of-place forward pass."
)

BatchArg = Annotated[int, typer.Argument(parser=_size("BATCH"), metavar="BATCH", help="Sequences per batch.", show_default=False)]
SeqLenArg = Annotated[int, typer.Argument(parser=_size("SEQ_LEN"), metavar="SEQ_LEN", help="Tokens per sequence.", show_default=False)]
DModelArg = Annotated[int, typer.Argument(parser=_size("D_MODEL"), metavar="D_MODEL", help="Embedding width d_model.", show_default=False)]
DffOpt = Annotated[
    str | None,
    typer.Option(
        "--d-ff",
        metavar="N|Mx",
        help="Hidden width: a number (3072) or a multiple of d_model (4x, 2.5x, 8/3x). Default 4x.",
        rich_help_panel=LAYER,
        show_default=False,
    ),
]
ActivationOpt = Annotated[
    Activation,
    typer.Option("--activation", "-a", help="Nonlinearity between the two linears.", case_sensitive=False, rich_help_panel=LAYER),
]
BiasOpt = Annotated[bool, typer.Option("--bias/--no-bias", help="Biases b1 and b2.", rich_help_panel=LAYER)]
NormOpt = Annotated[
    Norm,
    typer.Option(
        "--norm",
        help="Residual + LayerNorm: none (the bare FFN), pre (x + FFN(LN(x)), GPT-2 on), post (LN(x + FFN(x)), the original).",
        case_sensitive=False,
        rich_help_panel=LAYER,
    ),
]
DtypeOpt = Annotated[Dtype, typer.Option("--dtype", help="Storage type of weights and activations.", case_sensitive=False, rich_help_panel=LAYER)]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="table for people; json or csv for scripts.", case_sensitive=False, rich_help_panel=OUTPUT)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the random weights and input.", min=0, rich_help_panel=OUTPUT)]


def _config(
    batch: int, seq_len: int, d_model: int, d_ff: str | None, activation: Enum, bias: bool, norm: Enum, dtype: Enum
) -> FFNConfig:
    return make_config(
        batch, seq_len, d_model, d_ff, activation=activation.value, bias=bias, norm=norm.value, dtype=dtype.value
    )


def _console() -> Any:
    from rich.console import Console

    # Off a terminal, rich would wrap at 80 columns; a wider page keeps the tables whole.
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
    return Console(width=width, highlight=False)


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


def emit(result: object, fmt: OutputFormat) -> None:
    """The one output path: every command hands its result here."""
    WRITERS[fmt](result)


@app.command(epilog=CONVENTION_HELP)
def shapes(
    batch: BatchArg,
    seq_len: SeqLenArg,
    d_model: DModelArg,
    d_ff: DffOpt = None,
    activation: ActivationOpt = Activation.relu,  # type: ignore[attr-defined]
    bias: BiasOpt = True,
    norm: NormOpt = Norm.none,  # type: ignore[attr-defined]
    dtype: DtypeOpt = Dtype.float32,  # type: ignore[attr-defined]
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Each stage's tensor shapes, parameters, FLOPs, MACs and memory. Example: ffn-calc shapes 3 6 8 --d-ff 32"""
    emit(analyze(_config(batch, seq_len, d_model, d_ff, activation, bias, norm, dtype)), fmt)


@app.command(epilog=CONVENTION_HELP)
def verify(
    batch: BatchArg,
    seq_len: SeqLenArg,
    d_model: DModelArg,
    d_ff: DffOpt = None,
    activation: ActivationOpt = Activation.relu,  # type: ignore[attr-defined]
    bias: BiasOpt = True,
    norm: NormOpt = Norm.none,  # type: ignore[attr-defined]
    dtype: DtypeOpt = Dtype.float32,  # type: ignore[attr-defined]
    seed: SeedOpt = 0,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Run the layer in NumPy with random weights and confirm every number `shapes` predicts.
    Exit status 0 when all match, 1 when any does not. Example: ffn-calc verify 3 6 8 --d-ff 32"""
    cfg = _config(batch, seq_len, d_model, d_ff, activation, bias, norm, dtype)
    from ffn_calc.verify import verify as run_verify

    report = run_verify(cfg, seed=seed)
    emit(report, fmt)
    if not report.ok:
        raise typer.Exit(1)


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
        return result if isinstance(result, int) else 0
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
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
