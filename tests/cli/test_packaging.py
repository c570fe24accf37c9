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

USER_SCRIPT = """
import ffn_calc

cfg: ffn_calc.FFNConfig = ffn_calc.layer(1, 512, model="bert-base")
report: ffn_calc.FFNReport = ffn_calc.analyze(cfg)
params: int = report.totals.params
step: ffn_calc.TrainingReport = ffn_calc.train(cfg, recompute="full")
peak: int = step.totals.peak_bytes
rows: ffn_calc.SweepResult = ffn_calc.sweep([1, 8], "128,512", model="bert-base")
doc: dict[str, object] = report.to_dict()
roof: ffn_calc.Roofline = ffn_calc.roofline(cfg, gpu="h100-sxm")
"""


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

    # PEP 561: mypy --strict on a user's script, run where the script is, finds the installed copy
    # and reads its types only because it ships py.typed.
    def mypy(script: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / f"{script}.py"
        path.write_text(USER_SCRIPT + ("oops: str = report.totals.params\n" if script == "wrong" else ""), encoding="utf-8")
        command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), path.name]
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target)}
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, check=False)

    good = mypy("sizing")
    assert good.returncode == 0, good.stdout + good.stderr
    wrong = mypy("wrong")
    assert wrong.returncode == 1 and "Incompatible types in assignment" in wrong.stdout  # the API's types are really read
