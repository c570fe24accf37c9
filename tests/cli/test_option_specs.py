"""Options declared once (ffn_calc/api/options.py): every command's parameters, sweep's lists and
grid, the keys of its JSON lines and the docs' reference are built from the specs."""

from __future__ import annotations

import inspect
import json
from enum import Enum
from typing import Any

import pytest
import typer

import ffn_calc
from ffn_calc import api
from ffn_calc.api import options as specs
from ffn_calc.errors import ConfigError


@pytest.fixture(scope="module")
def commands() -> dict[str, Any]:
    """The whole app's click commands, as Typer builds them for `ffn-calc --help`."""
    from ffn_calc.cli.app import app

    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_the_app_has_the_specs_commands(commands: dict[str, Any]) -> None:
    assert list(commands) == list(specs.COMMANDS)


@pytest.mark.parametrize("name", specs.COMMANDS)
def test_every_command_takes_the_options_its_specs_name(commands: dict[str, Any], name: str) -> None:
    params = commands[name].params
    want = specs.options_of(name)
    assert [p.name for p in params] == [s.name for s in want]
    assert {s.name for s in want} == {s.name for s in specs.SPECS if name in s.commands}
    for param, spec in zip(params, want, strict=True):
        assert (param.param_type_name == "argument") == spec.argument
        if spec.argument:
            assert param.required == (spec.default is specs.REQUIRED)
            continue
        assert sorted([*param.opts, *param.secondary_opts]) == sorted(spec.spellings)
        assert param.help == spec.help
        # choices offered by click, or (a spec with a parser: --dtype) the parser decides and the choices are what is offered
        assert tuple(getattr(param.type, "choices", ())) == (spec.choices if spec.parse is None else ())
        default = param.default.value if isinstance(param.default, Enum) else param.default
        assert default == spec.default


@pytest.mark.parametrize("name", specs.COMMANDS)
def test_every_spec_is_in_the_help_of_the_commands_it_names(cli, name: str) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli(name, "--help")
    assert code == 0
    for spec in specs.options_of(name):
        for word in spec.spellings or (spec.metavar,):
            assert word in out, f"{name} --help lacks {word}"


def test_train_and_verify_share_the_training_options(commands: dict[str, Any]) -> None:
    training = [s.name for s in specs.SPECS if s.group == specs.TRAINING]
    assert training == ["recompute", "optimizer", "mixed_precision", "dropout", "no_input_grad"]

    def described(command: str) -> list[tuple[Any, ...]]:
        params = {p.name: p for p in commands[command].params}
        return [(p.opts, p.help, getattr(p.type, "choices", None), p.default, p.is_flag) for p in (params[n] for n in training)]

    assert described("train") == described("verify")


def test_the_specs_hold_together() -> None:
    assert specs.check(specs.SPECS) == []
    bias = next(s for s in specs.SPECS if s.name == "bias")
    assert specs.check((*specs.SPECS, bias._replace(name="bias2", commands=("shapes", "plot")))) == [
        "no command 'plot'",
        "ffn_calc.layer and the layer options differ in 'bias2'",
        "shapes: '--bias' twice",
        "shapes: '--no-bias' twice",
    ]
    batch = next(s for s in specs.SPECS if s.name == "batch")
    problems = specs.check(tuple(s for s in specs.SPECS if s is not batch))
    assert problems[0] == "ffn_calc.layer and the layer options differ in 'batch'" and "the grid's axes" in problems[-1]


def test_a_command_builds_its_parameters_when_first_asked() -> None:
    from ffn_calc.cli.options import Command

    def shapes(cfg: object, given: object) -> None:
        """A command."""

    command = Command(shapes, resolve=True)
    assert "__signature__" not in vars(command)
    assert list(inspect.signature(command).parameters) == [s.name for s in specs.options_of("shapes")]


# --- sweep: the lists, the grid, the JSON lines ------------------------------------------------------


def test_sweep_takes_a_list_of_every_axis(commands: dict[str, Any]) -> None:
    params = {p.name: p for p in commands["sweep"].params}
    assert [s.name for s in specs.SWEPT] == [
        "model", "batch", "seq_len", "d_model", "d_ff", "experts", "top_k", "layers", "activation", "dtype",
        "dp", "zero", "pp", "microbatches", "schedule",
    ]  # fmt: skip
    for spec in specs.SWEPT:
        assert spec.swept is not None
        param = params[spec.name]
        assert param.param_type_name == "option" and param.metavar == spec.swept.metavar and param.help == spec.swept.help
        assert param.default is None and not hasattr(param.type, "choices")  # text, read by the sweep
    assert specs.SIZE_AXES == ("batch", "seq_len", "d_model", "d_ff", "experts", "top_k", "layers", "dp", "pp", "microbatches")
    assert specs.TRAINING_AXES == ("dp", "zero", "pp", "microbatches", "schedule")


def test_the_grid_varies_its_axes_in_the_specs_order() -> None:
    rows = ffn_calc.sweep("1,2", "8", sizes={"d_model": "8"}, model="bert-base,gpt2", activation="relu,swiglu", columns="batch").to_dict()["rows"]
    assert [(r["model"], r["batch"], r["activation"]) for r in rows] == [
        (m, b, a) for m in ("bert-base", "gpt2") for b in (1, 2) for a in ("relu", "swiglu")
    ]  # model (axis 0) slowest, activation (axis 8) fastest


def test_a_json_line_takes_the_layer_options_by_name() -> None:
    assert specs.LINE_KEYS == set(inspect.signature(ffn_calc.layer).parameters)
    errors: list[tuple[int, str]] = []
    lines = ['{"batch": 1, "seq_len": 4, "d_model": 8, "layers": 2, "norm": "pre"}', '{"batch": 1, "seq_len": 4, "d_model": 8, "seed": 1}']
    result = api.sweep(lines=lines, on_error=lambda n, m: errors.append((n, m)), columns="layers,norm")
    assert [row[:3] for row in result.rows] == [[1, 2, "pre"]]
    assert errors[0][0] == 2 and errors[0][1].startswith("seed: is not an option")


def test_a_bad_json_line_raises_without_on_error() -> None:
    result = api.sweep(lines=['{"batch": 1}'])
    with pytest.raises(ConfigError, match="seq_len"):
        list(result.rows)


def test_the_command_line_sweep_calls_the_api(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    real = api.sweep

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        result = real(*args, **kwargs)
        if kwargs["lines"] is None:  # (JSON lines from stdin are read once: the renderer's read is the one)
            assert inspect.isgenerator(iter(result.rows))  # streamed: rows are made as they are written, never kept
        return result

    monkeypatch.setattr(api, "sweep", spy)
    code, out, _ = cli("sweep", "--seq-len", "8,16", "--d-model", "8", "-a", "SwiGLU", "-j", "2", "-f", "jsonl")
    assert code == 0 and [json.loads(line)["seq_len"] for line in out.splitlines()] == [8, 16]
    ((args, kwargs),) = calls
    assert args == (None, "8,16") and kwargs["sizes"] == {"d_model": "8"} and kwargs["jobs"] == 2 and kwargs["lines"] is None
    assert kwargs["activation"] == "SwiGLU"  # the API takes a choice in any case, as the command line does
    code, out, _ = cli("sweep", "--stdin", "-f", "csv", input='{"batch": 1, "seq_len": 4, "d_model": 8}\n')
    assert code == 0 and out.splitlines()[1].startswith("1,1,4,8,")
    assert calls[1][1]["lines"] is not None


# --- the docs' reference ---------------------------------------------------------------------------


def test_the_options_reference_is_every_commands_help(commands: dict[str, Any]) -> None:
    reference = specs.options_reference()
    assert json.loads(json.dumps(reference)) == reference
    assert list(reference) == list(specs.COMMANDS)
    for name, entries in reference.items():
        params = commands[name].params
        assert [e["name"] for e in entries] == [p.name for p in params]
        for entry, param in zip(entries, params, strict=True):
            assert entry["required"] == param.required
            if param.param_type_name == "argument":
                assert entry["flags"] == [] and entry["metavar"] == param.metavar
            else:
                assert sorted(entry["flags"]) == sorted([*param.opts, *param.secondary_opts]) and entry["help"] == param.help
    assert {e["name"] for e in reference["sweep"] if e["list"]} == {s.name for s in specs.SWEPT}
    shapes = {e["name"]: e for e in reference["shapes"]}
    assert shapes["format"]["default"] == "table" and shapes["format"]["choices"] == ["table", "json", "csv", "markdown"]
    assert not shapes["batch"]["required"] and shapes["batch"]["default"] == 1  # one token unless given
    assert [o["required"] for o in reference["roofline"] if o["name"] == "batch"] == [True]  # roofline's answer is the token counts
    assert shapes["activation"]["flags"] == ["--activation", "-a"]
    assert shapes["bias"]["flags"] == ["--bias", "--no-bias"] and shapes["bias"]["group"] == "Layer"
