"""Tensor parallelism, Megatron style (Shoeybi et al. 2019, §3): each of N ranks holds the
first linear (and the gate) split by columns, (d_model, d_ff/N), and the second by rows,
(d_ff/N, d_model); the activation stays local. One rank is therefore exactly the same layer
with d_ff/N, which is how the per-rank figures are computed. The partial outputs are summed
by one all-reduce in forward, and the input gradients by one in backward; with sequence
parallelism (Korthikanti et al. 2022, §4.2.2) each becomes an all-gather and a reduce-scatter.
A mixture of experts is split the same way inside every expert (and the shared ones), with the
router replicated on every rank; expert parallelism (whole experts per rank, all-to-all
dispatch) is a different scheme, in expert_parallel.py.

A ring all-reduce of T bytes sends 2·(N−1)/N·T per rank; an all-gather or a reduce-scatter
(N−1)/N·T. Byte counts are rounded up to whole bytes when T does not divide by N.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ffn_calc.errors import ConfigError
from ffn_calc.json_fields import JsonForm, json_key
from ffn_calc.model import structure as names
from ffn_calc.model.layer import FFNConfig, check_size


@dataclass(frozen=True)
class Collective:
    phase: str  # forward | backward
    op: str  # all-reduce | all-gather | reduce-scatter
    where: str
    shape: tuple[int, ...]
    tensor_bytes: int
    bytes_sent_per_rank: int


@dataclass(frozen=True)
class TensorParallel(JsonForm):
    ranks: int
    sequence_parallel: bool
    per_rank: FFNConfig = field(metadata=json_key(spread=("d_ff",), prefix="per_rank_", then=("bytes_sent_per_rank",)))
    collectives: tuple[Collective, ...]

    @property
    def bytes_sent_per_rank(self) -> int:
        return sum(c.bytes_sent_per_rank for c in self.collectives)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def tensor_parallel(cfg: FFNConfig, ranks: int, sequence_parallel: bool = False) -> TensorParallel:
    check_size("--tp", ranks)
    if cfg.d_ff % ranks:
        what = "each expert's d_ff" if cfg.is_moe else "d_ff"
        raise ConfigError("--tp", f"{what} {cfg.d_ff} does not divide by {ranks} ranks; pick a d_ff or --tp that divides it")
    if sequence_parallel and cfg.seq_len % ranks:
        raise ConfigError("--sequence-parallel", f"SEQ_LEN {cfg.seq_len} does not divide by {ranks} ranks")
    if cfg.dense_d_ff % ranks:
        raise ConfigError("--tp", f"the dense layers' d_ff {cfg.dense_d_ff} does not divide by {ranks} ranks; pick a --tp that divides it")
    per_rank = replace(
        cfg, d_ff=cfg.d_ff // ranks, dense_d_ff=cfg.dense_d_ff // ranks, d_ff_rule=f"{cfg.d_ff} / {ranks} ranks = {cfg.d_ff // ranks} per rank"
    )
    shape = (cfg.batch, cfg.seq_len, cfg.d_model)
    tensor = cfg.tokens * cfg.d_model * cfg.dtype_bytes
    *firsts, last = names.linears(cfg.is_glu, cfg.fused)
    out, first = last.stage, " and ".join(lin.stage for lin in firsts)
    if cfg.is_moe:  # every expert (and the shared ones) split the same way; the router is replicated
        out, first = "combine (the experts' partial outputs)", f"the experts' {first}"
    if sequence_parallel:
        half = _ceil_div((ranks - 1) * tensor, ranks)
        collectives: tuple[Collective, ...] = (
            Collective("forward", "all-gather", f"the sequence shards, before {first}", shape, tensor, half),
            Collective("forward", "reduce-scatter", f"the partial outputs of {out}, into sequence shards", shape, tensor, half),
            Collective("backward", "all-gather", f"the output gradient's shards, before {out}'s backward", shape, tensor, half),
            Collective("backward", "reduce-scatter", f"the partial input gradients of {first}", shape, tensor, half),
        )
    else:
        full = _ceil_div(2 * (ranks - 1) * tensor, ranks)
        collectives = (
            Collective("forward", "all-reduce", f"the partial outputs of {out}", shape, tensor, full),
            Collective("backward", "all-reduce", f"the partial input gradients of {first}", shape, tensor, full),
        )
    return TensorParallel(ranks, sequence_parallel, per_rank, collectives)
