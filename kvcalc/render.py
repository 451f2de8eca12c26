"""Rich rendering: the only module that imports rich. Every function takes a Console."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from kvcalc.units import format_gb, format_gib


def _size_cells(n_bytes: int) -> tuple[str, str, str]:
    return f"{n_bytes:,}", format_gib(n_bytes), format_gb(n_bytes)


def render_calc(console: Console, report: dict[str, Any]) -> None:
    """Print a calc report: the breakdown table, the formula and the assumptions."""
    dtype = report["kv_dtype"] or f"K {report['k_dtype']} / V {report['v_dtype']}"
    title = (
        f"{report['model_name']} · {report['engine']} · {dtype} · seq {report['seq_len']:,}"
        f" · batch {report['batch']:,}"
    )
    if report["tp"] > 1 or report["pp"] > 1:
        title += f" · tp {report['tp']} × pp {report['pp']}"
    table = Table(title=title, title_justify="left")
    table.add_column("quantity")
    table.add_column("bytes", justify="right")
    table.add_column("GiB (2^30)", justify="right")
    table.add_column("GB (10^9)", justify="right")
    table.add_row("per token, all layers", f"{report['bytes_per_token']:,}", "", "")
    for group in report["layers"]:
        label = (
            f"{group['count']} full layers"
            if group["kind"] == "full"
            else f"{group['count']} sliding layers (W={group['window']:,})"
        )
        label += f", {group['tokens']:,} tokens held"
        table.add_row(label, *_size_cells(group["bytes"]))
    table.add_row("per sequence", *_size_cells(report["per_sequence_bytes"]))
    table.add_row("total (all GPUs)", *_size_cells(report["total_bytes"]), style="bold")
    if report["n_gpus"] > 1:
        table.add_row(
            f"per GPU (busiest of {report['n_gpus']})",
            *_size_cells(report["per_gpu_bytes"]),
            style="bold",
        )
    console.print(table)
    console.print(f"[bold]total:[/bold] {report['total_formula']}", highlight=False)
    console.print(f"[bold]per token:[/bold] {report['layer_formula']}", highlight=False)
    for line in report["assumptions"]:
        console.print(f"  · {line}", style="dim", highlight=False)


def render_rows(
    console: Console, title: str, rows: list[dict[str, Any]], columns: list[str]
) -> None:
    """Print rows as a table; ints get thousands separators."""
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        numeric = any(isinstance(r.get(col), int) for r in rows)
        table.add_column(col, justify="right" if numeric else "left", no_wrap=numeric or i == 0)
    for row in rows:
        cells = []
        for col in columns:
            value = row.get(col)
            if value is None:
                cells.append("-")
            elif isinstance(value, bool):
                cells.append("yes" if value else "no")
            elif isinstance(value, int):
                cells.append(f"{value:,}")
            else:
                cells.append(str(value))
        table.add_row(*cells)
    console.print(table)


def render_text(console: Console, text: str, title: str | None = None) -> None:
    """Print a block of text, in a panel when titled."""
    if title:
        console.print(Panel(text, title=title, title_align="left"))
    else:
        console.print(text, highlight=False)
