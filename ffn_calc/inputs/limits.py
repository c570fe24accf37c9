"""How big and how deep an input file or line may be: a config.json or a saved measurement, a
sweep's JSON lines, each bounded here, so that a huge or deeply nested input is refused in one
line (exit 2) instead of exhausting memory or the stack, or tripping Python's limit on the digits
of an integer (4,300) half-way through. (The command line's arguments and the environment are
bounded where they are read, cli/app.py, which loads this module only to read a file or stdin.)
The bounds are far beyond any real input. Standard library only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ffn_calc.errors import ConfigError

MAX_FILE_BYTES = 4 << 20  # a config.json (the largest published ones are tens of KiB) or a saved measurement
MAX_LINE_CHARS = 1 << 16  # one JSON line of a sweep
MAX_DEPTH = 64  # JSON nesting (a config.json nests four or five deep)
MAX_DIGITS = 30  # a JSON integer (a size is at most 2^40, 13 digits)


def _json_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise ValueError(f"a number of {digits:,} digits; a whole number here has at most {MAX_DIGITS}")
    return int(text)


def _depth_over(value: Any) -> bool:
    """Whether `value` nests deeper than MAX_DEPTH (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


class JsonRefused(ValueError):
    """Text that is JSON but beyond the bounds (too deep, a number too long); its message says which."""


def load_json(text: str) -> Any:
    """`json.loads`, bounded: raises json.JSONDecodeError for text that is not JSON, and
    JsonRefused for JSON nested deeper than MAX_DEPTH or with an integer of more than MAX_DIGITS."""
    import json

    try:
        value = json.loads(text, parse_int=_json_int)
    except RecursionError:
        raise JsonRefused(f"it is nested more than {MAX_DEPTH} deep") from None
    except json.JSONDecodeError:
        raise
    except ValueError as e:  # from _json_int
        raise JsonRefused(f"it holds {e}") from None
    if _depth_over(value):
        raise JsonRefused(f"it is nested more than {MAX_DEPTH} deep")
    return value


def read_file(path: str, argument: str) -> str:
    """The text of the file at `path` (UTF-8), at most MAX_FILE_BYTES (a device or a FIFO too:
    no more is read); ConfigError naming `argument` when it cannot be read or is larger."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(argument, f"cannot read {path!r}: {e.strerror or e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(argument, f"{path!r} is larger than {MAX_FILE_BYTES >> 20} MiB; a config file is a few KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(argument, f"cannot read {path!r}: not UTF-8 text ({e.reason} at byte {e.start:,})") from None


def bounded_lines(stream: Any) -> Iterator[str]:
    """The lines of a stream (binary, read as UTF-8, a byte that is not becoming U+FFFD, which
    no option takes; or text), each at most MAX_LINE_CHARS + 1 long: of a longer line, the first
    MAX_LINE_CHARS + 1 are kept (enough to refuse it) and the rest is read and dropped, so that
    one endless line cannot fill the memory."""
    newline: Any = None
    while True:
        line = stream.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if newline is None:
            newline = b"\n" if isinstance(line, bytes) else "\n"
        if len(line) > MAX_LINE_CHARS and not line.endswith(newline):
            while True:  # the rest of this line, in pieces
                rest = stream.readline(MAX_LINE_CHARS)
                if not rest or rest.endswith(newline):
                    break
        yield line.decode("utf-8", "replace") if isinstance(line, bytes) else line


def check_line(text: str) -> None:
    """One JSON line of a sweep, refused (JsonRefused) when it is longer than MAX_LINE_CHARS."""
    if len(text) > MAX_LINE_CHARS:
        raise JsonRefused(f"it is longer than {MAX_LINE_CHARS:,} characters; a configuration takes a few hundred")
