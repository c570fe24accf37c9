"""The one import of Typer's private copy of click.

Typer 0.28 vendors click as `typer._click`; the CLI catches its exceptions to print one-line
errors (usage errors, unknown options, bare `ffn-calc`). `tests/cli/test_app.py` fails with a clear
message if a Typer upgrade moves any of these names.
"""

from __future__ import annotations

from typer._click.exceptions import ClickException, NoArgsIsHelpError, NoSuchOption

__all__ = ["ClickException", "NoArgsIsHelpError", "NoSuchOption"]
