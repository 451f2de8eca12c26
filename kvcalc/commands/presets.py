"""kvcalc presets list / show."""

from pathlib import Path

import typer

from kvcalc.commands._shared import (
    FORMAT_OPTION,
    PRESETS_OPTION,
    OutputFormat,
    _emit,
    _show_rows,
)
from kvcalc.errors import KvcalcError


def presets_list(
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """List model presets: name, attention layout, layers, KV bytes per token in bf16."""
    from kvcalc.dtypes import KV_DTYPES
    from kvcalc.engines import ENGINES
    from kvcalc.formula import Workload, kv_cache
    from kvcalc.presets import load_all_models
    from kvcalc.report import preset_row

    rows = []
    one_token = Workload(seq_len=1, k_dtype=KV_DTYPES["bf16"], v_dtype=KV_DTYPES["bf16"])
    for name, spec in sorted(load_all_models(presets).items()):
        per_token = kv_cache(spec, one_token, ENGINES["formula"]).bytes_per_token
        rows.append(preset_row(name, spec, per_token))
    columns = ["name", "attention", "layers", "sliding", "n_params", "kv_bytes_per_token_bf16"]
    _show_rows(fmt, f"{len(rows)} model presets", rows, columns)


def presets_show(
    name: str = typer.Argument(..., metavar="MODEL", help="Preset name or path."),
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = typer.Option(
        OutputFormat.yaml,
        "--format",
        "-f",
        help="Output format: yaml (also for table) or json; a nested spec has no CSV form.",
    ),
) -> None:
    """Show one model spec, validated, as YAML (or JSON)."""
    from kvcalc.presets import load_model

    if fmt is OutputFormat.csv:
        raise KvcalcError(
            "presets show has no CSV form (a spec is nested): use --format yaml or json, "
            "or `kvcalc presets list --format csv` for one row per preset"
        )
    spec = load_model(name, presets)
    data = spec.to_data()
    _emit(data, OutputFormat.json if fmt is OutputFormat.json else OutputFormat.yaml)
