"""What every table shares: exact and human-unit numbers, shapes, the config line, bar charts,
and the fitted layouts (a table described once as a Grid of Cols, drawn in the first layout
that fits the console's width). Imported by the table renderers only: JSON and CSV output
never load it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

    from ffn_calc.model.forward import FFNReport


# --- shared formatting -------------------------------------------------------------------------


def n(value: int) -> str:
    """An exact integer with thousands separators."""
    return f"{value:,}"


def human_bytes(value: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value} B"


def human_count(value: int) -> str:
    for unit, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return str(value)


def shape(s: tuple[int, ...]) -> str:
    return f"({s[0]},)" if len(s) == 1 else "(" + ", ".join(map(str, s)) + ")"


def _group(size: int | None) -> str:
    return "" if size is None else " (one group over K)" if size == 0 else f" (group {size})"


def config_line(report: FFNReport) -> str:
    c = report.config
    kind = c.activation + (" (fused gate/up)" if c.fused else "")
    if c.is_moe:
        kind += f", {c.experts} experts, top-{c.top_k}" + (f", {c.shared_experts} shared" if c.shared_experts else "")
        kind += f", capacity factor {c.capacity_factor:g}" if c.capacity_factor is not None else ", dropless"
    norm = c.norm + (f"-{c.norm_kind.label}" if c.norm_kind else "")
    return (
        f"FFN  batch {c.batch} × seq_len {c.seq_len} × d_model {c.d_model}, d_ff {c.d_ff} ({c.d_ff_rule})\n"
        f"     {kind}, {'bias' if c.bias else 'no bias'}, norm {norm}, {c.dtype} ({plural(c.dtype_bytes, 'byte')}/element)"
        + (f", weights {c.weight_dtype}" + _group(c.group_size) if c.weight_packing else "")
        + (f", {c.layers} layers" if c.layers > 1 else "")
        + (f" + {c.dense_layers} dense (d_ff {c.dense_d_ff})" if c.dense_layers else "")
    )


BAR = "█"
BAR_WIDTH = 40


def bar_chart(title: str, labels: list[str], values: list[int], unit: str, shares: bool = True) -> RenderableType:
    """Horizontal bars, linear in the value, with the value (and its share of the sum) beside each:
    exact and 40 cells long when the page is wide enough, else in units and shorter bars."""
    from rich.table import Table

    top = max(values) if values else 0
    total = sum(values)
    human = {"FLOPs": flops_text, "bytes": bytes_text}.get(unit)

    def build(bar_width: int, exact: bool) -> list[RenderableType]:
        table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 1))
        table.add_column("label", no_wrap=True)
        table.add_column("bar", no_wrap=True, min_width=bar_width)
        table.add_column("value", justify="right", no_wrap=True)
        table.add_column("share", justify="right", no_wrap=True)
        for label, value in zip(labels, values, strict=True):
            width = round(bar_width * value / top) if top else 0
            bar = BAR * width if width or not value else "▏"
            share = f"{100 * value / total:.1f}%" if total and shares else ""
            shown = f"{n(value)} {unit}".rstrip() if exact or human is None else human(value)
            table.add_row(label, bar, shown, share)
        return [table]

    source = Grid(
        title,
        [
            Col("", labels),
            Col(unit or "value", [Num(v) for v in values]),
            Col("share", [f"{100 * v / total:.1f}%" if total and shares else "" for v in values], right=True),
            Col("bar", [BAR * round(BAR_WIDTH * v / top) if top else "" for v in values]),
        ],
    )
    return Fit(
        [partial(build, BAR_WIDTH, True), partial(build, BAR_WIDTH // 2, True), partial(build, BAR_WIDTH // 2, False), partial(build, 10, False)],
        source,
    )


# --- units, and tables that fit the width they are printed at ----------------------------------
#
# A table is described once (a Grid of Cols) and laid out when printed, at the console's width:
# the first layout whose minimum width fits is drawn. In order: exact integers with every column;
# exact integers with the prose columns moved below the table (as "row: text" lines) and the
# stackable columns stacked under the row's name; then the same two with numbers in units
# (parameters K/M/B/T, FLOP, bytes KiB/MiB/GiB/TiB); last, in units on a borderless grid.
# Numbers, names and shapes never wrap inside a cell (no_wrap, min_width = the widest cell).

PARAM_UNITS = (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3))
FLOP_UNITS = (("PFLOP", 10**15), ("TFLOP", 10**12), ("GFLOP", 10**9), ("MFLOP", 10**6), ("kFLOP", 10**3))
MAC_UNITS = (("PMAC", 10**15), ("TMAC", 10**12), ("GMAC", 10**9), ("MMAC", 10**6), ("kMAC", 10**3))
BYTE_UNITS = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 token`, `2,048 tokens`, `1 byte/element` (pass `many` when the plural is not word + s)."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def _scaled(value: int, units: tuple[tuple[str, int], ...], base: str) -> str:
    """About three significant figures and a unit: 4.33 B, 45.1 GiB, 352 MFLOP; exact below the
    smallest unit (568, 576 B)."""
    if value == 0:
        return "0"
    for unit, size in units:
        if abs(value) >= size:
            x = value / size
            if value % size == 0:
                return f"{value // size:,} {unit}"
            digits = 2 if abs(x) < 10 else 1 if abs(x) < 100 else 0
            return f"{x:,.{digits}f} {unit}"
    return f"{value:,} {base}".rstrip()


def params_text(value: int) -> str:
    return _scaled(value, PARAM_UNITS, "")


def flops_text(value: int) -> str:
    return _scaled(value, FLOP_UNITS, "FLOP")


def macs_text(value: int) -> str:
    return _scaled(value, MAC_UNITS, "MAC")


def bytes_text(value: int) -> str:
    return _scaled(value, BYTE_UNITS, "B")


UNITS = {"params": params_text, "flops": flops_text, "macs": macs_text, "bytes": bytes_text}


class Num(NamedTuple):
    """A number cell: exact (thousands separators) or in units, as the layout decides."""

    value: int | None
    unit: str = "count"  # params, flops, macs, bytes; a count is always exact

    def text(self, exact: bool) -> str:
        if self.value is None:
            return "—"
        return n(self.value) if exact or self.unit == "count" else UNITS[self.unit](self.value)


Cell = str | Num


class Col(NamedTuple):
    """One column. `prose` wraps and moves below the table when the table is narrow; `stack`
    moves under the row's name (the first column) instead; `exact_only` is shown only beside exact
    numbers (an "≈" column). `short` is the header in layouts with numbers in units. `omit`, when
    given, lets a screenful's table (fit's keep_prose) leave the column out rather than move it
    below, and is said under the table instead (where to find what was left out)."""

    header: str
    cells: Sequence[Cell]
    prose: bool = False
    stack: bool = False
    exact_only: bool = False
    short: str = ""
    right: bool = False
    label: bool = True  # stacked under the row's name as "header: text" (False: the text alone, when it speaks for itself)
    omit: str = ""


class Grid(NamedTuple):
    """A table's content, laid out when printed. The last `totals` rows are a bold section."""

    title: str
    columns: list[Col]
    totals: int = 0
    row_styles: Sequence[str | None] = ()


PROSE_MIN = 24  # a prose column narrower than this reads badly; move it below the table instead


def _text(cell: Cell, exact: bool) -> str:
    return cell.text(exact) if isinstance(cell, Num) else cell


def _width(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.split("\n")), default=0)


def grid_layout(grid: Grid, exact: bool, narrow: bool, compact: bool = False, omit: bool = False) -> list[RenderableType]:
    """`grid` drawn one way: the table first, then any prose moved out of it (with `omit`, the
    columns that may be left out are, and what they say about it follows the table)."""
    from rich import box
    from rich.table import Table

    cols = [c for c in grid.columns if not (c.exact_only and not exact) and not (omit and c.omit)]
    key = cols[0]
    rows = len(key.cells)
    names = [_text(cell, exact) for cell in key.cells]
    below: list[Col] = []
    if narrow:
        for c in cols[1:]:
            if c.stack:
                texts = [_text(cell, exact) for cell in c.cells]
                lead = f"\n  {c.header}: " if c.label else "\n  "
                names = [name + (lead + t.replace("\n", "\n  ") if t else "") for name, t in zip(names, texts, strict=True)]
        below = [c for c in cols if c.prose]
        cols = [c for c in cols if not (c.prose or c.stack)]
    table = Table(
        title=grid.title,
        title_justify="left",
        box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD,
        show_edge=not compact,
        pad_edge=not compact,
        padding=0 if compact else (0, 1),  # compact: the box's blank divider is the one space between columns `needed` counts
    )
    columns: list[list[str]] = []
    needed = 0  # the narrowest this table can be drawn without cutting a cell
    for c in cols:
        texts = names if c is key else [_text(cell, exact) for cell in c.cells]
        columns.append(texts)
        header = c.short if c.short and not exact else c.header
        widest = max((_width(t) for t in texts), default=0)
        if c.prose:  # never narrower than its longest word: prose wraps at spaces, never inside a word
            longest = max((_width(word) for t in texts for word in t.split()), default=0)
            width = max(min(widest, PROSE_MIN), longest, *(len(word) for word in header.split()))
            table.add_column(header, min_width=width, overflow="fold")
        else:
            numeric = c.right or any(isinstance(cell, Num) for cell in c.cells)
            width = max(widest, _width(header))
            table.add_column(header, justify="right" if numeric else "left", no_wrap=True, min_width=width)
        needed += width
    # borders and padding: a space each side and a rule between (compact: one space between)
    needed += len(cols) - 1 if compact else 3 * len(cols) + 1
    table.min_width = needed  # wider than the page when it cannot fit: Fit then tries the next layout
    for i in range(rows):
        if grid.totals and i == rows - grid.totals:
            table.add_section()
        style = "bold" if grid.totals and i >= rows - grid.totals else (grid.row_styles[i] if i < len(grid.row_styles) else None)
        table.add_row(*(texts[i] for texts in columns), style=style)
    out: list[RenderableType] = [table]
    if below:
        out.append(_notes(below, key, exact))
    if omit:
        out += [Wrapped(c.omit, style="dim") for c in grid.columns if c.omit]
    return out


NOTE_NAME_MAX = 24  # row names up to this wide keep their notes beside them; longer ones, under them


def _notes(below: list[Col], key: Col, exact: bool) -> RenderableType:
    """The prose columns moved out of a table, row by row: the row's name with its text beside
    it, or, when some name is too long to leave the text room, under it, indented, with the
    whole width to wrap in."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    rows = [(_text(name, exact), _text(cell, exact)) for c in below for name, cell in zip(key.cells, c.cells, strict=True)]
    rows = [(name, text) for name, text in rows if text]
    if max((_width(name) for name, _ in rows), default=0) <= NOTE_NAME_MAX:
        beside = Table.grid(padding=(0, 2))
        beside.add_column(no_wrap=True)
        beside.add_column(overflow="fold")
        for name, text in rows:
            beside.add_row(name, text)
        return beside
    under: list[RenderableType] = []
    for name, text in rows:
        under += [Text(name, no_wrap=True, overflow="ellipsis"), Padding(Text(text, overflow="fold"), (0, 0, 0, 4))]
    return Group(*under)


def split_layout(grid: Grid, exact: bool, width: int) -> list[RenderableType]:
    """The last resort for a table wider than the page in every layout: its columns over several
    compact tables, each led by the row names, each as wide as the page allows (a column wider
    than the page alone still gets a table of its own)."""
    key, rest = grid.columns[0], [c for c in grid.columns[1:] if not (c.exact_only and not exact)]
    groups: list[list[Col]] = [[]]
    for col in rest:
        trial = grid_layout(grid._replace(columns=[key, *groups[-1], col]), exact, True, True)[0]
        if groups[-1] and getattr(trial, "min_width", 0) > width:
            groups.append([])
        groups[-1].append(col)
    out: list[RenderableType] = []
    for i, cols in enumerate(groups):
        title = grid.title if i == 0 else f"{grid.title} (continued)" if grid.title else ""
        out += grid_layout(grid._replace(title=title, columns=[key, *cols]), exact, True, True)
    return out


def record_layout(grid: Grid, exact: bool, width: int) -> list[RenderableType]:
    """The last resort for a table whose row names alone leave no room: each row as a record, its
    name on a line and its cells below as `header: value` pairs, packed to the page's width and
    wrapped between pairs, never inside one; a prose cell on lines of its own, wrapped at spaces."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    key, rest = grid.columns[0], [c for c in grid.columns[1:] if not (c.exact_only and not exact)]
    lines: list[RenderableType] = [Text(grid.title, style="bold")] if grid.title else []
    for i, name in enumerate(key.cells):
        style = (grid.row_styles[i] if i < len(grid.row_styles) else None) or ""
        lines.append(Text(_text(name, exact), style=style))
        packed: list[str] = []
        prose: list[RenderableType] = []
        for c in rest:
            text = _text(c.cells[i], exact).replace("\n", " ")
            pair = f"{c.header}: {text}" if c.header else text
            if not text:
                continue
            if c.prose:
                prose.append(Padding(Text(pair, style=style), (0, 0, 0, 4)))
            elif packed and _width("  ".join([*packed, pair])) + 4 > width:
                lines.append(Text("    " + "  ".join(packed), style=style))
                packed = [pair]
            else:
                packed.append(pair)
        if packed:
            lines.append(Text("    " + "  ".join(packed), style=style))
        lines += prose
    return [Group(*lines)]


class Fit:
    """Renderables laid out at print time: the first of `layouts` whose first part fits the
    width is printed; when none fits, `split` (given the width) if there is one, else the last."""

    def __init__(
        self,
        layouts: list[Callable[[], list[RenderableType]]],
        source: Grid | None = None,
        split: Callable[[int], list[RenderableType]] | None = None,
    ) -> None:
        self.layouts = layouts
        self.source = source  # the table's description, for the renderers without a width (Markdown)
        self.split = split

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        parts: list[RenderableType] = []
        drawn: list[Segment] = []
        for build in self.layouts:
            parts = build()
            # Drawn at this width, does the table stay inside it? (rich keeps every column at
            # least its min_width, so a table that cannot fit comes out wider.) The table that
            # fits is printed as drawn here, not drawn again.
            drawn = list(console.render(parts[0], options))
            if max((Segment.get_line_length(line) for line in Segment.split_lines(drawn)), default=0) <= options.max_width:
                break
        else:
            if self.split is not None:
                yield from self.split(options.max_width)
                return
        yield from drawn
        yield from parts[1:]


def fit(grid: Grid, exact: bool = False, records: bool = False, keep_prose: bool = False) -> Fit:
    """`grid` at the width it is printed at (with `exact`, only the layouts of exact integers).
    When no layout fits, its columns are split over several tables, or with `records` (for
    tables whose row names are sentences) each row is printed as a record. With `keep_prose`
    (a screenful's table, where every line counts) numbers go to units and the box goes compact
    before the prose leaves the table, since moved prose takes a line of its own per row."""
    choices = [(True, False, False), (True, True, False), (False, False, False), (False, True, False), (False, True, True)]
    if exact:
        choices = [(True, False, False), (True, True, False), (True, True, True)]
    if keep_prose:
        choices = [(True, False, False), (False, False, False), (False, False, True), (False, True, True)]
        if exact:
            choices = [(True, False, False), (True, False, True), (True, True, True)]
    layouts: list[Callable[[], list[RenderableType]]] = [partial(grid_layout, grid, e, nw, c) for e, nw, c in choices]
    if keep_prose and any(c.omit for c in grid.columns):  # before the prose leaves the table: without the columns that may go
        layouts.insert(-1, partial(grid_layout, grid, choices[-1][0], False, True, True))
    last = record_layout if records else split_layout
    return Fit(layouts, grid, partial(last, grid, choices[-1][0]))


def headline(title: str, rows: Sequence[tuple[str, Num | str, str]]) -> Fit:
    """The short answer: one quantity a line, in units, with the exact integer beside it when it
    fits (a value given as text, a time or a ratio, has no exact form: its column stays blank)."""
    from rich.table import Table

    def exact_text(value: Num | str) -> str:
        return "" if isinstance(value, str) else n(value.value) if value.value is not None else "—"

    def build(with_exact: bool, with_note: bool) -> list[RenderableType]:
        cells = [
            [label, _text(value, False), *([exact_text(value)] if with_exact else []), *([note] if with_note else [])] for label, value, note in rows
        ]
        table = Table.grid(padding=(0, 2))
        for i in range(len(cells[0]) if cells else 0):
            # min_width: a table that cannot fit comes out wider than the page, and Fit moves on
            table.add_column(
                no_wrap=True, justify="right" if i in (1, 2) and (i == 1 or with_exact) else "left", min_width=max(_width(r[i]) for r in cells)
            )
        for row in cells:
            table.add_row(*row)
        return [table] if not title else [_Titled(title, table)]

    source = Grid(
        title,
        [
            Col("quantity", [label for label, _, _ in rows]),
            Col("value", [value for _, value, _ in rows]),
            Col("≈", [_text(value, False) for _, value, _ in rows], right=True),
            Col("note", [note for _, _, note in rows]),
        ],
    )
    exact = any(isinstance(value, Num) for _, value, _ in rows)  # text values alone: no exact column
    return Fit([partial(build, e, w) for e, w in ((True, True), (True, False), (False, True), (False, False)) if exact or not e], source)


# A number and the unit after it (18.4 MFLOP, 448 KiB, 2 bytes/element, 15.56 ms) stay on one line.
_UNIT = r"(?<=\d) (?=(?:[kMGTP]?(?:FLOPs?|MAC)s?|[KMGT]iB|[kMGT]?B|bytes?(?:/element)?|[mµn]?s)(?:/s|/byte)?(?![\w/]))"
GLUE = "\u00a0"  # a space Wrapped does not break at; printed as a space


class Wrapped:
    """Text wrapped at spaces to the width it is printed at; continuation lines indented by
    `indent` (a word wider than the page stays whole on its own line), so that no number, name
    or shape is ever split, nor a number from its unit. A paragraph's own leading spaces are kept."""

    def __init__(self, text: str, indent: int = 2, style: str = "") -> None:
        self.text, self.indent, self.style = text.replace(GLUE, " "), indent, style
        self._glued = text  # GLUE in `text`: a space not to break at, beside the units'

    def lines(self, width: int) -> list[str]:
        import re

        out: list[str] = []
        for paragraph in self._glued.split("\n"):
            words = re.sub(_UNIT, GLUE, paragraph.lstrip(" ")).split(" ")
            line = " " * (len(paragraph) - len(paragraph.lstrip(" "))) + words[0]
            for word in words[1:]:
                if len(line) + 1 + len(word) > width:
                    out.append(line)
                    line = " " * self.indent + word
                else:
                    line += " " + word
            out.append(line)
        return [line.replace(GLUE, " ") for line in out]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        for line in self.lines(options.max_width):
            yield Text(line, style=self.style, no_wrap=True, overflow="ignore")


def config_block(report: FFNReport) -> Wrapped:
    """The config line, wrapped at spaces under its own indent."""
    return Wrapped(config_line(report), indent=5)


def hint(text: str) -> Wrapped:
    """A dim line that says what a screenful leaves out and where to find it."""
    return Wrapped(text, indent=2, style="dim")


class _Titled:
    """A bold title line above a renderable (measured as the renderable)."""

    def __init__(self, title: str, body: RenderableType) -> None:
        self.title, self.body = title, body

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Any:
        from rich.measure import Measurement

        return Measurement.get(console, options, self.body)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        yield Text(self.title, style="bold")
        yield self.body
