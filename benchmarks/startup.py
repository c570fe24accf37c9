"""Start-up time of ffn-calc against the floor for any Typer CLI, measured side by side.

The floor is the smallest Typer app (one command that prints its argument), run by the same
interpreter in the same environment. A second floor is the smallest Typer app that prints a
one-row rich table: what any CLI whose output is a rich table pays before its own work.
Runs alternate between the commands so that machine noise hits them alike; the script
prints each median and the ratios.

It times the installed `ffn-calc` (after the README's `pip install .`), run from a temporary
directory, as a user runs it: the installed package has its bytecode compiled by pip, while
a source tree under PYTHONDONTWRITEBYTECODE=1 would be compiled again on every call.

    python benchmarks/startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

MINIMAL_APP = """\
import typer

app = typer.Typer()


@app.command()
def main(name: str) -> None:
    print(name)


app()
"""

MINIMAL_RICH_APP = """\
import typer

app = typer.Typer()


@app.command()
def main(name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("name")
    table.add_row(name)
    Console().print(table)


app()
"""

FLOOR = "floor: smallest Typer app"
RICH_FLOOR = "smallest Typer app printing a rich table"
SHAPES = ["shapes", "3", "6", "8", "--d-ff", "32"]


def wall(cmd: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=cwd)
    return time.perf_counter() - start


def installed_tool() -> str:
    tool = shutil.which("ffn-calc", path=str(Path(sys.executable).parent))
    if tool is None:
        sys.exit("benchmarks/startup.py: no ffn-calc next to this Python; install it first with `pip install .`")
    return tool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    tool = installed_tool()
    with tempfile.TemporaryDirectory() as tmp:
        apps = {FLOOR: MINIMAL_APP, RICH_FLOOR: MINIMAL_RICH_APP}
        commands = {}
        for name, source in apps.items():
            script = Path(tmp) / f"app{len(commands)}.py"
            script.write_text(source)
            commands[name] = [sys.executable, str(script), "x"]
        commands["ffn-calc shapes 3 6 8 --d-ff 32"] = [tool, *SHAPES]
        commands["ffn-calc shapes 3 6 8 --d-ff 32 -f json"] = [tool, *SHAPES, "-f", "json"]
        commands["ffn-calc shapes 3 6 8 --d-ff 32 -f csv"] = [tool, *SHAPES, "-f", "csv"]
        times: dict[str, list[float]] = {name: [] for name in commands}
        for cmd in commands.values():  # warm the file cache
            wall(cmd, tmp)
        for _ in range(args.runs):
            for name, cmd in commands.items():
                times[name].append(wall(cmd, tmp))
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("typer", "rich", "ffn-calc"))
    print(f"Python {sys.version.split()[0]}; {versions}; {tool}")
    floor = statistics.median(times[FLOOR])
    rich_floor = statistics.median(times[RICH_FLOOR])
    print(f"{'command':<44} {'median s':>9} {'÷ floor':>8} {'÷ rich floor':>13}   (runs: {args.runs} each, interleaved)")
    for name, samples in times.items():
        med = statistics.median(samples)
        print(f"{name:<44} {med:9.4f} {med / floor:8.3f} {med / rich_floor:13.3f}")


if __name__ == "__main__":
    main()
