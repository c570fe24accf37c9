"""The two ways a request can fail before any work is done. Standard library only."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """A bad input. `argument` names it the way the user typed it (BATCH, --d-ff, ...)."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument
        self.message = message


def closest(name: str, choices: Iterable[str]) -> str:
    """What to say after an unknown name: the closest known ones ("did you mean"), or all."""
    import difflib  # only on this error path

    options = list(choices)
    started = [o for o in options if o.startswith(name)]  # a name cut short: h100 → h100-sxm
    near = list(dict.fromkeys(started + difflib.get_close_matches(name, options, n=3, cutoff=0.6)))[:3]
    if near:
        return f"did you mean {', '.join(near[:-1]) + ' or ' if len(near) > 1 else ''}{near[-1]}?"
    return f"choose one of {', '.join(options)}"


class VerifyRefused(Exception):
    """`verify` would not fit in the memory limit; raised before anything is allocated."""
