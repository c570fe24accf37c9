"""The command line's parameters, built from the option specs (`ffn_calc/api/options.py`):
`command` gives a command the Typer parameters of the specs that name it, parses them with the
specs' parsers (a bad value exits 2 with a line that names the option and says what a good value
looks like), completes them in the shell, and hands the command its options as given.

A command's parameters are built when Typer first asks for them: `ffn-calc COMMAND …` builds
that command's alone (app._app_for). No `from __future__ import annotations` here or in app.py:
Typer reads the annotations at run time.
"""

import functools
import inspect
from collections.abc import Callable
from enum import Enum
from types import SimpleNamespace
from typing import Any

import typer

from ffn_calc import api
from ffn_calc.api.options import LAYER, REQUIRED, Option, options_of
from ffn_calc.errors import ConfigError
from ffn_calc.model import conventions as conv
from ffn_calc.model.activations import ACTIVATIONS
from ffn_calc.model.dtypes import DTYPES

CONVENTION_HELP = (
    f"Counting convention: {conv.CONVENTION_SUMMARY} "
    "Memory: weights and activations in --dtype; peak = weights + the tensors alive at the "
    "busiest moment of an out-of-place forward pass."
)


# --- shell completion (--install-completion): names for a prefix; the registries are imported
# only when the shell asks, so that a normal run does not pay for them. A list option (the
# sweep's `--model a,b,c`) completes its last item.


def _complete(names: list[str], incomplete: str) -> list[str]:
    done, _, last = incomplete.rpartition(",")
    prefix = done + "," if done else ""
    return [prefix + name for name in names if name.startswith(last.lower())]


def complete_model(incomplete: str) -> list[str]:
    from ffn_calc.catalogue.presets import PRESETS

    return _complete(list(PRESETS), incomplete)


def complete_gpu(incomplete: str) -> list[str]:
    from ffn_calc.catalogue.gpus import GPUS

    return _complete(list(GPUS), incomplete)


def complete_activation(incomplete: str) -> list[str]:
    return _complete(list(ACTIVATIONS), incomplete)


def complete_dtype(incomplete: str) -> list[str]:
    return _complete(list(DTYPES), incomplete)


COMPLETERS: dict[str, Callable[[str], list[str]]] = {
    "model": complete_model,
    "gpu": complete_gpu,
    "activation": complete_activation,
    "dtype": complete_dtype,
}

_TYPE_NAMES = {int: "INTEGER", float: "NUMBER"}  # what a parser is called (click's name of the type)


def _parser(spec: Option) -> Callable[[str], Any]:
    """The spec's parser for Typer: a ConfigError becomes a bad parameter (exit 2)."""
    parse, label = spec.parse, spec.label
    assert parse is not None

    def convert(text: str) -> Any:
        try:
            return parse(label, text)
        except ConfigError as e:
            raise typer.BadParameter(e.message) from None

    convert.__name__ = _TYPE_NAMES.get(spec.type, "TEXT")
    return convert


@functools.cache
def choice_type(choices: tuple[str, ...]) -> type[Enum]:
    """The choices as a `str` Enum, the type Typer offers choices by (case-insensitively)."""
    return Enum("Choice", {c: c for c in choices}, type=str)  # type: ignore[return-value]


def parameter(spec: Option) -> inspect.Parameter:
    """The Typer parameter of `spec`: `name: type = typer.Option(default, *flags, ...)` (Typer's
    older style: an `Annotated` type for each would cost every run its construction)."""
    kind: Any = choice_type(spec.choices) if spec.choices else spec.type
    default = spec.default
    if spec.choices and default not in (None, REQUIRED):
        default = kind(default)
    settings: dict[str, Any] = {"help": spec.help, "show_default": spec.show_default}
    if spec.metavar is not None:
        settings["metavar"] = spec.metavar
    if spec.parse is not None:
        settings["parser"] = _parser(spec)
    if spec.argument:
        info: Any = typer.Argument(default, **settings)
    else:
        settings["rich_help_panel"] = spec.panel
        if spec.choices:
            settings["case_sensitive"] = False
        if spec.minimum is not None:
            settings["min"] = spec.minimum
        if spec.complete is not None:
            settings["autocompletion"] = COMPLETERS[spec.complete]
        info = typer.Option(default, *spec.flags, **settings)
    return inspect.Parameter(spec.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=info, annotation=kind | None if default is None else kind)


class Given(SimpleNamespace):
    """A command's options as given, by their specs' names, a choice as its name (str); for a
    command that resolves its layer itself, `layer` holds the layer's options as given."""


class Command:
    """A command for Typer, with the parameters of the specs that name it (built when Typer first
    reads `__signature__`). Called with them, it resolves the layer options into an FFNConfig
    through the API (`ffn_calc.layer`) and calls `run(cfg, given)`; with `resolve=False`, or
    for a command without a layer, `run(given)`, the layer options in `given.layer`."""

    def __init__(self, run: Callable[..., None], resolve: bool) -> None:
        self.__name__ = self.__qualname__ = run.__name__  # Typer names the command after it
        self.__doc__ = run.__doc__
        self.__module__ = run.__module__
        self._run, self._resolve = run, resolve

    @functools.cached_property
    def __signature__(self) -> inspect.Signature:
        return inspect.Signature([parameter(spec) for spec in options_of(self.__name__)])

    @functools.cached_property
    def __annotations__(self) -> dict[str, Any]:  # type: ignore[override]  # what typing.get_type_hints reads
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    @functools.cached_property
    def _layer_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in options_of(self.__name__) if spec.group == LAYER)

    def __call__(self, **values: Any) -> None:
        given = {name: v.value if isinstance(v, Enum) else v for name, v in values.items()}
        layer = {name: given.pop(name) for name in self._layer_names}
        if layer and self._resolve:
            self._run(api.layer(**layer), Given(**given))
        else:
            self._run(Given(**given, layer=layer))


def command(resolve: bool = True) -> Callable[[Callable[..., None]], Command]:
    """Make `run` a command with the options its specs name (api/options.py): written as
    `def name(cfg: FFNConfig, given: Given)` for a command that describes a layer, else (and
    with resolve=False) `def name(given: Given)`."""

    def wrap(run: Callable[..., None]) -> Command:
        return Command(run, resolve)

    return wrap
