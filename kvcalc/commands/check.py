"""kvcalc check: CI sanity check over deployment files."""

import sys
from pathlib import Path
from typing import Any

import typer

from kvcalc.commands._shared import (
    FORMAT_OPTION,
    PRESETS_OPTION,
    OutputFormat,
    _answer,
    _emit,
)


def check_command(
    files: list[Path] = typer.Argument(..., metavar="FILE...", help="Deployment YAML files."),
    presets: Path | None = PRESETS_OPTION,
    fmt: OutputFormat = FORMAT_OPTION,
) -> None:
    """CI sanity check: one line per deployment; exit 0 all fit, 1 any does not, 2 bad file."""
    from kvcalc.checks import _Cache, iter_checks

    cache = _Cache(presets)
    passed = failed = 0

    def results() -> Any:  # streamed: one deployment read, checked and written at a time
        nonlocal passed, failed
        for path in files:
            for r in iter_checks(path, presets, cache):
                if r["ok"]:
                    passed += 1
                else:
                    failed += 1
                    _answer(1)
                yield r

    _answer(0)
    rows = results()
    try:
        _write(rows, fmt)
    except BrokenPipeError:  # the reader left: still check the rest, a closed pipe must not pass CI
        for _ in rows:
            pass
        raise
    if failed:
        raise typer.Exit(1)


def _write(rows: Any, fmt: OutputFormat) -> None:
    from kvcalc.report import CHECK_CSV_COLUMNS

    if fmt is OutputFormat.table:
        passed = failed = 0
        for r in rows:
            passed += bool(r["ok"])
            failed += not r["ok"]
            status = "PASS" if r["ok"] else "FAIL"
            sys.stdout.write(f"{status} {r['name']}: {r['message']}\n")
        sys.stdout.write(f"{passed} passed, {failed} failed\n")
    elif fmt is OutputFormat.csv:
        import csv

        writer = csv.DictWriter(
            sys.stdout, fieldnames=list(CHECK_CSV_COLUMNS), extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(rows)
    elif fmt is OutputFormat.json:
        import json

        sep = "["
        for r in rows:
            text = json.dumps(r, indent=2, ensure_ascii=False)
            sys.stdout.write(sep + "\n  " + text.replace("\n", "\n  "))
            sep = ","
        sys.stdout.write("\n]\n" if sep == "," else "[]\n")
    else:
        _emit(list(rows), fmt, list(CHECK_CSV_COLUMNS))
