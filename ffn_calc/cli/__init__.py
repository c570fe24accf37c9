"""The command line: parse, call the Python API, hand the result to one `emit()`.

`run` is the process's entry point (the `ffn-calc` console script and `python -m ffn_calc`). It
owns Ctrl-C from its first instant, before the command line's modules load: the first SIGINT
unwinds the command (a sweep's workers are killed, a half-written file is removed) and ends it
with one line and exit status 130; a second one, or one that comes while the process ends,
ends it at once, with the same line, said once. This module stays small: it is what loads
before that guard is up.
"""

from __future__ import annotations

import os
import signal
from typing import Any

INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process that Ctrl-C ended
_said: list[bool] = []


def interrupted() -> int:
    """Say, once per process, that Ctrl-C ended the command; the exit status to use."""
    if not _said:
        _said.append(True)
        try:
            os.write(2, b"ffn-calc: interrupted\n")
        except OSError:  # stderr closed or full: the status says it
            pass
    return INTERRUPTED


def _unwind(signum: int, frame: Any) -> None:
    """The first Ctrl-C: raise KeyboardInterrupt where the command is, so that it cleans up."""
    signal.signal(signal.SIGINT, _end_now)
    raise KeyboardInterrupt


def _end_now(signum: int, frame: Any) -> None:
    """A Ctrl-C while unwinding or ending: nothing is left worth waiting for."""
    os._exit(interrupted())


def run() -> int:
    """Run the command that sys.argv names, as a process; its exit status."""
    signal.signal(signal.SIGINT, _unwind)
    try:
        from ffn_calc.cli.app import main

        code = main()
    except KeyboardInterrupt:  # before the command line was loaded, or after it answered
        code = interrupted()
    signal.signal(signal.SIGINT, _end_now)  # the interpreter's shutdown: no traceback from it
    return code
