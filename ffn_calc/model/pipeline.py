"""Pipeline parallelism: the stack's layers over p stages, m microbatches, and a schedule.

Standard library only; built on one training step of a microbatch (training.py: b/m sequences,
after any tensor or expert parallelism, so every figure is one rank's of its stage). With L
layers (a mixed stack's dense layers first, as DeepSeek's first_k_dense_replace puts them):

    layers per stage   GPipe and 1F1B: L split into p contiguous runs, ⌈L/p⌉ on the first L mod p
                       stages; interleaved: L into p·v chunks of L/(p·v) layers (L must divide),
                       chunk c on stage c mod p (Narayanan et al. 2021, §2.2)
    held microbatches  how many microbatches' saved activations a stage keeps at once:
                       GPipe m on every stage (all forwards before any backward);
                       1F1B min(p − s, m) on stage s (0-based), so p on the first;
                       interleaved min(2·(p − s − 1) + (v − 1)·p + 1, v·m) chunk-microbatches
                       (Megatron's warm-up + 1), each one chunk's layers: the first stage holds
                       p·(1 + (p − 1)/(p·v)) microbatches' worth
    activations        held × the saved activations of one microbatch over the stage's layers
                       (interleaved: held × those of its largest chunk; exact for identical layers)
    bubble             (p − 1)/(m + p − 1) for GPipe and 1F1B; (p − 1)/(v·m + p − 1) interleaved
    point-to-point     per microbatch and boundary, the activation tensor (b/m, s, d) forward and
                       its gradient backward, each (b/m)·s·d·bytes (s/t of it per rank under
                       sequence parallelism); per step stage s sends m of them forward unless it
                       is the last stage and m backward unless it is the first (interleaved: for
                       each of its v chunks, but for the model's last chunk forward and first backward)
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from typing import TYPE_CHECKING

from ffn_calc.errors import ConfigError
from ffn_calc.json_fields import JsonForm
from ffn_calc.model.training_options import SCHEDULES

if TYPE_CHECKING:
    from ffn_calc.model.data_parallel import DataParallel
    from ffn_calc.model.step_totals import TrainingTotals


@dataclass(frozen=True)
class LayerKind:
    """What one layer of a kind costs a stage, from a microbatch's training step (one rank's)."""

    name: str  # dense | moe | ffn
    params: int
    state_bytes: int  # weights + gradients + optimizer states + master weights
    saved_activation_bytes: int  # of one microbatch
    transient_bytes: int  # recomputed + backward transient of one microbatch, one layer at a time


@dataclass(frozen=True)
class PipelineStage(JsonForm):
    """One pipeline stage (one rank of it under tensor or expert parallelism)."""

    stage: int  # 0-based
    layers: tuple[tuple[int, int], ...]  # the runs of layers it holds, [first, last] 0-based, one per chunk
    layer_count: int  # layers on the stage
    dense_layers: int  # of them, a mixed stack's dense layers
    moe_layers: int  # of them, the mixture-of-experts layers (0 for a dense stack)
    params: int  # parameters of its layers
    state_bytes: int  # their weights, gradients, optimizer states and master weights (with --dp, one data-parallel rank's shards)
    held_microbatches: int  # microbatches whose activations it keeps at once (interleaved: chunk-microbatches)
    saved_activation_bytes: int  # the held microbatches' saved activations
    peak_bytes: int  # state + saved activations + one layer's recomputed and backward transient (+ ZeRO's gathered bytes)
    sent_bytes: int  # point-to-point bytes the stage sends per step, forward activations and backward gradients


@dataclass(frozen=True)
class Pipeline(JsonForm):
    """A pipeline-parallel step of the whole stack (formulas in the module's docstring)."""

    stages: int  # p (`--pp`)
    microbatches: int  # m (`--microbatches`)
    schedule: str  # gpipe | 1f1b | interleaved
    chunks: int  # v, model chunks per stage (1 but for interleaved)
    microbatch_sequences: int  # b/m
    layers: int  # the stack's layers L
    bubble_numerator: int  # the bubble fraction in lowest terms: numerator
    bubble_denominator: int  # and denominator
    bubble_fraction: float  # the same as a number
    boundary_shape: tuple[int, ...]  # the tensor crossing a stage boundary per microbatch: (b/m, s, d), s/t with sequence parallelism
    boundary_bytes: int  # its bytes, one direction
    p2p_bytes_per_microbatch: int  # forward activation + backward gradient across one boundary
    per_stage: tuple[PipelineStage, ...]  # each stage's layers, parameters, memory and bytes sent
    formula: str  # the formulas used


def _runs(total: int, parts: int) -> list[int]:
    """`total` split into `parts` contiguous runs, the first total mod parts one longer."""
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def held(schedule: str, p: int, m: int, v: int, s: int) -> int:
    """Microbatches (interleaved: chunk-microbatches) whose activations stage `s` holds at once."""
    if schedule == "gpipe":
        return m
    if schedule == "1f1b":
        return min(p - s, m)
    return min(2 * (p - s - 1) + (v - 1) * p + 1, v * m)


def pipeline(
    kinds: list[tuple[LayerKind, int]], p: int, m: int, schedule: str, v: int, micro_sequences: int, boundary_shape: tuple[int, ...],
    dtype_bytes: int,
) -> Pipeline:  # fmt: skip
    """The stack `kinds` ([(kind, layers)], in order) over `p` stages with `m` microbatches."""
    if schedule not in SCHEDULES:
        raise ConfigError("--schedule", f"unknown value {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if v != 1 and schedule != "interleaved":
        raise ConfigError("--chunks", f"model chunks per stage belong to the interleaved schedule; add --schedule interleaved (got {schedule})")
    total = sum(n for _, n in kinds)
    if total < p * v:
        raise ConfigError("--pp", f"{p} stages × {v} chunks need at least {p * v} layers; the stack has {total}")
    if schedule == "interleaved":
        if v < 2:
            raise ConfigError("--chunks", "the interleaved schedule needs v ≥ 2 model chunks per stage (v = 1 is 1F1B)")
        if total % (p * v):
            raise ConfigError("--chunks", f"interleaved needs the {total} layers to split into p·v = {p * v} equal chunks (as Megatron does)")
        if m % p:
            raise ConfigError("--microbatches", f"the interleaved schedule needs m a multiple of p = {p} (Megatron's), got {m}")
    order = [kind for kind, n in kinds for _ in range(n)]  # layer i's kind
    sizes = _runs(total, p * v)
    starts = [sum(sizes[:c]) for c in range(p * v)]
    boundary = dtype_bytes
    for n in boundary_shape:
        boundary *= n
    out: list[PipelineStage] = []
    for s in range(p):
        chunks = [c for c in range(p * v) if c % p == s]
        runs = tuple((starts[c], starts[c] + sizes[c] - 1) for c in chunks)
        mine = [order[i] for first, last in runs for i in range(first, last + 1)]
        per_chunk = [sum(order[i].saved_activation_bytes for i in range(first, last + 1)) for first, last in runs]
        h = held(schedule, p, m, v, s)
        saved = h * max(per_chunk)
        state = sum(k.state_bytes for k in mine)
        sends = (v - (s == p - 1)) + (v - (s == 0))
        out.append(PipelineStage(
            stage=s, layers=runs, layer_count=len(mine), dense_layers=sum(k.name == "dense" for k in mine),
            moe_layers=sum(k.name == "moe" for k in mine), params=sum(k.params for k in mine), state_bytes=state,
            held_microbatches=h, saved_activation_bytes=saved, peak_bytes=state + saved + max(k.transient_bytes for k in mine),
            sent_bytes=m * sends * boundary,
        ))  # fmt: skip
    num, den = p - 1, v * m + p - 1
    g = gcd(num, den) or 1
    bubble = "(p − 1)/(v·m + p − 1)" if schedule == "interleaved" else "(p − 1)/(m + p − 1)"
    held_text = {
        "gpipe": "m microbatches held on every stage",
        "1f1b": "min(p − s, m) microbatches held on stage s",
        "interleaved": "min(2·(p − s − 1) + (v − 1)·p + 1, v·m) chunk-microbatches held on stage s",
    }[schedule]
    formula = (f"bubble {bubble} = {num}/{den}; {held_text}; point-to-point per microbatch and boundary: "
               f"(b/m)·s·d·{dtype_bytes} bytes forward + the same backward")  # fmt: skip
    return Pipeline(
        stages=p, microbatches=m, schedule=schedule, chunks=v, microbatch_sequences=micro_sequences, layers=total,
        bubble_numerator=num // g, bubble_denominator=den // g, bubble_fraction=num / den, boundary_shape=boundary_shape,
        boundary_bytes=boundary, p2p_bytes_per_microbatch=2 * boundary, per_stage=tuple(out), formula=formula,
    )  # fmt: skip


def layer_kind(name: str, params: int, t: TrainingTotals, dp: DataParallel | None = None) -> LayerKind:
    """A layer kind from one layer's training totals of a microbatch; with `dp`, its state is one
    data-parallel rank's (ZeRO/FSDP shards) and its gathered bytes join its transient."""
    if dp is not None:
        state = dp.weight_bytes + dp.gradient_bytes + dp.optimizer_state_bytes + dp.master_weight_bytes
        return LayerKind(name, params, state, t.saved_activation_bytes, t.recomputed_bytes + t.backward_transient_bytes + dp.gathered_bytes)
    state = t.weight_bytes + t.gradient_bytes + t.optimizer_state_bytes + t.master_weight_bytes
    return LayerKind(name, params, state, t.saved_activation_bytes, t.recomputed_bytes + t.backward_transient_bytes)
