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

__all__ = ["ClickException", "NoArgsIsHelpError", "NoSuchOption", "completion_writes", "keep_words_whole"]


def keep_words_whole() -> None:
    """Help text wraps between words only: click wraps it with textwrap, which also breaks at a
    hyphen and inside a long word (`bert-` / `base`, `ffn-` / `calc verify`, `d_m` / `odel`),
    cutting the names a reader copies. A word longer than the line overflows it instead."""
    from typer._click import _textwrap

    plain = _textwrap.TextWrapper
    if getattr(plain, "keeps_words_whole", False):
        return

    class WholeWords(plain):  # type: ignore[misc,valid-type]
        keeps_words_whole = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.update(break_on_hyphens=False, break_long_words=False)
            super().__init__(*args, **kwargs)

        def _handle_long_word(self, reversed_chunks: list[str], cur_line: list[str], cur_len: int, width: int) -> None:
            if not cur_line:  # (click's cuts it wherever the line ends) alone on a line of its own, whole
                cur_line.append(reversed_chunks.pop())

    _textwrap.TextWrapper = WholeWords  # type: ignore[misc]  # wrap_text imports it from there when it wraps


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
