"""Every plan that allocates refuses before allocating: a mixed stack whose MoE group cannot run is
refused before the dense group runs (`verify 1 1 -m deepseek-v3` ran the dense group for half a
minute and 3 GB first)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ffn_calc.errors import VerifyRefused
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model.forward import analyze
from ffn_calc.verifier import memory, run


def test_a_mixed_stack_is_planned_whole_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = layer_config(1, 4, 64, d_ff="256", experts=64, top_k=2, layers=3, dense_layers=1, dense_d_ff=256)
    dense, moe = analyze(cfg).groups
    dense_need = memory.required_bytes(analyze(replace(dense.config, dtype="float32")))
    moe_floor = memory.required_bytes(analyze(replace(cfg, dense_layers=0, dense_d_ff=0)), 1)
    assert dense_need < moe_floor  # a limit between them: the dense layer fits, one MoE token does not
    ran: list[Any] = []

    def observe(*args: Any, **kwargs: Any) -> Any:
        ran.append(args)
        raise AssertionError("a pass ran before the plan refused")

    monkeypatch.setattr(run, "observe_forward", observe)
    with pytest.raises(VerifyRefused, match="the moe group's layer"):
        run.verify(cfg, max_memory_bytes=(dense_need + moe_floor) // 2)
    assert ran == []


def test_deepseek_v3_is_refused_at_once(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused by the plan, before any pass runs (a pass of its dense group took over 30 s)."""

    def observe(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a pass ran before the plan refused")

    monkeypatch.setattr(run, "observe_forward", observe)
    code, out, err = cli("verify", "1", "1", "-m", "deepseek-v3", "--max-memory", "4GiB")
    assert code == 2 and out == "" and "the moe group's layer" in err and err.count("\n") == 1
