"""Rendering `train`: the backward pass op by op, the saved tensors, and a step's memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ffn_calc.model.dtypes import SIXTEEN_BIT
from ffn_calc.model.expert_parallel import ExpertParallel
from ffn_calc.model.parallel import TensorParallel
from ffn_calc.model.training import TrainingReport
from ffn_calc.render.base import View, csv_rows, tables
from ffn_calc.render.layout import GLUE, Col, Grid, Num, Wrapped, bytes_text, config_block, fit, flops_text, headline, hint, plural, shape

if TYPE_CHECKING:
    from rich.console import RenderableType


RECOMPUTED, TRANSIENT = "recomputed for the backward", "backward transient"  # one layer's at a time in a stack


def _memory_parts(t: Any, optimizer: str) -> list[tuple[str, int]]:
    """The memory of a step, part by part (one layer's TrainingTotals, or the model's)."""
    return [("weights", t.weight_bytes), ("gradients", t.gradient_bytes), (f"optimizer states ({optimizer})", t.optimizer_state_bytes),
            ("master weights (float32)", t.master_weight_bytes), ("saved activations", t.saved_activation_bytes),
            (RECOMPUTED, t.recomputed_bytes), (TRANSIENT, t.backward_transient_bytes)]  # fmt: skip


@csv_rows.register(TrainingReport)
def _csv_rows_TrainingReport(report: TrainingReport) -> list[dict[str, Any]]:
    """Every figure of the step, one a row; `section` says which table it belongs to (backward:
    the ops and their total; flops: one layer's step; memory: one layer's bytes; model: the
    whole stack's FLOPs and bytes; data_parallel: one --dp rank's bytes and bytes sent; pipeline: each --pp
    stage's), so a script can filter."""
    blank = {"stage": "", "kind": "", "output_shape": "", "macs": "", "elementwise_flops": "", "flops": "", "bytes": ""}
    rows = [
        {**blank, "stage": op.stage, "kind": op.kind, "output_shape": "x".join(map(str, op.output_shape)), "macs": op.macs,
         "elementwise_flops": op.elementwise_flops, "flops": op.flops, "section": "backward"}
        for op in report.backward
    ]  # fmt: skip
    t, o = report.totals, report.options
    rows.append({**blank, "stage": "total", "kind": "backward", "macs": t.backward_macs,
                 "elementwise_flops": t.backward_elementwise_flops, "flops": t.backward_flops, "section": "backward"})  # fmt: skip
    for part, flops in (("forward", t.forward_flops), ("backward", t.backward_flops), ("recompute", t.recompute_flops),
                        ("dropout", t.dropout_flops), ("step", t.step_flops)):  # fmt: skip
        rows.append({**blank, "stage": part, "kind": "flops", "flops": flops, "section": "flops"})
    for part, value in [*_memory_parts(t, o.optimizer), ("peak", t.peak_bytes)]:
        rows.append({**blank, "stage": part, "kind": "bytes", "bytes": value, "section": "memory"})
    m = report.model
    if m is not None:
        for part, flops in (("forward", m.forward_flops), ("backward", m.backward_flops), ("recompute", m.recompute_flops),
                            ("dropout", m.dropout_flops), ("step", m.step_flops)):  # fmt: skip
            rows.append({**blank, "stage": part, "kind": "flops", "flops": flops, "section": "model"})
        for part, value in [*_memory_parts(m, o.optimizer), ("peak", m.peak_bytes)]:
            rows.append({**blank, "stage": part, "kind": "bytes", "bytes": value, "section": "model"})
    d = report.data_parallel
    if d is not None:  # one data-parallel rank's bytes, and what it sends per step
        dp_parts: tuple[tuple[str, int | None], ...] = (
                            ("weights", d.weight_bytes), ("gradients", d.gradient_bytes), ("master weights", d.master_weight_bytes),
                            ("optimizer states", d.optimizer_state_bytes), ("saved activations", d.saved_activation_bytes),
                            ("gathered", d.gathered_bytes), ("peak", d.peak_bytes), ("gradient sent", d.gradient_sent_bytes),
                            ("weight gather sent", d.weight_gather_sent_bytes), ("sent", d.sent_bytes),
                            ("model state", d.model_state_bytes), ("model peak", d.model_peak_bytes))  # fmt: skip
        for part, amount in dp_parts:
            if amount is not None:
                rows.append({**blank, "stage": part, "kind": "bytes", "bytes": amount, "section": "data_parallel"})
    pl = report.pipeline
    if pl is not None:  # each stage's bytes: state, saved activations, peak, point-to-point sent per step
        for x in pl.per_stage:
            for part, value in (("state", x.state_bytes), ("saved activations", x.saved_activation_bytes), ("peak", x.peak_bytes),
                                ("sent", x.sent_bytes)):  # fmt: skip
                rows.append({**blank, "stage": f"stage {x.stage} {part}", "kind": "bytes", "bytes": value, "section": "pipeline"})
    return rows


@tables.register(TrainingReport)
def _tables_TrainingReport(report: TrainingReport, view: View | None = None) -> list[RenderableType]:
    """A screenful ending with the headline: the config and the memory of a step part by part;
    with `view.detail` every table; with `view.summary` the headline."""
    view = view or View()
    if view.summary:
        return [_headline(report)]
    return [*(_detail(report, view.exact) if view.detail else _screen(report, view.exact)), _headline(report)]


def _headline(report: TrainingReport) -> RenderableType:
    t = report.totals
    f, c = report.forward.totals, report.forward.config
    rows: list[tuple[str, Num | str, str]] = [("parameters", Num(f.params, "params"), "one layer" + (", per rank" if report.parallel else ""))]
    if c.is_moe:
        rows.append(("active parameters", Num(f.active_params, "params"), f"top-{c.top_k} of {plural(c.experts, 'expert')}"))
    rows += [
        ("FLOPs per token", Num(f.flops_per_token, "flops"), "forward"),
        ("step FLOPs", Num(t.step_flops, "flops"), f"forward + backward, over {plural(c.tokens, 'token')}"),
        ("weight memory", Num(t.weight_bytes, "bytes"), c.dtype),
        ("peak memory", Num(t.peak_bytes, "bytes"), "one training step, one layer"),
    ]
    d = report.data_parallel
    if d is not None:
        rows.append(("peak memory per DP rank", Num(d.peak_bytes, "bytes"), f"one layer, one of {d.ranks} data-parallel ranks, ZeRO-{d.zero}"))
        if d.model_peak_bytes is not None and report.model is not None and report.model.layers > 1:
            rows.append(("model peak per DP rank", Num(d.model_peak_bytes, "bytes"), f"all {report.model.layers} layers, ZeRO-{d.zero}"))
    pl = report.pipeline
    if pl is not None:
        top = max(pl.per_stage, key=lambda x: x.peak_bytes)
        bubble = f"{pl.schedule} bubble {pl.bubble_numerator}/{pl.bubble_denominator}"
        rows.append(("peak memory per stage", Num(top.peak_bytes, "bytes"), f"stage {top.stage} of {pl.stages}, the largest; {bubble}"))
    m = report.model
    if m is not None and m.layers > 1:
        rows += [
            ("model step FLOPs", Num(m.step_flops, "flops"), f"all {m.layers} layers"),
            ("model peak memory", Num(m.peak_bytes, "bytes"), f"all {m.layers} layers: every layer's state and saved activations"),
        ]
    # Said above the figures, not only in their notes (which a narrow page leaves out).
    p = report.parallel
    rank = (
        ""
        if p is None
        else f"one rank of {p.ranks} (tensor parallel)"
        if isinstance(p, TensorParallel)
        else f"one rank of {p.expert_ranks} (expert parallel)"
    )
    return headline(rank, rows)


def _setting(report: TrainingReport) -> list[RenderableType]:
    """The config, the precision, and what a rank holds under parallelism."""
    o, c = report.options, report.forward.config
    if o.mixed_precision:
        precision = f"mixed precision ({c.dtype} weights and gradients, float32 master weights and states; --no-mixed-precision for pure {c.dtype})"
    elif c.dtype in SIXTEEN_BIT:
        precision = f"pure {c.dtype} training (no float32 master weights: --no-mixed-precision)"
    else:
        precision = f"all in {c.dtype}"
    out: list[RenderableType] = [config_block(report.forward), Wrapped(precision + (", dropout on the FFN output" if o.dropout else ""))]
    tp = report.parallel
    if isinstance(tp, ExpertParallel):
        out.append(Wrapped(f"expert parallel over {plural(tp.expert_ranks, 'rank')}"
                           + (f" × tensor parallel over {plural(tp.tensor_ranks, 'rank')}" if tp.tensor else "")
                           + f": every figure is one rank's ({plural(tp.experts_per_rank, 'expert')} of {c.experts}, "
                           f"{tp.per_rank.tokens:,} tokens of {tp.per_rank.tokens * tp.expert_ranks:,}, d_ff {tp.per_rank.d_ff}); "
                           "all-to-all bytes under balanced routing", style="yellow"))  # fmt: skip
    elif tp is not None:
        out.append(Wrapped(f"tensor parallel over {plural(tp.ranks, 'rank')}" + (" with sequence parallelism" if tp.sequence_parallel else "")
                           + f": every figure is one rank's (d_ff {tp.per_rank.d_ff} per rank)", style="yellow"))  # fmt: skip
    return out


def _per_param(value: int, params: int) -> str:
    return f"{value / params:g}" if params else "—"


def _screen(report: TrainingReport, ex: bool) -> list[RenderableType]:
    """What fits 80 × 50 above the headline: the memory of a step part by part, one layer's and
    the stack's, and the step's FLOPs (and a rank's collectives) in a line each."""
    o, t, m = report.options, report.totals, report.model
    params = report.forward.totals.params
    parts = _memory_parts(t, o.optimizer)
    columns = [
        Col("part", [p for p, _ in parts] + ["peak"]),
        Col("one layer", [Num(v, "bytes") for _, v in parts] + [Num(t.peak_bytes, "bytes")]),
    ]
    if m is not None and m.layers > 1:
        columns.append(Col(f"{m.layers} layers", [Num(v, "bytes") for _, v in _memory_parts(m, o.optimizer)] + [Num(m.peak_bytes, "bytes")]))
    columns.append(Col("per param", [_per_param(v, params) if i < 4 else "" for i, (_, v) in enumerate(parts)] + [""], right=True))
    memory = Grid("Memory of one training step" + (", one rank" if report.parallel else ""), columns, totals=1)
    terms = [("forward", t.forward_flops), ("backward", t.backward_flops), ("recompute", t.recompute_flops), ("dropout", t.dropout_flops)]
    flops = " + ".join(f"{name} {Num(v, 'flops').text(ex)}" for name, v in terms if v or name in ("forward", "backward"))
    ratio = f" ({t.step_flops / t.forward_flops:.2f}{GLUE}×{GLUE}forward)" if t.forward_flops else ""
    out = [*_setting(report), fit(memory, ex, keep_prose=True)]
    out.append(Wrapped(f"step FLOPs, one layer: {flops} = {Num(t.step_flops, 'flops').text(ex)}{ratio}"))
    tp = report.parallel
    if tp is not None:
        kinds = [f"{x.phase} {x.op}" for x in tp.collectives]
        ops = ", ".join(k + (f" × {kinds.count(k)}" if kinds.count(k) > 1 else "") for k in dict.fromkeys(kinds))
        out.append(Wrapped(f"collectives: {Num(tp.bytes_sent_per_rank, 'bytes').text(ex)} sent per rank per step, one layer ({ops})"))
    out.append(hint("--detail: the backward pass op by op, the step's FLOPs, the saved tensors" + (", the collectives" if tp else "")))
    return out


def _detail(report: TrainingReport, ex: bool) -> list[RenderableType]:
    """Every table: the collectives, the backward pass op by op, the step's FLOPs, the tensors
    saved for backward, one layer's memory and the stack's."""
    o, t, m = report.options, report.totals, report.model
    f = report.forward.totals
    out = _setting(report)
    bw = report.backward
    bwd = Grid(
        "Backward pass (last stage first)",
        [
            Col("of stage", [op.stage for op in bw]),
            Col("computes", [op.formula for op in bw], prose=True),
            Col("product (M, K, N)", [shape(op.matmul) if op.matmul else "—" for op in bw]),
            Col("output shape", [shape(op.output_shape) for op in bw]),
            Col("MACs", [Num(op.macs, "macs") for op in bw]),
            Col("FLOPs", [Num(op.flops, "flops") for op in bw]),
        ],
    )

    fm = t.forward_matmul_flops or 1
    ff = t.forward_flops or 1
    parts = [("forward", t.forward_flops, t.forward_matmul_flops), ("backward", t.backward_flops, t.backward_matmul_flops),
             ("recompute", t.recompute_flops, t.recompute_matmul_flops), ("dropout", t.dropout_flops, 0),
             ("step", t.step_flops, t.step_matmul_flops)]  # fmt: skip
    flops = Grid(
        f"FLOPs of one training step (recompute: {o.recompute})",
        [
            Col("part", [p for p, _, _ in parts]),
            Col("FLOPs", [Num(v, "flops") for _, v, _ in parts]),
            Col("≈", [flops_text(v) for _, v, _ in parts], exact_only=True, right=True),
            Col("× forward", [f"{v / ff:.3f}" for _, v, _ in parts], right=True, short="× fwd"),
            Col("matmul FLOPs", [Num(m, "flops") for _, _, m in parts], short="matmul"),
            Col("× forward matmul", [f"{m / fm:.3f}" for _, _, m in parts], right=True, short="× fwd"),
        ],
        totals=1,
    )

    sv = report.saved
    saved = Grid(
        "Saved for backward",
        [
            Col("tensor", [s.name for s in sv] + ["total"]),
            Col("shape", [shape(s.shape) for s in sv] + [""]),
            Col("bytes", [Num(s.bytes, "bytes") for s in sv] + [Num(t.saved_activation_bytes, "bytes")]),
            Col("why", [s.reason for s in sv] + [""], prose=True),
        ],
        totals=1,
    )

    params = f.params

    def per(value: int) -> str:
        return _per_param(value, params)

    mem_rows = [(part, value, i < 4) for i, (part, value) in enumerate(_memory_parts(t, o.optimizer))]
    mem = Grid(
        "Memory of one step, one layer" + (", one rank" if report.parallel else ""),
        [
            Col("part", [p for p, _, _ in mem_rows] + ["peak"]),
            Col("bytes", [Num(v, "bytes") for _, v, _ in mem_rows] + [Num(t.peak_bytes, "bytes")]),
            Col("≈", [bytes_text(v) for _, v, _ in mem_rows] + [bytes_text(t.peak_bytes)], exact_only=True, right=True),
            Col(
                "per parameter",
                [per(v) if p else "" for _, v, p in mem_rows] + [f"states {t.bytes_per_param} B/param"],
                right=True,
                short="per param",
            ),
        ],
        totals=1,
    )
    tp = report.parallel
    if tp is not None:
        cs = tp.collectives
        comms = Grid(
            "Collectives per step" + ("" if isinstance(tp, ExpertParallel) else " (ring)"),
            [
                Col("phase", [x.phase for x in cs] + ["step"]),
                Col("collective", [x.op for x in cs] + [""]),
                Col("of", [x.where for x in cs] + [""], prose=True),
                Col("tensor shape", [shape(x.shape) for x in cs] + [""], short="shape"),
                Col("tensor bytes", [Num(x.tensor_bytes, "bytes") for x in cs] + [""], short="tensor"),
                Col(
                    "bytes sent per rank",
                    [Num(x.bytes_sent_per_rank, "bytes") for x in cs] + [Num(tp.bytes_sent_per_rank, "bytes")],
                    short="sent per rank",
                ),
            ],
            totals=1,
        )
        out.append(fit(comms, ex))
    out += [fit(bwd, ex), fit(flops, ex), fit(saved, ex), fit(mem, ex)]
    out += _data_parallel(report, ex)
    out += _pipeline(report, ex)
    if m is not None and m.layers > 1:
        stack = [("step FLOPs", Num(m.step_flops, "flops"), "forward + backward + recompute + dropout"),
                 *((p, Num(v, "bytes"), "one layer's at a time" if p in (RECOMPUTED, TRANSIENT) else "each layer's own")
                   for p, v in _memory_parts(m, o.optimizer))]  # fmt: skip
        peak_note = "all the state and saved activations + one layer's recomputed and transient"
        model = Grid(
            f"Model totals, {m.layers} layers" + (", one rank" if report.parallel else ""),
            [
                Col("part", [p for p, _, _ in stack] + ["peak"]),
                Col("value", [v for _, v, _ in stack] + [Num(m.peak_bytes, "bytes")]),
                Col("note", [note for _, _, note in stack] + [peak_note], prose=True),
            ],
            totals=1,
        )
        out.append(fit(model, ex))
    return out


def _data_parallel(report: TrainingReport, ex: bool) -> list[RenderableType]:
    """`--dp N --zero S`: one data-parallel rank's memory, part by part, and what it sends per step."""
    from rich.text import Text

    d = report.data_parallel
    if d is None:
        return []
    t = report.totals
    stage = d.sharding if d.sharding == str(d.zero) else f"{d.sharding} = ZeRO-{d.zero}"
    sharded = ("nothing", "master weights and optimizer states", "+ gradients", "+ weights")[d.zero]
    parts = [("weights", t.weight_bytes, d.weight_bytes), ("gradients", t.gradient_bytes, d.gradient_bytes),
             ("master weights (float32)", t.master_weight_bytes, d.master_weight_bytes),
             (f"optimizer states ({report.options.optimizer})", t.optimizer_state_bytes, d.optimizer_state_bytes),
             ("saved activations", t.saved_activation_bytes, d.saved_activation_bytes),
             ("gathered weights / unsharded gradients", 0, d.gathered_bytes),
             (f"{RECOMPUTED} + {TRANSIENT}", t.recomputed_bytes + t.backward_transient_bytes,
              t.recomputed_bytes + t.backward_transient_bytes)]  # fmt: skip
    mem = Grid(
        f"Memory of one data-parallel rank of {d.ranks}, one layer (--zero {stage}: {sharded} sharded over {d.shard_ranks} ranks)",
        [
            Col("part", [p for p, _, _ in parts] + ["peak"]),
            Col("unsharded", [Num(u, "bytes") for _, u, _ in parts] + [Num(t.peak_bytes, "bytes")]),
            Col("per rank", [Num(v, "bytes") for _, _, v in parts] + [Num(d.peak_bytes, "bytes")]),
            Col("≈", [bytes_text(v) for _, _, v in parts] + [bytes_text(d.peak_bytes)], exact_only=True, right=True),
        ],
        totals=1,
    )
    gather = "the weights, in forward and backward" if d.zero >= 3 else "the updated weight shards" if d.zero else "the summed gradients"
    sent = [
        ("reduce-scatter of the gradients" + (" + all-reduce across nodes" if d.sharding == "hybrid_shard" else ""), d.gradient_sent_bytes),
        (f"all-gather of {gather}", d.weight_gather_sent_bytes),
    ]
    comms = Grid(
        "Data-parallel collectives per step (ring), bytes each rank sends",
        [
            Col("of", [p for p, _ in sent] + ["step"], prose=True),
            Col("bytes sent per rank", [Num(v, "bytes") for _, v in sent] + [Num(d.sent_bytes, "bytes")], short="sent per rank"),
        ],
        totals=1,
    )
    out: list[RenderableType] = [fit(mem, ex), fit(comms, ex), Text(f"Ψ = this rank's parameters ({report.forward.totals.params:,}); {d.formula}")]
    m = report.model
    if d.model_peak_bytes is not None and d.model_state_bytes is not None and m is not None and m.layers > 1:
        out.append(Text(f"all {m.layers} layers on one data-parallel rank: {d.model_state_bytes:,} bytes of sharded state, peak "
                        f"{d.model_peak_bytes:,} ({bytes_text(d.model_peak_bytes)}: + every layer's saved activations + one layer's "
                        "gathered and transient bytes)"))  # fmt: skip
    return out


def _pipeline(report: TrainingReport, ex: bool) -> list[RenderableType]:
    """`--pp N`: each stage's layers, parameters, memory and bytes sent; the bubble and the boundary tensor."""
    from rich.text import Text

    pl = report.pipeline
    if pl is None:
        return []
    st = pl.per_stage
    mixed = any(x.dense_layers for x in st) and any(x.moe_layers for x in st)
    cols = [
        Col("stage", [str(x.stage) for x in st]),
        Col("layers", [", ".join(f"{a}–{b}" for a, b in x.layers) for x in st], prose=True),
    ]
    if mixed:
        cols.append(Col("dense + MoE", [f"{x.dense_layers} + {x.moe_layers}" for x in st], right=True))
    cols += [
        Col("parameters", [Num(x.params, "params") for x in st], short="params"),
        Col("weights, gradients, states", [Num(x.state_bytes, "bytes") for x in st], short="state"),
        Col("microbatches held", [str(x.held_microbatches) for x in st], right=True, short="held"),
        Col("saved activations", [Num(x.saved_activation_bytes, "bytes") for x in st], short="activations"),
        Col("peak", [Num(x.peak_bytes, "bytes") for x in st]),
        Col("p2p bytes sent per step", [Num(x.sent_bytes, "bytes") for x in st], short="sent"),
    ]
    chunks = f", {pl.chunks} chunks per stage" if pl.schedule == "interleaved" else ""
    grid = Grid(f"Pipeline: {pl.layers} layers over {pl.stages} stages, {pl.microbatches} microbatches, {pl.schedule}{chunks}"
                + (", one rank per stage" if report.parallel else "")
                + (f", state of one of {report.data_parallel.ranks} data-parallel ranks (ZeRO-{report.data_parallel.zero})"
                   if report.data_parallel else ""), cols)  # fmt: skip
    note = (f"bubble {pl.bubble_numerator}/{pl.bubble_denominator} = {pl.bubble_fraction:.2%} of the step; each microbatch "
            f"({pl.microbatch_sequences} of {report.forward.config.batch} sequences) sends {shape(pl.boundary_shape)} = "
            f"{pl.boundary_bytes:,} bytes across a boundary forward and its gradient back "
            f"({pl.p2p_bytes_per_microbatch:,}); {pl.formula}")  # fmt: skip
    return [fit(grid, ex), Text(note)]
