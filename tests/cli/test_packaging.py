"""What `pip install .` ships: every module of the source tree, so that the README's install
command gives a working tool (the other tests import the source tree directly). Like the
README's install command, it needs the package registry for pip's isolated build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, Run


@pytest.mark.slow
def test_pip_install_ships_every_module_and_the_command(tmp_path: Path, cli_proc: Run) -> None:
    # Install from a clean copy: a build/ folder left in the tree would hide a missing package.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns("build", "dist", ".venv", "*.egg-info", ".git", "__pycache__", ".*cache"))
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    source = {str(p.relative_to(ROOT)) for p in (ROOT / "ffn_calc").rglob("*.py")}
    shipped = {str(p.relative_to(target)) for p in (target / "ffn_calc").rglob("*.py")}
    assert source <= shipped, f"missing from the install: {sorted(source - shipped)}"
    # The installed copy runs on its own, away from the source tree: the installed copy, not the
    # repository, on PYTHONPATH, and a working directory outside the repository.
    run = cli_proc("shapes", "3", "6", "8", "--d-ff", "32", "-f", "csv", env={"PYTHONPATH": str(target)}, cwd=tmp_path)
    assert run.code == 0, run.err
    assert run.out.splitlines()[-1].startswith("total,")
    assert (target / "bin" / "ffn-calc").exists()
