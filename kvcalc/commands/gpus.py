"""kvcalc gpus list."""

from pathlib import Path

from kvcalc.commands._shared import (
    FORMAT_OPTION,
    PRESETS_OPTION,
    OutputFormat,
    _show_rows,
)


def gpus_list(presets: Path | None = PRESETS_OPTION, fmt: OutputFormat = FORMAT_OPTION) -> None:
    """List GPU presets: the memory engines size from (GiB and GB), its kind, bandwidth."""
    from kvcalc.presets import load_all_gpus
    from kvcalc.report import gpu_row

    rows = [gpu_row(name, g) for name, g in sorted(load_all_gpus(presets).items())]
    columns = ["name", "gpu", "memory_bytes", "memory_gib", "memory_gb", "memory_kind",
               "datasheet_memory"]  # fmt: skip
    _show_rows(fmt, f"{len(rows)} GPU presets", rows, columns)
