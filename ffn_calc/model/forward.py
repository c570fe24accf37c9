"""The pure core: shapes, parameters, FLOPs and memory of one FFN layer, as exact integers.

Standard library only: no typer, rich or numpy here, and nothing prints. The counting
convention is in `conventions.py`; this module applies it stage by stage. Totals are sums
over the stages and are never computed a second way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from math import prod

from ffn_calc.json_fields import JsonForm, as_json, json_key
from ffn_calc.model import structure as names
from ffn_calc.model.conventions import (
    BIAS_ADD,
    COMBINE,
    GATE_SCALE,
    GATE_SIGMOID,
    MULTIPLY_ADD,
    RESIDUAL_ADD,
    ROUTER_SOFTMAX,
    SHARED_ADD,
    TOP_K_RENORM,
    activation_flops,
    conventions_dict,
)
from ffn_calc.model.layer import FFNConfig
from ffn_calc.model.weight_formats import Packing
from ffn_calc.schemas import schema


@dataclass(frozen=True)
class Tensor(JsonForm):
    """A named array: `shape` in elements, `bytes` = elements × dtype_bytes, or for a weight
    matrix stored apart (`packing`: --weight-dtype) the bytes of the tensors its format stores
    (weight_formats.py: `packing.tensors(K, N)`, once per expert).

    A routed expert's weights carry every expert (`experts` ≥ 1, the first dimension; 0 for
    any other tensor); `active` of them serve each token, so `active_elements` = elements ×
    active / experts."""

    name: str
    shape: tuple[int, ...]
    dtype_bytes: int = field(metadata=json_key(omit=True))
    role: str = "activation"  # weight | bias | norm | activation
    experts: int = 0
    active: int = field(default=0, metadata=json_key(omit=True))
    packing: Packing | None = field(default=None, metadata=json_key("storage", get="packing.format"))
    elements: int = field(init=False, repr=False, compare=False, metadata=json_key("params"))
    bytes: int = field(init=False, repr=False, compare=False)
    active_elements: int = field(init=False, repr=False, compare=False, metadata=json_key("active_params"))
    json_order = ("name", "role", "shape", "params", "active_params", "experts", "bytes", "storage")

    def __post_init__(self) -> None:
        # Computed once: analyze() and sweeps read these many times.
        elements = prod(self.shape)
        object.__setattr__(self, "elements", elements)
        object.__setattr__(self, "bytes", self.packing.bytes(self.shape) if self.packing else elements * self.dtype_bytes)
        object.__setattr__(self, "active_elements", elements * self.active // self.experts if self.experts else elements)


@dataclass(frozen=True)
class Stage(JsonForm):
    """One step of the forward pass.

    `matmul` is (M, K, N) for the product (M, K)·(K, N), or for an expert stage the grouped
    product: M rows in all, spread over the experts. `flops` = matmul_flops +
    elementwise_flops; `macs` counts the matmul only. `weights` are the parameters the stage
    owns. `inputs` names the earlier stages whose outputs it reads (for memory liveness).
    """

    name: str
    op: str  # input | matmul | activation | glu | add | layernorm | rmsnorm | router | gather | combine | gate_scale
    formula: str
    inputs: tuple[str, ...]
    output: Tensor = field(metadata=json_key(omit=True, then=("output_shape", "output_bytes")))
    weights: tuple[Tensor, ...] = field(
        default=(), metadata=json_key(then=("weight_params", "bias_params", "norm_params", "params", "active_params", "weight_bytes"))
    )
    matmul: tuple[int, int, int] | None = field(default=None, metadata=json_key("matmul_mkn", then=("macs", "matmul_flops")))
    elementwise_flops: int = field(default=0, metadata=json_key(then=("flops",)))
    # macs: in JSON after matmul_mkn, where its `then` puts it
    macs: int = field(init=False, repr=False, compare=False, metadata=json_key(omit=True))

    def __post_init__(self) -> None:
        object.__setattr__(self, "macs", prod(self.matmul) if self.matmul else 0)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.output.shape

    @property
    def output_bytes(self) -> int:
        return self.output.bytes

    @property
    def matmul_flops(self) -> int:
        return MULTIPLY_ADD.flops * self.macs

    @property
    def flops(self) -> int:
        return self.matmul_flops + self.elementwise_flops

    def _count(self, role: str) -> int:
        return sum(t.elements for t in self.weights if t.role == role)

    @property
    def weight_params(self) -> int:
        return self._count("weight")

    @property
    def bias_params(self) -> int:
        return self._count("bias")

    @property
    def norm_params(self) -> int:
        return self._count("norm")

    @property
    def params(self) -> int:
        return sum(t.elements for t in self.weights)

    @property
    def active_params(self) -> int:
        return sum(t.active_elements for t in self.weights)

    @property
    def weight_bytes(self) -> int:
        return sum(t.bytes for t in self.weights)


@dataclass(frozen=True)
class Totals:
    """Sums over the stages of one layer. Counts are elements; FLOPs and MACs are per forward
    pass over the whole (batch, seq_len) input; bytes are in the config's dtype. Per-token
    figures are None when capacity padding makes them fractional."""

    weight_params: int  # matrix entries
    bias_params: int
    norm_params: int  # LayerNorm γ and β, or RMSNorm γ
    params: int
    expert_params: int  # routed experts' weights and biases, all experts
    active_expert_params: int  # the top_k experts that serve one token
    active_params: int  # params that serve one token: params − expert_params + active_expert_params
    macs: int
    matmul_flops: int
    elementwise_flops: int
    flops: int
    flops_per_token: int | None
    matmul_flops_per_token: int | None
    weight_bytes: int
    activation_bytes: int  # every stage output (input x included) summed, none freed
    peak_bytes: int  # weights + the activations alive at the busiest moment


@dataclass(frozen=True)
class StackTotals:
    """The model's layers: parameters, FLOPs and weight bytes summed over its layer groups (each
    `layers` × its per-layer figure); the peak holds every layer's weights and the largest
    layer's activations (a forward pass frees them as it goes)."""

    layers: int
    params: int
    active_params: int
    flops: int
    macs: int
    matmul_flops: int
    weight_bytes: int
    peak_bytes: int


@dataclass(frozen=True)
class Peak:
    """Where the forward pass holds the most memory: the stage, the activations alive then
    (by stage name), and their bytes. Weights are alive throughout and counted apart."""

    stage: str
    live: tuple[str, ...]
    activation_bytes: int


@dataclass(frozen=True)
class LayerGroup(JsonForm):
    """`config.layers` identical layers of one kind (name: dense, moe or ffn): `totals` per
    layer, `peak_activation_bytes` of one layer's forward pass, and `sum` over the group."""

    name: str
    config: FFNConfig = field(metadata=json_key(spread=("layers", "d_ff", "experts", "top_k", "shared_experts")))
    totals: Totals = field(metadata=json_key(then=("sum",)))
    peak_activation_bytes: int = field(metadata=json_key(omit=True))

    @property
    def sum(self) -> StackTotals:
        return stack_totals((self,))


def stack_totals(groups: tuple[LayerGroup, ...]) -> StackTotals:
    """The model: each group's per-layer figures × its layers, summed; the peak is every
    layer's weights + the largest one layer's activations."""
    weight_bytes = sum(g.config.layers * g.totals.weight_bytes for g in groups)
    return StackTotals(
        layers=sum(g.config.layers for g in groups),
        params=sum(g.config.layers * g.totals.params for g in groups),
        active_params=sum(g.config.layers * g.totals.active_params for g in groups),
        flops=sum(g.config.layers * g.totals.flops for g in groups),
        macs=sum(g.config.layers * g.totals.macs for g in groups),
        matmul_flops=sum(g.config.layers * g.totals.matmul_flops for g in groups),
        weight_bytes=weight_bytes,
        peak_bytes=weight_bytes + max(g.peak_activation_bytes for g in groups),
    )


@dataclass(frozen=True)
class FFNReport(JsonForm):
    """One layer (`config`: its stages, totals and peak) and the model: `groups` (the dense
    layers of a mixed stack, then this layer's) and `model`, their sum."""

    # JSON (`shapes -f json`): the counting convention after the config, the peak's whole bytes beside its activations.
    config: FFNConfig = field(metadata=json_key(then=(("conventions", lambda r: conventions_dict()),)))
    stages: tuple[Stage, ...]
    totals: Totals
    peak: Peak = field(metadata=json_key(value=lambda r: {**as_json(r.peak), "peak_bytes": r.totals.peak_bytes}))
    model: StackTotals
    groups: tuple[LayerGroup, ...] = ()
    weights: tuple[Tensor, ...] = field(init=False, metadata=json_key(omit=True))
    json_schema = schema("shapes")
    json_order = ("config", "conventions", "stages", "totals", "model", "groups", "peak")

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(w for s in self.stages for w in s.weights))

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)


@lru_cache(maxsize=1024)  # weights do not depend on batch or seq_len: a sweep shares them
def _linear_weights(
    w: str, bias: str | None, k: int, m: int, dtype_bytes: int, experts: int, active: int, packing: Packing | None = None
) -> tuple[Tensor, ...]:
    """A linear's matrix (k, m) and bias (m), with every expert's as the first dimension; the
    matrix stored as `packing` says (--weight-dtype), the bias in the activation dtype."""
    lead = (experts,) if experts else ()
    weights: tuple[Tensor, ...] = (Tensor(w, (*lead, k, m), dtype_bytes, "weight", experts, active, packing),)
    if bias is not None:
        weights += (Tensor(bias, (*lead, m), dtype_bytes, "bias", experts, active),)
    return weights


class _Builder:
    """Appends stages in order; keeps the letter each output goes by in the formulas."""

    def __init__(self, cfg: FFNConfig) -> None:
        self.cfg = cfg
        self.stages: list[Stage] = []
        self.symbol: dict[str, str] = {}

    def tensor(self, name: str, shape: tuple[int, ...], role: str = "activation", experts: int = 0, active: int = 0) -> Tensor:
        return Tensor(name, shape, self.cfg.dtype_bytes, role, experts, active)

    def add(self, stage: Stage, symbol: str) -> str:
        self.stages.append(stage)
        self.symbol[stage.name] = symbol
        return stage.name

    def linear(self, name: str, source: str, sym: str, w: str, bias: str, k: int, m: int, rows: tuple[int, ...], experts: int = 0) -> str:
        """out = source·W (+ b): `rows` is the leading shape, M its product; an expert stage
        holds every expert's matrix (experts, k, m) and its M rows are split among them."""
        cfg = self.cfg
        m_rows = prod(rows)
        weights = _linear_weights(w, bias if cfg.bias else None, k, m, cfg.dtype_bytes, experts, cfg.top_k if experts else 0, cfg.weight_packing)
        formula = f"{sym} = {self.symbol[source]}·{w}"
        bias_flops = 0
        if cfg.bias:
            formula += f" + {bias}"
            bias_flops = BIAS_ADD.flops * m_rows * m
        if experts:
            formula += " (each expert its own rows)"
        stage = Stage(name, "matmul", formula, (source,), self.tensor(name, (*rows, m)), weights, (m_rows, k, m), bias_flops)
        return self.add(stage, sym)

    def ffn(self, prefix: str, source: str, rows: tuple[int, ...], width: int, experts: int = 0) -> str:
        """The feed-forward core, plain (linear1 → activation → linear2) or gated
        (gate, up → glu → down; or gate_up → glu → down when fused). Returns the output stage."""
        cfg = self.cfg
        d, m_rows = cfg.d_model, prod(rows)
        act = cfg.base_activation
        *first, last = names.linears(cfg.is_glu, cfg.fused)

        def lin(spec: names.Linear, src: str, k: int, m: int) -> str:
            return self.linear(prefix + spec.stage, src, spec.symbol, prefix + spec.weight, prefix + spec.bias, k, m, rows, experts)

        ins = tuple(lin(spec, source, d, 2 * width if spec.fused else width) for spec in first)
        if not cfg.is_glu:
            stage, formula = names.ACTIVATION, f"a = {act}({first[0].symbol})"
        elif cfg.fused:
            stage, formula = names.GLU, f"a = {act}(gu[..., :{width}]) ⊙ gu[..., {width}:]  (split: a view)"
        else:
            stage, formula = names.GLU, f"a = {act}({first[0].symbol}) ⊙ {first[1].symbol}"
        a = self.add(
            Stage(prefix + stage, stage, formula, ins, self.tensor(prefix + stage, (*rows, width)),
                  elementwise_flops=activation_flops(cfg.activation) * m_rows * width),
            "a",
        )  # fmt: skip
        return lin(last, a, width, d)

    def norm(self, source: str, sym: str) -> str:
        """The config's norm (LayerNorm, RMSNorm: norms.py) over each row; its stage name and op
        are the registry's stage, its weights the registry's, each of d_model."""
        cfg = self.cfg
        d = cfg.d_model
        kind = cfg.norm_kind
        assert kind is not None
        stage = Stage(
            kind.stage, kind.stage, f"{sym} = {kind.symbol}({self.symbol[source]})", (source,),
            self.tensor(kind.stage, (cfg.batch, cfg.seq_len, d)),
            tuple(self.tensor(w, (d,), "norm") for w in kind.weights),
            elementwise_flops=kind.flops(cfg.tokens, d),
        )  # fmt: skip
        return self.add(stage, sym)

    def shared_expert_gate(self, source: str, shared: str) -> str:
        """Qwen2-MoE's gate on the shared experts: g = x·w_s (d_model → 1, no bias), then the
        shared output scaled by sigmoid(g), one scalar per token. Returns the scaled output."""
        cfg = self.cfg
        b, s, d, n = cfg.batch, cfg.seq_len, cfg.d_model, cfg.tokens
        w = self.tensor(names.W_SHARED_EXPERT_GATE, (d, 1), "weight")
        gate = self.add(
            Stage(names.SHARED_EXPERT_GATE, "matmul", f"gs = {self.symbol[source]}·{names.W_SHARED_EXPERT_GATE}", (source,),
                  self.tensor(names.SHARED_EXPERT_GATE, (b, s, 1)), (w,), (n, d, 1)),
            "gs",
        )  # fmt: skip
        flops = GATE_SIGMOID.flops * n + GATE_SCALE.flops * n * d
        return self.add(
            Stage(names.SHARED_EXPERT_SCALE, "gate_scale", f"ys = sigmoid(gs) ⊙ {self.symbol[shared]}", (gate, shared),
                  self.tensor(names.SHARED_EXPERT_SCALE, (b, s, d)), elementwise_flops=flops),
            "ys",
        )  # fmt: skip

    def moe(self, source: str) -> str:
        """Shared experts, router, routing, dispatch, the routed experts, combine."""
        cfg = self.cfg
        b, s, d, n, e, k = cfg.batch, cfg.seq_len, cfg.d_model, cfg.tokens, cfg.experts, cfg.top_k
        shared = None
        if cfg.shared_experts:
            shared = self.ffn(names.SHARED, source, (b, s), cfg.shared_experts * cfg.d_ff)
            if cfg.shared_expert_gate:
                shared = self.shared_expert_gate(source, shared)
        router_weights: tuple[Tensor, ...] = (self.tensor(names.W_ROUTER, (d, e), "weight"),)
        formula = f"logits = {self.symbol[source]}·{names.W_ROUTER}"
        if cfg.router_bias:  # gpt-oss's GptOssTopKRouter
            router_weights += (self.tensor(names.B_ROUTER, (e,), "bias"),)
            formula += f" + {names.B_ROUTER}"
        router = self.add(
            Stage(names.ROUTER, "matmul", formula, (source,), self.tensor(names.ROUTER, (b, s, e)), router_weights, (n, d, e),
                  BIAS_ADD.flops * n * e if cfg.router_bias else 0),
            "logits",
        )  # fmt: skip
        routing = self.add(
            Stage(names.ROUTING, "router", f"w = renorm(top-{k}(softmax(logits)))", (router,), self.tensor(names.ROUTING, (b, s, k)),
                  elementwise_flops=ROUTER_SOFTMAX.flops * n * e + TOP_K_RENORM.at(k).flops * n),
            "w",
        )  # fmt: skip
        cap = cfg.expert_capacity
        rows = (n * k,) if cap is None else (e, cap)
        what = f"the {n * k:,} (token, expert) pairs, grouped by expert" if cap is None else f"{e} buffers of {cap} rows"
        dispatch = self.add(
            Stage(names.DISPATCH, "gather", f"xe = {self.symbol[source]} gathered into {what}", (source, routing),
                  self.tensor(names.DISPATCH, (*rows, d))),
            "xe",
        )  # fmt: skip
        routed = self.ffn(names.EXPERT, dispatch, rows, cfg.d_ff, experts=e)
        inputs = (routing, routed) + ((shared,) if shared else ())
        flops = COMBINE.at(k).flops * n * d + (SHARED_ADD.flops * n * d if shared else 0)
        formula = "y = Σₖ w·ye" + (" + shared" if shared else "")
        return self.add(Stage(names.COMBINE, "combine", formula, inputs, self.tensor(names.COMBINE, (b, s, d)), elementwise_flops=flops), "y")


def build_stages(cfg: FFNConfig) -> tuple[Stage, ...]:
    """The stages of one FFN forward pass, in order.

    none: input → FFN
    pre:  input → norm → FFN → residual   (x + FFN(LN(x)))
    post: input → FFN → residual → norm   (LN(x + FFN(x)))
    where the norm stage is `layernorm` or `rmsnorm` (norm_type, norms.py), and FFN is
    linear1 → activation → linear2, or gate, up → glu → down for a GLU, or for a mixture of
    experts: [shared experts [→ shared_expert_gate → shared_expert_scale]] → router → routing →
    dispatch → experts → combine.
    """
    bld = _Builder(cfg)
    b, s, d = cfg.batch, cfg.seq_len, cfg.d_model
    src = bld.add(Stage(names.INPUT, "input", "x", (), bld.tensor(names.INPUT, (b, s, d))), "x")
    if cfg.norm == "pre":
        src = bld.norm(src, "n")
    out = bld.moe(src) if cfg.is_moe else bld.ffn("", src, (b, s), cfg.d_ff)
    if cfg.norm != "none":
        out = bld.add(
            Stage(names.RESIDUAL, "add", f"r = x + {bld.symbol[out]}", (names.INPUT, out), bld.tensor(names.RESIDUAL, (b, s, d)),
                  elementwise_flops=RESIDUAL_ADD.flops * cfg.tokens * d),
            "r",
        )  # fmt: skip
    if cfg.norm == "post":
        bld.norm(out, "z")
    return tuple(bld.stages)


def forward_peak(stages: tuple[Stage, ...]) -> Peak:
    """The activation memory at the busiest moment of an out-of-place forward pass.

    The model (which `verify` runs and measures): each stage allocates a new output while
    its inputs are alive; an output is freed once no later stage reads it; the input x is
    held by the caller throughout; the last output stays alive. Elementwise scratch is
    bounded by the verifier's block size and is not part of the model.
    """
    last_use = {s.name: i for i, s in enumerate(stages)}
    for i, s in enumerate(stages):
        for name in s.inputs:
            last_use[name] = i
    # Running total: stage i's output is allocated at i and freed after its last reader.
    total, best_total, best_i = 0, -1, 0
    freed_after: dict[int, int] = {}
    for i, s in enumerate(stages):
        total += s.output.bytes - freed_after.pop(i - 1, 0)
        if s.op != "input" and last_use[s.name] < len(stages) - 1:
            freed_after[last_use[s.name]] = freed_after.get(last_use[s.name], 0) + s.output.bytes
        if total > best_total:
            best_total, best_i = total, i
    live = tuple(s.name for s in stages[: best_i + 1] if s.op == "input" or last_use[s.name] >= best_i)
    return Peak(stages[best_i].name, live, best_total)


def _per_token(value: int, tokens: int) -> int | None:
    return value // tokens if value % tokens == 0 else None


def analyze(cfg: FFNConfig) -> FFNReport:
    """Shapes, parameters, FLOPs and memory of one FFN layer under `cfg`, and of the model: its
    layer groups (`cfg.groups`: a mixed stack's dense layers, then `layers` of this one)."""
    stages, totals, peak = _one_layer(cfg)
    *dense, _ = cfg.groups
    groups = tuple(LayerGroup("dense", g, *_layer_totals(g)) for g in dense)
    groups += (LayerGroup("moe" if cfg.is_moe else "ffn", cfg, totals, peak.activation_bytes),)
    return FFNReport(cfg, stages, totals, peak, stack_totals(groups), groups)


def _layer_totals(cfg: FFNConfig) -> tuple[Totals, int]:
    _, totals, peak = _one_layer(cfg)
    return totals, peak.activation_bytes


def _one_layer(cfg: FFNConfig) -> tuple[tuple[Stage, ...], Totals, Peak]:
    stages = build_stages(cfg)
    peak = forward_peak(stages)
    # One pass over the stages and their tensors: every total is a sum of stage figures.
    by_role = {"weight": 0, "bias": 0, "norm": 0}
    expert = active_expert = active = weight_bytes = 0
    macs = elementwise = activation_bytes = 0
    for s in stages:
        macs += s.macs
        elementwise += s.elementwise_flops
        activation_bytes += s.output.bytes
        for t in s.weights:
            elements = t.elements
            by_role[t.role] += elements
            weight_bytes += t.bytes
            active += t.active_elements
            if t.experts:
                expert += elements
                active_expert += t.active_elements
    params = sum(by_role.values())
    matmul_flops = MULTIPLY_ADD.flops * macs
    flops = matmul_flops + elementwise
    totals = Totals(
        weight_params=by_role["weight"],
        bias_params=by_role["bias"],
        norm_params=by_role["norm"],
        params=params,
        expert_params=expert,
        active_expert_params=active_expert,
        active_params=active,
        macs=macs,
        matmul_flops=matmul_flops,
        elementwise_flops=elementwise,
        flops=flops,
        flops_per_token=_per_token(flops, cfg.tokens),
        matmul_flops_per_token=_per_token(matmul_flops, cfg.tokens),
        weight_bytes=weight_bytes,
        activation_bytes=activation_bytes,
        peak_bytes=weight_bytes + peak.activation_bytes,
    )
    return stages, totals, peak


def chunked_peak(cfg: FFNConfig, chunk_tokens: int) -> int:
    """Peak bytes of a forward pass run `chunk_tokens` tokens at a time (`verify` does this when
    the whole pass would not fit): the weights, the whole input and the whole output, and one
    chunk's activations at their busiest, less the chunk's input, which is a view of x."""
    chunk = analyze(replace(cfg, batch=1, seq_len=chunk_tokens))
    whole = cfg.tokens * cfg.d_model * cfg.dtype_bytes
    return chunk.totals.weight_bytes + 2 * whole + chunk.peak.activation_bytes - chunk.stages[0].output_bytes
