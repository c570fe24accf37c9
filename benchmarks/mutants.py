"""Mutation benchmark: does the test suite, and does `verify`, notice a realistic bug?

Each mutant of the catalogue (mutants_catalogue.py) is one single-line bug in the model (the
prediction) or in the verifier. For each, one at a time, the benchmark copies the repository
(without .git, .venv and caches) to a scratch directory, plants the bug there — never in the
repository itself — and then

  (a) runs the fast test suite on the copy: `python -m pytest -q -x -m "not slow" -p no:cacheprovider`
      (cwd and PYTHONPATH the copy); the mutant is caught if pytest exits non-zero, and the first
      failing test is recorded;
  (b) runs each of its `verify` commands on the copy with `-f json`; caught when verify exits 1
      with a JSON report whose `ok` is false (a check failed); any other failure (exit 2: the
      command was refused, 70: an internal error, a traceback, a timeout) is a "crash", listed
      apart and not counted as caught in the main score: a crash is loud, but it proves nothing
      about the number the bug changed (the lenient score, crashes counted, is printed too).

Everything runs on one snapshot of the repository taken at the start, so that files edited
meanwhile do not mix into the run. Before the mutants, the snapshot itself is run: tests that
already fail there are deselected in every mutant's run (and listed), and a verify command that
does not pass there (an option verify does not have yet) is reported as unsupported and not run.

A mutant whose original text no longer occurs exactly once in its file is reported STALE and
skipped: the code moved, and the catalogue entry must be rewritten.

Scores (issue 10): the share of model mutants the test suite catches; the share of verifier
mutants the test suite catches; the share of the model mutants whose number verify can observe
that verify catches — and the list of those it misses (the verifier's gaps).

    python benchmarks/mutants.py [--only ID[,ID…]] [--jobs N] [--no-tests] [--no-verify] [--json FILE] [--rev REV] [--keep]
    python benchmarks/mutants.py --check      # only check that every original still matches (and compiles mutated)
    python benchmarks/mutants.py --catalogue independent [...]   # mutants_independent.py instead (issue 20 part 3)
    python benchmarks/mutants.py --catalogue fresh [...]         # mutants_fresh.py: a third catalogue, written blind to both

The whole catalogue takes about 13 minutes with --jobs 2 on the project's 2-core machine (the
fast test loop is 15 to 30 s and runs in full for every mutant it misses). If the snapshot is
taken in the middle of someone's edit (`verify 2 4 8` fails on it), the run stops at once: run
it again, or give --rev HEAD to snapshot the last commit.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mutants_catalogue import MODEL, MUTANTS, VERIFIER, Mutant, by_id

# --catalogue NAME: the module each catalogue lives in (the same Mutant record, MUTANTS and by_id).
CATALOGUES = {"project": "mutants_catalogue", "independent": "mutants_independent", "fresh": "mutants_fresh"}

REPO = Path(__file__).resolve().parent.parent
IGNORED = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", "build", "dist"}
# -n 0: one process per mutant (the benchmark runs --jobs mutants side by side; -x stops at the first failure exactly)
TEST_COMMAND = ("-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0")
TEST_TIMEOUT_S = 900
VERIFY_TIMEOUT_S = 300

# A pytest plugin written into the snapshot: it appends every failing test's node id (and the
# phase it failed in) to the file named by MUTANT_FAILURES, so that the first failure is exact.
PLUGIN_NAME = "_mutants_failures"
PLUGIN = '''"""Written by benchmarks/mutants.py into its scratch copies: notes each failing test's node id."""

import os


def _note(nodeid, when):
    path = os.environ.get("MUTANT_FAILURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(nodeid + "\\t" + when + "\\n")


def pytest_runtest_logreport(report):
    if report.failed:
        _note(report.nodeid, report.when)


def pytest_collectreport(report):
    if report.failed:
        _note(report.nodeid or "<collection>", "collect")
'''


# --- running things on a copy -------------------------------------------------------------------

_children: set[subprocess.Popen[str]] = set()
_children_lock = threading.Lock()
_stopping = threading.Event()  # set when the benchmark stops: no new process is started


class Stopped(Exception):
    pass


@dataclass
class Done:
    code: int | None  # None: timed out (the whole process group was killed)
    out: str
    err: str


def run(cmd: list[str], root: Path, timeout: float, **env: str) -> Done:
    """`cmd` in its own process group, cwd and PYTHONPATH `root`; on a timeout, or when the
    benchmark is stopped, the group is killed with every process it started (pytest's CLI
    subprocesses included)."""
    if _stopping.is_set():
        raise Stopped
    proc = subprocess.Popen(cmd, cwd=root, env=environment(root, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    with _children_lock:
        _children.add(proc)
        if _stopping.is_set():  # stopped while it was starting
            _kill(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
        return Done(proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        _kill(proc)
        out, err = proc.communicate()
        return Done(None, out, err)
    finally:
        with _children_lock:
            _children.discard(proc)


def _kill(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_children() -> None:
    with _children_lock:
        for proc in list(_children):
            _kill(proc)


def _ignore(_directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in IGNORED or n.endswith(".egg-info")}


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True, ignore=_ignore)


def environment(root: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "NO_COLOR": "1", **extra}
    env.pop("FFN_CALC_DEBUG", None)  # internal errors as the user sees them (exit 70), not tracebacks
    return env


def occurrences(root: Path, m: Mutant) -> int:
    path = root / m.file
    return path.read_text(encoding="utf-8").count(m.original) if path.is_file() else 0


def apply(root: Path, m: Mutant) -> None:
    path = root / m.file
    text = path.read_text(encoding="utf-8")
    assert text.count(m.original) == 1, m.id
    path.write_text(text.replace(m.original, m.replacement), encoding="utf-8")


@dataclass
class TestRun:
    code: int | None  # None: timed out
    failures: list[tuple[str, str]]  # (node id, phase: setup | call | teardown | collect), in order
    seconds: float
    tail: str

    @property
    def failed(self) -> bool:
        return self.code != 0

    @property
    def nodeids(self) -> list[str]:
        return [nodeid for nodeid, _ in self.failures]

    def first(self) -> str:
        if self.failures:
            nodeid, when = self.failures[0]
            return nodeid if when == "call" else f"{nodeid} ({when})"
        return self.tail.splitlines()[-1] if self.failed and self.tail else ""


def run_tests(root: Path, deselect: Iterable[str], stop_first: bool = True, timeout: float = TEST_TIMEOUT_S) -> TestRun:
    notes = root / ".mutant-failures"
    notes.unlink(missing_ok=True)
    # A test that fails unmutated is deselected; a file that does not even collect is ignored.
    leave_out = [f"--deselect={n}" if "::" in n else f"--ignore={n}" for n in deselect]
    cmd = [sys.executable, *TEST_COMMAND, "-p", PLUGIN_NAME, *(["-x"] if stop_first else []), *leave_out]
    start = time.perf_counter()
    done = run(cmd, root, timeout, MUTANT_FAILURES=str(notes))
    code = done.code
    tail = "\n".join((done.out + done.err).strip().splitlines()[-3:]) if code is not None else f"timed out after {timeout:.0f} s"
    failures = []
    if notes.exists():
        for line in notes.read_text(encoding="utf-8").splitlines():
            nodeid, _, when = line.rpartition("\t")
            failures.append((nodeid, when))
    return TestRun(code, failures, time.perf_counter() - start, tail)


@dataclass
class VerifyRun:
    command: str
    status: str  # caught | pass | crash | timeout | unsupported
    detail: str = ""
    code: int | None = None
    seconds: float = 0.0


def _failed_check(report: dict[str, object]) -> str:
    for check in report.get("checks", []):  # type: ignore[union-attr]
        if isinstance(check, dict) and not check.get("ok", True):
            return f"{check.get('group')}: {check.get('name')} (predicted {check.get('predicted')}, observed {check.get('observed')})"
    return "a check failed"


def run_verify(root: Path, command: str, timeout: float = VERIFY_TIMEOUT_S) -> VerifyRun:
    args = shlex.split(command)
    cmd = [sys.executable, "-m", "ffn_calc", *args, "-f", "json"]
    start = time.perf_counter()
    done = run(cmd, root, timeout)
    seconds = time.perf_counter() - start
    if done.code is None:
        return VerifyRun(command, "timeout", f"timed out after {timeout:.0f} s", None, seconds)
    err = (done.err.strip().splitlines() or [""])[-1]
    report = None
    try:
        report = json.loads(done.out)
    except ValueError:
        pass
    if done.code == 0 and isinstance(report, dict) and report.get("ok") is True:
        return VerifyRun(command, "pass", "", 0, seconds)
    if done.code == 1 and isinstance(report, dict) and report.get("ok") is False:
        return VerifyRun(command, "caught", _failed_check(report), 1, seconds)
    return VerifyRun(command, "crash", f"exit {done.code}: {err}"[:300], done.code, seconds)


# --- one mutant ---------------------------------------------------------------------------------


@dataclass
class Result:
    id: str
    kind: str
    file: str
    description: str
    observable: bool | None  # None for verifier mutants
    definition: str
    stale: str = ""  # why the mutant could not be applied
    tests: str = "skipped"  # caught | missed | timeout | skipped
    first_failure: str = ""
    tests_seconds: float = 0.0
    verify: str = "skipped"  # caught | crash | missed | no command | skipped
    verify_runs: list[VerifyRun] = field(default_factory=list)
    seconds: float = 0.0


def result_of(m: Mutant) -> Result:
    return Result(m.id, m.kind, m.file, m.description, m.observable if m.kind == MODEL else None, m.definition)


def run_mutant(m: Mutant, base: Path, work: Path, deselect: list[str], baseline_verify: dict[str, VerifyRun], tests: bool, verify: bool,
               keep: bool) -> Result:  # fmt: skip
    res = result_of(m)
    start = time.perf_counter()
    found = occurrences(base, m)
    if found != 1:
        res.stale = "file not found" if not (base / m.file).is_file() else f"original found {found} times"
        res.tests = res.verify = "stale"
        return res
    root = work / f"m-{m.id}"
    copy_tree(base, root)
    try:
        apply(root, m)
        if tests:
            run = run_tests(root, deselect)
            res.tests = "timeout" if run.code is None else "caught" if run.failed else "missed"
            res.first_failure = run.first()
            res.tests_seconds = run.seconds
        if verify:
            for command in m.commands:
                base_run = baseline_verify[command]
                if base_run.status != "pass":
                    res.verify_runs.append(VerifyRun(command, "unsupported", f"fails unmutated: {base_run.detail}"))
                    continue
                res.verify_runs.append(run_verify(root, command))
            statuses = {r.status for r in res.verify_runs}
            res.verify = (
                "caught" if "caught" in statuses
                else "crash" if statuses & {"crash", "timeout"}
                else "missed" if "pass" in statuses
                else "no command"
            )  # fmt: skip
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    res.seconds = time.perf_counter() - start
    return res


# --- the baseline -------------------------------------------------------------------------------


def baseline_tests(base: Path, log: TextLog) -> list[str] | None:
    """The tests that fail on the unmutated snapshot (others are editing the repository), to leave
    out of every mutant's run; None when the suite cannot be made green there. The first run goes
    through the whole suite; the next ones confirm, with -x as the mutants run it."""
    log(f"baseline: running the fast test suite on the unmutated snapshot ({' '.join(TEST_COMMAND[1:])}) …")
    skip: list[str] = []
    for attempt in range(4):
        run = run_tests(base, skip, stop_first=attempt > 0)
        if not run.failed:
            log(f"baseline: green in {run.seconds:.1f} s" + (f" without {len(skip)} test(s) that fail unmutated" if skip else ""))
            return skip
        new = [n for n in dict.fromkeys(run.nodeids) if n not in skip]
        if not new:
            log(f"baseline: pytest exit {run.code}: {run.tail}")
            return None
        log(f"baseline: {len(new)} test(s) fail unmutated and are left out of every run: {', '.join(new)}")
        skip += new
    log("baseline: the suite is still not green (flaky?)")
    return None


def baseline_verify(base: Path, commands: Iterable[str], jobs: int, log: TextLog) -> dict[str, VerifyRun]:
    unique = sorted(set(commands))
    log(f"baseline: running {len(unique)} verify command(s) on the unmutated snapshot …")
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = dict(zip(unique, pool.map(lambda c: run_verify(base, c), unique), strict=True))
    for command, run in runs.items():
        if run.status != "pass":
            log(f"baseline: unsupported (not run on mutants): {command} — {run.status}: {run.detail}")
    return runs


# --- report -------------------------------------------------------------------------------------


class TextLog:
    """Progress lines on stderr, with the time since the start."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self.lock:
            print(f"[{time.perf_counter() - self.start:7.1f} s] {message}", file=sys.stderr, flush=True)


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} = {part / whole:.0%}" if whole else "n/a (none run)"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(results: list[Result]) -> str:
    rows = [("id", "kind", "observable", "tests", "first failing test", "verify", "verify: first failed check, or why not")]
    for r in results:
        obs = "-" if r.observable is None else "yes" if r.observable else "definition"
        if r.stale:
            rows.append((r.id, r.kind, obs, "STALE", r.stale, "STALE", ""))
            continue
        detail = next((v.detail for v in r.verify_runs if v.status == "caught"), "")
        if not detail:
            detail = "; ".join(f"{v.status}: {v.command.removeprefix('verify ')}" for v in r.verify_runs if v.status != "pass")
        rows.append((r.id, r.kind, obs, r.tests, _cut(r.first_failure, 70), r.verify, _cut(detail, 90)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@dataclass
class Scores:
    mutants: int
    stale: list[str]
    tests_catch_model: tuple[int, int]
    tests_catch_verifier: tuple[int, int]
    verify_catches_observable_model: tuple[int, int]
    verify_catches_observable_model_crashes_counted: tuple[int, int]
    verify_gaps: list[str]  # observable model mutants verify does not catch
    verify_crashes: list[str]
    definitions_verify_caught: list[str]
    model_mutants_tests_miss: list[str]
    verifier_mutants_tests_miss: list[str]


def scores(results: list[Result]) -> Scores:
    live = [r for r in results if not r.stale]
    model = [r for r in live if r.kind == MODEL]
    verifier = [r for r in live if r.kind == VERIFIER]
    tested_model = [r for r in model if r.tests != "skipped"]
    tested_verifier = [r for r in verifier if r.tests != "skipped"]
    verified = [r for r in model if r.observable and r.verify != "skipped"]

    def by_tests(rs: list[Result]) -> tuple[int, int]:
        return sum(r.tests in ("caught", "timeout") for r in rs), len(rs)

    return Scores(
        mutants=len(results),
        stale=[r.id for r in results if r.stale],
        tests_catch_model=by_tests(tested_model),
        tests_catch_verifier=by_tests(tested_verifier),
        verify_catches_observable_model=(sum(r.verify == "caught" for r in verified), len(verified)),
        verify_catches_observable_model_crashes_counted=(sum(r.verify in ("caught", "crash") for r in verified), len(verified)),
        verify_gaps=[r.id for r in verified if r.verify != "caught"],
        verify_crashes=[r.id for r in live if r.verify == "crash"],
        definitions_verify_caught=[r.id for r in model if not r.observable and r.verify == "caught"],
        model_mutants_tests_miss=[r.id for r in tested_model if r.tests == "missed"],
        verifier_mutants_tests_miss=[r.id for r in tested_verifier if r.tests == "missed"],
    )


def _gap(r: Result) -> str:
    why = "; ".join(f"{v.status}: {v.command}" + (f" ({_cut(v.detail, 80)})" if v.status in ("crash", "timeout") else "") for v in r.verify_runs)
    return f"{r.id}: {r.description} — {why or 'no verify command'}"


def _crash(r: Result) -> str:
    return f"{r.id}: " + "; ".join(f"{v.command}: {_cut(v.detail, 100)}" for v in r.verify_runs if v.status in ("crash", "timeout"))


def summary(results: list[Result], s: Scores, elapsed: float) -> str:
    by = {r.id: r for r in results}
    out = [
        f"test suite catches model mutants:                     {_share(*s.tests_catch_model)}",
        f"test suite catches verifier mutants:                  {_share(*s.tests_catch_verifier)}",
        f"verify catches observable model mutants:              {_share(*s.verify_catches_observable_model)}",
        f"  … counting crashes (exit 2/70, timeouts) as caught: {_share(*s.verify_catches_observable_model_crashes_counted)}",
    ]
    sections = (
        ("model mutants verify misses that are not definitions (the verifier's gaps)", s.verify_gaps, _gap),
        ("definitions verify caught anyway (check their classification)", s.definitions_verify_caught, lambda r: f"{r.id}: {r.description}"),
        ("verifier mutants the test suite misses", s.verifier_mutants_tests_miss, lambda r: f"{r.id}: {r.description}"),
        ("model mutants the test suite misses", s.model_mutants_tests_miss, lambda r: f"{r.id}: {r.description}"),
        ("mutants that crash a verify command (loud, but not counted as caught)", s.verify_crashes, _crash),
        ("STALE (original text not found exactly once: rewrite in mutants_catalogue.py)", s.stale, lambda r: f"{r.id}: {r.file}: {r.stale}"),
    )
    for title, ids, line in sections:
        if ids:
            out += ["", f"{title} ({len(ids)}):", *(f"  {line(by[i])}" for i in ids)]
    out += ["", f"{len(results)} mutants in {elapsed / 60:.1f} min"]
    return "\n".join(out)


# --- main ---------------------------------------------------------------------------------------


def select(only: str | None, catalogue: str = "project") -> list[Mutant]:
    module = importlib.import_module(CATALOGUES[catalogue])
    if not only:
        return list(module.MUTANTS if catalogue != "project" else MUTANTS)
    table_ = module.by_id() if catalogue != "project" else by_id()
    ids = [i.strip() for i in only.split(",") if i.strip()]
    unknown = [i for i in ids if i not in table_]
    if unknown:
        raise SystemExit(f"unknown mutant id(s): {', '.join(unknown)}")
    return [table_[i] for i in ids]


def check(mutants: list[Mutant], repo: Path) -> int:
    """Every original found exactly once, and every mutated file still compiles (a syntax error
    would be caught by anything, and say nothing)."""
    stale = 0
    for m in mutants:
        n = occurrences(repo, m)
        if n != 1:
            stale += 1
            print(f"STALE {m.id}: {m.file}: original found {n} times")
            continue
        try:
            compile((repo / m.file).read_text(encoding="utf-8").replace(m.original, m.replacement), m.file, "exec")
        except SyntaxError as e:
            stale += 1
            print(f"BROKEN {m.id}: the mutated {m.file} does not compile: {e}")
    model = sum(m.kind == MODEL for m in mutants)
    observable = sum(m.observable for m in mutants)
    print(f"{len(mutants)} mutants ({model} model, {observable} of them observable; {len(mutants) - model} verifier), {stale} stale")
    return 1 if stale else 0


SANITY = "verify 2 4 8"  # must pass on the snapshot, or it is broken (taken in the middle of an edit)


def snapshot(repo: Path, rev: str | None, base: Path) -> str:
    """Copy the working tree (or the committed revision `rev`, read with git archive) to `base`."""
    if rev is None:
        copy_tree(repo, base)
        return f"the working tree of {repo}"
    base.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", rev], capture_output=True, check=False)
    if archive.returncode:
        raise SystemExit(f"git archive {rev}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", rev], capture_output=True, text=True, check=False).stdout.strip()
    return f"{repo} at {rev} ({commit})"


def _stop(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--catalogue",
        choices=sorted(CATALOGUES),
        default="project",
        help="which catalogue: project (mutants_catalogue.py, the default), independent (mutants_independent.py) or fresh (mutants_fresh.py)",
    )
    parser.add_argument("--only", metavar="ID[,ID…]", help="run these mutants only")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("--no-tests", action="store_true", help="do not run the test suite")
    parser.add_argument("--no-verify", action="store_true", help="do not run verify")
    parser.add_argument("--json", metavar="FILE", help="save the results as JSON")
    parser.add_argument("--repo", type=Path, default=REPO, help="the repository to snapshot (default: this one)")
    parser.add_argument("--rev", help="snapshot this git revision (e.g. HEAD) instead of the working tree")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    parser.add_argument("--check", action="store_true", help="only check that every original matches exactly once and compiles mutated, then exit")
    args = parser.parse_args(argv)
    mutants = select(args.only, args.catalogue)
    repo = args.repo.resolve()
    if args.check:
        return check(mutants, repo)
    jobs = max(1, args.jobs)
    log = TextLog()
    work = Path(tempfile.mkdtemp(prefix="ffn-mutants-"))
    base = work / "base"
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    signal.signal(signal.SIGTERM, _stop)
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        source = snapshot(repo, args.rev, base)
        (base / f"{PLUGIN_NAME}.py").write_text(PLUGIN, encoding="utf-8")
        log(f"snapshot of {source} in {base}")
        probe = run([sys.executable, "-c", "import ffn_calc; print(ffn_calc.__file__)"], base, 60)
        if not probe.out.strip().startswith(str(base)):
            raise SystemExit(f"the snapshot's ffn_calc is not the one imported there ({probe.out.strip() or probe.err.strip()})")
        sane = run_verify(base, SANITY)
        if sane.status != "pass":
            raise SystemExit(f"the snapshot is broken ({SANITY}: {sane.status}: {sane.detail}); it was probably taken in the middle of "
                             "an edit: run again later, or give --rev HEAD")  # fmt: skip
        deselect: list[str] = []
        tests = not args.no_tests
        if tests:
            found = baseline_tests(base, log)
            if found is None:
                log("the test suite does not run on the unmutated snapshot: tests skipped")
                tests = False
            else:
                deselect = found
        base_verify = {} if args.no_verify else baseline_verify(base, (c for m in mutants for c in m.commands), jobs, log)
        results: dict[str, Result] = {}
        futures = {pool.submit(run_mutant, m, base, work, deselect, base_verify, tests, not args.no_verify, args.keep): m for m in mutants}
        for i, future in enumerate(as_completed(futures), start=1):
            m = futures[future]
            try:
                r = future.result()
            except Exception as e:  # the benchmark's own failure on one mutant: report it, go on
                r = result_of(m)
                r.stale = f"benchmark error: {type(e).__name__}: {e}"
            results[m.id] = r
            log(f"{i}/{len(mutants)} {m.id}: tests {r.tests}, verify {r.verify} ({r.seconds:.1f} s)")
        ordered = [results[m.id] for m in mutants]
        elapsed = time.perf_counter() - log.start
        s = scores(ordered)
        print(f"mutation benchmark, {started}: {source}, {jobs} job(s)\n")
        print(table(ordered))
        print()
        print(summary(ordered, s, elapsed))
        if deselect:
            print(f"\nleft out of every test run (failing unmutated): {', '.join(deselect)}")
        unsupported = sorted(c for c, r in base_verify.items() if r.status != "pass")
        if unsupported:
            print(f"verify commands not run (failing unmutated): {'; '.join(unsupported)}")
        if args.json:
            payload = {
                "started": started,
                "seconds": elapsed,
                "snapshot": source,
                "jobs": jobs,
                "left_out_tests": deselect,
                "baseline_verify": {c: asdict(r) for c, r in base_verify.items()},
                "scores": asdict(s),
                "results": [asdict(r) for r in ordered],
            }
            Path(args.json).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return 1 if s.stale else 0
    except KeyboardInterrupt:
        _stopping.set()
        print("stopped", file=sys.stderr)
        return 130
    finally:
        _stopping.set()
        kill_children()
        pool.shutdown(wait=True, cancel_futures=True)
        if args.keep:
            print(f"scratch kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
