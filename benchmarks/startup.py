"""Start-up time of ffn-calc against the floor for any Typer CLI, measured side by side.

The floor is the smallest Typer app (one command that prints its argument), run by the same
interpreter in the same environment. Runs alternate between the commands so that machine
noise hits both alike; the script prints each median and the ratio to the floor.

    python benchmarks/startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MINIMAL_APP = """\
import typer

app = typer.Typer()


@app.command()
def main(name: str) -> None:
    print(name)


app()
"""


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        minimal = Path(tmp) / "minimal_typer_app.py"
        minimal.write_text(MINIMAL_APP)
        commands = {
            "floor: minimal Typer app": [sys.executable, str(minimal), "x"],
            "ffn-calc shapes 3 6 8 --d-ff 32": [sys.executable, "-m", "ffn_calc", "shapes", "3", "6", "8", "--d-ff", "32"],
            "ffn-calc shapes 3 6 8 --d-ff 32 -f json": [sys.executable, "-m", "ffn_calc", "shapes", "3", "6", "8", "--d-ff", "32", "-f", "json"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for cmd in commands.values():  # warm the file cache and the bytecode
            wall(cmd)
        for _ in range(args.runs):
            for name, cmd in commands.items():
                times[name].append(wall(cmd))
    floor = statistics.median(times["floor: minimal Typer app"])
    print(f"{'command':<42} {'median s':>9} {'ratio':>7}   (runs: {args.runs} each, interleaved)")
    for name, samples in times.items():
        med = statistics.median(samples)
        print(f"{name:<42} {med:9.4f} {med / floor:7.3f}")


if __name__ == "__main__":
    main()
