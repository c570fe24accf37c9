"""The one output path: every command hands its result to `emit`, which writes it in the
format asked for. stdout carries the answer and nothing else; progress goes to stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ffn_calc import render
from ffn_calc.render.base import Result, View


class PipeClosed(Exception):
    """The reader of stdout went away (`| head -1`). Not an OSError, so that Typer lets it
    through to `main`, which ends quietly with status 0."""


class OutputFailed(Exception):
    """Writing to stdout failed for a reason of the environment (a full disk, an I/O error)."""


@contextmanager
def pipe_guard() -> Iterator[None]:
    """Turn the ways writing stdout can fail into PipeClosed (the reader left) or OutputFailed."""
    try:
        yield
    except BrokenPipeError:
        raise PipeClosed from None
    except OSError as e:
        raise OutputFailed(e.strerror or str(e)) from None


# What a character of the output becomes on a stream that cannot encode it (LC_ALL=C, PYTHONIOENCODING=ascii,
# latin-1): an ASCII look-alike in text, a \uXXXX escape in JSON (the same document); never a crash half-way.
# One character for one where a table cell may hold it (its columns stay aligned); more only in prose.
_LOOKALIKES = {
    "×": "x", "·": "*", "⊙": "*", "÷": "/", "−": "-", "—": "-", "–": "-", "→": ">", "…": ".", "≈": "~", "≤": "<", "≥": ">",
    "²": "^2", "³": "^3", "⁹": "^9", "√": "sqrt", "Σ": "sum", "Δ": "d", "σ": "sigma", "γ": "gamma", "β": "beta", "ε": "eps",
    "π": "pi", "φ": "phi", "Φ": "Phi", "µ": "u", "ₖ": "_k", "ᵀ": "^T", "§": "S", "✓": "+", "✗": "X", "█": "#", "▏": "|",
    "▼": "v", "│": "|", "─": "-", "├": "+", "┘": "+", "┐": "+", "┴": "+", "┬": "+",
}  # fmt: skip


def _lookalike(error: UnicodeError) -> tuple[str, int]:
    import unicodedata

    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start : error.end]
    plain = (unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() for ch in text)  # x̂ → x
    return "".join(_LOOKALIKES.get(ch) or p or "?" for ch, p in zip(text, plain, strict=True)), error.end


def _json_escape(error: UnicodeError) -> tuple[str, int]:
    """A character JSON holds only inside strings, as JSON escapes it (a surrogate pair past U+FFFF)."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    units = error.object[error.start : error.end].encode("utf-16-be")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)), error.end


def fit_stdout(fmt: str) -> None:
    """Make stdout survive an encoding that cannot hold the output's characters (see _LOOKALIKES)."""
    import codecs

    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        "×·⊙—≈✓█".encode(encoding)
        return
    except (UnicodeEncodeError, LookupError):
        pass
    codecs.register_error("ffn-calc-lookalike", _lookalike)
    codecs.register_error("ffn-calc-json", _json_escape)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="ffn-calc-json" if fmt in ("json", "jsonl") else "ffn-calc-lookalike")


MIN_WIDTH = 40  # a narrower page (COLUMNS=0 or 1 in some CI shells) is read as this
OFF_TERMINAL_WIDTH = 120  # no terminal anywhere and no COLUMNS: a page that keeps the tables whole


def page_width() -> int:
    """The width tables are laid out at: COLUMNS when it is a number; else the terminal's that
    stdout is (or, piped to `less` or `head`, the one stderr still is); never under MIN_WIDTH."""
    given = os.environ.get("COLUMNS", "").strip()
    if given.isdigit() and len(given) <= 5:
        return max(int(given), MIN_WIDTH)
    for fd in (1, 2):
        try:
            return max(os.get_terminal_size(fd).columns, MIN_WIDTH)
        except (OSError, ValueError):
            continue
    return OFF_TERMINAL_WIDTH


def console(record: bool = False) -> Any:
    from rich.console import Console

    class QuietConsole(Console):
        def on_broken_pipe(self) -> None:  # rich would exit with status 1; end like the other formats
            raise PipeClosed

    # The renderers style with Text and Style objects; a cell's text is data, printed as it is,
    # never read as console markup or :emoji: codes (which would also cost every cell a parse).
    return QuietConsole(width=page_width(), highlight=False, markup=False, emoji=False, record=record)


def emit(result: Result, fmt: str, get: str | None = None, view: View | None = None, svg: str | None = None) -> None:
    """Write `result` as `fmt`: table (rich), or json, csv, jsonl, markdown (text, streamed in
    chunks); with `get`, only the one field of its JSON at that path. `view`: how the table
    shows it (the console's width chooses each table's layout when it is printed). `svg`: a
    file to save the printed tables to as well, as an SVG picture (table output only)."""
    if svg is not None and (fmt != "table" or get is not None):
        from ffn_calc.errors import ConfigError

        raise ConfigError("--svg", f"records the table output; drop {'--get' if get is not None else '-f ' + fmt} or --svg")
    if get is not None:
        from ffn_calc.render.field import field_text

        text = field_text(result.to_dict(), get)  # a bad path raises before anything is written
        fit_stdout("json" if text[:1] in "[{" else "text")
        with pipe_guard():
            sys.stdout.write(text)
            sys.stdout.flush()
        return
    fit_stdout(fmt)
    with pipe_guard():
        if fmt == "table":
            out = console(record=svg is not None)
            for renderable in render.tables(result) if view is None else render.tables(result, view):
                out.print(renderable)
        else:
            for text in render.chunks(result, fmt, view):
                sys.stdout.write(text)
        sys.stdout.flush()
    if svg is not None:
        write_atomically(svg, out.export_svg(title="ffn-calc"))


def write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` whole or not at all: into a temporary file beside it, then renamed
    over it, so that a full disk leaves no truncated file and two runs never mix their output."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    try:
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=folder, prefix=".ffn-calc-", suffix=".tmp", delete=False) as f:
            try:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            except BaseException:
                f.close()
                os.unlink(f.name)
                raise
        os.replace(f.name, path)
    except OSError as e:  # checked when parsed; what is left is the environment's fault (a full disk)
        raise OutputFailed(f"{path}: {e.strerror or e}") from None


EXPECTED_FLOPS_PER_S = 20e9  # a cautious guess for this machine class; only decides whether to show a bar


@contextmanager
def progress(flops: int, tokens: int) -> Iterator[Callable[[int, int, str], None] | None]:
    """A transient rich progress bar on stderr, when stderr is a terminal and the pass will
    likely take more than a second: the forward pass's tokens, then each later step by name."""
    if not sys.stderr.isatty() or flops < EXPECTED_FLOPS_PER_S:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("verify"), BarColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=Console(stderr=True, width=page_width()),
                  transient=True) as bar:  # fmt: skip
        task = bar.add_task(f"0 / {tokens:,} tokens", total=tokens)

        def advance(done: int, total: int, what: str) -> None:
            if total:  # the forward pass, token by token
                bar.update(task, completed=done, total=total, description=f"{done:,} / {total:,} {what}")
            else:  # a later step of unknown length: the bar pulses until the next
                bar.update(task, total=None, description=what)

        yield advance
