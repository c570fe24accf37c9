"""Expert parallelism (GShard, Lepikhin et al. 2020; DeepSpeed-MoE; Megatron-Core MoE): the E
routed experts of a mixture are spread over N expert-parallel ranks, E/N whole experts each.

Conventions, stated once:
- Tokens: BATCH × SEQ_LEN is the global batch, split N ways (the EP ranks are data-parallel
  for everything but the experts): each rank holds T = tokens / N — BATCH / N sequences when
  BATCH divides by N, otherwise SEQ_LEN / N of every sequence (the FFN is position-wise).
- Non-expert parts are replicated, as Megatron-Core and DeepSpeed-MoE keep them (data-parallel
  over the EP ranks): the router (d, E) and the shared experts are whole on every rank.
- Routing is balanced, the tool's assumption everywhere: each rank's T·k routed rows spread
  evenly over the N ranks, so a rank sends T·k/N rows to every rank (itself included) and its
  E/N experts receive T·k rows in all, T·k·N/E each. The rank's layer is therefore the T-token
  layer with only its E/N experts' weights: the same stages, shapes and FLOPs.
- All-to-all: dispatch sends each routed row (d elements) to its expert's rank and combine
  sends the expert's output back; in backward, combine's gradient goes out as dispatch did and
  dispatch's gradient comes back. Each is T·k·d·bytes·(N − 1)/N bytes sent per rank (the
  rows that stay on their own rank are not sent), rounded up to a whole byte when T·k·d·bytes·(N − 1)
  does not divide by N. Under real routing the counts vary; `verify --ep` observes them.
- With --tp M as well (ranks = N·M): each EP rank's experts are split inside by Megatron
  tensor parallelism as without EP (d_ff/M per rank); each TP rank holds the EP rank's tokens and
  takes part in its own all-to-all with the same TP rank of the other EP groups, and the TP
  collectives act on the EP rank's T tokens. Sequence parallelism and capacity buffers are
  not modelled with --ep.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ffn_calc.errors import ConfigError
from ffn_calc.json_fields import JsonForm, json_key
from ffn_calc.model.forward import FFNReport, Stage, Tensor, stack_totals
from ffn_calc.model.layer import FFNConfig, check_size
from ffn_calc.model.parallel import Collective, TensorParallel, _ceil_div, tensor_parallel


@dataclass(frozen=True)
class ExpertParallel(JsonForm):
    """One rank of N expert-parallel ranks (times M tensor-parallel ones when `tensor` is set).
    `per_rank` is the rank's layer: its tokens (T = tokens / N) and, with TP, d_ff / M.
    `collectives` are the all-to-alls (forward and backward), then the TP ones, per step."""

    expert_ranks: int
    experts_per_rank: int
    token_split: str  # batch | sequence: what was divided N ways
    # JSON: the rank's sizes, and its routed rows, T·k (balanced routing)
    per_rank: FFNConfig = field(
        metadata=json_key(spread=("batch", "seq_len", "tokens", "d_ff"), prefix="per_rank_",
                          then=(("routed_rows_per_rank", lambda e: e.per_rank.tokens * e.per_rank.top_k),))
    )  # fmt: skip
    tensor: TensorParallel | None = field(metadata=json_key(omit=True))
    collectives: tuple[Collective, ...]
    sequence_parallel: bool = False  # not modelled with --ep; kept for the renderers' sake
    json_order = (
        "ranks", "expert_ranks", "tensor_ranks", "experts_per_rank", "token_split", "per_rank_batch", "per_rank_seq_len", "per_rank_tokens",
        "routed_rows_per_rank", "sequence_parallel", "per_rank_d_ff", "bytes_sent_per_rank", "collectives",
    )  # fmt: skip

    @property
    def ranks(self) -> int:
        """Every rank: expert-parallel × tensor-parallel."""
        return self.expert_ranks * self.tensor_ranks

    @property
    def tensor_ranks(self) -> int:
        return self.tensor.ranks if self.tensor else 1

    @property
    def bytes_sent_per_rank(self) -> int:
        return sum(c.bytes_sent_per_rank for c in self.collectives)

    @property
    def all_to_all(self) -> tuple[Collective, ...]:
        return tuple(c for c in self.collectives if c.op == "all-to-all")

    def shard(self, report: FFNReport) -> FFNReport:
        """The rank's layer: `report` (of `per_rank`) with each routed expert's weights cut to
        this rank's E/N experts. Everything else (router, shared experts, activations, FLOPs)
        is the T-token layer's; weight totals are summed again over the new stages."""
        local, k = self.experts_per_rank, self.per_rank.top_k

        def cut(t: Tensor) -> Tensor:
            if not t.experts:
                return t
            # active: of the rank's experts, at most min(k, E/N) serve one token
            return replace(t, shape=(local, *t.shape[1:]), experts=local, active=min(k, local))

        stages = tuple(replace(s, weights=tuple(cut(t) for t in s.weights)) if s.weights else s for s in report.stages)
        return _reweigh(report, stages)


def _reweigh(report: FFNReport, stages: tuple[Stage, ...]) -> FFNReport:
    """`report` with new stages whose weights (only) changed: the weight totals summed again
    over them, FLOPs and activations as they were."""
    weights = [t for s in stages for t in s.weights]

    def count(role: str) -> int:
        return sum(t.elements for t in weights if t.role == role)

    params = sum(t.elements for t in weights)
    expert = sum(t.elements for t in weights if t.experts)
    active_expert = sum(t.active_elements for t in weights if t.experts)
    active = sum(t.active_elements for t in weights)
    weight_bytes = sum(t.bytes for t in weights)
    totals = replace(
        report.totals,
        weight_params=count("weight"),
        bias_params=count("bias"),
        norm_params=count("norm"),
        params=params,
        expert_params=expert,
        active_expert_params=active_expert,
        active_params=active,
        weight_bytes=weight_bytes,
        peak_bytes=weight_bytes + report.peak.activation_bytes,
    )
    groups = report.groups[:-1] + (replace(report.groups[-1], totals=totals),)  # this layer's group is the last
    return FFNReport(report.config, stages, totals, report.peak, stack_totals(groups), groups)


def split_tokens(cfg: FFNConfig, ranks: int) -> tuple[FFNConfig, str]:
    """The rank's share of the global batch: BATCH / N sequences, or SEQ_LEN / N of each."""
    if cfg.batch % ranks == 0:
        return replace(cfg, batch=cfg.batch // ranks), "batch"
    if cfg.seq_len % ranks == 0:
        return replace(cfg, seq_len=cfg.seq_len // ranks), "sequence"
    raise ConfigError("--ep", f"neither BATCH {cfg.batch} nor SEQ_LEN {cfg.seq_len} divides by {ranks} ranks; the tokens are split N ways")


def all_to_alls(cfg: FFNConfig, ranks: int) -> tuple[Collective, ...]:
    """The four all-to-alls of a step on a rank of T = cfg.tokens tokens, balanced routing:
    T·k routed rows of d elements, (N − 1)/N of them leave the rank each time."""
    rows = cfg.tokens * cfg.top_k
    shape = (rows, cfg.d_model)
    tensor = rows * cfg.d_model * cfg.dtype_bytes
    sent = _ceil_div((ranks - 1) * tensor, ranks)
    return (
        Collective("forward", "all-to-all", "dispatch: each routed row to its expert's rank", shape, tensor, sent),
        Collective("forward", "all-to-all", "combine: each expert output back to its token's rank", shape, tensor, sent),
        Collective("backward", "all-to-all", "combine's backward: the outputs' gradients to the experts' ranks", shape, tensor, sent),
        Collective("backward", "all-to-all", "dispatch's backward: the routed rows' gradients back to their tokens' ranks", shape, tensor, sent),
    )


@dataclass(frozen=True)
class RankExchange:
    """What one rank sends in the forward all-to-alls of a routing: dispatch, its routed rows
    whose expert lives on another rank; combine, the outputs of its experts for other ranks'
    rows (the backward all-to-alls move the same rows the other way)."""

    dispatch_rows: int
    combine_rows: int
    dispatch_bytes: int
    combine_bytes: int


def all_to_all_bytes(histogram: list[list[int]], experts_per_rank: int, d_model: int, dtype_bytes: int) -> tuple[RankExchange, ...]:
    """The all-to-alls as a function of the routing: `histogram[r][e]` is the routed rows of
    rank r's tokens sent to expert e (r < N, e < E = N·experts_per_rank; expert e lives on rank
    e // experts_per_rank). A row is d_model elements of dtype_bytes; rows that stay on their
    own rank are not sent. Balanced routing (T·k/N rows from every rank to every rank) gives
    all_to_alls' figure."""
    ranks = len(histogram)
    to_rank = [[sum(row[q * experts_per_rank : (q + 1) * experts_per_rank]) for q in range(ranks)] for row in histogram]
    row_bytes = d_model * dtype_bytes
    out = []
    for r in range(ranks):
        away = sum(to_rank[r][q] for q in range(ranks) if q != r)
        home = sum(to_rank[s][r] for s in range(ranks) if s != r)
        out.append(RankExchange(away, home, away * row_bytes, home * row_bytes))
    return tuple(out)


def expert_parallel(cfg: FFNConfig, ranks: int, tp: int = 1, sequence_parallel: bool = False) -> ExpertParallel:
    """E experts over `ranks` expert-parallel ranks (× `tp` tensor-parallel ones): the rank's
    layer and the collectives of one step. See the module's conventions."""
    check_size("--ep", ranks)
    if not cfg.is_moe:
        raise ConfigError("--ep", "expert parallelism needs a mixture of experts (--experts); use --tp for a dense layer")
    if cfg.experts % ranks:
        raise ConfigError("--ep", f"{cfg.experts} experts do not divide over {ranks} ranks; pick an --ep that divides {cfg.experts}")
    if cfg.capacity_factor is not None:
        raise ConfigError("--capacity-factor", "capacity buffers with --ep are not modelled; --ep models dropless routing")
    if sequence_parallel:
        raise ConfigError("--sequence-parallel", "is not modelled with --ep; drop one of them")
    rank_cfg, how = split_tokens(cfg, ranks)
    tensor = tensor_parallel(rank_cfg, tp) if tp > 1 else None
    if tensor is not None:
        rank_cfg = tensor.per_rank
    rule = f"; tokens {cfg.tokens} / {ranks} expert-parallel ranks = {rank_cfg.tokens} per rank"
    rank_cfg = replace(rank_cfg, d_ff_rule=rank_cfg.d_ff_rule + rule)
    collectives = all_to_alls(rank_cfg, ranks) + (tensor.collectives if tensor else ())
    return ExpertParallel(ranks, cfg.experts // ranks, how, rank_cfg, tensor, collectives)
