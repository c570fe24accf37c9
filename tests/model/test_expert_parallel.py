"""Expert parallelism (`--ep`): per-rank figures and all-to-all bytes against hand-computed
cases, and `verify --ep`, which simulates the ranks and observes the bytes they send."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from helpers import ROOT, Run

from ffn_calc.catalogue.gpus import GPUS
from ffn_calc.errors import ConfigError
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model.expert_parallel import expert_parallel
from ffn_calc.model.forward import analyze
from ffn_calc.model.layer import FFNConfig, make_config
from ffn_calc.model.roofline import roofline
from ffn_calc.model.training import TrainingOptions, train
from ffn_calc.verifier.run import verify

D, F = 4096, 14336  # Mixtral 8x7B


def mixtral(batch: int, seq_len: int) -> object:
    return layer_config(batch, seq_len, model="mixtral-8x7b", dtype="bfloat16")


def test_mixtral_train_ep8_per_rank_figures() -> None:
    report = train(mixtral(1, 4096), TrainingOptions(), ep=8)  # type: ignore[arg-type]
    plan = report.parallel
    assert plan is not None and plan.to_dict()["expert_ranks"] == 8
    f = report.forward.totals
    assert f.expert_params == 3 * D * F == 176_160_768  # one expert: gate, up, down
    assert f.params == 3 * D * F + D * 8 == 176_193_536  # + the replicated router (4096, 8)
    assert report.forward.config.tokens == 4096 // 8 == 512  # batch 1: each rank takes 512 positions
    # Forward matmuls: the router on 512 tokens, the rank's expert on the 512·2 rows it receives.
    assert f.matmul_flops == 2 * 512 * D * 8 + 3 * 2 * (512 * 2) * D * F == 360_810_807_296
    assert report.totals.backward_matmul_flops == 2 * f.matmul_flops
    assert report.totals.weight_bytes == report.totals.gradient_bytes == 2 * 176_193_536
    assert report.totals.optimizer_state_bytes == 2 * 4 * 176_193_536  # Adam, two float32 states (mixed precision by default)
    assert report.totals.master_weight_bytes == 4 * 176_193_536
    # All-to-all: 1024 routed rows × 4096 × 2 bytes = 8 MiB, 7/8 of it leaves the rank.
    a2a = [c for c in plan.collectives if c.op == "all-to-all"]
    assert [(c.phase, c.shape, c.tensor_bytes, c.bytes_sent_per_rank) for c in a2a] == [
        ("forward", (1024, D), 8_388_608, 7_340_032),
        ("forward", (1024, D), 8_388_608, 7_340_032),
        ("backward", (1024, D), 8_388_608, 7_340_032),
        ("backward", (1024, D), 8_388_608, 7_340_032),
    ]
    assert plan.bytes_sent_per_rank == 29_360_128


def test_ep_splits_the_batch_when_it_divides() -> None:
    plan = expert_parallel(make_config(8, 3, 16, "32", activation="swiglu", experts=4, top_k=2), 4)
    assert (plan.token_split, plan.per_rank.batch, plan.per_rank.seq_len, plan.experts_per_rank) == ("batch", 2, 3, 1)


def test_all_to_all_bytes_round_up_when_not_whole() -> None:
    # T = 1 token per rank, k = 1, d = 3, float16: 6 bytes of routed rows, 3/4 of them sent: 4.5 → 5.
    plan = expert_parallel(make_config(4, 1, 3, "8", experts=4, top_k=1, dtype="float16"), 4)
    dispatch = plan.all_to_all[0]
    assert (dispatch.tensor_bytes, dispatch.bytes_sent_per_rank) == (6, 5)


def test_ep_times_tp() -> None:
    report = train(mixtral(4, 1024), TrainingOptions(), tp=2, ep=4)  # type: ignore[arg-type]
    plan = report.parallel
    assert plan is not None and plan.to_dict()["ranks"] == 8
    assert report.forward.config.d_ff == F // 2
    assert report.forward.totals.expert_params == 2 * 3 * D * (F // 2)  # two experts, each split in two
    ops = [(c.op, c.bytes_sent_per_rank) for c in plan.collectives]
    # The EP rank's tokens: one sequence of 1024; all-to-all 1024·2·4096·2 bytes × 3/4; the
    # TP all-reduce of (1, 1024, 4096) in bfloat16, ring: 2·(2 − 1)/2 of it.
    assert ops == [("all-to-all", 12_582_912)] * 4 + [("all-reduce", 8_388_608)] * 2


def test_shard_totals_are_sums_of_its_stages() -> None:
    cfg = make_config(2, 8, 16, "32", activation="swiglu", experts=8, top_k=2, shared_experts=1, norm="pre")
    plan = expert_parallel(cfg, 4)
    rank = plan.shard(analyze(plan.per_rank))
    t = rank.totals
    assert t.params == sum(s.params for s in rank.stages)
    assert t.weight_bytes == sum(s.weight_bytes for s in rank.stages)
    assert t.expert_params == analyze(plan.per_rank).totals.expert_params // 4
    assert t.flops == analyze(plan.per_rank).totals.flops  # FLOPs: the T-token layer's


@pytest.mark.parametrize(
    ("cfg", "ranks", "argument", "words"),
    [
        (make_config(2, 4, 8), 2, "--ep", "needs a mixture of experts"),
        (make_config(2, 4, 8, experts=8, top_k=2), 3, "--ep", "8 experts do not divide over 3 ranks"),
        (make_config(3, 5, 8, experts=4, top_k=2), 2, "--ep", "neither BATCH 3 nor SEQ_LEN 5"),
        (make_config(2, 4, 8, experts=4, top_k=2, capacity_factor=1.25), 2, "--capacity-factor", "not modelled"),
    ],
)
def test_ep_refusals(cfg: object, ranks: int, argument: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        expert_parallel(cfg, ranks)  # type: ignore[arg-type]
    assert e.value.argument == argument and words in e.value.message


def test_mixtral_roofline_ep8() -> None:
    r = roofline(mixtral(32, 2048), GPUS["h100-sxm"], ep=8)  # type: ignore[arg-type]
    prefill, decode = r.phases
    assert (r.expert_ranks, prefill.tokens, decode.tokens) == (8, 4 * 2048, 4)
    gate = next(g for g in prefill.gemms if g.stage == "expert_gate")
    assert gate.mkn == (4 * 2048 * 2, D, F) and gate.routing is not None and gate.routing.experts_on_rank == 1
    assert gate.routing.worst_case.experts_touched == 1 and gate.routing.worst_case.rows_per_expert == 16384
    assert [c.bytes_sent_per_rank for c in prefill.collectives] == [16384 * D * 2 * 7 // 8] * 2 == [117_440_512] * 2
    dgate = next(g for g in decode.gemms if g.stage == "expert_gate")
    assert dgate.mkn == (8, D, F)  # decode: 4 sequences on the rank, 8 routed rows on its one expert
    assert dgate.bound == "memory" and dgate.bytes == 2 * (8 * D + D * F + 8 * F)
    assert [c.bytes_sent_per_rank for c in decode.collectives] == [8 * D * 2 * 7 // 8] * 2 == [57_344] * 2
    # The rank's experts see rows from all 32 decode tokens: 1 − (6/8)^32 of one expert expected.
    assert dgate.routing is not None and dgate.routing.routed_tokens == 32
    assert dgate.routing.uniform.experts_touched == pytest.approx(1 - 0.75**32)


def test_roofline_without_ep_keeps_every_expert() -> None:
    r = roofline(mixtral(32, 2048), GPUS["h100-sxm"])  # type: ignore[arg-type]
    gate = next(g for g in r.phases[1].gemms if g.stage == "expert_gate")
    assert r.expert_ranks == 1 and gate.routing is not None and gate.routing.experts_on_rank == 8
    assert r.phases[1].collectives == ()


@pytest.mark.parametrize(
    "options",
    [
        # docs/guide.md's example, in the full run; the fast loop the same routing at d_model 64
        pytest.param({"batch": 2, "seq_len": 64, "d_model": 256, "activation": "swiglu", "experts": 8, "top_k": 2, "ep": 8}, marks=pytest.mark.slow),
        {"batch": 2, "seq_len": 64, "d_model": 64, "activation": "swiglu", "experts": 8, "top_k": 2, "ep": 8},
        {"batch": 1, "seq_len": 8, "d_model": 16, "activation": "gelu", "experts": 4, "top_k": 2, "shared_experts": 1, "ep": 2},
        {"batch": 4, "seq_len": 3, "d_model": 8, "activation": "geglu", "fused": True, "experts": 6, "top_k": 3, "ep": 3, "norm": "pre"},
        {
            "batch": 2,
            "seq_len": 4,
            "d_model": 8,
            "activation": "swiglu",
            "experts": 4,
            "top_k": 2,
            "shared_experts": 1,
            "shared_expert_gate": True,
            "ep": 4,
        },
    ],
)
def test_verify_ep_observes_the_ranks(options: dict[str, object]) -> None:
    opts = dict(options)
    ep = opts.pop("ep")
    cfg = make_config(opts.pop("batch"), opts.pop("seq_len"), opts.pop("d_model"), None, **opts)  # type: ignore[arg-type]
    report = verify(cfg, ep=ep)  # type: ignore[arg-type]
    assert [c.name for c in report.checks if not c.ok] == []
    par = [c for c in report.checks if c.group == "parallel"]
    names = [c.name for c in par]
    assert sum("dispatch bytes sent (the model's all-to-all of the observed routing histogram)" in n for n in names) == ep
    assert any("whole layer's output" in n and c.kind == "tolerance" for n, c in zip(names, par, strict=True))
    # The bytes observed off the buffers, summed over the ranks, are the routed pairs that
    # crossed ranks; both directions move the same rows, so the two totals agree.
    sent = sum(int(c.observed) for c in par if "dispatch bytes sent (" in c.name and "histogram" in c.name)  # type: ignore[call-overload]
    returned = sum(int(c.observed) for c in par if "combine bytes sent (" in c.name and "histogram" in c.name)  # type: ignore[call-overload]
    assert sent == returned > 0
    # Balanced routing's prediction is judged under a routing forced to be balanced.
    assert any("forced exactly balanced" in c.name and c.kind == "exact" for c in par)


def test_verify_refuses_tp_with_ep(moe: FFNConfig) -> None:
    with pytest.raises(ConfigError, match="one at a time"):
        verify(moe, tp=2, ep=2)


def _keys(value: object) -> set[str]:
    """Every dictionary key in a JSON document."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for item in value for k in _keys(item)}
    return set()


def test_cli_ep_json_keys_are_documented(cli: Run) -> None:
    reference = (ROOT / "docs" / "json.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_]+)(?:\[\])?`", reference))
    for args in (
        ["train", "2", "8", "16", "--experts", "4", "--top-k", "2", "--ep", "2", "--tp", "2"],
        ["roofline", "4", "8", "16", "--experts", "4", "--top-k", "2", "--ep", "4", "--gpu", "h100-sxm"],
    ):
        code, out, err = cli(*args, "-f", "json")
        assert code == 0, err
        found = _keys(json.loads(out))
        ep_keys = {"expert_ranks", "tensor_ranks", "experts_per_rank", "token_split", "per_rank_tokens", "experts_on_rank", "collectives"}
        assert not (found & ep_keys) - documented


def test_cli_ep_errors_are_one_line(cli: Run) -> None:
    code, out, err = cli("train", "2", "4", "8", "--ep", "2")
    assert code == 2 and out == "" and "needs a mixture of experts" in err and len(err.strip().splitlines()) == 1


def test_ep_keeps_the_configs_dtype(moe: FFNConfig) -> None:
    cfg = replace(moe, dtype="float16")
    assert expert_parallel(cfg, 2).all_to_all[0].tensor_bytes == 4 * 2 * 8 * 2  # T = 4 tokens per rank, k = 2, d = 8, 2 bytes


def test_roofline_ep_needs_a_batch_that_divides() -> None:
    with pytest.raises(ConfigError, match="decode's 1 tokens"):
        roofline(mixtral(1, 64), GPUS["h100-sxm"], ep=8)  # type: ignore[arg-type]
