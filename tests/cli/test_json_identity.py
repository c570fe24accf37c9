"""Every command's JSON for 32 configurations is byte-identical to tests/data/json_outputs.json
(benchmarks/json_identity.py records and compares it; a change meant to move a number rewrites it)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from helpers import ROOT

_spec = importlib.util.spec_from_file_location("json_identity", ROOT / "benchmarks" / "json_identity.py")
assert _spec and _spec.loader
identity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(identity)
RECORDED: dict[str, str] = json.loads(identity.REFERENCE.read_text(encoding="utf-8"))


def test_every_case_is_recorded() -> None:
    assert sorted(RECORDED) == sorted(identity.key(case) for case in identity.CASES)


@pytest.mark.parametrize("case", identity.CASES, ids=identity.key)
def test_json_is_byte_identical(case: str) -> None:
    assert identity.run(case) == RECORDED[identity.key(case)]
