"""Rich rendering of explain, compare and the terminal plot. Every function takes a Console."""

from __future__ import annotations

from typing import Any

from rich.bar import Bar
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from kvcalc.plot import PlotData
from kvcalc.render import Column, Row, show_table
from kvcalc.units import GiB, format_bytes, format_gb, format_gib


def render_explain(console: Console, data: dict[str, Any]) -> None:
    """Print an explanation: each step's title and lines, the formula's factors as a table."""
    title = (
        f"{data['model_name']} · {data['engine']} · K {data['k_dtype']} / V {data['v_dtype']}"
        f" · seq {data['seq_len']:,} · batch {data['batch']:,}"
    )
    if data["tp"] > 1 or data["pp"] > 1:
        title += f" · tp {data['tp']} × pp {data['pp']}"
    console.print(Text(title, style="bold"))
    for number, step in enumerate(data["steps"], 1):
        console.print()
        console.print(Text(f"{number}. {step['title']}", style="bold"))
        for line in step["lines"]:
            console.print(Padding(Text(line), (0, 0, 0, 3)))
        if step["factors"]:
            table = Table(box=None, pad_edge=False, padding=(0, 1))
            table.add_column("factor")
            table.add_column("value", justify="right", no_wrap=True)
            table.add_column("what", overflow="fold")
            table.add_column("from", overflow="fold")
            for f in step["factors"]:
                table.add_row(f["symbol"], f"{f['value']:,}", f["meaning"], f["source"])
            console.print(Padding(table, (0, 0, 0, 3)))
    console.print()
    state = data.get("state_total_bytes") or 0
    console.print(Text(f"KV cache: {format_bytes(data['total_bytes'])}", style="bold"))
    if state:
        console.print(Text(f"fixed state: {format_bytes(state)}", style="bold"))
        console.print(Text(f"together: {format_bytes(data['total_bytes'] + state)}"))
    if data["tp"] * data["pp"] > 1:
        per_gpu = data["per_gpu_bytes"] + (data.get("state_per_gpu_bytes") or 0)
        console.print(Text(f"per GPU (busiest): {format_bytes(per_gpu)}"))


def _ratio(value: float) -> str:
    return f"{value:.2f}×" if value < 100 else f"{value:,.0f}×"


def render_compare(console: Console, rows: list[dict[str, Any]]) -> None:
    """Print the comparison: one column per point, a row per quantity, then a bar chart.

    Drawn by render.show_table: names and numbers are never cut; when the columns do not fit
    the console, each quantity is printed as a record instead.
    """
    first = rows[0]
    title = (
        f"seq {first['seq_len']:,} · batch {first['batch']:,}"
        + (f" · tp {first['tp']} × pp {first['pp']}" if first["tp"] * first["pp"] > 1 else "")
        + " · ratios to the first column"
    )
    columns = [Column("", "text")] + [
        Column(r["model"] + (" as MHA" if r["as_mha"] else ""), "number") for r in rows
    ]
    table_rows: list[Row] = []

    def add(label: str, cells: Any, indent: int = 0) -> None:
        table_rows.append(Row((label, *cells), indent=indent))

    add("layout", (r["layout"] for r in rows))
    add("engine · KV dtype", (f"{r['engine']} · {r['kv_dtype']}" for r in rows))
    add("KV bytes per token", (f"{r['bytes_per_token']:,}" for r in rows))
    add("ratio", (_ratio(r["ratio_per_token"]) for r in rows), indent=2)
    add(f"per sequence at {first['seq_len']:,}", (f"{r['per_sequence_bytes']:,}" for r in rows))
    add("GiB (2^30)", (format_gib(r["per_sequence_bytes"]) for r in rows), indent=2)
    add("GB (10^9)", (format_gb(r["per_sequence_bytes"]) for r in rows), indent=2)
    with_state = any(r.get("state_bytes_per_sequence") for r in rows)
    if with_state:
        add(
            "+ fixed state per sequence",
            (f"{r['state_bytes_per_sequence']:,}" for r in rows),
        )
    add(
        "ratio (KV + state)" if with_state else "ratio",
        (_ratio(r["ratio_per_sequence"]) for r in rows),
        indent=2,
    )
    if first["batch"] > 1 or first["tp"] * first["pp"] > 1:
        add("total, all GPUs", (format_gib(r["total_bytes"]) for r in rows))
        add("per GPU", (format_gib(r["per_gpu_bytes"]) for r in rows))
    if first["gpu"] is not None:
        add(f"fits on {first['gpu']}", ("yes" if r["fits"] else "no" for r in rows))
        add(f"max batch at {first['seq_len']:,}", (f"{r['max_batch']:,}" for r in rows))
        add(
            f"max context at batch {first['batch']:,}",
            (f"{r['max_seq_len']:,}" for r in rows),
        )
    show_table(console, title, columns, table_rows)
    render_bars(
        console,
        f"{'KV + state' if with_state else 'KV'} per sequence at {first['seq_len']:,} tokens",
        [
            (
                r["model"] + (" as MHA" if r["as_mha"] else ""),
                r["per_sequence_bytes"] + (r.get("state_bytes_per_sequence") or 0),
            )
            for r in rows
        ],
    )


def render_bars(console: Console, title: str, bars: list[tuple[str, int]]) -> None:
    """Print a horizontal bar per (label, bytes), scaled to the largest, with GiB figures."""
    largest = max(b for _, b in bars) or 1
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("", ratio=1)
    table.add_column("", justify="right", no_wrap=True)
    for label, n_bytes in bars:
        table.add_row(label, Bar(largest, 0, n_bytes), format_gib(n_bytes))
    console.print(table)


_MARKS = "●▲■◆✚✖"


def render_plot_text(console: Console, data: PlotData, width: int = 72, height: int = 18) -> None:
    """Print the plot as characters: a mark per series point, capacity rows, boundary columns.

    The x axis is logarithmic (points are usually doubling), the y axis linear in GiB from 0
    to the largest value shown (capacities included).
    """
    import math

    xs = sorted({x for s in data.series for x in s.x})
    tops = [max(s.y) for s in data.series] + [c.capacity_bytes for c in data.capacities]
    top = max(tops) or 1
    lo, hi = math.log2(xs[0]), math.log2(xs[-1])

    def column(x: int) -> int:
        if hi == lo:
            return 0
        return round((math.log2(x) - lo) / (hi - lo) * (width - 1))

    def row(y: int) -> int:
        return height - 1 - min(height - 1, y * (height - 1) // top)

    grid = [[" "] * width for _ in range(height)]
    for c in data.capacities:
        r = row(c.capacity_bytes)
        grid[r] = ["─" if ch == " " else ch for ch in grid[r]]
    for b in data.boundaries:
        if b.x and xs[0] <= b.x <= xs[-1]:
            col = column(b.x)
            for r in range(height):
                if grid[r][col] == " ":
                    grid[r][col] = "┊"
    legend = []
    for i, s in enumerate(data.series):
        mark = _MARKS[i % len(_MARKS)] if s.kind == "kv" else "·○△□◇+x"[i % 7]
        legend.append(f"{mark} {s.label}")
        for x, y in zip(s.x, s.y, strict=True):
            cell = grid[row(y)][column(x)]
            grid[row(y)][column(x)] = mark if cell in (" ", "─", "┊", mark) else "*"
    label_width = len(f"{top / GiB:,.0f}")
    console.print(Text(data.title, style="bold"))
    for r, cells in enumerate(grid):
        value = (height - 1 - r) * top // (height - 1)
        label = f"{value / GiB:,.0f}" if r % 3 == 0 or r == height - 1 else ""
        console.print(Text(f"{label:>{label_width}} │{''.join(cells)}"))
    console.print(Text(" " * label_width + " └" + "─" * width))
    left, right = f"{xs[0]:,}", f"{xs[-1]:,}"
    what = "tokens per sequence" if data.axis == "seq" else "batch"
    middle = f"{what} (log scale)"
    gap = max(1, width - len(left) - len(right) - len(middle))
    console.print(
        Text(
            " " * (label_width + 2)
            + left
            + " " * (gap // 2)
            + middle
            + " " * (gap - gap // 2)
            + right
        )
    )
    if any("*" in cells for cells in grid):
        legend.append("* several")
    console.print(Text(f"GiB (2^30 B) per GPU; {', '.join(legend)}"))
    for c in data.capacities:
        console.print(Text(f"─ {c.gpu} capacity {format_gib(c.capacity_bytes)}"))
    for b in data.boundaries:
        console.print(Text(f"┊ {b.text}"))
