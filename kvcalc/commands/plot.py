"""kvcalc plot: KV and total memory against context or batch, to a PNG/SVG or the terminal."""

import sys
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from kvcalc.commands._shared import (
    FORMAT_OPTION,
    PRESETS_OPTION,
    OutputFormat,
    _console,
    _emit,
    _with_capacity,
    _workload,
)
from kvcalc.errors import KvcalcError

FILE_FORMATS = (".png", ".svg", ".pdf")


class Against(str, Enum):
    seq = "seq"
    batch = "batch"


def plot_rows(data: Any) -> list[dict[str, Any]]:
    """Return one row per plotted point: series, x, bytes (and boundaries as their own rows)."""
    rows: list[dict[str, Any]] = []
    for s in data.series:
        for x, y in zip(s.x, s.y, strict=True):
            rows.append(
                {"series": s.label, "model": s.model, "gpu": s.gpu, "kind": s.kind,
                 data.axis if data.axis == "batch" else "seq_len": x, "bytes": y}
            )  # fmt: skip
    return rows


SWEEP_PLOT_LIMIT = 20_000  # points a picture is drawn for


def _save(data: Any, output: Path) -> None:
    """Draw the plot data with matplotlib and write it to output (PNG, SVG or PDF)."""
    from kvcalc.plot import figure

    if output.suffix.lower() not in FILE_FORMATS:
        raise KvcalcError(
            f"{str(output)!r}: the plot's file name must end in {', '.join(FILE_FORMATS)}"
        )
    fig = figure(data)
    try:
        fig.savefig(output, format=output.suffix.lower()[1:])
    except OSError as exc:
        raise KvcalcError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
    sys.stderr.write(f"wrote {output}\n")


def write_sweep_plot(grid: Any, output: Path) -> None:
    """Plot a sweep's rows (`kvcalc sweep ... --plot FILE`): KV and totals against seq or batch."""
    from kvcalc.plot import _matplotlib, sweep_plot_data
    from kvcalc.sweep import rows

    if output.suffix.lower() not in FILE_FORMATS:
        raise KvcalcError(
            f"--plot {str(output)!r}: the file name must end in {', '.join(FILE_FORMATS)}"
        )
    _matplotlib()  # fail before any row is computed when matplotlib is missing
    if grid.size > SWEEP_PLOT_LIMIT:
        raise KvcalcError(
            f"--plot draws at most {SWEEP_PLOT_LIMIT:,} points; this sweep has {grid.size:,}"
        )
    _save(sweep_plot_data(list(rows(grid))), output)


def plot_command(
    models: list[str] = typer.Argument(..., metavar="MODEL...", help="Presets or spec files."),
    gpu: str | None = typer.Option(
        None,
        "--gpu",
        "-g",
        metavar="GPU[,GPU...]",
        help="GPUs: draw each one's capacity, the total memory and the fit boundary.",
    ),
    against: Against = typer.Option(
        Against.seq, "--against", help="x axis: context (seq) or concurrent sequences (batch)."
    ),
    seq: str | None = typer.Option(
        None,
        "--seq",
        "-s",
        metavar="TOKENS",
        help="Context points (1k,8k or 1k..128k, doubling; 1k..8k:+1k) along the seq axis; "
        "the fixed context (default 8k) with --against batch.",
    ),
    batch: str | None = typer.Option(
        None,
        "--batch",
        "-b",
        metavar="N",
        help="Batch points (1..256) with --against batch; the fixed batch (default 1) otherwise.",
    ),
    kv_dtype: str = typer.Option("auto", "--kv-dtype", metavar="DTYPE", help="KV-cache dtype."),
    engine: str = typer.Option("vllm", "--engine", "-e", metavar="ENGINE", help="Engine profile."),
    tp: str = typer.Option("1", "--tp", metavar="N", help="Tensor-parallel size."),
    pp: str = typer.Option("1", "--pp", metavar="N", help="Pipeline-parallel size."),
    gpu_mem: str | None = typer.Option(
        None, "--gpu-mem", metavar="SIZE", help="Override the GPUs' memory, e.g. 80GiB."
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="FILE",
        help="Write the plot to FILE (.png, .svg or .pdf; needs pip install 'kvcalc[plot]'); "
        "without it, a terminal plot.",
    ),
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Plot KV and total memory per GPU against context or batch, with each GPU's capacity."""
    from kvcalc.engines import engine_profile
    from kvcalc.plot import default_seq_grid, parse_grid, plot_data
    from kvcalc.presets import load_gpu, load_model
    from kvcalc.units import parse_count

    if output is not None and output.suffix.lower() not in FILE_FORMATS:
        raise KvcalcError(
            f"--output {str(output)!r}: the file name must end in {', '.join(FILE_FORMATS)}"
        )
    specs = [(name, load_model(name, presets)) for name in models]
    if against is Against.seq:
        xs = (
            parse_grid(seq, "--seq") if seq is not None else default_seq_grid([s for _, s in specs])
        )
        fixed_seq, fixed_batch = "1", batch or "1"
    else:
        xs = parse_grid(batch or "1..256", "--batch")
        fixed_seq, fixed_batch = seq or "8k", "1"
    workload = _workload(
        fixed_seq, fixed_batch, kv_dtype, kv_dtype, parse_count(tp, "--tp", 4096),
        parse_count(pp, "--pp", 4096), None, None,
    )  # fmt: skip
    gpus = []
    for name in [g.strip() for g in (gpu or "").split(",") if g.strip()]:
        gpus.append((name, _with_capacity(load_gpu(name, presets), gpu_mem)))
    data = plot_data(specs, gpus, engine_profile(engine), workload, against.value, xs)
    if output is not None:
        _save(data, output)
        return
    if fmt is OutputFormat.table:
        from kvcalc.render_insight import render_plot_text

        render_plot_text(_console(), data)
    else:
        rows = plot_rows(data)
        x_name = "seq_len" if against is Against.seq else "batch"
        _emit(rows, fmt, ["series", "model", "gpu", "kind", x_name, "bytes"])
