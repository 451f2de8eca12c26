"""kvcalc compare: models (and KV dtypes, engines) side by side, with ratios and a bar chart."""

from pathlib import Path

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


def _list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def compare_command(
    models: list[str] = typer.Argument(
        ..., metavar="MODEL...", help="Presets, spec .yaml or config.json files to compare."
    ),
    seq: str = typer.Option(
        "8k", "--seq", "-s", metavar="TOKENS", help="Context for the per-sequence bytes."
    ),
    batch: str = typer.Option("1", "--batch", "-b", metavar="N", help="Concurrent sequences."),
    kv_dtype: str = typer.Option(
        "auto",
        "--kv-dtype",
        metavar="DTYPE[,DTYPE...]",
        help="KV dtypes to compare (auto = model's).",
    ),
    engine: str = typer.Option(
        "vllm", "--engine", "-e", metavar="ENGINE[,ENGINE...]", help="Engine profiles to compare."
    ),
    tp: str = typer.Option("1", "--tp", metavar="N", help="Tensor-parallel size."),
    pp: str = typer.Option("1", "--pp", metavar="N", help="Pipeline-parallel size."),
    gpu: str | None = typer.Option(
        None, "--gpu", "-g", metavar="GPU", help="Add fit, max batch and max context on this GPU."
    ),
    gpu_mem: str | None = typer.Option(
        None, "--gpu-mem", metavar="SIZE", help="Override the GPU's memory, e.g. 80GiB."
    ),
    as_: str | None = typer.Option(
        None,
        "--as",
        metavar="mha",
        help="Add each model as plain MHA (all layers full) to show what its layout saves.",
    ),
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """Compare models side by side: bytes per token and per sequence, layout, capacity, ratio."""
    from kvcalc.compare import COMPARE_CSV_COLUMNS, Column, as_mha, compare, compared_rows
    from kvcalc.dtypes import kv_dtype as lookup_dtype
    from kvcalc.engines import engine_profile
    from kvcalc.presets import load_gpu, load_model
    from kvcalc.units import parse_count

    if as_ is not None and as_.strip().lower() != "mha":
        raise KvcalcError(f"--as takes 'mha', got {as_!r}")
    workload = _workload(
        seq, batch, "auto", "auto", parse_count(tp, "--tp", 4096), parse_count(pp, "--pp", 4096),
        None, None,
    )  # fmt: skip
    dtypes = [None if d.lower() == "auto" else lookup_dtype(d) for d in _list(kv_dtype)]
    profiles = [engine_profile(e) for e in _list(engine)]
    if not dtypes or not profiles:
        raise KvcalcError("--kv-dtype and --engine need at least one value")
    columns = []
    for name in models:
        spec = load_model(name, presets)
        variants = [(spec, False)]
        if as_ is not None:
            variants.append((as_mha(spec), True))
        for variant, is_mha in variants:
            for profile in profiles:
                for dtype in dtypes:
                    columns.append(Column(name, variant, profile, dtype, is_mha))
    if len(columns) > 64:
        raise KvcalcError(f"{len(columns)} columns is too many to compare (at most 64)")
    target = None
    if gpu is not None:
        target = (gpu, _with_capacity(load_gpu(gpu, presets), gpu_mem))
    rows = compared_rows(compare(columns, workload, target), workload)
    if fmt is OutputFormat.table:
        from kvcalc.render_insight import render_compare

        render_compare(_console(), rows)
    else:
        _emit(rows, fmt, COMPARE_CSV_COLUMNS)
