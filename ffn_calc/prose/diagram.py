"""The data-flow diagram `explain` draws: plain text, at most `WIDTH` columns, read top to bottom.

A stage is drawn as its operation on an arrow (`│  formula` then `▼`) and its output
(`name (shape)`). Stages that read the same tensor are drawn side by side as branches forked
from it (`├──┐`) and joined (`├──┘`) where the next stage reads them all: a GLU's gate and up
meeting at ⊙; a mixture of experts' router beside its routed experts, and its shared experts
beside both. Inside a mixture the experts are one step each, and each expert is drawn on its
own below. When branches cannot sit side by side within the width, they are drawn one after
another. Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ffn_calc.model import structure as names
from ffn_calc.model.forward import FFNReport, Stage

WIDTH = 78  # fits an 80-column terminal
SPINE = 3  # the column of the vertical line under a stage's name
GAPS = (3, 2)  # between branches, the wider tried first
MIN_TEXT = 16  # a formula wraps to no fewer columns than this

Lines = list[str]
Part = Callable[[int], Lines]  # draws itself within a width (its stage names never wrap)


def _wrap(words: list[str], width: int, sep: str = " ") -> Lines:
    """Greedy wrap; a word wider than `width` stays whole on its line."""
    lines: Lines = []
    for word in words:
        if lines and len(lines[-1]) + len(sep) + len(word) <= width:
            lines[-1] += sep + word
        else:
            lines.append(word)
    return lines


def _label(s: Stage) -> str:
    return f"{s.name} {tuple(s.output_shape)}"


def step(s: Stage, formula: str | None = None, weights: bool = True) -> Part:
    """One stage: the arrow with its formula (and the weights it owns), then its output."""

    def draw(width: int) -> Lines:
        lines: Lines = []
        if s.op != "input":
            text = formula if formula is not None else s.formula
            held = [f"{w.name} {tuple(w.shape)}" for w in s.weights] if weights else []
            one = f"   │  {text}" + (f"    [{', '.join(held)}]" if held else "")
            if len(one) <= width:
                lines.append(one)
            else:  # the formula at spaces, the weights between entries: a shape is never split
                wrapped = _wrap(text.split(" "), max(width - 6, MIN_TEXT))
                if held:
                    wrapped += _wrap([f"[{held[0]}", *held[1:-1], f"{held[-1]}]"] if len(held) > 1 else [f"[{held[0]}]"], width - 6, ", ")
                lines += ["   │  " + t for t in wrapped]
            lines.append("   ▼")
        return [*lines, _label(s)]

    return draw


def chain(parts: Sequence[Part]) -> Part:
    return lambda width: [line for p in parts for line in p(width)]


def _rule(spines: list[int], first: str, middle: str, last: str) -> str:
    chars = [" "] * spines[0] + ["─"] * (spines[-1] - spines[0] + 1)
    chars[spines[0]] = first
    for p in spines[1:-1]:
        chars[p] = middle
    chars[spines[-1]] = last
    return "".join(chars)


def _side_by_side(branches: Sequence[Part], width: int, gap: int) -> Lines | None:
    """The branches in columns, forked above and joined below; None when they do not fit."""
    natural = [b(10**6) for b in branches]
    need = [max(len(line) for line in b(0)) for b in branches]  # drawn as narrow as it goes: names and shapes whole
    free = width - gap * (len(branches) - 1) - sum(need)
    if free < 0:
        return None
    widths = [min(max(len(line) for line in lines), n + free // len(branches)) for lines, n in zip(natural, need, strict=True)]
    drawn = [b(max(w, need_i)) for b, w, need_i in zip(branches, widths, need, strict=True)]
    widths = [max(len(line) for line in lines) for lines in drawn]
    if sum(widths) + gap * (len(branches) - 1) > width:
        return None
    offsets = [sum(widths[:i]) + gap * i for i in range(len(branches))]
    spines = [o + SPINE for o in offsets]
    rows: Lines = []
    for r in range(max(len(lines) for lines in drawn)):
        line = ""
        for lines, o in zip(drawn, offsets, strict=True):
            line = line.ljust(o) + (lines[r] if r < len(lines) else "   │")
        rows.append(line.rstrip())
    return [_rule(spines, "├", "┬", "┐"), *rows, _rule(spines, "├", "┴", "┘")]


def branches(parts: Sequence[Part], fallback: Sequence[Sequence[Part]] = ()) -> Part:
    """`parts` side by side if they fit; else each grouping in `fallback` in turn (fewer, longer
    branches); else one after another, each from the same tensor, marked `branch i of n`."""

    def draw(width: int) -> Lines:
        for grouping in (parts, *fallback):
            for gap in GAPS:
                lines = _side_by_side(grouping, width, gap)
                if lines is not None:
                    return lines
        out: Lines = []
        for i, p in enumerate(parts, 1):
            out += [f"   ├─ branch {i} of {len(parts)}", *p(width)]
        return [*out, f"   ├─ the {len(parts)} branches meet"]

    return draw


def _ffn(report: FFNReport, prefix: str) -> list[Part]:
    """The FFN core of the stages named `prefix`…: a GLU's gate and up as two branches."""
    c = report.config
    *first, last = names.linears(c.is_glu, c.fused)
    middle = names.GLU if c.is_glu else names.ACTIVATION
    stage = report.stage
    head: list[Part] = [step(stage(prefix + lin.stage)) for lin in first]
    top = branches(head) if len(head) > 1 else head[0]
    return [top, step(stage(prefix + middle)), step(stage(prefix + last.stage))]


def _moe(report: FFNReport) -> list[Part]:
    """Router beside the routed experts, shared experts beside both; then combine."""
    c, stage = report.config, report.stage
    kind = f"{c.activation} FFN" if c.is_glu else f"{c.activation} FFN (plain)"
    last = names.linears(c.is_glu, c.fused)[-1].stage  # an expert's output stage: down, or linear2 when plain
    router = [
        step(stage(names.ROUTER)),
        step(stage(names.ROUTING), f"w = top-{c.top_k} of softmax(logits), renormalised"),
    ]
    routed = [
        step(stage(names.DISPATCH), f"xe = the rows of the tokens routed to each expert, {c.top_k} per token"),
        step(stage(names.EXPERT + last), f"ye = each of the {c.experts} experts, a {kind} on its own rows (below)", weights=False),
    ]
    groups: list[list[Part]] = [router, routed]
    if c.shared_experts:
        what = f"ys = {c.shared_experts} shared expert{'s' if c.shared_experts > 1 else ''}, a {kind} on every token (below)"
        shared = [step(stage(names.SHARED + last), what, weights=False)]
        if c.shared_expert_gate:
            shared += [step(stage(names.SHARED_EXPERT_GATE)), step(stage(names.SHARED_EXPERT_SCALE))]
        groups.append(shared)
    parts = [chain(g) for g in groups]
    # Narrower first: the router without its weights' shape, then the router above the experts.
    fallback = [[chain([step(stage(names.ROUTER), weights=False), router[1]]), *parts[1:]], [chain(router + routed), *parts[2:]]]
    return [branches(parts, fallback), step(stage(names.COMBINE))]


def diagram(report: FFNReport) -> tuple[str, ...]:
    """The layer's data flow within WIDTH columns, and for a mixture each kind of expert after it."""
    c, stage = report.config, report.stage
    parts: list[Part] = [step(stage(names.INPUT))]
    kind = c.norm_kind
    if c.norm == "pre" and kind is not None:
        parts.append(step(stage(kind.stage)))
    parts += _moe(report) if c.is_moe else _ffn(report, "")
    if c.norm != "none":
        parts.append(step(stage(names.RESIDUAL), stage(names.RESIDUAL).formula + "  (x: the identity path)"))
    if c.norm == "post" and kind is not None:
        parts.append(step(stage(kind.stage)))
    lines = chain(parts)(WIDTH)
    if c.is_moe:
        source = report.stage(stage(names.ROUTER).inputs[0])
        inner = [(f"Each routed expert, on its own rows of {names.DISPATCH}:", stage(names.DISPATCH), names.EXPERT)]
        if c.shared_experts:
            inner.append((f"The shared expert{'s' if c.shared_experts > 1 else ''}, on every token of {source.name}:", source, names.SHARED))
        for title, src, prefix in inner:
            lines += ["", title, _label(src), *chain(_ffn(report, prefix))(WIDTH)]
    return tuple(lines)
