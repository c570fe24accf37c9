"""The pages say what the tool says. The generated reference (docs/commands.md, conventions.md,
json.md and the README's list of commands) is what scripts/gen_docs.py writes now; every
`$ ffn-calc …` example in README.md and docs/*.md runs and prints what its page shows; the Python
examples run; the README is a front door whose install and test commands are CI's; every command
has a help summary with an example and a section in docs/commands.md."""

from __future__ import annotations

import doctest
import importlib.util
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, Run

_spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
assert _spec and _spec.loader
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES: tuple[str, ...] = gen.PAGES
# Each generated region and the page it belongs on.
GENERATED = {"README.md": ["command-list"], "docs/commands.md": ["commands"], "docs/conventions.md": ["conventions"], "docs/json.md": ["json"]}
# An example shown on two pages with the same output runs once.
EXAMPLES = list({(e.command, "\n".join(gen.stable(e.expected))): e for e in gen.examples()}.values())
# Examples that run a NumPy pass of a second or more, left to the full run; the fast loop holds what
# they show elsewhere (tests/verifier/test_verify.py runs in chunks, tests/model/test_expert_parallel.py
# observes --ep's dispatch bytes).
SLOW = ("ffn-calc verify 2 64 256 --experts 8 --top-k 2 -a swiglu --ep 8 ", "ffn-calc verify 4 1024 1024 --max-memory 120MiB ")


def _param(example: Any) -> Any:
    marks = [pytest.mark.slow] if example.command.startswith(SLOW) else []
    return pytest.param(example, marks=marks, id=f"{example.page}: {example.command}")


def test_every_generated_region_is_on_its_page() -> None:
    assert {page: gen.regions_in(page) for page in PAGES if gen.regions_in(page)} == GENERATED
    assert sorted(name for names in GENERATED.values() for name in names) == sorted(gen.REGIONS)


def test_the_generated_pages_are_current() -> None:
    stale = gen.stale_regions()
    assert not stale, f"stale generated pages: {', '.join(stale)}; run python scripts/gen_docs.py"


def test_every_slow_example_is_on_a_page() -> None:
    assert all(any(e.command.startswith(prefix) for e in EXAMPLES) for prefix in SLOW)


def _piped(command: str) -> tuple[list[str], str] | None:
    """`ffn-calc … | reader` whose reader reads all it is given (python3 -c, grep, awk): the
    arguments of the ffn-calc part, run in this process, and the reader's command. None for
    anything else, and for a reader that leaves early (head): that one runs through the shell
    as written, so that ffn-calc really meets a closed pipe."""
    first, _, reader = command.partition(" | ")
    args = gen.in_process_args(first)
    if args is None or not reader or reader.split()[0] not in ("python3", "grep", "awk"):
        return None
    return args, reader


@pytest.mark.parametrize("example", [_param(e) for e in EXAMPLES])
def test_example_output_is_real(cli: Run, example: Any) -> None:  # a gen_docs.Example
    args = gen.in_process_args(example.command)
    piped = _piped(example.command)
    if piped is not None:  # ffn-calc here, its output through the reader in the shell
        _, out, err = cli(*piped[0])
        done = subprocess.run(piped[1], shell=True, input=out, capture_output=True, text=True, env=gen.shell_env(), cwd=ROOT, check=False)
        got = gen.clean(done.stdout + err + done.stderr)
    elif args is None:  # printf into ffn-calc, a reader that leaves early: through the shell
        got = gen.run_shell(example.command)
    else:
        _, out, err = cli(*args)
        got = gen.clean(out + err)
    assert gen.stable(got) == gen.stable(example.expected), f"stale output in {example.page}; run python scripts/gen_docs.py"


def test_the_readme_is_a_front_door() -> None:
    lines = README.splitlines()
    assert len(lines) <= 200
    prose = re.sub(r"```.*?```", "", README, flags=re.S).splitlines()
    assert [line for line in prose if len(line) > 100] == []
    commands = [e.command for e in gen.examples(("README.md",))]
    assert "ffn-calc shapes 3 6 8 --d-ff 32" in commands
    for needed in ("ffn-calc explain ", "ffn-calc verify ", " -m ", "--get", "-f csv"):
        assert any(needed in c for c in commands), f"the README shows no example with {needed.strip()!r}"
    assert "```pycon" in README
    for page in PAGES[1:] + ("benchmarks/RESULTS.md",):
        assert f"]({page})" in README, f"the README does not link to {page}"


def test_ci_runs_the_readme_install_and_test_commands() -> None:
    install, tests = [line[2:] for line in re.findall(r"^\$ python3 -m venv .*$", README, re.M)]
    assert install == "python3 -m venv .venv && . .venv/bin/activate && pip install . && ffn-calc shapes 3 6 8 --d-ff 32"
    assert "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("page", [p for p in PAGES if "```pycon" in (ROOT / p).read_text(encoding="utf-8")])
def test_the_python_examples_run(page: str) -> None:
    for n, block in enumerate(re.findall(r"```pycon\n(.*?)```", (ROOT / page).read_text(encoding="utf-8"), re.S)):
        test = doctest.DocTestParser().get_doctest(block, {}, f"{page} [{n}]", page, 0)
        result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test)
        assert result.failed == 0 and result.attempted > 0


def test_every_command_has_help_with_an_example_and_a_reference_section() -> None:
    reference = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    for name, help_text in gen.commands().items():
        assert gen.summary(help_text), f"{name} has no help summary"
        assert f"Example: ffn-calc {name}" in " ".join(help_text.split()), f"{name}'s help gives no example"
        assert f"\n## ffn-calc {name}\n" in reference, f"docs/commands.md has no section for {name}"


def test_links_between_the_pages_resolve() -> None:
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (ROOT / Path(page).parent / target).exists(), f"{page} links to {target}, which does not exist"


def test_the_constants_section_states_every_cost_of_the_table() -> None:
    from ffn_calc.model import conventions as conv

    section = gen.constants_section(conv)
    names = [name for name, value in vars(conv).items() if isinstance(value, conv.Cost)]
    assert len(names) == len(conv.COSTS)
    for name in names:
        cost = getattr(conv, name)
        assert f"- `{name}` (`{cost.key}`) = {cost.formula} FLOP" in section
