"""The one place that reaches into Typer's private parts.

Typer 0.28 vendors click as `typer._click`; the CLI catches its exceptions to print one-line
errors (usage errors, unknown options, bare `ffn-calc`). `tests/cli/test_app.py` fails with a clear
message if a Typer upgrade moves any of these names. Also here: `--install-completion`'s files
written whole or not at all (Typer rewrites ~/.bashrc in place).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from typer._click.exceptions import ClickException, NoArgsIsHelpError, NoSuchOption

__all__ = ["ClickException", "NoArgsIsHelpError", "NoSuchOption", "completion_writes"]


@contextmanager
def completion_writes(write: Callable[[str, str], None]) -> Iterator[None]:
    """While Typer installs the shell completion, every file it writes (the shell's rc file, the
    completion script) is written by `write(path, text)`: Typer's installer builds its paths from
    `Path.home()` and writes them with `write_text`, which truncates the file first."""
    from typer import _completion_shared as installer

    class WrittenWhole(type(Path())):  # type: ignore[misc]  # the platform's Path, as Path.home() makes it
        def write_text(self, data: str, encoding: Any = None, errors: Any = None, newline: Any = None) -> int:
            write(str(self), data)
            return len(data)

    plain = getattr(installer, "Path")  # noqa: B009 - not exported by name
    setattr(installer, "Path", WrittenWhole)  # noqa: B010
    try:
        yield
    finally:
        setattr(installer, "Path", plain)  # noqa: B010
