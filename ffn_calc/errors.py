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
    import re

    options = list(choices)
    # The short spellings of the floating-point types (fp16, bf16, fp8) read as the long ones.
    spellings = list(dict.fromkeys([name, re.sub(r"^fp(?=\d)", "float", name), re.sub(r"^bf(?=\d)", "bfloat", name)]))
    exact = [s for s in spellings[1:] if s in options]
    if exact:
        return f"did you mean {exact[0]}?"
    started = [o for s in spellings for o in options if o.startswith(s)]  # a name cut short: h100 → h100-sxm
    near = list(dict.fromkeys(started + [m for s in spellings for m in difflib.get_close_matches(s, options, n=3, cutoff=0.6)]))[:3]
    if near:
        return f"did you mean {', '.join(near[:-1]) + ' or ' if len(near) > 1 else ''}{near[-1]}?"
    return f"choose one of {', '.join(options)}"


class VerifyRefused(Exception):
    """`verify` would not fit in the memory limit; raised before anything is allocated."""
