"""Data parallelism with ZeRO / FSDP sharding: one rank's memory and the bytes it sends per step.

Standard library only; built on one rank's training step (training.py, after any tensor or expert
parallelism: Ψ below is that rank's parameters). Over N data-parallel ranks (ZeRO, Rajbhandari et
al. 2020, §5; FSDP's names in ZERO_STAGES), each shard is ⌈Ψ/N⌉ elements (the layer's flat buffer
padded to a multiple of N, as FSDP's FlatParameter is; the master weights and optimizer states of
the shard follow its elements, so an uneven Ψ pads them too):
    stage 0 (NO_SHARD)        weights, gradients, master weights and states whole on every rank
    stage 1                   master weights and optimizer states sharded
    stage 2 (SHARD_GRAD_OP)   + gradients sharded
    stage 3 (FULL_SHARD)      + weights sharded; HYBRID_SHARD: stage 3 within a node of `node_size`
                              ranks, replicated across the N / node_size nodes
Bytes each rank sends per step, rings over N ranks (a chunk is ceil(elements / N)):
    stages 0-2: the gradients all-reduced = reduce-scatter + all-gather, 2·(N − 1)·chunk·b
                (stage 1 and 2 all-gather the updated weights instead of the summed gradients: the same bytes)
    stage 3:    all-gather of the weights in the forward and again in the backward, 2·(N − 1)·chunk·b,
                and a reduce-scatter of the gradients, (N − 1)·chunk·b: 3·(N − 1)/N·Ψ·b, 1.5× plain DP
    hybrid:     stage 3's over the node_size ranks of a node, then the gradient shard all-reduced
                across the nodes: 2·(R − 1)·ceil(shard / R)·b, R = N / node_size
with b the 16-bit (or the dtype's) bytes per element of weights and gradients.
Under expert parallelism (`ep` = E), N counts every data-parallel rank, the E expert-parallel ranks
among them (as Megatron and DeepSpeed-MoE count them: E divides N); a rank's routed experts are
replicated on only N/E ranks, its expert-data-parallel group, so they are sharded, reduced and
gathered over N/E ranks, and everything else (router, shared experts, norm) over N: each of the
sums above is taken for the two parts, Ψ_e = the rank's expert parameters over N/E, Ψ − Ψ_e over N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ffn_calc.errors import ConfigError
from ffn_calc.json_fields import JsonForm
from ffn_calc.model.training_options import MASTER_BYTES, STATE_BYTES_MIXED, ZERO_STAGES, state_bytes

if TYPE_CHECKING:
    from ffn_calc.model.forward import FFNReport
    from ffn_calc.model.step_totals import TrainingTotals


class StepOptions(Protocol):
    """What sharding reads of a step's options (TrainingOptions, as train resolved them)."""

    @property
    def optimizer(self) -> str: ...

    @property
    def mixed_precision(self) -> bool | None: ...


class Step(Protocol):
    """What sharding reads of a training step (a TrainingReport): its totals, forward pass and options."""

    @property
    def totals(self) -> TrainingTotals: ...

    @property
    def forward(self) -> FFNReport: ...

    @property
    def options(self) -> StepOptions: ...


def _chunk(elements: int, ranks: int) -> int:
    return -(-elements // ranks)


@dataclass(frozen=True)
class DataParallel(JsonForm):
    """One data-parallel rank's share of a layer's training state, in bytes, and what it sends per
    step (`*_sent_bytes`, rings). `shard_ranks` is how many ranks a sharded tensor is split over
    (N, or the node size under HYBRID_SHARD); `gathered_bytes` are the whole weights a ZeRO-3 rank
    gathers for the layer's forward and backward, alive while the layer runs."""

    ranks: int  # data-parallel ranks N (`--dp`)
    zero: int  # the ZeRO stage, 0-3 (FSDP's names mapped: no_shard 0, shard_grad_op 2, full_shard and hybrid_shard 3)
    sharding: str  # `--zero` as given: 0-3 or an FSDP name
    shard_ranks: int  # the ranks a sharded tensor is split over: N, or `--node-size` under hybrid_shard
    weight_bytes: int  # the rank's weights: the whole layer's, or ⌈Ψ/N⌉ elements at ZeRO-3
    gradient_bytes: int  # the rank's gradients: whole, or ⌈Ψ/N⌉ elements from ZeRO-2
    master_weight_bytes: int  # float32 master weights: whole, or ⌈Ψ/N⌉ elements from ZeRO-1
    optimizer_state_bytes: int  # optimizer states: whole, or those of one tensor of ⌈Ψ/N⌉ elements from ZeRO-1
    saved_activation_bytes: int  # the rank's saved activations (its own microbatch: never sharded)
    gathered_bytes: int  # alive while the layer runs: ZeRO-3's gathered weights, and from ZeRO-2 the whole gradient before its reduce-scatter
    peak_bytes: int  # all of the above + the layer's recomputed and backward transient bytes
    gradient_sent_bytes: int  # the gradients' reduce-scatter, (N − 1)·⌈Ψ/N⌉·b (+ hybrid_shard's all-reduce across nodes)
    weight_gather_sent_bytes: int  # all-gathers: of summed gradients (ZeRO-0), updated shards (1, 2), weights in fwd and bwd (3)
    sent_bytes: int  # the two, per step
    formula: str  # how the bytes sent were counted
    model_state_bytes: int | None = None  # the whole stack's sharded weights, gradients, master weights and states on the rank
    model_peak_bytes: int | None = None  # the whole stack on the rank: that state + every layer's saved activations + one layer's transient
    expert_shard_ranks: int | None = None  # with --ep E: the routed experts' expert-data-parallel group, N/E ranks (null without --ep)


def data_parallel(report: Step, ranks: int, zero: str = "0", node_size: int | None = None, ep: int = 1) -> DataParallel:
    """Shard `report` (one tensor/expert-parallel rank's step) over `ranks` data-parallel ranks;
    `node_size` (default 8) only with hybrid_shard. With `ep` > 1 the rank's routed experts are
    sharded over ranks / ep, the rest over ranks."""
    if zero not in ZERO_STAGES:
        raise ConfigError("--zero", f"unknown value {zero!r}; choose one of {', '.join(ZERO_STAGES)}")
    if node_size is not None and zero != "hybrid_shard":
        raise ConfigError("--node-size", f"is the node HYBRID_SHARD shards within; add --zero hybrid_shard or drop it (--zero {zero})")
    node_size = 8 if node_size is None else node_size
    stage = ZERO_STAGES[zero]
    if stage and ranks < 2:
        raise ConfigError("--zero", f"shards over the data-parallel ranks; add --dp N (N ≥ 2) or drop --zero {zero}")
    hybrid = zero == "hybrid_shard"
    if hybrid and (ranks % node_size or ranks == node_size):
        raise ConfigError("--zero", f"hybrid_shard shards within a node of {node_size} ranks: --dp must be a multiple of it, over 2 nodes or more")
    if ep > 1 and ranks % ep:
        raise ConfigError("--dp", f"counts every data-parallel rank, the --ep {ep} expert-parallel ranks among them (as Megatron and "
                          f"DeepSpeed-MoE count them): give a multiple of {ep}, got {ranks}")  # fmt: skip
    if ep > 1 and hybrid:
        raise ConfigError("--zero", "hybrid_shard's node groups beside the expert-data-parallel groups are not modelled; use full_shard or drop --ep")
    n = node_size if hybrid else ranks
    t = report.totals
    params = report.forward.totals.params
    b = report.forward.config.dtype_bytes
    if n > params:  # past Ψ ranks a ring's chunk is padding only: the bytes counted would be the padding's
        flag = "--node-size" if hybrid else "--dp"
        raise ConfigError(flag, f"{n:,} ranks split the layer's {params:,} parameters into chunks of padding; give at most {params:,}")
    # (parameters, ranks they are sharded over) of each part: the routed experts over N/E under --ep
    if ep > 1:
        experts = report.forward.totals.expert_params
        parts = [(params - experts, n), (experts, n // ep)]
    else:
        parts = [(params, n)]
    shards = [(_chunk(psi, r), r) for psi, r in parts]  # elements per rank of a sharded tensor, and its group
    shard = sum(c for c, _ in shards)
    if hybrid and ranks // node_size > shard:
        raise ConfigError("--dp", f"{ranks // node_size:,} nodes split a shard of {shard:,} parameters into chunks of padding; give fewer nodes")
    weights = shard * b if stage >= 3 else t.weight_bytes
    grads = shard * b if stage >= 2 else t.gradient_bytes
    # From ZeRO-1 the optimizer steps the rank's flat shard of ⌈Ψ/N⌉ elements of each part (padding
    # included): one tensor to it per part
    mixed = bool(report.options.mixed_precision)
    state_b = STATE_BYTES_MIXED if mixed else b
    master = sum(c * MASTER_BYTES for c, _ in shards) if mixed and stage >= 1 else t.master_weight_bytes
    states = sum(state_bytes(report.options.optimizer, c, state_b) for c, _ in shards) if stage >= 1 else t.optimizer_state_bytes
    gathered = t.weight_bytes if stage >= 3 else 0
    full_grads = t.gradient_bytes if stage >= 2 else 0  # the layer's whole gradient, before its reduce-scatter
    ring = sum((r - 1) * c * b for c, r in shards)  # one reduce-scatter (or all-gather) of every part over its group
    groups = "; the rank's experts over their N/E = " + f"{n // ep} ranks" if ep > 1 else ""
    if stage < 3:
        grad_sent, gather_sent = ring, ring
        formula = f"all-reduce of the gradients: 2·(N − 1)·⌈Ψ/N⌉·{b} bytes{groups}"
    else:
        grad_sent, gather_sent = ring, 2 * ring
        formula = f"all-gather of the weights in forward and backward 2·(N − 1)·⌈Ψ/N⌉·{b} + reduce-scatter of the gradients (N − 1)·⌈Ψ/N⌉·{b}{groups}"
        if hybrid:
            nodes = ranks // node_size
            grad_sent += 2 * (nodes - 1) * _chunk(shard, nodes) * b
            formula += f", N = {node_size} in a node; + the shard's all-reduce across R = {nodes} nodes, 2·(R − 1)·⌈⌈Ψ/N⌉/R⌉·{b}"
    peak = (weights + grads + master + states + t.saved_activation_bytes + t.recomputed_bytes + t.backward_transient_bytes
            + gathered + full_grads)  # fmt: skip
    return DataParallel(
        ranks=ranks, zero=stage, sharding=zero, shard_ranks=n, weight_bytes=weights, gradient_bytes=grads, master_weight_bytes=master,
        optimizer_state_bytes=states, saved_activation_bytes=t.saved_activation_bytes, gathered_bytes=gathered + full_grads,
        peak_bytes=peak, gradient_sent_bytes=grad_sent, weight_gather_sent_bytes=gather_sent, sent_bytes=grad_sent + gather_sent,
        formula=formula, expert_shard_ranks=n // ep if ep > 1 else None,
    )  # fmt: skip


def stack(groups: list[tuple[int, DataParallel, int]]) -> tuple[int, int]:
    """The whole stack on one data-parallel rank, from its groups (layers, one layer's DataParallel,
    one layer's recomputed + backward transient bytes): (state bytes, peak bytes). Each layer's
    buffers are sharded on their own; every layer's saved activations are alive when the backward
    begins; ZeRO-3's gathered weights and ZeRO-2's unsharded gradient are one layer's at a time."""
    state = sum(n * (d.weight_bytes + d.gradient_bytes + d.master_weight_bytes + d.optimizer_state_bytes) for n, d, _ in groups)
    saved = sum(n * d.saved_activation_bytes for n, d, _ in groups)
    return state, state + saved + max(d.gathered_bytes + transient for _, d, transient in groups)
