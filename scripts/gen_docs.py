"""Generate the reference in docs/ from the tool itself, and paste every example's real output.

    python scripts/gen_docs.py          # rewrite the generated regions and the examples' output
    python scripts/gen_docs.py --check  # list what is stale and exit 1; change nothing

Generated regions sit between `<!-- BEGIN generated: NAME … -->` and `<!-- END generated: NAME -->`
in README.md and docs/*.md; everything outside them is written by hand. Each NAME is a function
of REGIONS:

    commands     docs/commands.md     every command's --help, run through ffn_calc.cli.app.main
    command-list README.md            one line per command, from its help
    conventions  docs/conventions.md  model/conventions.py (docstring, constants, CONVENTION_SUMMARY,
                                      conventions_dict()) and the activation, norm and dtype registries
    json         docs/json.md         every JSON document's keys, read off real documents, described by
                                      the result dataclasses (docstrings, field comments, properties)
                                      and, where those say too little, scripts/json_notes.py

Examples: every `$ ffn-calc …` (or `$ printf … | ffn-calc …`) line of a ```console block is run
at 100 columns without colour and its output pasted below it. Lines that vary from run to run
or machine to machine (VOLATILE: measured times and memory, free memory) are compared with
their numbers masked, and an output is kept as it is when nothing else changed.
tests/docs/test_docs.py fails when a region or an example is stale. Standard library and the
package only.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import inspect
import io
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import tokenize
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "scripts"):  # the source tree, not an installed copy; json_notes beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from json_notes import NOTES, OBJECT_NOTES  # noqa: E402

# The terminal every example and every --help is rendered for.
TERMINAL = {"COLUMNS": "100", "NO_COLOR": "1"}
# The pages kept current: the README and every page of docs/.
PAGES = ("README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
WIDTH = 100  # prose generated into the pages wraps here

# --- running the tool ------------------------------------------------------------------------------


@contextlib.contextmanager
def _terminal(stdin: str = "") -> Iterator[tuple[io.StringIO, io.StringIO]]:
    saved = {k: os.environ.get(k) for k in TERMINAL}
    os.environ.update(TERMINAL)
    out, err, old_stdin = io.StringIO(), io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), contextlib.chdir(ROOT):  # paths as the pages give them
            yield out, err
    finally:
        sys.stdin = old_stdin
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_cli(*args: str, stdin: str = "") -> tuple[int, str, str]:
    """`ffn-calc ARGS` in this process: (exit status, stdout, stderr)."""
    from ffn_calc.cli.app import main

    with _terminal(stdin) as (out, err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def shell_env() -> dict[str, str]:
    return {**os.environ, **TERMINAL, "PYTHONPATH": str(ROOT)}


def run_shell(command: str) -> str:
    """An example through the shell (pipes, printf), with `ffn-calc` run as `python -m ffn_calc`."""
    shell = re.sub(r"(?<![\w/-])ffn-calc(?= )", f"{shlex.quote(sys.executable)} -m ffn_calc", command)
    done = subprocess.run(shell, shell=True, capture_output=True, text=True, env=shell_env(), cwd=ROOT, check=False)
    return clean(done.stdout + done.stderr)


def clean(text: str) -> str:
    """Output as a page shows it: no trailing spaces, no trailing blank lines."""
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())


# --- examples --------------------------------------------------------------------------------------

CONSOLE = re.compile(r"(```console\n)(.*?)(```)", re.S)
# Lines that differ between runs or machines: measured time and memory, free memory.
VOLATILE = re.compile(r"peak bytes|MiB scratch|forward pass \d|^\│\s+│ MiB|verify cannot run|max \|Δ\| \d")
_OPERATORS = {"|", "||", "&", "&&", ";", "<", ">", ">>", "(", ")"}


class Example(NamedTuple):
    page: str
    command: str
    expected: str


def _commands(block: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """(command, the lines it is written on, its output lines) for every `$ ` line of a console
    block; a command line ending in ` \\` goes on in the next."""
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        written = [lines[i]]
        while written[-1].endswith(" \\") and i + 1 < len(lines):
            i += 1
            written.append(lines[i])
        command = " ".join(line.removesuffix("\\").strip() for line in written)[2:]
        output: list[str] = []
        while i + 1 < len(lines) and not lines[i + 1].startswith("$ "):
            i += 1
            output.append(lines[i])
        yield command, written, output
        i += 1


def runnable(command: str) -> bool:
    return command.startswith(("ffn-calc ", "printf "))


def examples(pages: tuple[str, ...] = PAGES) -> list[Example]:
    """Every runnable example of the pages, in order."""
    found = []
    for page in pages:
        for block in CONSOLE.findall((ROOT / page).read_text(encoding="utf-8")):
            found += [Example(page, cmd, "\n".join(out)) for cmd, _, out in _commands(block[1]) if runnable(cmd)]
    return found


def in_process_args(command: str) -> list[str] | None:
    """The arguments of an example that runs in this process (`ffn-calc` and words only), or None
    when it needs a shell (a pipe, a redirection, another program)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    if words[:1] != ["ffn-calc"] or any(w in _OPERATORS for w in words):
        return None
    return words[1:]


def run_example(command: str) -> str:
    args = in_process_args(command)
    if args is None:
        return run_shell(command)
    _, out, err = run_cli(*args)
    return clean(out + err)


_NUMBER = re.compile(r"\d[\d,.]*(?:e[-+]?\d+)?")


def stable(text: str) -> list[str]:
    """An output as it must stay: its VOLATILE lines with every number masked (their wording and
    units must not change), the others as they are."""
    return [" ".join(_NUMBER.sub("#", line).split()) if VOLATILE.search(line) else line.rstrip() for line in text.splitlines()]


def refresh_examples(text: str) -> str:
    """`text` with every runnable example's output run again and pasted; an output that differs
    only in VOLATILE lines is kept as it was."""

    def block(m: re.Match[str]) -> str:
        lines: list[str] = []
        for command, written, output in _commands(m.group(2)):
            lines += written
            expected = "\n".join(output)
            if runnable(command):
                got = run_example(command)
                lines += (expected if stable(got) == stable(expected) else got).splitlines()
            else:
                lines += output
        return m.group(1) + "".join(line + "\n" for line in lines) + m.group(3)

    return CONSOLE.sub(block, text)


# --- regions ---------------------------------------------------------------------------------------

REGION = re.compile(r"(<!-- BEGIN generated: (?P<name>[\w-]+)[^>]*-->\n)(?P<body>.*?)(<!-- END generated: (?P=name) -->)", re.S)
# Values of a generated page that vary from run to run (verify's example document).
VOLATILE_JSON = re.compile(r'("(?:seconds|forward_seconds|gflops_per_s|memory_limit_bytes)": )[-\d.e+]+')


def _comparable(text: str) -> str:
    return VOLATILE_JSON.sub(r"\1…", text)


def render_regions(text: str, cache: dict[str, str] | None = None) -> str:
    """`text` with every generated region written again (kept as it was when only VOLATILE_JSON
    values differ)."""
    cache = {} if cache is None else cache

    def region(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in REGIONS:
            raise SystemExit(f"gen_docs: unknown region {name!r}; known: {', '.join(REGIONS)}")
        if name not in cache:
            cache[name] = REGIONS[name]().rstrip("\n") + "\n"
        body = m.group("body") if _comparable(m.group("body")) == _comparable(cache[name]) else cache[name]
        return m.group(1) + body + m.group(4)

    return REGION.sub(region, text)


def regions_in(page: str) -> list[str]:
    return [m.group("name") for m in REGION.finditer((ROOT / page).read_text(encoding="utf-8"))]


def stale_regions(pages: tuple[str, ...] = PAGES) -> list[str]:
    """The pages whose generated regions are not what the generator writes now."""
    cache: dict[str, str] = {}
    stale = []
    for page in pages:
        text = (ROOT / page).read_text(encoding="utf-8")
        if render_regions(text, cache) != text:
            stale.append(page)
    return stale


def wrap(text: str, indent: str = "") -> str:
    return textwrap.fill(" ".join(text.split()), WIDTH, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def paragraphs(text: str | None) -> str:
    """A docstring's paragraphs, each wrapped at WIDTH."""
    return "\n\n".join(wrap(p) for p in (text or "").split("\n\n"))


def fence(text: str, lang: str = "text") -> str:
    return f"```{lang}\n{text.rstrip()}\n```"


# --- commands --------------------------------------------------------------------------------------


def commands() -> dict[str, str]:
    """Every command, in the order --help lists them, with its help text."""
    import typer

    from ffn_calc.cli.app import app

    group = typer.main.get_command(app)
    return {name: cmd.help or "" for name, cmd in group.commands.items()}


def summary(help_text: str) -> str:
    """A command's help, first sentence (what it answers)."""
    first = " ".join(help_text.split("Example:")[0].split())
    return re.split(r"(?<=\.) ", first, maxsplit=1)[0]


def anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def command_reference(name: str | None) -> str:
    """One command's reference: today its --help, as printed at 100 columns. The one function to
    change when the option specs build the reference instead."""
    code, out, err = run_cli(*([name] if name else []), "--help")
    if code != 0 or err:
        raise SystemExit(f"gen_docs: ffn-calc {name or ''} --help failed: {err}")
    return fence(clean(out))


def commands_page() -> str:
    names = list(commands())
    parts = [" · ".join(f"[`{n}`](#{anchor('ffn-calc ' + n)})" for n in names), "", "## ffn-calc", "", command_reference(None)]
    for name in names:
        parts += ["", f"## ffn-calc {name}", "", command_reference(name)]
    return "\n".join(parts)


def command_list() -> str:
    """The README's list of commands: each with the first sentence of its help."""
    lines = []
    for name, help_text in commands().items():
        lines.append(wrap(f"- [`{name}`](docs/commands.md#{anchor('ffn-calc ' + name)}): {summary(help_text)}", "  "))
    return "\n".join(lines)


# --- the counting convention -----------------------------------------------------------------------


def _comments(module: ModuleType) -> dict[int, str]:
    """Line number → the comment on that line, for every comment of the module's source."""
    source = inspect.getsource(module)
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0]: t.string.lstrip("#").strip() for t in tokens if t.type == tokenize.COMMENT}


def constants_section(module: ModuleType) -> str:
    """The module's top-level constants with their comments, in source order: a comment block
    becomes a paragraph (`# --- title ---` a heading), a constant a bullet with its value (an
    entry of the cost table: its FLOPs per unit, its phase and what it counts)."""
    from ffn_calc.model.conventions import Cost

    source = inspect.getsource(module)
    lines = source.splitlines()
    comments = _comments(module)
    tree = ast.parse(source)
    first_code = min(n.lineno for n in tree.body if not isinstance(n, ast.Expr | ast.ImportFrom | ast.Import))
    inside = {i for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef) for i in range(n.lineno, (n.end_lineno or n.lineno) + 1)}
    constants = {
        n.lineno: (n.targets[0].id, n.end_lineno or n.lineno)
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id.isupper()
    }
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.extend(["", wrap(" ".join(paragraph))])
            paragraph.clear()

    for number in range(first_code, len(lines) + 1):
        if number in inside:
            continue
        text = lines[number - 1].strip()
        if text.startswith("#"):
            heading = re.fullmatch(r"-+ (.*?) -+", comments[number])
            if heading:
                flush()
                out += ["", f"### {heading.group(1)[:1].upper()}{heading.group(1)[1:]}"]
            else:
                if paragraph and paragraph[-1].endswith(".") and comments[number][:1].isupper():
                    flush()  # a new sentence on a new line: a new paragraph
                paragraph.append(comments[number])
        elif number in constants:
            name, end = constants[number]
            value = getattr(module, name)
            if isinstance(value, Cost):  # an entry of the cost table: its FLOPs per unit, phase and what it counts
                if paragraph:
                    flush()
                    out.append("")
                flops = "FLOP" if value.formula == "1" else "FLOPs"
                key = f" (`{value.key}`)"
                out.append(wrap(f"- `{name}`{key} = {value.formula} {flops} per {value.unit}, {value.phase}: {value.counts}", "  "))
            elif isinstance(value, int | float):
                if paragraph:
                    flush()
                    out.append("")
                note = comments.get(end, "")
                out.append(wrap(f"- `{name}` = {value}" + (f": {note}" if note else ""), "  "))
        elif not text:
            flush()
    flush()
    return "\n".join(out).strip("\n")


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def conventions_page() -> str:
    from ffn_calc.model import conventions as conv
    from ffn_calc.model.activations import GATED_FORMS, NONLINEARITIES
    from ffn_calc.model.dtypes import DTYPES
    from ffn_calc.model.norms import NORM_TYPES, STAT_BYTES

    out = ["## The convention, as `ffn_calc/model/conventions.py` states it", "", fence(inspect.getdoc(conv) or "")]
    intro = "Every constant of `conventions.py`: each entry of its cost table, then the storage constants with the comment beside or above them."
    out += ["", "## Constants", "", intro, "", constants_section(conv)]

    out += ["", "## Activations", "", paragraphs(inspect.getdoc(sys.modules[NONLINEARITIES["relu"].__module__])), ""]
    columns = ("name", "formula", "FLOPs per element", "counted as", "backward FLOPs per element", "counted as", "backward reads")
    columns += ("config.json spellings",)
    out += [_row(*columns), _row(*["---"] * len(columns))]
    for a in NONLINEARITIES.values():
        spellings = ", ".join(f"`{s}`" for s in a.config_names)
        cells = (a.formula, a.flops, a.flops_count, a.backward_flops, a.backward_count, a.backward_reads, spellings)
        out.append(_row(f"`{a.name}` ({a.label})", *cells))
    out += ["", "### Gated forms", "", paragraphs(inspect.getdoc(conv.activation_flops))]
    out += ["", paragraphs(inspect.getdoc(conv.activation_backward_flops)), ""]
    out += [_row("`--activation`", "gate", "FLOPs per element", "backward FLOPs per element"), _row(*["---"] * 4)]
    for gated, plain in GATED_FORMS.items():
        out.append(_row(f"`{gated}`", f"`{plain}`", conv.activation_flops(gated), conv.activation_backward_flops(gated)))

    norms = list(NORM_TYPES.values())
    out += ["", "## Norms (`--norm-type`)", ""]
    out += [_row("", *(f"`{n.name}`: {n.label}" for n in norms)), _row(*["---"] * (len(norms) + 1))]
    for label, cell in (
        ("formula", lambda n: n.formula),
        ("source", lambda n: n.paper),
        ("stage and weights", lambda n: f"`{n.stage}`: " + ", ".join(f"`{w}`" for w in n.weights) + " (d_model each)"),
        ("FLOPs", lambda n: f"{n.flops_per_element} per element + {n.flops_per_row} per row"),
        ("counted as", lambda n: n.flops_count),
        ("backward", lambda n: n.backward_formula),
        ("backward FLOPs", lambda n: f"{n.backward_flops_per_element} per element + {n.backward_flops_per_row} per row"),
        ("counted as", lambda n: n.backward_count),
        ("of which its weights' gradients", lambda n: f"{n.weight_grad_flops_per_element} per element"),
        ("saved for backward", lambda n: f"its input, and per row in float32 ({STAT_BYTES} bytes each): " + ", ".join(n.stats)),
        ("config.json keys", lambda n: ", ".join(f"`{k}`" for k in n.config_keys)),
    ):
        out.append(_row(label, *(cell(n) for n in norms)))

    dtypes_doc = paragraphs(inspect.getdoc(sys.modules[next(iter(DTYPES.values())).__module__]))
    out += ["", "## Storage types (`--dtype`, `--weight-dtype`)", "", dtypes_doc, ""]
    out += [_row("name", "bits", "bytes per element", "weights only", "what"), _row("---", "---:", "---:", "---", "---")]
    for d in DTYPES.values():
        out.append(_row(f"`{d.name}`", d.bits, d.bytes if not d.weights_only else "packed", "yes" if d.weights_only else "", d.what))

    out += ["", "## In the JSON", "", "Every command's JSON repeats the forward costs under `conventions`:", ""]
    out += [fence(json.dumps(conv.conventions_dict(), indent=2, ensure_ascii=False), "json")]
    out += ["", "## In `--help` and the tables", "", wrap(conv.CONVENTION_SUMMARY)]
    return "\n".join(out)


# --- JSON ------------------------------------------------------------------------------------------

MAP = "a map"  # an object whose keys are names (of activations, of dtypes), not fields

# Each JSON document: its schema, the commands whose output is read for its keys (the first is the
# example shown), and the object it is.
DOCUMENTS: tuple[tuple[str, str, tuple[tuple[str, ...], ...]], ...] = (
    ("ffn-calc/shapes/1", "FFNReport", (
        ("shapes", "3", "6", "8", "--d-ff", "32"),
        ("shapes", "2", "3", "8", "--norm", "pre"),
        ("shapes", "2", "3", "--model", "mixtral-8x7b", "--layers", "2", "--capacity-factor", "1.25"),
        ("shapes", "1", "8", "--model", "deepseek-v3"),
        ("shapes", "1", "8", "--model", "qwen1.5-moe-a2.7b", "--weight-dtype", "int4"),
    )),
    ("ffn-calc/verify/1", "VerifyReport", (
        ("verify", "3", "6", "8", "--d-ff", "32"),
        ("verify", "2", "3", "8", "--norm", "post", "--backward", "--tp", "2"),
        ("verify", "2", "3", "8", "--experts", "2", "--top-k", "1"),
    )),
    ("ffn-calc/train/1", "TrainingReport", (
        ("train", "2", "4", "8", "--tp", "2", "--dropout", "--norm", "pre"),
        ("train", "2", "8", "16", "--experts", "4", "--top-k", "2", "--ep", "2", "--tp", "2"),
        ("train", "2", "4", "8", "--dp", "4", "--zero", "3"),
        ("train", "4", "4", "8", "--layers", "4", "--pp", "2", "--microbatches", "2"),
    )),
    ("ffn-calc/roofline/1", "Roofline", (
        ("roofline", "1", "8192", "-m", "llama-3-8b", "--gpu", "h100-sxm"),
        ("roofline", "1", "16", "8", "--gpu", "a100-80gb"),
        ("roofline", "32", "2048", "-m", "mixtral-8x7b", "--gpu", "a100-80gb"),
        ("roofline", "4", "8", "16", "--experts", "4", "--top-k", "2", "--ep", "4", "--gpu", "h100-sxm"),
    )),
    ("ffn-calc/explain/1", "Explanation", (("explain", "1", "8", "--model", "deepseek-v3"),)),
    ("ffn-calc/compare/1", "Comparison", (("explain", "1", "8", "--compare", "llama-2-7b", "mixtral-8x7b"),)),
    ("ffn-calc/models/1", "ModelList", (("models",),)),
    ("ffn-calc/gpus/1", "GPUList", (("gpus",),)),
)  # fmt: skip

# The object each key holds, by the object it is in; MAP for a map of names.
CHILDREN: dict[str, dict[str, str]] = {
    "FFNReport": {"config": "FFNConfig", "conventions": "conventions", "stages": "Stage", "totals": "Totals", "model": "StackTotals",
                  "groups": "LayerGroup", "peak": "Peak"},
    "Stage": {"weights": "Tensor"},
    "LayerGroup": {"totals": "Totals", "sum": "StackTotals"},
    "conventions": {"activation_flops_per_element": MAP},
    "VerifyReport": {"config": "FFNConfig", "checks": "Check", "definitions": "Definition", "prediction": "FFNReport"},
    "TrainingReport": {"config": "FFNConfig", "options": "TrainingOptions", "backward": "BackwardOp", "saved": "SavedTensor",
                       "totals": "TrainingTotals", "model": "TrainingStackTotals", "parallel": "parallel", "data_parallel": "DataParallel",
                       "pipeline": "Pipeline", "forward": "FFNReport"},
    "Pipeline": {"per_stage": "PipelineStage"},
    "parallel": {"collectives": "Collective"},
    "Roofline": {"config": "FFNConfig", "gpu": "gpu", "phases": "Phase"},
    "Phase": {"gemms": "GemmRoof", "uniform": "PhaseTraffic", "worst_case": "PhaseTraffic", "collectives": "Collective"},
    "GemmRoof": {"routing": "ExpertRouting"},
    "ExpertRouting": {"uniform": "ExpertSpread", "worst_case": "ExpertSpread"},
    "Explanation": {"config": "FFNConfig", "formulas": "Formula", "facts": "Fact"},
    "Fact": {"values": "Value"},
    "Comparison": {"a": "Side", "b": "Side", "differences": "Difference"},
    "Side": {"config": "FFNConfig", "totals": "Totals", "model": "StackTotals"},
    "ModelList": {"models": "ModelRow"},
    "GPUList": {"gpus": "GPU"},
    "GPU": {"tflops": MAP},
}  # fmt: skip


def _classes() -> dict[str, tuple[type, ...]]:
    """The classes whose documentation describes each object."""
    from ffn_calc.api.model_list import ModelList, ModelRow
    from ffn_calc.catalogue.gpus import GPUList
    from ffn_calc.catalogue.presets import Preset
    from ffn_calc.model.data_parallel import DataParallel
    from ffn_calc.model.expert_parallel import ExpertParallel
    from ffn_calc.model.forward import FFNReport, LayerGroup, Peak, StackTotals, Stage, Tensor, Totals
    from ffn_calc.model.layer import FFNConfig
    from ffn_calc.model.parallel import Collective, TensorParallel
    from ffn_calc.model.pipeline import Pipeline, PipelineStage
    from ffn_calc.model.roofline import GPU, ExpertRouting, ExpertSpread, GemmRoof, Phase, PhaseTraffic, Roofline
    from ffn_calc.model.training import BackwardOp, SavedTensor, TrainingOptions, TrainingReport, TrainingStackTotals, TrainingTotals
    from ffn_calc.prose.comparison import Comparison, Difference, Side
    from ffn_calc.prose.explanation import Explanation, Formula
    from ffn_calc.prose.interview import Fact, Value
    from ffn_calc.verifier.report import Check, Definition, VerifyReport

    found: dict[str, tuple[type, ...]] = {
        c.__name__: (c,)
        for c in (FFNReport, LayerGroup, Peak, StackTotals, Stage, Tensor, Totals, FFNConfig, Collective, GPU, ExpertRouting, ExpertSpread,
                  GemmRoof, Phase, PhaseTraffic, Roofline, BackwardOp, SavedTensor, TrainingOptions, TrainingReport, TrainingStackTotals,
                  TrainingTotals, Comparison, Difference, Side, Explanation, Formula, Fact, Value, Check, Definition, VerifyReport, ModelList,
                  GPUList, DataParallel, Pipeline, PipelineStage)
    }  # fmt: skip
    found |= {"ModelRow": (ModelRow, Preset), "parallel": (TensorParallel, ExpertParallel), "gpu": (Roofline, GPU)}
    return found


@functools.cache  # json_page asks again for each key of each class: its source is read and tokenized once
def _field_comments(cls: type) -> dict[str, str]:
    """A dataclass's fields' comments (`name: int  # what it is`), by field name."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    found = {}
    for t in tokenize.generate_tokens(io.StringIO(source).readline):
        if t.type == tokenize.COMMENT:
            m = re.match(r"\s{4}(\w+): [^#]*#\s*(.*)$", t.line)
            if m:
                found[m.group(1)] = m.group(2).strip()
    return found


def code_doc(classes: tuple[type, ...], key: str) -> str:
    """What the code says a key is: its field's comment, or its property's docstring."""
    for cls in classes:
        comment = _field_comments(cls).get(key)
        if comment:
            return comment
        attribute = inspect.getattr_static(cls, key, None)
        if isinstance(attribute, property) and attribute.__doc__:
            return " ".join(inspect.cleandoc(attribute.__doc__).split("\n\n")[0].split())
    return ""


class Key(NamedTuple):
    types: set[str]  # JSON types of its values: int, str, null, list, object, …
    items: set[str]  # of a list's items
    child: str | None  # the object it holds (CHILDREN)


def _type(value: object) -> str:
    if value is None:
        return "null"
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (dict, "object"), (list, "list")):
        if isinstance(value, kind):
            return name
    raise TypeError(f"not JSON: {value!r}")


def collect(value: dict[str, Any], obj: str, found: dict[str, dict[str, Key]], where: dict[str, list[str]]) -> None:
    """Record every key of `value` (an `obj`) and of the objects inside it."""
    keys = found.setdefault(obj, {})
    for key, child in value.items():
        child_obj = CHILDREN.get(obj, {}).get(key)
        entry = keys.setdefault(key, Key(set(), set(), child_obj))
        entry.types.add(_type(child))
        items = child if isinstance(child, list) else [child]
        if isinstance(child, list):
            entry.items.update(_type(item) for item in child)
        dicts = [item for item in items if isinstance(item, dict)]
        if dicts and child_obj is None:
            raise SystemExit(f"gen_docs: {obj}.{key} holds an object; name it in CHILDREN")
        if child_obj and child_obj != MAP:
            if f"{obj}.{key}" not in where.setdefault(child_obj, []):
                where[child_obj].append(f"{obj}.{key}")
            for item in dicts:
                collect(item, child_obj, found, where)


def type_text(entry: Key) -> str:
    """`int`, `int or null`, `list of int`, a link to the object it holds, …"""
    link = f"[{entry.child}](#{anchor(entry.child)})" if entry.child and entry.child != MAP else "object (by name)"
    names = []
    for t in sorted(entry.types, key=lambda t: (t == "null", t)):
        if t == "object":
            names.append(link)
        elif t == "list":
            items = sorted(entry.items - {"object"}) + ([link] if "object" in entry.items else [])
            names.append("list" + (f" of {'/'.join(items)}" if items else ""))
        else:
            names.append(t)
    return " or ".join(names)


def meaning(classes: tuple[type, ...], obj: str, key: str) -> str:
    """What a key means: what the code says (code_doc), then its note; a note that begins with
    "= " says it instead."""
    note = NOTES.get(obj, {}).get(key, "")
    if note.startswith("= "):
        return note[2:]
    return "; ".join(part for part in (code_doc(classes, key), note) if part)


# The keys whose objects an example shows cut short, and those it leaves out (a whole document).
EMBEDDED = {"prediction": "the shapes document", "forward": "the shapes document"}


def abridge(value: Any, key: str = "") -> Any:
    """An example document shortened for the page: lists of objects to their first two items (the
    rest counted), an embedded document to its name."""
    if key in EMBEDDED:
        return f"… {EMBEDDED[key]}"
    if isinstance(value, dict):
        return {k: abridge(v, k) for k, v in value.items()}
    if isinstance(value, list) and len(value) > 3 and any(isinstance(v, dict | str) for v in value):
        return [abridge(v) for v in value[:2]] + [f"… {len(value) - 2} more"]
    if isinstance(value, list):
        return [abridge(v) for v in value]
    return value


def dumps(value: Any, indent: str = "") -> str:
    """JSON as `-f json` prints it (two spaces a level), but a list of plain values on one line."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {dumps(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return "[\n" + ",\n".join(inner + dumps(v, inner) for v in value) + f"\n{indent}]"
    return json.dumps(value, ensure_ascii=False)


def json_page() -> str:
    classes = _classes()
    found: dict[str, dict[str, Key]] = {}
    where: dict[str, list[str]] = {}
    shown: dict[str, tuple[str, dict[str, Any]]] = {}
    for schema, obj, runs in DOCUMENTS:
        for run in runs:
            code, out, err = run_cli(*run, "-f", "json")
            if code != 0 or err:
                raise SystemExit(f"gen_docs: ffn-calc {' '.join(run)} -f json failed: {err}")
            document = json.loads(out)
            if document.get("schema") != schema:
                raise SystemExit(f"gen_docs: ffn-calc {' '.join(run)} printed schema {document.get('schema')}, not {schema}")
            collect(document, obj, found, where)
            shown.setdefault(schema, (" ".join(run), document))

    out = ["## Documents", "", _row("schema", "command", "object"), _row("---", "---", "---")]
    for schema, obj, runs in DOCUMENTS:
        out.append(_row(f"`{schema}`", f"`ffn-calc {runs[0][0]}{' --compare' if 'compare' in schema else ''} … -f json`", f"[{obj}](#{anchor(obj)})"))
    out += ["", "## Objects"]
    order = [obj for _, obj, _ in DOCUMENTS] + [o for o in where if o not in {obj for _, obj, _ in DOCUMENTS}]
    missing = []
    for obj in order:
        cls = classes.get(obj, ())
        out += ["", f"### {obj}"]
        if where.get(obj):
            out += ["", wrap("In " + ", ".join(f"[{p.split('.')[0]}](#{anchor(p.split('.')[0])})`.{p.split('.')[1]}`" for p in where[obj]) + ".")]
        docs = [inspect.getdoc(c) or "" for c in cls if c.__doc__ and not c.__doc__.startswith(c.__name__ + "(")]  # not dataclass's own
        if obj in OBJECT_NOTES:
            docs = [OBJECT_NOTES[obj]]
        out += [line for doc in docs for line in ("", paragraphs(doc))]
        out += ["", _row("key", "type", "meaning"), _row("---", "---", "---")]
        for key, entry in found[obj].items():
            text = meaning(cls, obj, key)
            if not text:
                missing.append(f"{obj}.{key}")
            out.append(_row(f"`{key}`", type_text(entry), text))
    if missing:
        raise SystemExit(f"gen_docs: JSON keys documented nowhere (add a field comment, or a note in NOTES): {', '.join(missing)}")

    out += ["", "## Examples"]
    for schema, _, _ in DOCUMENTS:
        command, document = shown[schema]
        full = schema == "ffn-calc/shapes/1"
        cut = "" if full else ", lists of objects cut to their first two items"
        out += ["", f"`ffn-calc {command} -f json` (lists of values on one line{cut}):", ""]
        out.append(fence(dumps(document if full else abridge(document)), "json"))
    return "\n".join(out)


REGIONS: dict[str, Callable[[], str]] = {
    "commands": commands_page,
    "command-list": command_list,
    "conventions": conventions_page,
    "json": json_page,
}


# --- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list the stale pages and exit 1 if there are any; change nothing")
    args = parser.parse_args()
    cache: dict[str, str] = {}
    stale = []
    for page in PAGES:
        path = ROOT / page
        text = path.read_text(encoding="utf-8")
        new = refresh_examples(render_regions(text, cache))
        if new != text:
            stale.append(page)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if args.check:
        for page in stale:
            print(f"{page}: stale; run python scripts/gen_docs.py")
        sys.exit(1 if stale else 0)
    for page in stale:
        print(f"{page}: written")


if __name__ == "__main__":
    main()
