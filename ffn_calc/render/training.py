"""Rendering `train`: the backward pass op by op, the saved tensors, and a step's memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ffn_calc.model.training import TrainingReport
from ffn_calc.render.base import config_line, csv_rows, human_bytes, human_count, n, shape, tables

if TYPE_CHECKING:
    from rich.console import RenderableType


@csv_rows.register(TrainingReport)
def _csv_rows_TrainingReport(report: TrainingReport) -> list[dict[str, Any]]:
    rows = [
        {"stage": op.stage, "kind": op.kind, "output_shape": "x".join(map(str, op.output_shape)), "macs": op.macs,
         "elementwise_flops": op.elementwise_flops, "flops": op.flops}
        for op in report.backward
    ]  # fmt: skip
    t = report.totals
    rows.append({"stage": "total", "kind": "backward", "output_shape": "", "macs": t.backward_macs,
                 "elementwise_flops": t.backward_elementwise_flops, "flops": t.backward_flops})  # fmt: skip
    return rows


@tables.register(TrainingReport)
def _tables_TrainingReport(report: TrainingReport) -> list[RenderableType]:
    from rich.table import Table
    from rich.text import Text

    o, t = report.options, report.totals
    bwd = Table(title="Backward pass (last stage first)", title_justify="left")
    for col in ("of stage", "computes", "product (M, K, N)", "output shape"):
        bwd.add_column(col)
    for col in ("MACs", "FLOPs"):
        bwd.add_column(col, justify="right", overflow="fold")
    for op in report.backward:
        bwd.add_row(op.stage, op.formula, shape(op.matmul) if op.matmul else "—", shape(op.output_shape), n(op.macs), n(op.flops))

    flops = Table(title=f"FLOPs of one training step (recompute: {o.recompute})", title_justify="left")
    for col, right in (("part", False), ("FLOPs", True), ("≈", True), ("× forward", True), ("matmul FLOPs", True), ("× forward matmul", True)):
        flops.add_column(col, justify="right" if right else "left", overflow="fold")
    fm = t.forward_matmul_flops or 1
    ff = t.forward_flops or 1
    for part, total, matmul in (("forward", t.forward_flops, t.forward_matmul_flops), ("backward", t.backward_flops, t.backward_matmul_flops),
                                ("recompute", t.recompute_flops, t.recompute_matmul_flops), ("dropout", t.dropout_flops, 0)):  # fmt: skip
        flops.add_row(part, n(total), human_count(total), f"{total / ff:.3f}", n(matmul), f"{matmul / fm:.3f}")
    flops.add_section()
    flops.add_row("step", n(t.step_flops), human_count(t.step_flops), f"{t.step_flops / ff:.3f}", n(t.step_matmul_flops),
                  f"{t.step_matmul_flops / fm:.3f}", style="bold")  # fmt: skip

    saved = Table(title="Saved for backward", title_justify="left")
    saved.add_column("tensor")
    saved.add_column("shape")
    saved.add_column("bytes", justify="right", overflow="fold")
    saved.add_column("why")
    for s in report.saved:
        saved.add_row(s.name, shape(s.shape), n(s.bytes), s.reason)
    saved.add_section()
    saved.add_row("total", "", n(t.saved_activation_bytes), "", style="bold")

    c = report.forward.config
    params = report.forward.totals.params
    mem = Table(title="Memory of one step (bytes)", title_justify="left")
    mem.add_column("part")
    mem.add_column("exact", justify="right", overflow="fold")
    mem.add_column("≈", justify="right")
    mem.add_column("per parameter", justify="right")

    def per(value: int) -> str:
        return f"{value / params:g}" if params else "—"

    for part, value in (("weights", t.weight_bytes), ("gradients", t.gradient_bytes), (f"optimizer states ({o.optimizer})", t.optimizer_state_bytes),
                        ("master weights (float32)", t.master_weight_bytes), ("saved activations", t.saved_activation_bytes),
                        ("backward transient", t.backward_transient_bytes)):  # fmt: skip
        mem.add_row(part, n(value), human_bytes(value), per(value) if part not in ("saved activations", "backward transient") else "")
    mem.add_section()
    mem.add_row("peak", n(t.peak_bytes), human_bytes(t.peak_bytes), f"states {t.bytes_per_param} B/param", style="bold")
    precision = "mixed precision (16-bit weights and gradients, float32 master and states)" if o.mixed_precision else f"all in {c.dtype}"
    out: list[RenderableType] = [Text(config_line(report.forward)), Text(precision + (", dropout on the FFN output" if o.dropout else ""))]
    tp = report.parallel
    if tp is not None:
        out.append(Text(f"tensor parallel over {tp.ranks} ranks" + (" with sequence parallelism" if tp.sequence_parallel else "")
                        + f": every figure below is one rank's (d_ff {tp.per_rank.d_ff} per rank)", style="yellow"))  # fmt: skip
        comms = Table(title="Collectives per step (ring)", title_justify="left")
        for col in ("phase", "collective", "of", "tensor shape"):
            comms.add_column(col)
        comms.add_column("tensor bytes", justify="right", overflow="fold")
        comms.add_column("bytes sent per rank", justify="right", overflow="fold")
        for coll in tp.collectives:
            comms.add_row(coll.phase, coll.op, coll.where, shape(coll.shape), n(coll.tensor_bytes), n(coll.bytes_sent_per_rank))
        comms.add_section()
        comms.add_row("step", "", "", "", "", n(tp.bytes_sent_per_rank), style="bold")
        out.append(comms)
    return out + [bwd, flops, saved, mem]
