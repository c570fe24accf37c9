"""Rendering `train`: the backward pass op by op, the saved tensors, and a step's memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ffn_calc.model.dtypes import SIXTEEN_BIT
from ffn_calc.model.expert_parallel import ExpertParallel
from ffn_calc.model.parallel import TensorParallel
from ffn_calc.model.training import TrainingReport
from ffn_calc.render.base import View, csv_rows, tables
from ffn_calc.render.layout import Col, Grid, Num, bytes_text, config_line, fit, flops_text, headline, plural, shape

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
    whole stack's FLOPs and bytes), so a script can filter."""
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
    return rows


@tables.register(TrainingReport)
def _tables_TrainingReport(report: TrainingReport, view: View | None = None) -> list[RenderableType]:
    from rich.text import Text

    view = view or View()
    ex = view.exact
    o, t = report.options, report.totals
    f, c = report.forward.totals, report.forward.config
    rows: list[tuple[str, Num, str]] = [("parameters", Num(f.params, "params"), "one layer" + (", per rank" if report.parallel else ""))]
    if c.is_moe:
        rows.append(("active parameters", Num(f.active_params, "params"), f"top-{c.top_k} of {plural(c.experts, 'expert')}"))
    rows += [
        ("FLOPs per token", Num(f.flops_per_token, "flops"), "forward"),
        ("step FLOPs", Num(t.step_flops, "flops"), f"forward + backward, over {plural(c.tokens, 'token')}"),
        ("weight memory", Num(t.weight_bytes, "bytes"), c.dtype),
        ("peak memory", Num(t.peak_bytes, "bytes"), "one training step, one layer"),
    ]
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
    out: list[RenderableType] = [headline(rank, rows)]
    if view.summary:
        return out

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
        return f"{value / params:g}" if params else "—"

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
    if o.mixed_precision:
        precision = f"mixed precision ({c.dtype} weights and gradients, float32 master weights and states; --no-mixed-precision for pure {c.dtype})"
    elif c.dtype in SIXTEEN_BIT:
        precision = f"pure {c.dtype} training (no float32 master weights: --no-mixed-precision)"
    else:
        precision = f"all in {c.dtype}"
    out += [Text(config_line(report.forward)), Text(precision + (", dropout on the FFN output" if o.dropout else ""))]
    tp = report.parallel
    if isinstance(tp, ExpertParallel):
        out.append(Text(f"expert parallel over {plural(tp.expert_ranks, 'rank')}"
                        + (f" × tensor parallel over {plural(tp.tensor_ranks, 'rank')}" if tp.tensor else "")
                        + f": every figure below is one rank's ({plural(tp.experts_per_rank, 'expert')} of {c.experts}, "
                        f"{tp.per_rank.tokens:,} tokens of {tp.per_rank.tokens * tp.expert_ranks:,}, d_ff {tp.per_rank.d_ff}); "
                        "all-to-all bytes under balanced routing", style="yellow"))  # fmt: skip
    elif tp is not None:
        out.append(Text(f"tensor parallel over {plural(tp.ranks, 'rank')}" + (" with sequence parallelism" if tp.sequence_parallel else "")
                        + f": every figure below is one rank's (d_ff {tp.per_rank.d_ff} per rank)", style="yellow"))  # fmt: skip
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
