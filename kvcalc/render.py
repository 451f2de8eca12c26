"""Rich rendering: the only module that imports rich. Every function takes a Console."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from kvcalc.units import format_gb, format_gib


class _PipeConsole(Console):
    """A Console whose closed stdout raises BrokenPipeError for the CLI to end with exit 0.

    rich's own on_broken_pipe raises SystemExit(1), and 1 means "does not fit" here.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def make_console() -> Console:
    """Return the CLI's stdout Console (no syntax highlighting; a closed pipe is not an error)."""
    return _PipeConsole(highlight=False)


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
    widest = max(len(f"{report[k]:,}") for k in ("total_bytes", "per_sequence_bytes"))
    table.add_column("quantity", overflow="fold")
    table.add_column("bytes", justify="right", no_wrap=True, min_width=widest)
    table.add_column("GiB (2^30)", justify="right", no_wrap=True)
    table.add_column("GB (10^9)", justify="right", no_wrap=True)
    per_token = report["bytes_per_token"]
    table.add_row(
        "per token, all layers",
        f"{per_token:,}",
        f"{per_token / 2**30:.3g} GiB",
        f"{per_token / 10**9:.3g} GB",
    )
    for group in report["layers"]:
        name = f"{group['layer_kind']} " if group.get("layer_kind") else ""
        label = (
            f"{group['count']} {name}full layers"
            if group["kind"] == "full"
            else f"{group['count']} {name}{group['kind']} layers "
            f"({'W' if group['kind'] == 'sliding' else 'chunk'}={group['window']:,})"
        )
        label += f", {group['tokens']:,} tokens held"
        table.add_row(label, *_size_cells(group["bytes"]))
    state = report.get("state_layers") or []
    kv_label = "KV " if state else ""
    table.add_row(f"{kv_label}per sequence", *_size_cells(report["per_sequence_bytes"]))
    table.add_row(f"{kv_label}total (all GPUs)", *_size_cells(report["total_bytes"]), style="bold")
    table.add_row(
        f"{kv_label}per GPU (busiest of {report['n_gpus']})",
        *_size_cells(report["per_gpu_bytes"]),
        style="bold",
    )
    for group in state:  # fixed-size state: per sequence, not per token
        padding = group["padded_count"] - group["count"]
        count = f"{group['count']} (+{padding} padding)" if padding else f"{group['count']}"
        table.add_row(
            f"{count} {group['mixer']} state layers, "
            f"{group['bytes_per_sequence_per_layer']:,} B per sequence each",
            *_size_cells(group["bytes"]),
        )
    if state:
        table.add_row("state per sequence", *_size_cells(report["state_bytes_per_sequence"]))
        table.add_row("state total (all GPUs)", *_size_cells(report["state_total_bytes"]))
        table.add_row(
            "KV + state total (all GPUs)", *_size_cells(report["cache_total_bytes"]), style="bold"
        )
        table.add_row(
            "KV + state per GPU (busiest)",
            *_size_cells(report["cache_per_gpu_bytes"]),
            style="bold",
        )
    console.print(table)
    console.print(f"[bold]total:[/bold] {report['total_formula']}", highlight=False)
    console.print(f"[bold]per token:[/bold] {report['layer_formula']}", highlight=False)
    for group in state:
        console.print(
            f"[bold]state:[/bold] {group['formula']} per layer per sequence per GPU",
            highlight=False,
        )
    for line in report["assumptions"]:
        console.print(f"  · {line}", style="dim", highlight=False)


def render_rows(
    console: Console, title: str, rows: list[dict[str, Any]], columns: list[str]
) -> None:
    """Print rows as a table; ints get thousands separators."""
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        numeric = any(isinstance(r.get(col), int | float) for r in rows)
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
            elif isinstance(value, float):
                cells.append(f"{value:,.2f}")
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


def render_fit(console: Console, report: dict[str, Any]) -> None:
    """Print one GPU's fit panel: the budget, every term, the verdict and the limits."""
    table = Table(show_header=True, box=None, pad_edge=False)
    table.add_column("budget (per GPU)", overflow="fold")
    table.add_column("bytes", justify="right", no_wrap=True)
    table.add_column("GiB (2^30)", justify="right", no_wrap=True)
    table.add_column("GB (10^9)", justify="right", no_wrap=True)
    table.add_row(f"capacity ({report['capacity_kind']})", *_size_cells(report["capacity_bytes"]))
    for term in report["budget_terms"]:
        sign = "−" if term["bytes"] <= 0 else "+"
        table.add_row(f"{sign} {term['term']}", *_size_cells(abs(term["bytes"])))
    table.add_row("= KV budget", *_size_cells(report["kv_budget_bytes"]), style="bold")
    table.add_row(
        f"KV at seq {report['seq_len']:,} × batch {report['batch']:,}",
        *_size_cells(report["kv_bytes"]),
    )
    room = report["headroom_bytes"]
    table.add_row(
        "headroom" if room >= 0 else "short by",
        *_size_cells(abs(room)),
        style="green" if room >= 0 else "red",
    )
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
    lines += [f"note: {n}" for n in report["notes"]]
    console.print(Panel(table, title=f"{report['model']} on {report['gpu']}", title_align="left"))
    for line in lines:
        console.print(line, highlight=False)


def _llamacpp_fit_lines(report: dict[str, Any]) -> list[str]:
    """Return fit's limit lines in llama.cpp's terms: -c, -np, streams, compute buffer."""
    ll = report["llamacpp"]
    flags = f"-c {ll['n_ctx']:,} -np {ll['slots']}" + (" --kv-unified" if ll["kv_unified"] else "")
    streams = "1 unified KV stream" if ll["n_stream"] == 1 else f"{ll['n_stream']} KV streams"
    gib = ll["compute_bytes"] / 2**30
    return [
        f"llama.cpp {flags}: {streams} of {ll['n_ctx_seq']:,} cells, n_ubatch {ll['n_ubatch']}, "
        f"compute buffer {gib:.2f} GiB (estimate)",
        f"max context (-c) with -np {ll['slots']}: {ll['max_ctx_size']:,} cells",
        f"max slots (-np) with {report['seq_len']:,} tokens each: {ll['max_slots']:,}",
    ]


def render_fit_table(console: Console, reports: list[dict[str, Any]]) -> None:
    """Print one row per GPU: fits?, max batch, max context, KV tokens, minimum GPUs."""
    if not reports:
        return
    first = reports[0]
    table = Table(
        title=(
            f"{first['model_name']} · {first['engine']} · KV {first['kv_dtype']} · "
            f"seq {first['seq_len']:,} × batch {first['batch']:,} · tp {first['tp']} × pp {first['pp']}"
        ),
        title_justify="left",
    )
    for col, justify in (
        ("GPU", "left"), ("memory GiB", "right"), ("fits", "left"), ("KV budget GiB", "right"),
        ("max batch", "right"), ("max context", "right"), ("KV tokens", "right"),
        ("min GPUs", "right"),
    ):  # fmt: skip
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in reports:
        table.add_row(
            r["gpu"],
            f"{r['capacity_bytes'] / 2**30:,.2f}",
            "yes" if r["fits"] else "no",
            f"{r['kv_budget_bytes'] / 2**30:,.2f}",
            f"{r['max_batch']:,}",
            f"{r['max_seq_len']:,}",
            f"{r['max_tokens']:,}",
            "-" if r["min_gpus"] is None else f"{r['min_gpus']} ({r['min_tp']}×{r['min_pp']})",
            style="green" if r["fits"] else "red",
        )
    console.print(table)
