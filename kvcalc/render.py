"""Rich rendering: the only module that imports rich. Every function takes a Console.

Tables never lose a value, at any width and in a non-TTY (where rich assumes 80 columns):
every column has a kind. Names (a preset, a GPU) and numbers never wrap or truncate; their
column is at least as wide as the widest cell and the longest header word. Only text
(a label, a note) wraps, at spaces. When the columns cannot all get that width, the rows are
shown as records instead: one block per row, one `field  value` line per column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.cells import cell_len
from rich.console import Console, Group
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from kvcalc.records import record
from kvcalc.units import format_binary, format_decimal


class _PipeConsole(Console):
    """A Console whose closed stdout raises BrokenPipeError for the CLI to end with exit 0.

    rich's own on_broken_pipe raises SystemExit(1), and 1 means "does not fit" here.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


# a layer group's window label; other kinds are compressed-layer parts of rate m
_WINDOW_LABELS = {"sliding": "W", "chunked": "chunk"}
_COMPRESSED_PARTS = (
    "compressed",
    "buffered",
    "overlap",
    "paged",
    "ring",
)  # formula.COMPRESSED_PARTS
_POOL_KINDS = ("pool_full", "pool_sliding")  # formula.POOL_KINDS


def make_console() -> Console:
    """Return the CLI's stdout Console (no syntax highlighting; a closed pipe is not an error)."""
    return _PipeConsole(highlight=False)


ColumnKind = Literal["name", "number", "text"]


@record
class Column:
    """A table column: its header and its kind (see the module docstring)."""

    header: str
    kind: ColumnKind = "text"


@record
class Row:
    """A table row: formatted cells; a heading row names a group of the rows under it."""

    cells: tuple[str, ...]
    style: str = ""
    heading: bool = False
    indent: int = 0  # of the first cell, kept on its wrapped lines


@dataclass
class Section:
    """A group of byte rows under one scope: per token, per sequence, whole workload, per GPU."""

    scope: str
    rows: list[tuple[str, int, str]] = field(default_factory=list)  # (label, bytes, style)

    def add(self, label: str, n_bytes: int, style: str = "") -> None:
        self.rows.append((label, n_bytes, style))


def _longest_word(text: str) -> int:
    return max((cell_len(w) for w in text.split()), default=0)


def _min_widths(columns: Sequence[Column], rows: Sequence[Row]) -> list[int]:
    """The narrowest each column may be without losing a character of a name or number."""
    widths = []
    for i, col in enumerate(columns):
        cells = [r.cells[i] for r in rows if not r.heading]
        widest = max((cell_len(line) for c in cells for line in c.splitlines()), default=0)
        if i == 0:
            widest += max((r.indent for r in rows), default=0)
        if col.kind == "text":  # wraps at spaces; give it room for a readable line
            widest = max(max((_longest_word(c) for c in cells), default=0), min(widest, 10))
        widths.append(max(widest, _longest_word(col.header)))
    for r in rows:
        if r.heading:  # a heading spans the first column
            widths[0] = max(widths[0], min(cell_len(r.cells[0]), 24), _longest_word(r.cells[0]))
    return widths


def fits(console: Console, columns: Sequence[Column], rows: Sequence[Row]) -> bool:
    """Return True when every column gets its minimum width on this console."""
    return sum(_min_widths(columns, rows)) + 3 * len(columns) - 1 <= console.width


def show_table(
    console: Console,
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Row],
    caption: str | None = None,
) -> None:
    """Print rows as a table if every column gets its minimum width, else as records."""
    if fits(console, columns, rows):
        widths = _min_widths(columns, rows)
        table = Table(
            title=title,
            title_justify="left",
            caption=caption,
            caption_justify="left",
            show_edge=False,
        )
        for col, width in zip(columns, widths, strict=True):
            table.add_column(  # names and numbers get exactly their width; text the rest
                col.header,
                justify="right" if col.kind == "number" else "left",
                width=None if col.kind == "text" else width,
                min_width=width,
                overflow="fold",
            )
        for r in rows:
            if r.heading:
                table.add_row(r.cells[0], *[""] * (len(columns) - 1), style=r.style or "bold")
            else:
                first: Any = Padding(r.cells[0], (0, 0, 0, r.indent)) if r.indent else r.cells[0]
                table.add_row(first, *r.cells[1:], style=r.style or None)
        console.print(table)
        return
    _show_records(console, title, columns, rows, caption)


def _show_records(
    console: Console,
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Row],
    caption: str | None,
) -> None:
    """Print each row as a paragraph: its first cell, then `header value` pairs joined by
    ' · ', packed into lines of the console's width (a pair is never split across lines)."""
    out: list[Any] = [Text(title, style="bold", overflow="fold")]
    width = console.width
    for r in rows:
        if r.heading:
            out.append(Text(r.cells[0], style=r.style or "bold underline", overflow="fold"))
            continue
        pairs = [
            f"{col.header} {' / '.join(cell.splitlines())}"
            for col, cell in zip(columns[1:], r.cells[1:], strict=True)
        ]
        lines, line = [], " " * r.indent + r.cells[0]
        for pair in pairs:
            if cell_len(line) + 3 + cell_len(pair) <= width:
                line += " · " + pair
            else:
                lines.append(line)
                line = " " * (r.indent + 4) + pair
        lines.append(line)
        for i, text in enumerate(lines):
            style = (r.style or "bold") if i == 0 else r.style
            if cell_len(text) <= width:  # the common case: one line as it stands, no wrapping
                if not isinstance(out[-1], Text) or out[-1].no_wrap is not True:
                    out.append(Text(no_wrap=True, overflow="fold"))
                out[-1].append(text + "\n", style=style)
                continue
            # a single pair wider than the console (a long note) wraps under its indent
            indent = len(text) - len(text.lstrip(" "))
            styled = Text(text.lstrip(" "), style=style, overflow="fold")
            out.append(Padding(styled, (0, 0, 0, indent)) if indent else styled)
    for item in out:  # the trailing newline of each run of lines is the line break print adds
        if isinstance(item, Text) and item.no_wrap is True:
            item.rstrip()
    if caption:
        out.append(Text(caption))
    console.print(Group(*out))  # one print: a long list is one render, not one per line


def notes(console: Console, items: Sequence[tuple[str, str]], style: str = "") -> None:
    """Print labelled notes with a hanging indent: wrapped lines stay under their text."""
    if not items:
        return
    grid = Table.grid(padding=(0, 1))
    labelled = any(label for label, _ in items)
    if labelled:
        grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, text in items:
        cells = [Text(label, style="" if label.strip() == "·" else "bold")] if labelled else []
        grid.add_row(*cells, Text(text))
    console.print(grid, style=style or None)


_BYTE_COLUMNS = (
    Column("quantity"),
    Column("bytes", "number"),
    Column("binary", "number"),
    Column("decimal", "number"),
)
# under ~70 columns: binary and decimal stacked in one cell
_COMPACT_BYTE_COLUMNS = (Column("quantity"), Column("bytes", "number"), Column("≈", "number"))


def _byte_cells(n_bytes: int) -> tuple[str, str, str]:
    """Exact bytes, then auto-scaled binary (KiB/MiB/GiB) and decimal (kB/MB/GB) units."""
    return f"{n_bytes:,}", format_binary(n_bytes), format_decimal(n_bytes)


def show_bytes(
    console: Console, title: str, sections: Sequence[Section], caption: str | None = None
) -> None:
    """Print sections of byte rows: exact bytes next to binary and decimal units."""
    for compact in (False, True):
        rows: list[Row] = []
        for section in sections:
            if not section.rows:
                continue
            if section.scope:
                rows.append(Row((section.scope, "", "", "")[: 3 if compact else 4], heading=True))
            for label, n_bytes, style in section.rows:
                exact, binary, decimal = _byte_cells(n_bytes)
                cells = (
                    (label, exact, f"{binary}\n{decimal}")
                    if compact
                    else (label, exact, binary, decimal)
                )
                rows.append(Row(cells, style=style, indent=2 if section.scope else 0))
        columns = _COMPACT_BYTE_COLUMNS if compact else _BYTE_COLUMNS
        if fits(console, columns, rows) or compact:
            show_table(console, title, columns, rows, caption)
            return


def calc_sections(report: dict[str, Any]) -> list[Section]:
    """Return a calc report's byte rows grouped by scope, in reading order.

    per token; per sequence; whole workload (every layer kind, batch included, all GPUs);
    per GPU (the busiest). A new kind of cached thing adds its rows to these sections.
    """
    state = report.get("state_layers") or []
    kv = "KV " if state else ""
    per_token = Section("per token")
    per_token.add("all layers", report["bytes_per_token"])
    per_seq = Section(f"per sequence ({report['seq_len']:,} tokens)")
    per_seq.add(f"{kv}per sequence", report["per_sequence_bytes"])
    batch = report["batch"]
    whole = Section(f"whole workload ({batch:,} sequence{'s' if batch != 1 else ''}, all GPUs)")
    for group in report["layers"]:
        if group["kind"] in _POOL_KINDS:  # vLLM's DeepSeek-V4 KV-cache groups: pool blocks
            groups = f"{group['count']} KV-cache group{'s' if group['count'] != 1 else ''}"
            held = f"{group['tokens']:,} blocks held each"
            whole.add(f"{groups} {group['layer_kind']}, {held}", group["bytes"])
            continue
        name = f"{group['layer_kind']} " if group.get("layer_kind") else ""
        label = (
            f"{group['count']} {name}full layers"
            if group["kind"] == "full"
            else f"{group['count']} {name}{group['kind']} layers "
            f"({_WINDOW_LABELS.get(group['kind'], 'm')}={group['window']:,})"
        )
        rows = "rows" if group["kind"] in _COMPRESSED_PARTS else "tokens"
        whole.add(f"{label}, {group['tokens']:,} {rows} held", group["bytes"])
    for group in state:  # fixed-size state: per sequence, not per token
        padding = group["padded_count"] - group["count"]
        count = f"{group['count']} (+{padding} padding)" if padding else f"{group['count']}"
        whole.add(
            f"{count} {group['mixer']} state layers, "
            f"{group['bytes_per_sequence_per_layer']:,} B per sequence each",
            group["bytes"],
        )
    if state:
        per_seq.add("state per sequence", report["state_bytes_per_sequence"])
    whole.add(f"{kv}total", report["total_bytes"], "bold")
    if state:
        whole.add("state total", report["state_total_bytes"])
        whole.add("KV + state total", report["cache_total_bytes"], "bold")
    per_gpu = Section(f"per GPU (busiest of {report['n_gpus']})")
    per_gpu.add(f"{kv}per GPU", report["per_gpu_bytes"], "bold")
    if state:
        per_gpu.add("KV + state per GPU", report["cache_per_gpu_bytes"], "bold")
    return [per_token, per_seq, whole, per_gpu]


def render_calc(console: Console, report: dict[str, Any]) -> None:
    """Print a calc report: bytes by scope, the formula filled in, and the assumptions."""
    dtype = report["kv_dtype"] or f"K {report['k_dtype']} / V {report['v_dtype']}"
    title = (
        f"{report['model_name']} · {report['engine']} · {dtype} · seq {report['seq_len']:,}"
        f" · batch {report['batch']:,}"
    )
    if report["tp"] > 1 or report["pp"] > 1:
        title += f" · tp {report['tp']} × pp {report['pp']}"
    show_bytes(console, title, calc_sections(report))
    formulas = [("total:", report["total_formula"]), ("per token:", report["layer_formula"])]
    formulas += [
        ("state:", f"{group['formula']} per layer per sequence per GPU")
        for group in report.get("state_layers") or []
    ]
    if _checkpoint_kv(report):
        formulas.append(("KV dtype:", report["kv_dtype_source"]))
    notes(console, formulas)
    notes(console, [("  ·", line) for line in report["assumptions"]], style="dim")


def _checkpoint_kv(report: dict[str, Any]) -> bool:
    """Return True when the checkpoint's published KV cache decided the KV dtype, or was
    passed over by the engine: the one case where where it came from is worth a line."""
    source = str(report.get("kv_dtype_source") or "")
    return source.startswith("auto → ") and "checkpoint" in source


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def render_rows(
    console: Console, title: str, rows: list[dict[str, Any]], columns: list[str]
) -> None:
    """Print rows as a table (records when narrow); ints get thousands separators.

    The first column and short string columns are names (never wrapped); numbers are
    numbers; strings with spaces (notes, datasheet lines) are text and wrap.
    """
    kinds: list[ColumnKind] = []
    for i, col in enumerate(columns):
        values = [r.get(col) for r in rows if r.get(col) is not None]
        if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            kinds.append("number")
        elif i == 0 or all(" " not in _cell(v) for v in values):
            kinds.append("name")
        else:
            kinds.append("text")
    show_table(
        console,
        title,
        [Column(c.replace("_", " "), k) for c, k in zip(columns, kinds, strict=True)],
        [Row(tuple(_cell(r.get(c)) for c in columns)) for r in rows],
    )


def render_text(console: Console, text: str, title: str | None = None) -> None:
    """Print a block of text, in a panel when titled; `· ` lines get a hanging indent."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    body: list[Any] = [grid]
    if title and ": " in title:  # a panel title is cropped when long: keep only its name there
        title, summary = title.split(": ", 1)
        body.insert(0, Text(summary, style="bold"))
    for line in text.splitlines():
        bullet, _, rest = line.partition(" ")
        if bullet in ("·", "-") and rest:
            grid.add_row(bullet, Text(rest))
        else:
            grid.add_row("", Text(line))
    if title:
        console.print(Panel(Group(*body), title=Text(title), title_align="left"))
    else:
        console.print(Group(*body))


def render_fit(console: Console, report: dict[str, Any]) -> None:
    """Print one GPU's fit: the budget, every term, the verdict and the limits."""
    budget = Section("budget (per GPU)")
    budget.add(f"capacity ({report['capacity_kind']})", report["capacity_bytes"])
    for term in report["budget_terms"]:
        sign = "−" if term["bytes"] <= 0 else "+"
        budget.add(f"{sign} {term['term']}", abs(term["bytes"]))
    budget.add("= KV budget", report["kv_budget_bytes"], "bold")
    for term in report.get("pool_terms", ()):  # SGLang's split pools: they add up to it
        budget.add(f"  {term['term']}", term["bytes"])
    need = Section(
        f"this workload (per GPU, seq {report['seq_len']:,} × batch {report['batch']:,})"
    )
    need.add("KV", report["kv_bytes"])
    room = report["headroom_bytes"]
    need.add("headroom" if room >= 0 else "short by", abs(room), "green" if room >= 0 else "red")
    verdict = "[bold green]FITS[/]" if report["fits"] else "[bold red]DOES NOT FIT[/]"
    lines = [
        f"{verdict}  {report['model_name']} on {report['n_gpus']}× {report['gpu_name']} "
        f"(tp {report['tp']} × pp {report['pp']}), {report['engine']}, KV {report['kv_dtype']}",
        f"budget: {report['budget_rule']}",
        f"max batch at {report['seq_len']:,} tokens: {report['max_batch']:,}",
        f"max context at batch {report['batch']:,}: {report['max_seq_len']:,} tokens"
        + (" (the model's limit)" if report["max_seq_len_clamped"] else ""),
        f"KV cache size: {report['max_tokens']:,} tokens per GPU; maximum concurrency for "
        f"{report['seq_len']:,} tokens per request: {report['max_concurrency']:.2f}x",
        "minimum GPUs for this workload: "
        + (
            f"{report['min_gpus']} (tp {report['min_tp']} × pp {report['min_pp']})"
            if report["min_gpus"]
            else "none up to 4,096"
        )
        + (
            f"; with tensor parallelism alone: tp {report['min_tp_alone']}"
            if report["min_tp_alone"]
            else "; no tensor-parallel size alone fits"
        ),
    ]
    if report.get("llamacpp"):  # llama.cpp's own words (context, slots), not vLLM's line
        lines[2:5] = _llamacpp_fit_lines(report)
    if _checkpoint_kv(report):
        lines.insert(2, f"KV dtype: {report['kv_dtype_source']}")
    show_bytes(console, f"{report['model']} on {report['gpu']}", [budget, need])
    console.print(lines[0], highlight=False)
    notes(console, [("", line) for line in lines[1:]])
    if report["notes"]:
        notes(console, [("note:", n) for n in report["notes"]])


def _llamacpp_fit_lines(report: dict[str, Any]) -> list[str]:
    """Return fit's limit lines in llama.cpp's terms: -c, -np, streams, compute buffer."""
    ll = report["llamacpp"]
    flags = f"-c {ll['n_ctx']:,} -np {ll['slots']}" + (" --kv-unified" if ll["kv_unified"] else "")
    streams = "1 unified KV stream" if ll["n_stream"] == 1 else f"{ll['n_stream']} KV streams"
    gib = ll["compute_bytes"] / 2**30
    # 0: not estimated for this model (DSA), --reserve holds it
    compute = f"compute buffer {gib:.2f} GiB (estimate)" if gib else "compute buffer in --reserve"
    return [
        f"llama.cpp {flags}: {streams} of {ll['n_ctx_seq']:,} cells, n_ubatch {ll['n_ubatch']}, "
        f"{compute}",
        f"max context (-c) with -np {ll['slots']}: {ll['max_ctx_size']:,} cells",
        f"max slots (-np) with {report['seq_len']:,} tokens each: {ll['max_slots']:,}",
    ]


def render_fit_table(console: Console, reports: list[dict[str, Any]]) -> None:
    """Print one row per GPU: fits?, max batch, max context, KV tokens, minimum GPUs."""
    if not reports:
        return
    first = reports[0]
    title = (
        f"{first['model_name']} · {first['engine']} · KV {first['kv_dtype']} · "
        f"seq {first['seq_len']:,} × batch {first['batch']:,} · tp {first['tp']} × pp {first['pp']}"
    )
    columns = [
        Column("GPU", "name"), Column("memory GiB", "number"), Column("fits", "name"),
        Column("KV budget GiB", "number"), Column("max batch", "number"),
        Column("max context", "number"), Column("KV tokens", "number"),
        Column("min GPUs (tp×pp)", "name"),
    ]  # fmt: skip
    rows = [
        Row(
            (
                r["gpu"],
                f"{r['capacity_bytes'] / 2**30:,.2f}",
                "yes" if r["fits"] else "no",
                f"{r['kv_budget_bytes'] / 2**30:,.2f}",
                f"{r['max_batch']:,}",
                f"{r['max_seq_len']:,}",
                f"{r['max_tokens']:,}",
                "-" if r["min_gpus"] is None else f"{r['min_gpus']} ({r['min_tp']}×{r['min_pp']})",
            ),
            style="green" if r["fits"] else "red",
        )
        for r in reports
    ]
    show_table(console, title, columns, rows)
