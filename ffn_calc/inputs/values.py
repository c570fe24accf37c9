"""How the text of an option becomes its value: the parsers the option specs name
(api/options.py). Each takes the option as the user spelled it (for the message) and the text,
and raises ConfigError, saying what a good value looks like, when the text is not one. A parser
also takes a default that is already a value. Standard library only."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from ffn_calc.errors import ConfigError
from ffn_calc.model.layer import parse_size

# Parsers: (the option as the user spelled it, the text) → the value; ConfigError when it is bad.
Parser = Callable[[str, Any], Any]


def size(argument: str, text: str | int) -> int:
    """A whole number of at least 1 (BATCH, SEQ_LEN, D_MODEL)."""
    return parse_size(argument, text)


def count(minimum: int = 1) -> Parser:
    """A whole number of at least `minimum`."""

    def parse(argument: str, text: str | int) -> int:
        return parse_size(argument, text, minimum)

    return parse


def number(argument: str, text: str) -> float:
    """A positive number below 10^6: 1.25, 989."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(argument, f"must be a number such as 1.25, got {text!r}") from None
    if not (value > 0 and value < 1e6):
        raise ConfigError(argument, f"must be a positive number such as 1.25, got {text}")
    return value


_MEMORY = r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*"  # compiled when first used, not by every run
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def memory(argument: str, text: str | int) -> int:
    """A memory size in bytes: 2GiB, 512MiB, 1.5GB, 1000000."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(_MEMORY, text, re.IGNORECASE)
    if match is None:
        raise ConfigError(argument, f"expected a size such as 8GiB, 512MiB or 1000000000, got {text!r}")
    value = int(float(match[1]) * _UNITS[(match[2] or "B").upper()])
    if value < 1:
        raise ConfigError(argument, f"must be at least 1 byte, got {text!r}")
    return value


def writable_file(argument: str, text: str) -> str:
    """A file that can be written, checked before anything is computed or printed (a missing
    folder, a folder given, no permission: exit 2, as any bad argument); its absolute path."""
    path = os.path.abspath(os.path.expanduser(text))
    if os.path.isdir(path):
        raise ConfigError(argument, f"{text!r} is a folder; give a file name such as table.svg")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise ConfigError(argument, f"the folder of {text!r} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ConfigError(argument, f"{text!r} cannot be written (permission denied)")
    return path
