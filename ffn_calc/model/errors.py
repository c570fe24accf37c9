"""The two ways a request can fail before any work is done. Standard library only."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad input. `argument` names it the way the user typed it (BATCH, --d-ff, ...)."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument
        self.message = message


class VerifyRefused(Exception):
    """`verify` would not fit in the memory limit; raised before anything is allocated."""
