"""Re-run every `$ ffn-calc …` (and `$ printf … | ffn-calc …`) example in README.md and paste
its real output back in place, at the width the README test uses (100 columns, NO_COLOR).

    python scripts/update_readme.py        # rewrite README.md
    python scripts/update_readme.py --check  # exit 1 if any example's output is stale

tests/docs/test_readme.py runs the same commands and fails when the pasted output drifts.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
BLOCK = re.compile(r"(```console\n)(.*?)(```)", re.S)


def run(command: str) -> str:
    shell = command.replace("ffn-calc", f"{sys.executable} -m ffn_calc", 1)
    done = subprocess.run(shell, shell=True, capture_output=True, text=True, env=ENV, cwd=ROOT, check=False)
    return "\n".join(line.rstrip() for line in (done.stdout + done.stderr).rstrip("\n").splitlines())


def refresh(block: str) -> str:
    out: list[str] = []
    skipping = False
    for line in block.splitlines():
        if line.startswith("$ "):
            command = line[2:]
            skipping = command.startswith(("ffn-calc ", "printf "))
            out.append(line)
            if skipping:
                out.extend(run(command).splitlines())
        elif not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale examples instead of rewriting")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = BLOCK.sub(lambda m: m.group(1) + refresh(m.group(2)) + m.group(3), text)
    if args.check:
        sys.exit(0 if new == text else 1)
    readme.write_text(new)


if __name__ == "__main__":
    main()
