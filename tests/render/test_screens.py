"""What each command prints by default fits an 80 × 50 terminal and ends with its answer.

Every command's table output, for every preset and the usual flags, at 80 columns: at most 50
lines, none wider than 80, nothing cut (no "…"), and the headline in the last lines with each of
its numbers whole, exact or in units. The numbers are the JSON's (the same command with -f json,
or for explain the shapes of the same layer), never parsed back out of the table. A
representative set runs in the fast loop; every preset, with the slow tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from helpers import Result

from ffn_calc.catalogue.presets import PRESETS
from ffn_calc.render.layout import UNITS, bytes_text, flops_text, n, params_text
from ffn_calc.render.roofline import _time

Cli = Callable[..., Result]
Figure = tuple[int | str, Callable[[int], str] | None]  # a number (and its units' form), or a text shown as it is
ROWS, COLUMNS = 50, 80
TAIL = 9  # the headline's lines: a title and up to eight quantities

# The presets that cover every form: dense with biases, GLU, MoE, shared experts with a gate (the
# longest stage names), mixed dense/MoE stacks (first-k dense, interleaved).
FORMS = ("bert-base", "llama-3-8b", "mixtral-8x7b", "deepseek-v3", "qwen1.5-moe-a2.7b", "llama-4-maverick-17b-128e")


def per_preset(model: str) -> list[tuple[str, ...]]:
    return [
        ("shapes", "1", "2048", "-m", model),
        ("shapes", "1", "2048", "-m", model, "--norm", "pre"),
        ("train", "1", "2048", "-m", model),
        ("roofline", "32", "2048", "-m", model, "--gpu", "h100-sxm"),
        ("explain", "1", "2048", "-m", model),
    ]


FLAGS = [
    ("shapes", "3", "6", "8", "--d-ff", "32", "--norm", "post"),
    ("shapes", "1", "2048", "-m", "deepseek-v3", "--weight-dtype", "nvfp4"),
    ("shapes", "1", "4096", "-m", "llama-2-7b", "--weight-dtype", "int4", "--group-size", "64"),
    ("shapes", "2", "32", "64", "--experts", "8", "--top-k", "2", "-a", "swiglu", "--shared-experts", "1", "--capacity-factor", "1.25"),
    ("train", "1", "2048", "-m", "llama-3-8b", "--tp", "8", "--sequence-parallel", "--mixed-precision", "--dropout"),
    ("train", "1", "2048", "-m", "deepseek-v3", "--ep", "8", "--recompute", "selective"),
    ("train", "1", "64", "-m", "mixtral-8x7b", "--ep", "8"),
    ("roofline", "32", "2048", "-m", "kimi-k2", "--gpu", "h100-sxm", "--ep", "8"),
    ("roofline", "1", "2048", "-m", "deepseek-v3", "--gpu", "b200", "--weight-dtype", "nvfp4"),
    ("roofline", "1", "1", "-m", "llama-3-8b", "--gpu", "h100-sxm", "--weight-dtype", "int4"),
    ("explain", "1", "2048", "--compare", "deepseek-v3", "kimi-k2"),
    ("explain", "1", "2048", "768", "--compare", "relu", "swiglu"),
    ("explain", "1", "2048", "-m", "llama-3-8b", "--norm", "post"),
    ("verify", "3", "6", "8", "--d-ff", "32", "--norm", "pre"),
    ("verify", "2", "8", "16", "--experts", "4", "--top-k", "2", "-a", "swiglu"),
    ("models",),
    ("gpus",),
]
FAST = [args for model in FORMS for args in per_preset(model)] + FLAGS
EVERY = [args for model in PRESETS if model not in FORMS for args in per_preset(model)]


def screen(cli: Cli, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> list[str]:
    """The default table output at 80 columns, checked to fit the screen."""
    monkeypatch.setenv("COLUMNS", str(COLUMNS))
    code, out, err = cli(*args)
    assert code == 0, err
    lines = out.rstrip("\n").splitlines()
    assert len(lines) <= ROWS, f"{len(lines)} lines"
    wide = [line for line in lines if len(line) > COLUMNS]
    assert not wide, wide
    assert "…" not in out
    return lines


def json_of(cli: Cli, *args: str) -> dict[str, Any]:
    code, out, err = cli(*args, "-f", "json")
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def whole(text: str, value: int | str, human: Callable[[int], str] | None = None) -> bool:
    """`value` appears whole: exact with separators, or in units, not as a piece of a longer number."""
    forms = [value] if isinstance(value, str) else [n(value), *([human(value)] if human else [])]
    return any(re.search(rf"(?<![\d,.]){re.escape(form)}(?![\d]|,\d)", text) for form in forms)


def layer_figures(doc: dict[str, Any]) -> list[Figure]:
    """The headline of a layer (shapes, explain): parameters, active ones, FLOPs per token,
    weight and peak memory, the model's parameters."""
    t, m = doc["totals"], doc["model"]
    out: list[Figure] = [
        (t["params"], params_text),
        (t["flops_per_token"], flops_text),
        (t["weight_bytes"], bytes_text),
        (t["peak_bytes"], bytes_text),
    ]
    if doc["config"]["experts"]:
        out.append((t["active_params"], params_text))
    if m["layers"] > 1:
        out.append((m["params"], params_text))
    return out


def expected(cli: Cli, args: tuple[str, ...]) -> list[Figure]:
    """The numbers the headline must hold, from the JSON."""
    command = args[0]
    if command == "shapes":
        return layer_figures(json_of(cli, *args))
    if command == "explain":
        if "--compare" in args:  # the table of differences is the answer
            shown = [d for d in json_of(cli, *args)["differences"] if d["quantity"] not in ("active_params", "model_params")]
            return [(d["b"], UNITS[d["unit"]]) for d in shown]
        return layer_figures(json_of(cli, "shapes", *args[1:]))
    if command == "train":
        doc = json_of(cli, *args)
        t, m = doc["totals"], doc["model"]
        out: list[Figure] = [(t["step_flops"], flops_text), (t["peak_bytes"], bytes_text)]
        if m is not None and m["layers"] > 1:
            out += [(m["step_flops"], flops_text), (m["peak_bytes"], bytes_text)]
        return out
    if command == "roofline":
        doc = json_of(cli, *args)
        texts = [_time(p["seconds"]) for p in doc["phases"]] + [f"{doc['ridge_flops_per_byte']:.1f} FLOP/byte"]
    elif command == "verify":
        judged = [c for c in json_of(cli, *args)["checks"] if c["kind"] != "info"]
        texts = [f"ok: all {len(judged)} checks match"]
    else:  # models, gpus: how many were listed
        texts = [f"{len(json_of(cli, *args)[command])} {'GPUs' if command == 'gpus' else 'models'}"]
    return [(text, None) for text in texts]


def check(cli: Cli, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    lines = screen(cli, monkeypatch, args)
    tail = "\n".join(lines[-TAIL:])
    for value, human in expected(cli, args):
        assert whole(tail, value, human), f"{value} not in the last {TAIL} lines:\n{tail}"


@pytest.mark.parametrize("args", FAST, ids=" ".join)
def test_a_screen_ends_with_the_answer(cli: Cli, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    check(cli, monkeypatch, args)


@pytest.mark.slow
@pytest.mark.parametrize("args", EVERY, ids=" ".join)
def test_every_preset_fits_a_screen(cli: Cli, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    check(cli, monkeypatch, args)


def test_models_one_line_each(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every preset on a line of its own, its parameters per layer whole; a MoE's active ones too."""
    lines = screen(cli, monkeypatch, ("models",))
    for row in json_of(cli, "models")["models"]:
        line = next(line for line in lines if line.split()[:1] == [row["name"]])
        assert whole(line, row["params_per_layer"], params_text), row["name"]
        assert whole(line, row["active_params_per_layer"], params_text), row["name"]


# The cases the pre-stop hook reads at 80 and 250 columns: a token shown at 80 that is the start
# of a longer one at 250 was cut or split; an (M, K, N) shown at 250 must be whole at 80.
HOOK = [
    ("shapes", "3", "6", "8", "--d-ff", "32", "--norm", "post"),
    ("models",),
    ("shapes", "1", "2048", "-m", "mixtral-8x7b"),
    ("roofline", "32", "2048", "-m", "mixtral-8x7b", "--gpu", "h100-sxm"),
    ("verify", "3", "6", "8", "--d-ff", "32", "--all"),
    ("sweep", "--seq-len", "512", "--model", "bert-base,gpt2-xl,llama-3-8b,mixtral-8x7b"),
    ("shapes", "1", "2048", "-m", "qwen1.5-moe-a2.7b"),  # the longest stage names and formulas
]
TOKEN = re.compile(r"[\s│┃┆┊|┏┓┗┛━─┡┩╇┳┻╋┼├┤┬┴└┘┌┐═]+")


@pytest.mark.parametrize("args", HOOK, ids=" ".join)
def test_nothing_cut_at_80_that_250_shows_whole(cli: Cli, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    texts = {}
    for width in ("80", "250"):
        monkeypatch.setenv("COLUMNS", width)
        code, texts[width], err = cli(*args)
        assert code == 0, err
    narrow, wide = texts["80"], texts["250"]
    assert all(len(line) <= 80 for line in narrow.splitlines())
    words = set(TOKEN.split(wide))
    cut = {t for t in TOKEN.split(narrow) if sum(c.isalpha() for c in t) >= 2 and t not in words and any(w.startswith(t) for w in words)}
    assert not cut
    assert [s for s in re.findall(r"\(\d[\d,]*(?:, \d[\d,]*)+\)", wide) if s not in narrow] == []
